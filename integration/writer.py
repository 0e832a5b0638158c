"""The writer role: updates the truth, then invalidates, and records both instants.

Each write, at a paced rate, on a Zipf-chosen entity:

1. ``UPDATE entity SET version = version + 1`` in its own SQLite transaction, committed;
2. invalidation of ``("entity", id)`` — most through a :class:`bus.Publisher` (a write service
   that is not a cache), a share (``--via-instance``) by asking a random instance to call its
   ``GCache.ainvalidate`` over the command port;
3. a record: begin/commit instants, invalidation start, and the *acknowledgement*: the instant
   the invalidation call that succeeded returned (for an instance, measured in the instance).

A failed invalidation (``PublishError`` after the publisher's own bounded retries, an instance
that is down or answered ``InvalidationError``) is retried through the publisher until it
succeeds — as a real write path must, since a lost invalidation is stale data — and each
failure is recorded. The checker only relies on acknowledged invalidations.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bus import Publisher, PublishError

from .config import RunConfig
from .control import ControlClient, ControlError
from .eventlog import EventLog, route_python_logging
from .instance import KEY_TYPE
from .truth import TruthWriter
from .zipf import ZipfSampler

__all__ = ["WriterSpec", "writer_main"]

_RETRY_PAUSE_S = 0.05
_CONTROL_TIMEOUT_S = 20.0
_SOCKET_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """What one writer process needs (picklable)."""

    config: RunConfig
    index: int
    db_path: str
    redis_url: str
    """Writers talk to Redis directly, not through the proxy."""
    control_ports: tuple[int, ...]
    authkey: bytes
    log_path: str


class _Writer:
    def __init__(self, spec: WriterSpec, stop: EventType) -> None:
        config = spec.config
        self.spec = spec
        self.config = config
        self.stop = stop
        self.rng = random.Random(f"writer-{config.seed}-{spec.index}")
        self.sampler = ZipfSampler(config.entities, config.zipf, self.rng)
        self.truth = TruthWriter(spec.db_path, config.payload_bytes)
        self.log = EventLog(spec.log_path)
        url, name = spec.redis_url, f"{config.client_name}-writer-{spec.index}"
        self.publisher = Publisher(
            lambda: Redis.from_url(
                url,
                client_name=name,
                socket_timeout=_SOCKET_TIMEOUT_S,
                socket_connect_timeout=_SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            ),
            namespace=config.namespace,
            transport=config.transport,
        )
        self.instances = [
            ControlClient(port, spec.authkey, _CONTROL_TIMEOUT_S) for port in spec.control_ports
        ]

    def _via_publisher(self, entity: int) -> tuple[int, int]:
        start = time.monotonic_ns()
        self.publisher.invalidate(KEY_TYPE, str(entity), self.config.future_buffer_ms)
        return start, time.monotonic_ns()

    def _via_instance(self, slot: int, entity: int) -> tuple[int, int]:
        reply = self.instances[slot].request("invalidate", entity, self.config.future_buffer_ms)
        if reply[0] != "ok":
            raise ControlError(f"instance-{slot}: {reply[2]}")
        return int(reply[1]), int(reply[2])

    def write_once(self) -> None:
        entity = self.sampler.sample()
        bump = self.truth.bump(entity)
        # Standalone (``python -m integration.roles writer``) a writer knows no instance.
        use_instance = self.rng.random() < self.config.via_instance and bool(self.instances)
        slot = self.rng.randrange(len(self.instances)) if self.instances else 0
        failures: list[str] = []
        first_start: int | None = None
        ack: int | None = None
        via = "publisher"
        attempts = 0
        while ack is None and not (failures and self.stop.is_set()):
            attempts += 1
            through_instance = use_instance and not failures
            via = f"instance-{slot}" if through_instance else "publisher"
            started = time.monotonic_ns()
            try:
                if through_instance:
                    start, ack = self._via_instance(slot, entity)
                else:
                    start, ack = self._via_publisher(entity)
            except (PublishError, ControlError) as exc:
                start = started
                failures.append(f"{via}: {exc}"[:300])
                time.sleep(_RETRY_PAUSE_S)
            if first_start is None:
                first_start = start
        self.log.write(
            "write",
            entity,
            bump.version,
            bump.begin_ns,
            bump.commit_ns,
            first_start,
            ack,
            via,
            attempts,
            failures,
        )
        self.log.flush_due()

    def run(self, go: EventType) -> None:
        while not go.wait(0.05):
            if self.stop.is_set():
                return
        interval_ns = int(1e9 * self.config.writers / self.config.write_rate)
        # Writers start out of phase, so several do not write in lockstep.
        due = time.monotonic_ns() + int(self.rng.random() * interval_ns)
        while not self.stop.is_set():
            now = time.monotonic_ns()
            if due > now:
                time.sleep((due - now) / 1e9)
            elif now - due > 1_000_000_000:
                due = now  # behind after a long stall: do not burst
            due += interval_ns
            if not self.stop.is_set():
                self.write_once()

    def close(self) -> None:
        self.log.close()
        for client in self.instances:
            client.close()
        with contextlib.suppress(Exception):
            self.publisher.close()
        self.truth.close()


def writer_main(spec: WriterSpec, status: Connection, go: EventType, stop: EventType) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    route_python_logging(spec.log_path + ".txt")
    writer: _Writer | None = None
    try:
        writer = _Writer(spec, stop)
        status.send(("ready", spec.index))
        writer.run(go)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            status.send(("failed", spec.index, "".join(traceback.format_exception(exc))))
        raise SystemExit(1) from None
    finally:
        if writer is not None:
            writer.close()
        with contextlib.suppress(Exception):
            status.close()
