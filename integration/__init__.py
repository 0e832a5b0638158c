"""Multi-instance integration harness of gcache (``python -m integration``), and the private
``redis-server`` helpers the tests and benchmarks share (:mod:`integration.redis_server`).

One concept per module:

* roles (each an OS process): :mod:`~integration.instance`, :mod:`~integration.writer`,
  :mod:`~integration.injector` (with :mod:`~integration.proxy`), started and supervised by
  :mod:`~integration.coordinator`;
* what they share: :mod:`~integration.config` (the knobs), :mod:`~integration.faults` (the
  schedule), :mod:`~integration.truth` (SQLite source of truth), :mod:`~integration.zipf`,
  :mod:`~integration.control` (instance command port), :mod:`~integration.eventlog` (record
  logs), :mod:`~integration.scrape` (Prometheus endpoints);
* after the run: :mod:`~integration.collect` (logs to :mod:`~integration.model`),
  :mod:`~integration.checker` (staleness verdicts), :mod:`~integration.analysis` (figures),
  :mod:`~integration.report` (terminal and JSON), :mod:`~integration.cli` (the command).
"""
