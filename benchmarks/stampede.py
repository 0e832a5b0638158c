"""Stampede: 1,000 concurrent misses of one key, and how many times each cache runs the function.

Every contender gets the same work: :data:`CALLERS` coroutines started together on one event loop
(``asyncio.gather``), all asking for one id nobody asked for before, with a function that takes
:data:`BODY_SEC` (an ``asyncio.sleep``, standing in for a database query), so every caller
arrives while the first call is still running. A cache with single-flight runs the function once
and hands its result to all; one without runs it once per caller (up to :data:`CALLERS`). Each
round uses a new id; contenders alternate within a round.

The figure is the count of function calls per round (the target: exactly 1 per process), and
the wall time of the whole stampede. Every caller must get the value.

gcache runs with LOCAL and REMOTE on (the private Redis), no bus. cashews is run both plainly and
with its documented stampede option (``lock=True``, a lock in the cache backend).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheConfig, RedisConfig

from .checks import PathError
from .peer_caches import (
    INSTALL_HINT,
    Body,
    PeerCache,
    aiocache_memory,
    cashews_cache,
    dialcache_cache,
    installed,
)
from .peers import Skipped
from .plan import Plan
from .stats import Summary, summarize
from .subjects import KEY_TYPE, VALUE, Profile, local_and_remote

__all__ = ["BODY_SEC", "CALLERS", "STAMPEDES", "StampedeResult", "measure_stampedes"]

CALLERS: Final = 1000
BODY_SEC: Final = 0.02


@dataclass(frozen=True, slots=True)
class StampedeResult:
    """Function calls and wall time of each round's stampede, for one contender."""

    name: str
    title: str
    callers: int
    calls: tuple[int, ...]
    """Times the function ran in each round."""
    elapsed_ns: tuple[int, ...]

    @property
    def elapsed(self) -> Summary:
        return summarize(self.elapsed_ns)


Build = Callable[[Body, str], Awaitable[PeerCache]]


async def _gcache(body: Body, redis_url: str) -> PeerCache:
    cache = GCache(
        GCacheConfig(
            cache_config_provider=local_and_remote,
            redis_config=RedisConfig(url=redis_url),
            namespace="bench-stampede",
            metrics_registry=CollectorRegistry(),
            bus=None,
        )
    )
    cached = cache.cached(key_type=KEY_TYPE, id_arg="user_id", use_case="bench.stampede")(body)

    async def invalidate(user_id: str) -> object:
        await cache.ainvalidate(KEY_TYPE, user_id)
        return None

    return PeerCache(
        function=cached, invalidate=invalidate, enable=cache.enable, aclose=cache.aclose
    )


async def _aiocache(body: Body, redis_url: str) -> PeerCache:
    return aiocache_memory(body)


def _cashews(url: Callable[[str], str], name: str, *, lock: bool = False) -> Build:
    async def build(body: Body, redis_url: str) -> PeerCache:
        return await cashews_cache(body, url(redis_url), name, lock=lock)

    return build


async def _dialcache(body: Body, redis_url: str) -> PeerCache:
    return dialcache_cache(
        body, redis_url, namespace="bench-stampede-dc", local=True, remote=True, tracked=False
    )


STAMPEDES: Final[tuple[tuple[str, str, str | None, Build], ...]] = (
    ("gcache", "gcache (LOCAL+REMOTE)", None, _gcache),
    ("aiocache_memory", "aiocache memory", "aiocache", _aiocache),
    ("cashews_mem", "cashews mem://", "cashews", _cashews(lambda url: "mem://", "stampede-mem")),
    (
        "cashews_mem_lock",
        "cashews mem:// lock=True",
        "cashews",
        _cashews(lambda url: "mem://", "stampede-mem-lock", lock=True),
    ),
    ("cashews_redis", "cashews redis://", "cashews", _cashews(lambda url: url, "stampede-redis")),
    (
        "cashews_client_side",
        "cashews client_side",
        "cashews",
        _cashews(lambda url: f"{url}?client_side=true", "stampede-cs"),
    ),
    ("dialcache", "dialcache LOCAL+REMOTE", "dialcache", _dialcache),
)
"""Every contender: name, title, package needed (None: gcache itself), builder."""


async def _stampede(cache: PeerCache, user_id: str) -> int:
    with cache.enable():
        start = time.perf_counter_ns()
        values = await asyncio.gather(*(cache.function(user_id) for _ in range(CALLERS)))
        elapsed = time.perf_counter_ns() - start
    if any(value != VALUE for value in values):
        raise PathError(f"a caller of the stampede on {user_id!r} did not get the value")
    return elapsed


async def measure_stampedes(
    plan: Plan, redis_url: str, progress: Callable[[str], None]
) -> tuple[dict[str, StampedeResult], list[Skipped]]:
    """``plan.stampede_rounds`` rounds of one stampede per installed contender."""
    calls: Counter[str] = Counter()
    caches: dict[str, PeerCache] = {}
    skipped: list[Skipped] = []

    def body(name: str) -> Body:
        async def profile(user_id: str) -> Profile:
            calls[name] += 1
            await asyncio.sleep(BODY_SEC)
            return VALUE

        return profile

    counts: dict[str, list[int]] = {}
    elapsed: dict[str, list[int]] = {}
    try:
        for name, title, package, build in STAMPEDES:
            if package is not None and not installed(package):
                reason = f"{package} not installed ({INSTALL_HINT})"
                skipped.append(Skipped(name=f"stampede_{name}", title=title, reason=reason))
                continue
            caches[name] = await build(body(name), redis_url)
            counts[name], elapsed[name] = [], []
        for index in range(plan.stampede_rounds):
            progress(f"stampede: round {index + 1}/{plan.stampede_rounds}")
            names = list(caches)
            shift = index % len(names)
            for name in [*names[shift:], *names[:shift]]:
                before = calls[name]
                elapsed[name].append(await _stampede(caches[name], f"stampede-{index}"))
                counts[name].append(calls[name] - before)
    finally:
        for cache in caches.values():
            await cache.aclose()
    titles = {name: title for name, title, _, _ in STAMPEDES}
    results = {
        name: StampedeResult(
            name=name,
            title=titles[name],
            callers=CALLERS,
            calls=tuple(counts[name]),
            elapsed_ns=tuple(elapsed[name]),
        )
        for name in caches
    }
    return results, skipped
