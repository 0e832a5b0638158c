"""The data of a run, as plain dataclasses: what was recorded, and what was concluded from it.

Two layers:

* **records** (:class:`RunData`): every read, write, bus-event arrival, freshness change, fault
  window, process life and metrics scrape, as the roles logged them. Times are
  ``time.monotonic_ns()`` values (CLOCK_MONOTONIC is one clock for every process on Linux, so
  instants from different processes compare); :attr:`RunData.t0_ns` is the workload's start.
* **results** (:class:`Report`): the checker's verdicts and the figures of the terminal table,
  plus chart-ready series (:class:`SecondBucket` per second, :class:`LatencySample`, the fault
  windows) with times in seconds since ``t0``. ``Report`` serializes to JSON as it is
  (:func:`dataclasses.asdict`), which is what ``--json`` writes and what an HTML report reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "BypassSummary",
    "CancelProbe",
    "CheckResult",
    "FaultResult",
    "FaultWindow",
    "FreshChange",
    "InstanceLife",
    "InstanceMetrics",
    "LatencySample",
    "LatencyStats",
    "LayerShares",
    "ReadRecord",
    "Report",
    "RunData",
    "ScrapePoint",
    "SecondBucket",
    "Source",
    "StaleRead",
    "TapArrival",
    "Verdict",
    "WorkloadSummary",
    "WriteRecord",
]

Source = Literal["local", "remote", "function", "error"]
"""Where a read's value came from: a LOCAL hit, a REMOTE hit, the function (a miss of both), or
nowhere (an exception escaped the cached call)."""

# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One call of the cached function by an instance's read loop."""

    slot: int
    incarnation: int
    entity: int
    start_ns: int
    end_ns: int
    version: int
    """The version returned (-1 when the call raised)."""
    source: Source
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One update of the truth and its invalidation."""

    writer: int
    entity: int
    version: int
    begin_ns: int
    """Before ``BEGIN``: no reader can see ``version`` before this."""
    commit_ns: int
    invalidate_ns: int | None
    """When the (first attempt of the) invalidation started; None if it never ran."""
    ack_ns: int | None
    """When the invalidation that succeeded returned; None if none did before the run ended."""
    via: str
    """``publisher`` or ``instance-<slot>``: who returned the acknowledgement."""
    attempts: int
    failures: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TapArrival:
    """A bus event for one entity, as the tap subscriber of an instance process received it."""

    slot: int
    incarnation: int
    arrival_ns: int
    seq: int
    key_type: str
    entity_id: str
    watermark_us: int
    sent_at_us: int


@dataclass(frozen=True, slots=True)
class FreshChange:
    """``cache.bus.is_fresh()`` of an instance became ``fresh`` at ``at_ns`` (sampled ~10 ms)."""

    slot: int
    incarnation: int
    at_ns: int
    fresh: bool


@dataclass(frozen=True, slots=True)
class CancelProbe:
    """A task cancelled while inside a cached call: ``honored`` (it ended cancelled), ``lost``
    (it finished normally, or was still running 2 s later) or ``raised ...``."""

    slot: int
    incarnation: int
    at_ns: int
    outcome: str


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault as the injector carried it out: ``[start_ns, end_ns]``."""

    index: int
    kind: str
    start_ns: int
    end_ns: int
    planned_at_s: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InstanceLife:
    """One process incarnation of an instance slot."""

    slot: int
    incarnation: int
    pid: int
    spawned_ns: int
    ready_ns: int | None
    exited_ns: int | None
    exitcode: int | None


@dataclass(frozen=True, slots=True)
class ScrapePoint:
    """A scrape of one instance's Prometheus endpoint (see :mod:`integration.scrape`)."""

    slot: int
    incarnation: int
    at_ns: int
    values: dict[str, float]


@dataclass(slots=True)
class RunData:
    """Everything recorded in one run."""

    config: Any
    """The :class:`~integration.config.RunConfig` (typed ``Any`` to keep this module free of
    imports; ``dataclasses.asdict`` works on it)."""
    t0_ns: int
    end_ns: int
    redis_url: str
    proxy_url: str
    reads: list[ReadRecord] = field(default_factory=list)
    writes: list[WriteRecord] = field(default_factory=list)
    taps: list[TapArrival] = field(default_factory=list)
    fresh: list[FreshChange] = field(default_factory=list)
    cancel_probes: list[CancelProbe] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    planned_faults: int = 0
    lives: list[InstanceLife] = field(default_factory=list)
    scrapes: list[ScrapePoint] = field(default_factory=list)
    proxy: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Harness-level trouble (a role that failed, an unexpected exit): reported, and fatal."""


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class StaleRead:
    """A read older than an invalidation that was acknowledged long enough before it."""

    read: ReadRecord
    required_version: int
    write: WriteRecord
    """The earliest-acknowledged write the read should have seen."""
    late_ms: float
    """How long after that acknowledgement the read started."""


@dataclass(slots=True)
class CheckResult:
    """The checker's findings (see :mod:`integration.checker`)."""

    bound_ms: float
    reads: int
    constrained: int
    """Reads that started after at least one acknowledgement + bound of their entity: the ones
    the check could fail."""
    stale: list[StaleRead] = field(default_factory=list)
    """Any source, older than an invalidation acknowledged more than the bound before."""
    remote_stale: list[StaleRead] = field(default_factory=list)
    """REMOTE hits and function results older than an invalidation acknowledged at any time
    before the read (invariant 1 has no bound for those layers)."""
    errors: list[ReadRecord] = field(default_factory=list)
    future: list[ReadRecord] = field(default_factory=list)
    """Versions whose write had not even begun when the read ended (a harness bug)."""


