"""Helpers shared by the REMOTE-layer tests (test_remote_layer, test_watermarks, test_fail_open).

Everything here talks to the private servers of the fixtures; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis

from gcache import GCache, RedisConfig
from gcache._codec import DecodeError, computed_at_of
from integration.redis_server import wait_until
from tests.metric_values import metric

T = TypeVar("T")

KEY_TYPE = "user_id"


class Calls:
    """Thread-safe count of how often a cached function really ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def bump(self) -> int:
        with self._lock:
            self.count += 1
            return self.count


def cached_user(
    cache: GCache,
    calls: Calls,
    *,
    use_case: str = "GetUser",
    tracked: bool = True,
    sync: bool = False,
    tag: str = "",
) -> Callable[..., Any]:
    """A cached ``get_user(user_id)`` that counts its runs; its result names the run that made it,
    so a test can tell which computation a caller was served."""
    decorate = cache.cached(
        key_type=KEY_TYPE, id_arg="user_id", use_case=use_case, track_for_invalidation=tracked
    )
    if sync:

        def get_user_sync(user_id: str) -> dict[str, Any]:
            return {"id": user_id, "run": calls.bump(), "by": tag}

        return decorate(get_user_sync)

    async def get_user(user_id: str) -> dict[str, Any]:
        return {"id": user_id, "run": calls.bump(), "by": tag}

    return decorate(get_user)


def call_sync(cache: GCache, func: Callable[..., T], *args: Any) -> T:
    """Call a sync cached function with caching enabled."""
    with cache.enable():
        return func(*args)


def call_async(cache: GCache, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Call an async cached function with caching enabled, on a throw-away event loop."""

    async def main() -> T:
        with cache.enable():
            return await func(*args)

    return run_async(main, cache)


def run_async(main: Callable[[], Awaitable[T]], *caches: GCache) -> T:
    """``asyncio.run(main())``, then close the Redis clients the caches opened on that loop
    (a client belongs to its loop; leaving it open would raise ResourceWarning).

    Only that loop's client is closed: ``GCache.aclose()`` would also stop the background loop
    and the bus subscriber, whose restart may flush the LOCAL layer (a possible gap)."""

    async def wrapper() -> T:
        try:
            return await main()
        finally:
            for cache in caches:
                if cache._remote is not None:
                    await cache._remote.aclose()

    return asyncio.run(wrapper())


def settle_bus(cache: GCache) -> None:
    """Wait until the cache's invalidation-bus subscriber (started by the first cached call)
    is live. Its start is a possible gap, on which it flushes the LOCAL layer: a test that
    counts LOCAL hits must not race with that."""
    bus = getattr(cache, "bus", None)
    if bus is not None:
        wait_until(bus.is_fresh, timeout=30, message="the bus subscriber to be live")


def on_background(cache: GCache, operation: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine (e.g. a ``cache._remote`` method) on the cache's own background loop."""
    return cache._background.call(operation)


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=False)


def redis_time_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def value_keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{namespace}:v:*", count=1000))


def all_keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.scan_iter(count=1000))


def stored_computed_at(client: redis.Redis, key: bytes | str) -> int | None:
    """``computed_at`` of the value under ``key``, None if absent or not a gcache value."""
    raw = client.get(key)
    if raw is None:
        return None
    try:
        return computed_at_of(raw)
    except DecodeError:
        return None


def errors(registry: Any, **labels: str) -> float:
    return metric(registry, "gcache_error_counter_total", **labels)


def disabled(registry: Any, **labels: str) -> float:
    return metric(registry, "gcache_disabled_counter_total", **labels)


def command_calls(client: redis.Redis, command: str) -> int:
    """How many times the server ran ``command`` (``INFO commandstats``)."""
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def patient(redis_url: str) -> dict[str, Any]:
    """Generous Redis timeouts: a slow command on a busy machine must not fail open (by design)
    and change the counts the test expects."""
    return {
        "redis_config": RedisConfig(url=redis_url, socket_timeout=10, socket_connect_timeout=10),
        "remote_write_budget_sec": 30,
    }


def settle(cache: GCache) -> None:
    """Wait until the cache's bus subscriber is live.

    The subscriber starts on first use and, when it connects, flushes the LOCAL layer (a "start"
    gap), racing with the first calls; tests that count LOCAL hits wait for it. A tracked LOCAL
    hit is served only while the subscriber is live, so one proves it."""
    registry = cache.config.metrics_registry
    assert registry is not None
    counter = itertools.count()

    @cache.cached(key_type="warmup", id_arg="i", use_case="settle", track_for_invalidation=True)
    def warm(i: int) -> int:
        return i

    def remote_lookups() -> float:
        return metric(registry, "gcache_request_counter_total", use_case="settle", layer="remote")

    def live() -> bool:
        i = next(counter)
        with cache.enable():
            warm(i)
            before = remote_lookups()
            warm(i)
            return remote_lookups() == before  # served from LOCAL

    wait_until(live, timeout=30, message="the bus subscriber is live")
