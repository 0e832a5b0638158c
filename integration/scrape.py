"""Reading an instance's Prometheus endpoint, as a monitoring system would.

Each instance serves its own ``CollectorRegistry`` over HTTP (``start_http_server``). The
coordinator fetches ``/metrics``, parses the text exposition with prometheus_client's parser and
keeps a compact summary: the gcache families summed over ``use_case``/``key_type``/``namespace``
but split by the label that matters (``layer``, ``reason``, ``error``, ``type``), e.g.
``request{layer=local}``, ``disabled{reason=bus_unsynced}``, ``bus_gaps{reason=start}``.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["INSTANCE_INFO", "PROBE_USE_CASE", "ScrapeError", "scrape", "summarize"]

INSTANCE_INFO = "gcache_it_instance"
"""The gauge each instance registers with its ``slot``, ``incarnation`` and ``pid`` labels."""
PROBE_USE_CASE = "CancelProbe"
"""The use case of the instances' cancellation probe, left out of the summary (its calls are
not reads of the workload)."""

# sample name -> (short name, label kept in the key)
_KEPT: Mapping[str, tuple[str, str | None]] = {
    "gcache_request_counter_total": ("request", "layer"),
    "gcache_miss_counter_total": ("miss", "layer"),
    "gcache_disabled_counter_total": ("disabled", "reason"),
    "gcache_error_counter_total": ("error", "error"),
    "gcache_invalidation_counter_total": ("invalidation", "layer"),
    "gcache_fallback_timer_count": ("fallback_count", None),
    "gcache_fallback_timer_sum": ("fallback_seconds", None),
    "gcache_get_timer_count": ("get_count", "layer"),
    "gcache_get_timer_sum": ("get_seconds", "layer"),
    "gcache_bus_events_total": ("bus_events", "type"),
    "gcache_bus_lag_seconds_count": ("bus_lag_count", None),
    "gcache_bus_lag_seconds_sum": ("bus_lag_seconds", None),
    "gcache_bus_reconnects_total": ("bus_reconnects", None),
    "gcache_bus_gaps_total": ("bus_gaps", "reason"),
    "gcache_bus_malformed_total": ("bus_malformed", "reason"),
}


class ScrapeError(RuntimeError):
    """The endpoint did not answer (a crashed or restarting instance)."""


def scrape(port: int, timeout: float = 2.0) -> tuple[dict[str, str], dict[str, float]]:
    """Fetch ``http://127.0.0.1:<port>/metrics``; returns the instance's info labels and the
    :func:`summarize` of its samples."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode("utf-8")
    except OSError as exc:
        raise ScrapeError(f"port {port}: {exc!r}") from exc
    return summarize(text)


def summarize(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """The info labels and the summary of one text exposition (see the module docstring)."""
    info: dict[str, str] = {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == INSTANCE_INFO:
                info = dict(sample.labels)
                continue
            kept = _KEPT.get(sample.name)
            if kept is None or sample.labels.get("use_case") == PROBE_USE_CASE:
                continue
            short, label = kept
            key = short if label is None else f"{short}{{{label}={sample.labels.get(label, '')}}}"
            values[key] = values.get(key, 0.0) + float(sample.value)
    return info, values
