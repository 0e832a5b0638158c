"""What is measured: one :class:`Scenario` per path, and the setup that makes it that path.

Every timed round is wrapped in :func:`~benchmarks.checks.expect_path`, which fails the run if the
calls did not take the path the scenario is named after.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, cast

from redis.asyncio import Redis

from .checks import PathError, expect_path, local_hits, misses, remote_hits
from .reference import reference_work
from .subjects import ENTITY_ID, REMOTE_VALUE_PATTERN, Subjects, bare_async, bare_sync
from .timing import time_async_calls, time_sync_calls

__all__ = ["RAW_KEY", "Scenario", "prepare_scenarios"]

RAW_KEY: Final = "bench-raw:value"
"""Key of the raw-GET baseline: a copy of the bytes gcache stored for the tracked REMOTE hit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One measured path."""

    name: str
    """Stable identifier, the key in the JSON output."""
    title: str
    """What the table calls it."""
    io: bool
    """Whether each call makes a Redis round trip (fewer calls per round)."""
    baseline: str | None
    """Name of the scenario this one is compared with, if any."""
    measure: Callable[[int], Awaitable[int]]
    """Times that many calls, returns the elapsed nanoseconds, and checks the path taken."""
    interleaved: bool = False
    """Timed together with its baseline, in alternating blocks of calls (see
    :func:`~benchmarks.runner.run`), rather than each on its own turn in the round: for a ratio
    whose margin is smaller than the drift of this machine over the seconds a round takes."""


async def prepare_scenarios(
    subjects: Subjects, raw: Redis, sync_thread: Executor
) -> list[Scenario]:
    """Prime every cache through the public API and return the scenarios, in table order.

    Must run on the event loop that will time the async scenarios: gcache keeps one Redis client
    per loop. Sync scenarios run on ``sync_thread``, a thread with no event loop of its own (a
    "plain thread", as a sync web worker would be), while this loop waits for them idle.
    """
    loop = asyncio.get_running_loop()

    # -- priming: put the value where each hit scenario expects it, and prove it is there ------

    await subjects.start_bus()

    miss_then_local_hit = {("request", "local"): 2, ("miss", "local"): 1}
    with (
        expect_path(subjects, "async_hit", body_runs=1, counters=miss_then_local_hit),
        subjects.hit_cache.enable(),
    ):
        await subjects.async_hit(ENTITY_ID)  # miss: stored in LOCAL (and REMOTE)
        await subjects.async_hit(ENTITY_ID)  # LOCAL hit

    def prime_sync() -> None:
        with (
            expect_path(subjects, "sync_hit", body_runs=1, counters=miss_then_local_hit),
            subjects.hit_cache.enable(),
        ):
            subjects.sync_hit(ENTITY_ID)
            subjects.sync_hit(ENTITY_ID)

    await loop.run_in_executor(sync_thread, prime_sync)

    # Tracked LOCAL hits, bus on and off. The bus-on hit cache's subscriber is live (start_bus),
    # so its tracked hits are served from LOCAL; should its proof lapse they would go to REMOTE,
    # and the round's path check would say so.
    for function, cache, tracked in (
        ("tracked_hit_bus_on", subjects.hit_cache, subjects.tracked_hit_bus_on),
        ("tracked_hit_bus_off", subjects.bus_off_cache, subjects.tracked_hit_bus_off),
    ):
        if (cache.bus is None) != (function == "tracked_hit_bus_off"):
            raise PathError(f"{function}: the bus is {'off' if cache.bus is None else 'on'}")
        with (
            expect_path(subjects, function, body_runs=1, counters=miss_then_local_hit),
            cache.enable(),
        ):
            await tracked(ENTITY_ID)
            await tracked(ENTITY_ID)

    miss_then_remote_hit = {("request", "remote"): 2, ("miss", "remote"): 1}
    with (
        expect_path(subjects, "tracked_remote_hit", body_runs=1, counters=miss_then_remote_hit),
        subjects.remote_cache.enable(),
    ):
        await subjects.tracked_remote_hit(ENTITY_ID)  # miss: stored in REMOTE only
        await subjects.tracked_remote_hit(ENTITY_ID)  # REMOTE hit

    # The raw baseline reads exactly the bytes gcache stored (same size, same server), so the
    # ratio isolates what gcache adds around one round trip.
    stored_keys = [key async for key in raw.scan_iter(match=REMOTE_VALUE_PATTERN)]
    if len(stored_keys) != 1:
        raise PathError(f"expected one REMOTE value key, found {stored_keys!r}")
    stored = await raw.get(stored_keys[0])
    if stored is None:
        raise PathError(f"REMOTE value {stored_keys[0]!r} vanished")
    await raw.set(RAW_KEY, stored)

    # -- the timed loops -----------------------------------------------------------------------

    def same_id(calls: int) -> list[str]:
        return [ENTITY_ID] * calls

    async def async_bare(calls: int) -> int:
        return await time_async_calls(bare_async, same_id(calls))

    def sync_bare_in_thread(calls: int) -> int:
        return time_sync_calls(bare_sync, same_id(calls))

    async def sync_bare(calls: int) -> int:
        return await loop.run_in_executor(sync_thread, sync_bare_in_thread, calls)

    def reference_in_thread(calls: int) -> int:
        return time_sync_calls(reference_work, [0] * calls)

    async def reference(calls: int) -> int:
        return await loop.run_in_executor(sync_thread, reference_in_thread, calls)

    async def async_local_hit(calls: int) -> int:
        args = same_id(calls)
        with (
            expect_path(subjects, "async_hit", body_runs=0, counters=local_hits(calls)),
            subjects.hit_cache.enable(),
        ):
            return await time_async_calls(subjects.async_hit, args)

    def sync_local_hit_in_thread(calls: int) -> int:
        args = same_id(calls)
        with (
            expect_path(subjects, "sync_hit", body_runs=0, counters=local_hits(calls)),
            subjects.hit_cache.enable(),
        ):
            return time_sync_calls(subjects.sync_hit, args)

    async def sync_local_hit(calls: int) -> int:
        return await loop.run_in_executor(sync_thread, sync_local_hit_in_thread, calls)

    async def tracked_local_hit_bus_on(calls: int) -> int:
        args = same_id(calls)
        with (
            expect_path(subjects, "tracked_hit_bus_on", body_runs=0, counters=local_hits(calls)),
            subjects.hit_cache.enable(),
        ):
            return await time_async_calls(subjects.tracked_hit_bus_on, args)

    async def tracked_local_hit_bus_off(calls: int) -> int:
        args = same_id(calls)
        with (
            expect_path(subjects, "tracked_hit_bus_off", body_runs=0, counters=local_hits(calls)),
            subjects.bus_off_cache.enable(),
        ):
            return await time_async_calls(subjects.tracked_hit_bus_off, args)

    async def tracked_remote_hit(calls: int) -> int:
        args = same_id(calls)
        with (
            expect_path(subjects, "tracked_remote_hit", body_runs=0, counters=remote_hits(calls)),
            subjects.remote_cache.enable(),
        ):
            return await time_async_calls(subjects.tracked_remote_hit, args)

    # The bound method itself, not a wrapper: a wrapper coroutine would add its own cost to the
    # baseline and flatter the ratio. (redis-py types its commands loosely; this is their shape.)
    raw_get = cast("Callable[[str], Awaitable[bytes | None]]", raw.get)

    async def raw_redis_get(calls: int) -> int:
        return await time_async_calls(raw_get, [RAW_KEY] * calls)

    fresh_ids = (f"miss-{n}" for n in itertools.count())

    async def async_miss(calls: int) -> int:
        args = list(itertools.islice(fresh_ids, calls))  # never asked for before: always a miss
        with (
            expect_path(subjects, "miss", body_runs=calls, counters=misses(calls)),
            subjects.miss_cache.enable(),
        ):
            return await time_async_calls(subjects.miss, args)

    return [
        Scenario(name="async_bare", title="bare async call", io=False, baseline=None,
                 measure=async_bare),
        Scenario(name="sync_bare", title="bare sync call", io=False, baseline=None,
                 measure=sync_bare),
        Scenario(name="reference_work", title="reference: plain Python work", io=False,
                 baseline=None, measure=reference),
        Scenario(name="async_local_hit", title="async LOCAL hit", io=False,
                 baseline="async_bare", measure=async_local_hit),
        Scenario(name="sync_local_hit", title="sync LOCAL hit (plain thread)", io=False,
                 baseline="sync_bare", measure=sync_local_hit),
        Scenario(name="tracked_local_hit_bus_on", title="async tracked LOCAL hit, bus on",
                 io=False, baseline="tracked_local_hit_bus_off",
                 measure=tracked_local_hit_bus_on),
        Scenario(name="tracked_local_hit_bus_off", title="async tracked LOCAL hit, bus off",
                 io=False, baseline="async_bare", measure=tracked_local_hit_bus_off),
        Scenario(name="tracked_remote_hit", title="async tracked REMOTE hit", io=True,
                 baseline="raw_redis_get", measure=tracked_remote_hit, interleaved=True),
        Scenario(name="raw_redis_get", title="raw redis-py asyncio GET", io=True,
                 baseline=None, measure=raw_redis_get),
        Scenario(name="async_miss", title="async miss (function + writes)", io=True,
                 baseline="raw_redis_get", measure=async_miss),
    ]  # fmt: skip