@dataclass(frozen=True, slots=True)
class LatencyStats:
    count: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True, slots=True)
class LatencySample:
    """Propagation of one invalidation to one instance: tap arrival minus invalidation start."""

    at_s: float
    slot: int
    entity: int
    latency_ms: float
    in_fault: bool


@dataclass(frozen=True, slots=True)
class LayerShares:
    """Where reads were served from (shares of ``reads``)."""

    reads: int
    local: float
    remote: float
    function: float
    error: float


@dataclass(frozen=True, slots=True)
class FaultResult:
    """One fault window and what it did."""

    index: int
    kind: str
    start_s: float
    duration_s: float
    recovery_s: float | None
    """From the window's end until every instance was fresh and served a LOCAL hit again."""
    reads: int
    local_hit_rate: float | None
    bypass_s: float
    """Instance-seconds of LOCAL bypass (``is_fresh()`` false) from the start to recovery."""
    stale: int
    metric_deltas: dict[str, float]
    """How much some scraped counters grew over the fault and its recovery, all instances
    together (``bus_reconnects``, ``bus_gaps``, ``errors``, ``bus_unsynced``)."""
    took_effect: bool
    effect: str
    """The evidence that the fault happened (clients killed, bypass seen, pid changed...)."""
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BypassSummary:
    instance_seconds: float
    share: float
    """Of all instance-time after readiness."""
    outside_faults_s: float


@dataclass(frozen=True, slots=True)
class InstanceMetrics:
    """The last scrape of one incarnation."""

    slot: int
    incarnation: int
    at_s: float
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class SecondBucket:
    """One second of the run (``t_s`` since the workload's start), for charts."""

    t_s: int
    reads: int
    local: int
    remote: int
    function: int
    errors: int
    writes: int
    local_hit_rate: float | None
    bypass_share: float
    """Share of instance-time in this second with LOCAL bypassed."""
    latency_p50_ms: float | None
    latency_max_ms: float | None
    in_fault: bool


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    duration_s: float
    reads: int
    reads_per_s: float
    writes: int
    writes_per_s: float
    via_publisher: int
    via_instance: int
    invalidation_failures: int
    unacknowledged: int
    instance_restarts: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of the verdict table. ``kind`` is ``invariant`` (DESIGN §3: fails the run),
    ``sanity`` (the harness did what it claims: fails the run too), ``expectation`` (what a
    careful user would expect though DESIGN does not list it: reported, not fatal) or
    ``target`` (a figure with a goal: reported, not fatal)."""

    name: str
    ok: bool
    value: str
    kind: Literal["invariant", "sanity", "expectation", "target"] = "invariant"
    detail: str = ""


@dataclass(slots=True)
class Report:
    """What a run concluded; ``passed`` is False when any invariant verdict failed."""

    parameters: dict[str, Any]
    t0_ns: int
    """The workload's start (monotonic ns): converts the records' ``*_ns`` times to seconds."""
    redis_url: str
    proxy_url: str
    passed: bool
    verdicts: list[Verdict]
    workload: WorkloadSummary
    layers: LayerShares
    layers_outside_faults: LayerShares
    """Reads after the warm-up that started outside every fault window ``[start, end]``."""
    layers_steady: LayerShares
    """As above, also leaving out each fault's recovery time."""
    layers_from_metrics: dict[str, float]
    """LOCAL hits, REMOTE hits and function calls as the Prometheus counters count them."""
    function_calls_per_read: float
    latency: LatencyStats
    latency_outside_faults: LatencyStats
    event_coverage: float | None
    """Share of (acknowledged invalidation, live instance) pairs whose tap saw the event."""
    bypass: BypassSummary
    cancel_probes: dict[str, int]
    """Outcome -> count of the cancellation probes."""
    faults: list[FaultResult]
    metrics: list[InstanceMetrics]
    metrics_total: dict[str, float]
    check: CheckResult
    lives: list[InstanceLife]
    series: list[SecondBucket]
    latency_samples: list[LatencySample]
    fault_windows_s: list[tuple[str, float, float]]
    """``(kind, start_s, end_s)`` per fault, for charts."""
    problems: list[str]
