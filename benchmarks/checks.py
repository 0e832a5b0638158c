"""Proof that a timed round took the path its scenario is named after.

Timing the wrong path is the classic benchmark failure, and here it would be silent: a "LOCAL
hit" that quietly went to Redis (entry gone, layer bypassed) still never runs the function body.
So each round is checked twice, around the timed loop:

* the function body ran exactly as often as the path implies (the subjects count it), and
* gcache's own request and miss counters (README, "Metrics"), per layer, moved exactly as the
  path implies: a LOCAL hit is one LOCAL request and no LOCAL miss per call, and no REMOTE
  request at all.

The counters are read from the private registry outside the timed loop, so checking costs the
figures nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry

from .subjects import KEY_TYPE, Subjects

__all__ = ["PathError", "expect_path", "local_hits", "misses", "remote_hits"]

_COUNTERS: Final = {
    "request": "gcache_request_counter_total",
    "miss": "gcache_miss_counter_total",
}


class PathError(RuntimeError):
    """A timed round did not exercise the path its scenario is named after, or the setup did not
    leave the state that path needs."""


def _count(registry: CollectorRegistry, counter: str, use_case: str, layer: str) -> float:
    labels = {"use_case": use_case, "key_type": KEY_TYPE, "layer": layer}
    value = registry.get_sample_value(_COUNTERS[counter], labels)
    return 0.0 if value is None else value  # no sample yet: the child was never incremented


@contextlib.contextmanager
def expect_path(
    subjects: Subjects,
    function: str,
    *,
    body_runs: int,
    counters: Mapping[tuple[str, str], int],
) -> Iterator[None]:
    """Raise :class:`PathError` unless, over the block, ``function``'s body ran ``body_runs``
    times and each ``(counter, layer)`` of ``counters`` (counter ``"request"`` or ``"miss"``,
    layer ``"local"`` or ``"remote"``) rose by exactly the given amount."""
    use_case = subjects.use_cases[function]
    registry = subjects.registry
    runs_before = subjects.fallbacks[function]
    before = {(c, layer): _count(registry, c, use_case, layer) for c, layer in counters}
    yield
    problems = []
    ran = subjects.fallbacks[function] - runs_before
    if ran != body_runs:
        problems.append(f"the function body ran {ran} time(s), expected {body_runs}")
    for (counter, layer), expected in counters.items():
        rose = _count(registry, counter, use_case, layer) - before[(counter, layer)]
        if rose != expected:
            problems.append(
                f"{_COUNTERS[counter]}{{layer={layer}}} rose by {rose:g}, expected {expected}"
            )
    if problems:
        raise PathError(f"{use_case}: not the path being measured: " + "; ".join(problems))


# What the counters of ``expect_path`` must show after ``calls`` calls of each path.


def local_hits(calls: int) -> dict[tuple[str, str], int]:
    """Every call consults LOCAL and finds the value; none goes on to Redis."""
    return {("request", "local"): calls, ("miss", "local"): 0, ("request", "remote"): 0}


def remote_hits(calls: int) -> dict[tuple[str, str], int]:
    """LOCAL is off for this config; every call reads Redis and finds the value there."""
    return {("request", "local"): 0, ("request", "remote"): calls, ("miss", "remote"): 0}


def misses(calls: int) -> dict[tuple[str, str], int]:
    """Every call misses both layers."""
    return {("miss", "local"): calls, ("miss", "remote"): calls}
