"""What the benchmark calls: the cached functions, their GCache instances, and the uncached
baselines with the same signature and result.

Every cached function counts the times its body runs (``Subjects.fallbacks``), so a scenario can
prove that what it timed was really a hit (no body run) or really a miss (one per call).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry

from gcache import (
    BusConfig,
    CacheLayer,
    GCache,
    GCacheConfig,
    GCacheKey,
    GCacheKeyConfig,
    RedisConfig,
)

__all__ = [
    "ENTITY_ID",
    "KEY_TYPE",
    "LOCAL_AND_REMOTE",
    "REMOTE_ONLY",
    "REMOTE_VALUE_PATTERN",
    "USE_CASES",
    "VALUE",
    "Profile",
    "Subjects",
    "bare_async",
    "bare_sync",
    "local_and_remote",
    "remote_only",
]

Profile = dict[str, object]

KEY_TYPE: Final = "user_id"
ENTITY_ID: Final = "user-42"
"""The id every hit scenario asks for."""

VALUE: Final[Profile] = {
    "id": ENTITY_ID,
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "roles": ["admin", "editor", "viewer"],
    "settings": {"theme": "dark", "locale": "en-GB", "notifications": True},
    "created_at": 1_700_000_000,
}
"""A small record, typical of what is cached per user (a couple of hundred bytes pickled)."""

USE_CASES: Final[Mapping[str, str]] = {
    "async_hit": "bench.async_hit",
    "sync_hit": "bench.sync_hit",
    "tracked_remote_hit": "bench.tracked_remote_hit",
    "miss": "bench.miss",
    "tracked_hit_bus_on": "bench.tracked_hit_bus_on",
    "tracked_hit_bus_off": "bench.tracked_hit_bus_off",
}
"""Each cached function of :class:`Subjects`, by attribute name, to its ``use_case`` (its label
in the metrics)."""

_TTL_SEC: Final = 3600  # far longer than any run: no entry may expire while it is being timed

# Built once at import: the providers hand back the same object on every call, so the figures
# measure gcache itself, not the construction and validation of a GCacheKeyConfig per call.
LOCAL_AND_REMOTE: Final = GCacheKeyConfig(
    ttl_sec={CacheLayer.LOCAL: _TTL_SEC, CacheLayer.REMOTE: _TTL_SEC},
    ramp={CacheLayer.LOCAL: 100, CacheLayer.REMOTE: 100},
)
REMOTE_ONLY: Final = GCacheKeyConfig(
    ttl_sec={CacheLayer.LOCAL: 0, CacheLayer.REMOTE: _TTL_SEC},
    ramp={CacheLayer.LOCAL: 0, CacheLayer.REMOTE: 100},
)

_HIT_NAMESPACE: Final = "bench-hit"
_REMOTE_NAMESPACE: Final = "bench-remote"
_MISS_NAMESPACE: Final = "bench-miss"
_BUS_OFF_NAMESPACE: Final = "bench-bus-off"

_BUS_STARTER_ID: Final = "bus-starter"
_BUS_START_TIMEOUT_SEC: Final = 10.0

REMOTE_VALUE_PATTERN: Final = f"{_REMOTE_NAMESPACE}:v:*"
"""Redis ``SCAN`` pattern matching the value keys of the REMOTE-only cache."""


async def local_and_remote(key: GCacheKey) -> GCacheKeyConfig:
    """Config provider: both layers, always on."""
    return LOCAL_AND_REMOTE


async def remote_only(key: GCacheKey) -> GCacheKeyConfig:
    """Config provider: REMOTE only, so every call goes to Redis."""
    return REMOTE_ONLY


async def bare_async(user_id: str) -> Profile:
    """Baseline: an async function with the cached functions' signature and result, no cache."""
    return VALUE


def bare_sync(user_id: str) -> Profile:
    """Baseline: the sync twin of :func:`bare_async`."""
    return VALUE


def _cache(
    namespace: str,
    provider: Callable[[GCacheKey], Awaitable[GCacheKeyConfig]],
    redis_url: str,
    registry: CollectorRegistry,
    *,
    bus: bool = True,
) -> GCache:
    return GCache(
        GCacheConfig(
            cache_config_provider=provider,
            redis_config=RedisConfig(url=redis_url),
            namespace=namespace,
            metrics_registry=registry,
            bus=BusConfig() if bus else None,
        )
    )


