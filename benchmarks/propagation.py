"""Propagation: how soon after an invalidation every other replica stops serving the old value.

This process is the writer: it calls ``await cache.ainvalidate(...)`` on a GCache with LOCAL and
REMOTE and a tracked function. The readers are other processes (:mod:`benchmarks.replica`), each
holding the entity's value in its LOCAL layer. A sample is the time from just before
``ainvalidate`` is called here to the moment one replica's LOCAL layer dropped the value; every
invalidation gives one sample per replica, so the tail (p99, max) is the replica that learnt
last. Each replica reads ``time.monotonic_ns()`` itself — CLOCK_MONOTONIC, one clock for every
process on Linux — so no message back is on the clock.

The baseline, measured in the same run: a raw redis-py ``PUBLISH`` from this process to a plain
redis-py asyncio pub/sub subscriber in each replica, timed the same way (publish call to the
subscriber having the message), with a payload of the same size as a bus event. It is what any
cross-process notification over this Redis costs here; gcache adds the Lua script that raises
the watermark, and the decoding and applying of the event.

The kinds (raw, gcache over streams, gcache over pub/sub) alternate invalidation by invalidation,
rotating which goes first, so drifts of the machine land on all of them alike. Before every
invalidation, every replica confirms it holds the value (``primed``), so nothing else is
running when the clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Final

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bus import InvalidateEvent, encode
from gcache import GCache

from .checks import PathError
from .plan import Plan
from .replica import RAW_CHANNEL, TRANSPORTS, Transport, bus_namespace, serve, tracked_cache
from .stats import Percentiles, percentiles
from .subjects import KEY_TYPE

__all__ = ["PROPAGATION", "RAW_PUBLISH", "LatencyResult", "measure_propagation"]

RAW_PUBLISH: Final = "propagation_raw_publish"
PROPAGATION: Final[dict[Transport, str]] = {
    transport: f"propagation_{transport}" for transport in TRANSPORTS
}
"""Result name of each transport's propagation scenario."""

