"""The parameters of one harness run: every knob of ``python -m integration`` in one frozen object.

The object is picklable (it crosses the ``spawn`` boundary inside the role specs) and is copied
verbatim into the report, so a run can be described and repeated from its JSON alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "RunConfig",
    "parse_faults",
]

FaultKind = Literal["bus-kill", "clients-kill", "pause", "restart", "crash", "latency", "drop"]
FAULT_KINDS: Final[tuple[FaultKind, ...]] = (
    "bus-kill",
    "clients-kill",
    "pause",
    "restart",
    "crash",
    "latency",
    "drop",
)
"""Every fault the injector knows, in the order of the brief:

* ``bus-kill``: ``CLIENT KILL`` of every bus subscriber connection (client name ``<name>-bus``);
* ``clients-kill``: ``CLIENT KILL`` of every client connection;
* ``pause``: ``SIGSTOP`` of redis-server for longer than the staleness bound, then ``SIGCONT``;
* ``restart``: redis-server killed, down for a moment, started again empty on the same port;
* ``crash``: ``SIGKILL`` of one instance; the coordinator restarts it (as an orchestrator would);
* ``latency``: the loopback proxy between instances and Redis delays every chunk for a while;
* ``drop``: the proxy closes every connection it carries.
"""

_NEEDS_PRIVATE_REDIS: Final = frozenset({"pause", "restart"})


def parse_faults(text: str) -> tuple[FaultKind, ...]:
    """``none``, ``all`` or a comma-separated list of :data:`FAULT_KINDS` (order kept)."""
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    if text == "all":
        return FAULT_KINDS
    chosen: list[FaultKind] = []
    for part in text.split(","):
        name = part.strip()
        if name not in FAULT_KINDS:
            raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULT_KINDS)}")
        chosen.append(name)  # checked just above
    return tuple(chosen)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything a run needs; defaults are those of ``python -m integration``."""

    instances: int = 4
    writers: int = 1
    entities: int = 1000
    zipf: float = 1.1
    """Exponent of the Zipf law entities are drawn from, by readers and writers alike."""
    read_rate: float = 300.0
    """Reads per second of each instance (paced)."""
    write_rate: float = 20.0
    """Writes per second, all writers together."""
    via_instance: float = 0.2
    """Share of invalidations sent through an instance's ``ainvalidate`` (the rest: Publisher)."""
    duration: float = 60.0
    """Seconds of workload (extended if the fault schedule runs late, so every fault runs)."""
    warmup: float = 3.0
    """Seconds at the start left out of the hit-rate figures (the caches start cold)."""
    future_buffer_ms: int = 0
    transport: Literal["streams", "pubsub"] = "streams"
    max_staleness_ms: float = 500.0
    seed: int = 1
    faults: tuple[FaultKind, ...] = FAULT_KINDS
    redis_url: str | None = None
    """An existing Redis to use instead of a private one (``pause``/``restart`` are skipped)."""
    namespace: str = "gcache-it"
    client_name: str = "gcache"
    """The instances' ``RedisConfig(client_name=...)``; their bus connections are ``<name>-bus``."""
    local_ttl: float = 30.0
    remote_ttl: float = 300.0
    socket_timeout: float = 0.5
    payload_bytes: int = 200
    cancel_probes: float = 10.0
    """Cancellation probes per second per instance: a cached call (always a miss) started as a
    task and cancelled after a random 0-3 ms; a probe whose task then completes normally lost its
    cancellation. 0 turns them off."""
    function_ms: float = 5.0
    """How long the cached function takes after its SELECT (a query's latency): it opens the
    read-before-write race of invariant 2 — a write can commit and be invalidated while a call
    that read the old row is still running."""
    pause_s: float | None = None
    """How long ``pause`` holds Redis stopped; default ``max(2 s, 4 x max_staleness)``."""
    latency_ms: float = 400.0
    """Delay the proxy adds to every chunk, each way, during ``latency``: by default the round
    trip (800 ms) exceeds ``socket_timeout``, the "Redis slow (above timeout)" row of DESIGN §6."""
    latency_s: float = 3.0
    restart_down_s: float = 1.0
    """How long Redis stays down during ``restart``."""
    crash_restart_delay_s: float = 0.5
    """How long the coordinator waits before restarting a crashed instance."""
    fault_gap_s: float | None = None
    """Quiet seconds between two faults; default: the run is split evenly between them."""
    work_dir: str | None = None
    """Where the SQLite file and the role logs go; default a temporary directory (removed)."""
    keep_logs: bool = False

    def __post_init__(self) -> None:
        if self.instances < 1 or self.writers < 1:
            raise ValueError("--instances and --writers must be >= 1")
        if self.entities < 1:
            raise ValueError("--entities must be >= 1")
        if not self.zipf >= 0:
            raise ValueError("--zipf must be >= 0")
        if not (self.read_rate > 0 and self.write_rate > 0 and self.duration > 0):
            raise ValueError("--read-rate, --write-rate and --duration must be > 0")
        if not 0 <= self.via_instance <= 1:
            raise ValueError("--via-instance must be between 0 and 1")
        if self.cancel_probes < 0:
            raise ValueError("--cancel-probes must be >= 0")
        if self.function_ms < 0:
            raise ValueError("--function-ms must be >= 0")
        if self.future_buffer_ms < 0:
            raise ValueError("--future-buffer-ms must be >= 0")
        if self.transport not in ("streams", "pubsub"):
            raise ValueError("--transport must be streams or pubsub")
        if self.max_staleness_ms < 10:
            raise ValueError("--max-staleness-ms must be >= 10 (gcache's minimum)")
        if self.pause_s is not None and self.pause_s * 1000 <= self.max_staleness_ms:
            raise ValueError("--pause-s must exceed the staleness bound")
        if "crash" in self.faults and self.instances < 2 and self.duration < 5:
            raise ValueError("a crash needs time to restart the instance")

    @property
    def bound_ns(self) -> int:
        """The staleness bound in nanoseconds."""
        return int(self.max_staleness_ms * 1_000_000)

    @property
    def effective_pause_s(self) -> float:
        if self.pause_s is not None:
            return self.pause_s
        return max(2.0, 4 * self.max_staleness_ms / 1000)

    @property
    def private_redis(self) -> bool:
        return self.redis_url is None

    def runnable_faults(self) -> tuple[FaultKind, ...]:
        """The chosen faults this run can inject (no SIGSTOP or restart of someone's Redis)."""
        if self.private_redis:
            return self.faults
        return tuple(kind for kind in self.faults if kind not in _NEEDS_PRIVATE_REDIS)

    def skipped_faults(self) -> tuple[FaultKind, ...]:
        runnable = set(self.runnable_faults())
        return tuple(kind for kind in self.faults if kind not in runnable)