class Subjects:
    """The GCache instances and cached functions under test, wired to one private Redis.

    Four caches, because the scenarios need different configs and must not disturb each other:
    LOCAL hits and the miss use LOCAL+REMOTE, the tracked REMOTE hit uses REMOTE only, the
    misses get their own instance so the tens of thousands of entries they leave behind do not
    grow the LOCAL map that the hit scenarios read from, and the tracked LOCAL hit with the
    invalidation bus off needs a cache built with ``bus=None`` (its bus-on twin lives on the hit
    cache, whose subscriber is live). All report metrics (on) into one private registry, so the
    process-wide default registry is left alone.
    """

    def __init__(self, redis_url: str, registry: CollectorRegistry, *, bus: bool = True) -> None:
        """``bus=False`` builds every cache without the invalidation bus: for counting the
        instructions of a call (:mod:`benchmarks.instructions`), which the subscriber's
        background work, proportional to elapsed time rather than to calls, would inflate."""
        self.registry = registry
        self.fallbacks: Counter[str] = Counter()
        """How many times each cached function's body ran."""
        fallbacks = self.fallbacks
        use_cases = self.use_cases = USE_CASES
        self.hit_cache = _cache(_HIT_NAMESPACE, local_and_remote, redis_url, registry, bus=bus)
        self.remote_cache = _cache(_REMOTE_NAMESPACE, remote_only, redis_url, registry, bus=bus)
        self.miss_cache = _cache(_MISS_NAMESPACE, local_and_remote, redis_url, registry, bus=bus)
        self.bus_off_cache = _cache(
            _BUS_OFF_NAMESPACE, local_and_remote, redis_url, registry, bus=False
        )

        @self.hit_cache.cached(key_type=KEY_TYPE, id_arg="user_id", use_case=use_cases["async_hit"])
        async def async_hit(user_id: str) -> Profile:
            fallbacks["async_hit"] += 1
            return VALUE

        @self.hit_cache.cached(key_type=KEY_TYPE, id_arg="user_id", use_case=use_cases["sync_hit"])
        def sync_hit(user_id: str) -> Profile:
            fallbacks["sync_hit"] += 1
            return VALUE

        @self.remote_cache.cached(
            key_type=KEY_TYPE,
            id_arg="user_id",
            use_case=use_cases["tracked_remote_hit"],
            track_for_invalidation=True,
        )
        async def tracked_remote_hit(user_id: str) -> Profile:
            fallbacks["tracked_remote_hit"] += 1
            return VALUE

        @self.miss_cache.cached(key_type=KEY_TYPE, id_arg="user_id", use_case=use_cases["miss"])
        async def miss(user_id: str) -> Profile:
            fallbacks["miss"] += 1
            return VALUE

        # The same tracked function twice: the bus-on one's LOCAL hits are served only while
        # its subscriber proves it is fresh; the bus-off one has no subscriber to ask.
        @self.hit_cache.cached(
            key_type=KEY_TYPE,
            id_arg="user_id",
            use_case=use_cases["tracked_hit_bus_on"],
            track_for_invalidation=True,
        )
        async def tracked_hit_bus_on(user_id: str) -> Profile:
            fallbacks["tracked_hit_bus_on"] += 1
            return VALUE

        @self.bus_off_cache.cached(
            key_type=KEY_TYPE,
            id_arg="user_id",
            use_case=use_cases["tracked_hit_bus_off"],
            track_for_invalidation=True,
        )
        async def tracked_hit_bus_off(user_id: str) -> Profile:
            fallbacks["tracked_hit_bus_off"] += 1
            return VALUE

        self.async_hit = async_hit
        self.sync_hit = sync_hit
        self.tracked_remote_hit = tracked_remote_hit
        self.miss = miss
        self.tracked_hit_bus_on = tracked_hit_bus_on
        self.tracked_hit_bus_off = tracked_hit_bus_off

    async def start_bus(self) -> None:
        """Start the hit cache's invalidation-bus subscriber and wait for its first proof of
        freshness. Call it before storing the values the LOCAL-hit scenarios will read.

        gcache starts the subscriber on first use, in the background, and its start is a gap that
        empties LOCAL. If it landed after priming, the next "LOCAL hits" would go to Redis until
        the value is back in LOCAL (only after a REMOTE read, and in some gcache versions not
        before the REMOTE copy expired), and the round's path check would fail. A throwaway id
        starts the subscriber; once it is fresh, the start gap is behind us.
        """
        with self.hit_cache.enable():
            await self.async_hit(_BUS_STARTER_ID)
        bus = getattr(self.hit_cache, "bus", None)  # None: no bus in this gcache, or turned off
        if bus is None:
            return
        deadline = time.monotonic() + _BUS_START_TIMEOUT_SEC
        while not bus.is_fresh():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the invalidation-bus subscriber was not live after "
                    f"{_BUS_START_TIMEOUT_SEC:g}s: {bus.statistics()!r}"
                )
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        """Close every cache's Redis connections and background thread."""
        for cache in (self.hit_cache, self.remote_cache, self.miss_cache, self.bus_off_cache):
            await cache.aclose()
