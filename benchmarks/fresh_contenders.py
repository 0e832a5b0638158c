"""The contenders of the cross-process freshness scenario, built the same way on both sides.

Each contender is a cache in front of one function: it reads the entity's current *version* from
a "database" (a plain Redis key, :func:`truth_key`, on the run's private server). The writer
process and the reader process each build their own instance of every contender (nothing shared
but Redis). An update is what a service does after a write: ``SET`` the new version in the
database, then invalidate the id through the contender's own API on the writer's instance.

gcache runs LOCAL and REMOTE with a tracked function and the invalidation bus (streams);
``redis_py`` is no cache at all (every call reads the database: the floor); the peers are built
by :mod:`.peer_caches`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gcache import BusConfig, GCache, GCacheConfig, RedisConfig

from .checks import PathError
from .peer_caches import Body, PeerCache, aiocache_memory, cashews_cache, dialcache_cache
from .subjects import KEY_TYPE, local_and_remote

__all__ = ["CONTENDERS", "Contender", "build", "truth_key"]

_BUS_FRESH_TIMEOUT_SEC: Final = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Contender:
    name: str
    title: str
    package: str | None
    """Import name of the package needed; None for gcache and redis-py (always there)."""


CONTENDERS: Final = (
    Contender(name="gcache", title="gcache LOCAL+REMOTE, tracked, bus (streams)", package=None),
    Contender(name="redis_py", title="redis-py GET, no cache (floor)", package=None),
    Contender(name="aiocache_memory", title="aiocache memory", package="aiocache"),
    Contender(name="cashews_mem", title="cashews mem://", package="cashews"),
    Contender(name="cashews_redis", title="cashews redis://", package="cashews"),
    Contender(name="cashews_client_side", title="cashews client_side", package="cashews"),
    Contender(name="dialcache_local", title="dialcache LOCAL+REMOTE, tracked", package="dialcache"),
    Contender(name="dialcache_remote", title="dialcache REMOTE only, tracked", package="dialcache"),
)


def truth_key(entity_id: str) -> str:
    """The database row of ``entity_id``: its current version."""
    return f"bench-fresh-truth:{entity_id}"


async def _wait_bus_fresh(cache: GCache) -> None:
    bus = cache.bus
    if bus is None:
        raise PathError("the gcache contender has no bus")
    deadline = time.monotonic() + _BUS_FRESH_TIMEOUT_SEC
    while not bus.is_fresh():
        if time.monotonic() > deadline:
            raise PathError(f"bus not live after {_BUS_FRESH_TIMEOUT_SEC:g}s")
        await asyncio.sleep(0.005)


async def _gcache(body: Body, redis_url: str) -> PeerCache:
    cache = GCache(
        GCacheConfig(
            cache_config_provider=local_and_remote,
            redis_config=RedisConfig(url=redis_url),
            namespace="bench-fresh",
            metrics_registry=CollectorRegistry(),
            bus=BusConfig(transport="streams"),
        )
    )
    cached = cache.cached(
        key_type=KEY_TYPE, id_arg="user_id", use_case="bench.fresh", track_for_invalidation=True
    )(body)
    # The subscriber starts on first use, and its start empties LOCAL: get it behind us.
    with cache.enable():
        await cached("bus-starter")
    await _wait_bus_fresh(cache)

    async def invalidate(user_id: str) -> object:
        await cache.ainvalidate(KEY_TYPE, user_id)
        return None

    return PeerCache(
        function=cached, invalidate=invalidate, enable=cache.enable, aclose=cache.aclose
    )


async def _nothing(user_id: str) -> None:
    return None


def _uncached(body: Body) -> PeerCache:
    async def aclose() -> None:
        return None

    return PeerCache(
        function=body, invalidate=_nothing, enable=contextlib.nullcontext, aclose=aclose
    )


async def build(name: str, redis_url: str, truth: Redis) -> tuple[PeerCache, Callable[[], int]]:
    """Contender ``name`` around a function reading the version from ``truth``; also returns
    how many times that function has run."""
    runs = 0

    async def version(user_id: str) -> int:
        nonlocal runs
        runs += 1
        raw = await truth.get(truth_key(user_id))
        return int(raw) if raw is not None else 0

    builders: dict[str, Callable[[], Awaitable[PeerCache]]] = {
        "gcache": lambda: _gcache(version, redis_url),
        "redis_py": lambda: _ready(_uncached(version)),
        "aiocache_memory": lambda: _ready(aiocache_memory(version)),
        "cashews_mem": lambda: cashews_cache(version, "mem://", "fresh-mem"),
        "cashews_redis": lambda: cashews_cache(version, redis_url, "fresh-redis"),
        "cashews_client_side": lambda: cashews_cache(
            version, f"{redis_url}?client_side=true", "fresh-cs"
        ),
        "dialcache_local": lambda: _ready(
            dialcache_cache(
                version, redis_url, namespace="fresh-dc-l", local=True, remote=True, tracked=True
            )
        ),
        "dialcache_remote": lambda: _ready(
            dialcache_cache(
                version, redis_url, namespace="fresh-dc-r", local=False, remote=True, tracked=True
            )
        ),
    }
    return await builders[name](), lambda: runs


async def _ready(cache: PeerCache) -> PeerCache:
    return cache