_TITLES: Final = {
    RAW_PUBLISH: "raw redis-py PUBLISH -> pub/sub",
    PROPAGATION["streams"]: "gcache ainvalidate -> LOCAL, streams",
    PROPAGATION["pubsub"]: "gcache ainvalidate -> LOCAL, pubsub",
}
_START_TIMEOUT_SEC: Final = 120.0  # spawning interpreters on a small, busy machine
_REPLY_TIMEOUT_SEC: Final = 30.0
_STOP_TIMEOUT_SEC: Final = 10.0


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Every propagation sample of one kind: one per replica per invalidation."""

    name: str
    title: str
    baseline: str | None
    replicas: int
    invalidations: int
    latencies_ns: tuple[int, ...]

    @property
    def percentiles(self) -> Percentiles:
        return percentiles(self.latencies_ns)


class _Fleet:
    """The replica processes and their pipes; every exchange goes to all of them at once."""

    def __init__(self, processes: Sequence[BaseProcess], conns: Sequence[Connection]) -> None:
        self._processes = list(processes)
        self._conns = list(conns)

    @classmethod
    async def start(cls, redis_url: str, size: int) -> _Fleet:
        context = multiprocessing.get_context("spawn")
        fleet = cls([], [])
        try:
            for index in range(size):
                parent, child = context.Pipe()
                process = context.Process(
                    target=serve,
                    args=(child, redis_url),
                    name=f"bench-replica-{index}",
                    daemon=True,  # never outlives the benchmark
                )
                process.start()
                child.close()
                fleet._processes.append(process)
                fleet._conns.append(parent)
            await fleet.expect("ready", timeout=_START_TIMEOUT_SEC)
        except BaseException:
            fleet.close()
            raise
        return fleet

    def __len__(self) -> int:
        return len(self._conns)

    def send(self, message: tuple[object, ...]) -> None:
        for conn in self._conns:
            conn.send(message)

    async def expect(self, kind: str, timeout: float = _REPLY_TIMEOUT_SEC) -> list[object]:
        """One reply of ``kind`` from every replica (its payload), in replica order."""
        # Waiting happens on a worker thread: the event loop stays free, and the wait (select on
        # the pipes) costs no CPU while the replicas work.
        replies = await asyncio.to_thread(self._receive_all, timeout)
        payloads: list[object] = []
        for index, reply in enumerate(replies):
            if reply[0] != kind:
                raise PathError(f"replica {index}: expected {kind!r}, got {reply!r}")
            payloads.append(reply[1] if len(reply) > 1 else None)
        return payloads

    def _receive_all(self, timeout: float) -> list[tuple[object, ...]]:
        deadline = time.monotonic() + timeout
        replies: dict[int, tuple[object, ...]] = {}
        pending = {id(conn): (index, conn) for index, conn in enumerate(self._conns)}
        while pending:
            remaining = deadline - time.monotonic()
            ready = wait([conn for _, conn in pending.values()], timeout=max(0.0, remaining))
            if not ready:
                late = sorted(index for index, _ in pending.values())
                raise PathError(f"replicas {late} did not answer in {timeout:g}s")
            for conn in ready:
                assert isinstance(conn, Connection)
                index, _ = pending.pop(id(conn))
                try:
                    replies[index] = conn.recv()
                except EOFError:
                    raise PathError(f"replica {index} exited") from None
        return [replies[index] for index in range(len(self._conns))]

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):  # already gone
                conn.send(("stop",))
        for process in self._processes:
            process.join(_STOP_TIMEOUT_SEC)
            if process.is_alive():
                process.terminate()  # only ever our own child, by its handle
                process.join(_STOP_TIMEOUT_SEC)
        for conn in self._conns:
            conn.close()


def _since(start_ns: int, stamps: Sequence[object]) -> list[int]:
    latencies = []
    for stamp in stamps:
        if not isinstance(stamp, int) or stamp <= start_ns:
            raise PathError(f"a replica stamped {stamp!r}, not after the publish at {start_ns}")
        latencies.append(stamp - start_ns)
    return latencies


async def _raw_once(fleet: _Fleet, raw: Redis, index: int) -> list[int]:
    now_us = time.time_ns() // 1000
    # An event as the pub/sub bus would carry it (give or take a digit of the sequence number),
    # so both kinds move payloads of one size.
    entity = (KEY_TYPE, f"pubsub-{index}", now_us)
    payload = encode(InvalidateEvent(bus_namespace("pubsub"), index + 1, now_us, (entity,)))
    fleet.send(("arm_raw", payload))
    await fleet.expect("armed")
    start = time.monotonic_ns()
    receivers = await raw.publish(RAW_CHANNEL, payload)
    stamps = await fleet.expect("received")
    if receivers != len(fleet):
        raise PathError(f"raw PUBLISH reached {receivers} subscribers, expected {len(fleet)}")
    return _since(start, stamps)


async def _invalidate_once(
    fleet: _Fleet, cache: GCache, transport: Transport, index: int
) -> list[int]:
    entity_id = f"{transport}-{index}"  # a new entity each time: no watermark from before
    fleet.send(("prime", transport, entity_id))
    await fleet.expect("primed")
    start = time.monotonic_ns()
    await cache.ainvalidate(KEY_TYPE, entity_id)
    return _since(start, await fleet.expect("gone"))


async def measure_propagation(
    plan: Plan, redis_url: str, progress: Callable[[str], None]
) -> dict[str, LatencyResult]:
    """Spawn ``plan.replicas`` replicas and time ``plan.invalidations`` invalidations of each
    kind reaching all of them. Results by name: the raw baseline first, then each transport."""
    registry = CollectorRegistry()
    caches = {t: tracked_cache(redis_url, t, registry)[0] for t in TRANSPORTS}
    raw = Redis.from_url(redis_url)
    progress(f"propagation: starting {plan.replicas} replica processes (spawn)")
    fleet = await _Fleet.start(redis_url, plan.replicas)
    try:
        kinds: list[Transport | None] = [None, *TRANSPORTS]  # None: the raw baseline

        async def once(kind: Transport | None, index: int) -> list[int]:
            if kind is None:
                return await _raw_once(fleet, raw, index)
            return await _invalidate_once(fleet, caches[kind], kind, index)

        # Untimed: connections, the script's first EVALSHA -> EVAL, every code path once.
        for kind in kinds:
            await once(kind, -1)
        samples: dict[Transport | None, list[int]] = {kind: [] for kind in kinds}
        for index in range(plan.invalidations):
            shift = index % len(kinds)
            for kind in [*kinds[shift:], *kinds[:shift]]:
                samples[kind] += await once(kind, index)
            if (index + 1) % 50 == 0 or index + 1 == plan.invalidations:
                progress(f"propagation: {index + 1}/{plan.invalidations} invalidations")
    finally:
        fleet.close()
        for cache in caches.values():
            await cache.aclose()
        await raw.aclose()

    def result(kind: Transport | None) -> LatencyResult:
        name = RAW_PUBLISH if kind is None else PROPAGATION[kind]
        return LatencyResult(
            name=name,
            title=_TITLES[name],
            baseline=None if kind is None else RAW_PUBLISH,
            replicas=plan.replicas,
            invalidations=plan.invalidations,
            latencies_ns=tuple(samples[kind]),
        )

    results = [result(kind) for kind in kinds]
    return {r.name: r for r in results}
