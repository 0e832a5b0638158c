"""A tracked LOCAL hit is served only while the cache's bus subscriber proves it fresh, whatever
clock the cache's ``timer`` is.

The hit compares the ``timer()`` reading it takes for the entry's TTL with the subscriber's
deadline, which is on ``time.monotonic()``; a cache whose timer is another clock (tests inject
fake ones) must still get the subscriber's verdict, not a comparison of two clocks. A fake clock
far ahead of the monotonic one would bypass every hit; one far behind would serve hits through a
paused Redis. Each case is checked both ways: hits served while fresh, bypassed once not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from gcache import GCache, RedisConfig
from integration.redis_server import RedisServer, wait_until
from tests.metric_values import metric
from tests.remote_helpers import Calls, cached_user, call_async, call_sync, settle_bus


class FixedClock:
    """A timer that never moves (LOCAL entries never expire under it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


TIMERS = pytest.mark.parametrize(
    "timer",
    [time.monotonic, FixedClock(0.0), FixedClock(1e12)],
    ids=["monotonic", "fake-clock-behind", "fake-clock-ahead"],
)


def local_hits(registry: CollectorRegistry) -> float:
    requests = metric(registry, "gcache_request_counter_total", layer="local")
    return requests - metric(registry, "gcache_miss_counter_total", layer="local")


def bypassed(registry: CollectorRegistry) -> float:
    return metric(registry, "gcache_disabled_counter_total", reason="bus_unsynced")


@TIMERS
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_tracked_local_hits_follow_the_bus_whatever_the_timer(
    timer: Callable[[], float],
    sync: bool,
    make_cache: Callable[..., GCache],
    registry: CollectorRegistry,
    fresh_redis_server: RedisServer,
) -> None:
    cache = make_cache(
        timer=timer,
        # A frozen Redis fails a REMOTE read fast: the bypassed call then runs the function.
        redis_config=RedisConfig(url=fresh_redis_server.url, socket_timeout=0.3),
    )
    calls = Calls()
    get_user = cached_user(cache, calls, sync=sync)

    def call(user: str) -> object:
        if sync:
            return call_sync(cache, get_user, user)
        return call_async(cache, get_user, user)

    call("warm-up")  # starts the subscriber, whose first proof may flush LOCAL once
    settle_bus(cache)

    users = iter(range(1_000_000))

    def one_served_from_local() -> str | None:
        user = str(next(users))
        call(user)
        hits, runs = local_hits(registry), calls.count
        call(user)
        return user if local_hits(registry) > hits and calls.count == runs else None

    user = wait_until(one_served_from_local, timeout=30, message="a tracked LOCAL hit")

    bus = cache.bus
    assert bus is not None
    fresh_redis_server.pause()
    try:
        wait_until(lambda: not bus.is_fresh(), timeout=30, message="the bus to stop being fresh")
        before, runs = bypassed(registry), calls.count
        call(user)  # its LOCAL entry is still there, but may not be served
        assert bypassed(registry) == before + 1
        assert calls.count == runs + 1  # REMOTE timed out: the function ran (fail-open)
    finally:
        fresh_redis_server.resume()
