"""Throughput at the two ends of the bus: events one subscriber applies per second, and
invalidations one publisher makes per second with ``ainvalidate_many``.

Subscriber apply rate. The subscriber is gcache's own (``make_subscriber``: the same client,
metrics, clock and :class:`~gcache._bus_link.LocalLayerHandler` a GCache builds), feeding a LOCAL
layer that holds one tracked entry per entity, so every event drops one entry — the handler's
full work, not a no-op. The events (single-entity invalidations, wire format version 1 made by
:func:`bus.encode`, consecutive sequence numbers) are appended to the stream ahead of time while
the subscriber is stopped; then it is started and timed until it has applied the last one. A
subscriber starts at the stream's end, so it is started once before (on the empty stream) and
stopped: the timed run resumes from that position and catches up, as a replica does after a
stall. The clock therefore includes its reconnect (a few round trips) and every ``XREAD`` of
1000 entries.

Publish rate. One :class:`bus.Publisher` calls ``ainvalidate_many`` with batches of
:data:`~benchmarks.plan.PUBLISH_BATCH` new entities, one call after the other (each a single
script run: watermarks raised and one event appended). The entities are built before the clock
starts.

Rounds alternate the two scenarios. Each round is checked: exactly the events published were
applied, without a gap, and LOCAL is empty after; each batch returned a watermark per entity and
appended one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bus import InvalidateEvent, Publisher, Subscriber, encode
from bus._names import bus_key, seq_key
from gcache import GCacheConfig, RedisConfig
from gcache._bus_link import make_subscriber
from gcache._local import LocalCache
from gcache._remote import RemoteStore

from .checks import PathError
from .plan import PUBLISH_BATCH, Plan
from .stats import Summary, summarize
from .subjects import KEY_TYPE, VALUE, local_and_remote

__all__ = ["APPLY", "PUBLISH_MANY", "RateResult", "measure_throughput"]

APPLY: Final = "subscriber_apply"
PUBLISH_MANY: Final = "publish_many"

_APPLY_USE_CASE: Final = "bench.apply"
_PIPELINE_CHUNK: Final = 10_000
_LIVE_TIMEOUT_SEC: Final = 10.0
_APPLY_TIMEOUT_SEC: Final = 120.0
_POLL_SEC: Final = 0.001


@dataclass(frozen=True, slots=True)
class RateResult:
    """Items handled per second, one sample per round."""

    name: str
    title: str
    unit: str
    """What is counted: ``"events"`` or ``"invalidations"``."""
    per_round: int
    """Items handled in each round."""
    elapsed_ns: tuple[int, ...]
    """Wall time of each round, in round order."""

    @property
    def rates(self) -> tuple[float, ...]:
        """Items per second in each round."""
        return tuple(self.per_round * 1e9 / ns for ns in self.elapsed_ns)

    @property
    def summary(self) -> Summary:
        return summarize(self.rates)


async def _redis_time_us(raw: Redis) -> int:
    seconds, micros = await raw.time()
    return int(seconds) * 1_000_000 + int(micros)


async def _run_until(
    subscriber: Subscriber, done: Callable[[], bool], timeout: float
) -> tuple[int, int]:
    """Run ``subscriber`` until ``done()``; stop it and return ``(start, end)`` in perf_counter
    nanoseconds (end: when ``done()`` was first seen true)."""
    gc.collect()  # nobody else's garbage in the timed run
    start = time.perf_counter_ns()
    task = asyncio.create_task(subscriber.run())
    deadline = start + int(timeout * 1e9)
    try:
        while not done():
            if task.done():
                task.result()  # raises what ended it
                raise PathError(f"the subscriber stopped: {subscriber.statistics()!r}")
            if time.perf_counter_ns() > deadline:
                raise PathError(f"not done after {timeout:g}s: {subscriber.statistics()!r}")
            # Runs only while the subscriber waits for Redis: between its reads, never inside.
            await asyncio.sleep(_POLL_SEC)
        end = time.perf_counter_ns()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return start, end


async def _append_events(raw: Redis, namespace: str, count: int, now_us: int) -> None:
    """``count`` invalidations of one entity each, exactly as the INVALIDATE script would have
    appended them (field ``d``, sequence numbers 1..count, the counter left at ``count``)."""
    key = bus_key(namespace)
    for first in range(0, count, _PIPELINE_CHUNK):
        pipe = raw.pipeline(transaction=False)
        for n in range(first, min(count, first + _PIPELINE_CHUNK)):
            entity = (KEY_TYPE, f"apply-{n}", now_us)
            pipe.xadd(key, {"d": encode(InvalidateEvent(namespace, n + 1, now_us, (entity,)))})
        await pipe.execute()
    await raw.set(seq_key(namespace), count)


async def _apply_round(redis_url: str, raw: Redis, index: int, events: int) -> int:
    namespace = f"bench-apply-{index}"
    config = GCacheConfig(
        cache_config_provider=local_and_remote,
        redis_config=RedisConfig(url=redis_url),
        namespace=namespace,
        metrics_registry=CollectorRegistry(),
    )
    local = LocalCache(
        max_entries=max(events, config.max_local_entries),
        max_bytes=config.max_local_bytes,
        timer=config.timer,
    )
    subscriber = make_subscriber(config, RemoteStore(config), local)
    try:
        # First start: its position is the end of the (empty) stream.
        await _run_until(subscriber, subscriber.is_fresh, _LIVE_TIMEOUT_SEC)
        # The start was a gap, which refuses LOCAL values computed before it: stamp after it.
        now_us = await _redis_time_us(raw)
        size = len(pickle.dumps(VALUE))
        for n in range(events):
            entity = (KEY_TYPE, f"apply-{n}")
            key = (_APPLY_USE_CASE, *entity)
            local.put(key, VALUE, computed_at=now_us, size=size, entity=entity)
        if len(local) != events:
            raise PathError(f"LOCAL holds {len(local)} entries, expected {events}")
        await _append_events(raw, namespace, events, now_us + 1)
        before = subscriber.statistics()
        target = before.events + events

        start, end = await _run_until(
            subscriber, lambda: subscriber.statistics().events >= target, _APPLY_TIMEOUT_SEC
        )

        after = subscriber.statistics()
        problems = []
        if after.events != target:
            problems.append(f"applied {after.events - before.events} events, expected {events}")
        if after.gaps != before.gaps or after.malformed != before.malformed:
            problems.append(f"gaps or malformed events: {before!r} -> {after!r}")
        if len(local):
            problems.append(f"{len(local)} LOCAL entries survived their invalidation")
        if problems:
            raise PathError(f"{APPLY}: not the path being measured: " + "; ".join(problems))
        return end - start
    finally:
        await raw.delete(bus_key(namespace), seq_key(namespace))


async def _publish_round(publisher: Publisher, raw: Redis, index: int, batches: int) -> int:
    work = [
        [(KEY_TYPE, f"publish-{index}-{b}-{n}") for n in range(PUBLISH_BATCH)]
        for b in range(batches)
    ]
    stream = publisher.topic.bus_key
    appended_before = int(await raw.xlen(stream))
    gc.collect()
    start = time.perf_counter_ns()
    marks = [await publisher.ainvalidate_many(batch) for batch in work]
    elapsed = time.perf_counter_ns() - start
    appended = int(await raw.xlen(stream)) - appended_before
    if appended != batches or any(len(m) != PUBLISH_BATCH for m in marks):
        raise PathError(
            f"{PUBLISH_MANY}: {appended} events appended for {batches} batches, or a batch "
            f"without a watermark per entity"
        )
    return elapsed


async def measure_throughput(
    plan: Plan, redis_url: str, progress: Callable[[str], None]
) -> dict[str, RateResult]:
    """``plan.throughput_rounds`` rounds of both scenarios; results by name."""
    raw = Redis.from_url(redis_url)
    publisher = Publisher.from_url(redis_url, namespace="bench-publish")
    applied: list[int] = []
    published: list[int] = []
    try:
        await publisher.ainvalidate_many([(KEY_TYPE, "warmup")])  # connect, load the script
        for index in range(plan.throughput_rounds):
            progress(f"bus throughput: round {index + 1}/{plan.throughput_rounds}")
            applied.append(await _apply_round(redis_url, raw, index, plan.apply_events))
            published.append(await _publish_round(publisher, raw, index, plan.publish_batches))
    finally:
        await publisher.aclose()
        await raw.aclose()
    return {
        APPLY: RateResult(
            name=APPLY,
            title="Subscriber apply (LocalLayerHandler)",
            unit="events",
            per_round=plan.apply_events,
            elapsed_ns=tuple(applied),
        ),
        PUBLISH_MANY: RateResult(
            name=PUBLISH_MANY,
            title=f"Publisher.ainvalidate_many ({PUBLISH_BATCH:,}/batch)",
            unit="invalidations",
            per_round=plan.publish_batches * PUBLISH_BATCH,
            elapsed_ns=tuple(published),
        ),
    }
