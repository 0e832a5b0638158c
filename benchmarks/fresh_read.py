"""Cross-process freshness: after a writer updates an entity, how soon does *another process*
serve the new value, and does it ever?

Two processes that share nothing but the private Redis: this one is the writer, a spawned one
(:mod:`benchmarks.fresh_reader`) the reader, each with its own instance of every contender
(:mod:`.fresh_contenders`). A trial, per contender:

1. the writer sets the entity's version to ``v`` in the database (a Redis key);
2. the reader primes: reads until its cache serves ``v`` without running the function;
3. the clock starts; the writer sets ``v + 1`` and invalidates the id through the contender's
   API on its own instance (for the uncached redis-py floor, the ``SET`` is the whole update);
4. the reader reads every millisecond until it is served ``v + 1`` (a sample: the time since
   step 3) or the deadline passes (a "never").

A cache whose LOCAL layer nobody invalidates across processes (aiocache memory, cashews
``mem://``, dialcache with LOCAL on) serves the old value until its TTL: every trial is a
"never". Such a contender is retired after :data:`NEVER_STREAK` nevers in a row with no sample
(reported with the number of trials it ran), so the run does not spend a deadline per trial on
a result that cannot change. Contenders alternate trial by trial, rotating which goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

from redis.asyncio import Redis

from .checks import PathError
from .fresh_contenders import CONTENDERS, build, truth_key
from .fresh_reader import serve
from .peer_caches import INSTALL_HINT, PeerCache, installed
from .peers import Skipped
from .plan import Plan
from .stats import Percentiles, percentiles

__all__ = ["NEVER_STREAK", "FreshResult", "measure_fresh_reads"]

NEVER_STREAK: Final = 3
_START_TIMEOUT_SEC: Final = 120.0
_REPLY_MARGIN_SEC: Final = 30.0
_STOP_TIMEOUT_SEC: Final = 10.0


@dataclass(frozen=True, slots=True)
class FreshResult:
    """One contender's trials: latencies of those that saw the new value, and the nevers."""

    name: str
    title: str
    trials: int
    never: int
    latencies_ns: tuple[int, ...]
    deadline_sec: float

    @property
    def percentiles(self) -> Percentiles | None:
        return percentiles(self.latencies_ns) if self.latencies_ns else None


class _ReaderProcess:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    @classmethod
    async def start(cls, redis_url: str) -> _ReaderProcess:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve, args=(child, redis_url), name="bench-fresh-reader", daemon=True
        )
        process.start()
        child.close()
        reader = cls(process, parent)
        try:
            await reader.expect("ready", _START_TIMEOUT_SEC)
        except BaseException:
            reader.close()
            raise
        return reader

    async def expect(self, kind: str, timeout: float) -> tuple[object, ...]:
        def receive() -> tuple[object, ...]:
            if not self.conn.poll(timeout):
                raise PathError(f"the reader did not answer {kind!r} in {timeout:g}s")
            reply: tuple[object, ...] = self.conn.recv()
            return reply

        reply = await asyncio.to_thread(receive)
        if reply[0] != kind and not (kind == "outcome" and reply[0] in ("fresh", "never")):
            raise PathError(f"reader: expected {kind!r}, got {reply!r}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(("stop",))
        self.process.join(_STOP_TIMEOUT_SEC)
        if self.process.is_alive():
            self.process.terminate()  # our own child, by its handle
            self.process.join(_STOP_TIMEOUT_SEC)
        self.conn.close()


async def _trial(
    reader: _ReaderProcess, truth: Redis, name: str, cache: PeerCache, index: int, deadline: float
) -> int | None:
    """One trial; the latency in nanoseconds, or None for a never."""
    entity_id = f"{name}-{index}"  # a new entity each time: no watermark from before
    await truth.set(truth_key(entity_id), 1)
    reader.conn.send(("prime", name, entity_id, deadline))
    primed = await reader.expect("primed", _REPLY_MARGIN_SEC)
    if primed[1] != 1:
        raise PathError(f"{name}: the reader primed with {primed!r}, expected version 1")
    start = time.monotonic_ns()
    await truth.set(truth_key(entity_id), 2)
    with cache.enable():
        await cache.invalidate(entity_id)
    outcome = await reader.expect("outcome", deadline + _REPLY_MARGIN_SEC)
    if outcome[0] == "never":
        return None
    at = outcome[1]
    if not isinstance(at, int) or at <= start:
        raise PathError(f"{name}: the reader stamped {at!r}, not after the update at {start}")
    return at - start


async def measure_fresh_reads(
    plan: Plan, redis_url: str, progress: Callable[[str], None]
) -> tuple[dict[str, FreshResult], list[Skipped]]:
    """``plan.fresh_trials`` trials per contender (fewer for a retired one)."""
    truth = Redis.from_url(redis_url)
    skipped: list[Skipped] = []
    writers: dict[str, PeerCache] = {}
    titles = {c.name: c.title for c in CONTENDERS}
    deadline = plan.fresh_deadline_sec
    progress("cross-process freshness: starting the reader process (spawn)")
    reader = await _ReaderProcess.start(redis_url)
    try:
        for contender in CONTENDERS:
            if contender.package is not None and not installed(contender.package):
                reason = f"{contender.package} not installed ({INSTALL_HINT})"
                skipped.append(
                    Skipped(name=f"fresh_{contender.name}", title=contender.title, reason=reason)
                )
                continue
            writers[contender.name] = (await build(contender.name, redis_url, truth))[0]
        samples: dict[str, list[int]] = {name: [] for name in writers}
        nevers = dict.fromkeys(writers, 0)
        trials = dict.fromkeys(writers, 0)
        active = list(writers)
        for index in range(plan.fresh_trials):
            shift = index % len(active) if active else 0
            for name in [*active[shift:], *active[:shift]]:
                latency = await _trial(reader, truth, name, writers[name], index, deadline)
                trials[name] += 1
                if latency is None:
                    nevers[name] += 1
                else:
                    samples[name].append(latency)
                if not samples[name] and nevers[name] >= NEVER_STREAK:
                    active.remove(name)  # retired: see the module docstring
            if (index + 1) % 10 == 0 or index + 1 == plan.fresh_trials:
                progress(f"cross-process freshness: {index + 1}/{plan.fresh_trials} trials")
    finally:
        reader.close()
        for cache in writers.values():
            await cache.aclose()
        await truth.aclose()
    results = {
        name: FreshResult(
            name=name,
            title=titles[name],
            trials=trials[name],
            never=nevers[name],
            latencies_ns=tuple(samples[name]),
            deadline_sec=deadline,
        )
        for name in writers
    }
    return results, skipped
