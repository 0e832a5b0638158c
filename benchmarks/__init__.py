"""Per-call cost of gcache's hot paths, measured against uncached baselines in one run.

Run from the repository root::

    python -m benchmarks [--quick] [--json PATH]

Every scenario is timed in several rounds, alternating scenarios within a round, and reported as
the median per-call time with its spread; the project's targets (LOCAL hits at most 2 us, a
tracked REMOTE hit at most 1.15x a raw Redis GET) are printed as PASS/MISS. The run reports, it
never fails on a missed target: thresholds are read by people, not enforced by the exit status.

Redis is always a private ``redis-server`` started on a free loopback port
(:mod:`integration.redis_server`), never a server someone else runs.

Modules, one concept each: :mod:`.plan` (how much work), :mod:`.subjects` (what is called),
:mod:`.timing` (the timed loop), :mod:`.scenarios` (what is measured, and its preconditions),
:mod:`.checks` (proof that each round took its path), :mod:`.runner` (rounds), :mod:`.stats`
(medians and spreads), :mod:`.targets` (PASS/MISS), :mod:`.machine` (where it ran),
:mod:`.report` (table and JSON).
"""
