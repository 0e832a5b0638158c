"""Fail open (DESIGN §3.6, §6): Redis faults, bad payloads and uncacheable values never raise into
the caller of a cached function; the function runs exactly once per call and the error is counted.
Invalidations are the exception: they raise, but the caller's LOCAL layer is invalidated anyway.

Every test here gets its own ``redis-server`` (``fresh_redis_server``) to kill, pause or restart.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from gcache import GCache, GCacheError, InvalidationError, RedisConfig
from gcache._codec import HEADER_LEN, computed_at_of, decode, encode, serialize
from integration.redis_server import RedisServer, wait_until
from tests.providers import BOTH, REMOTE_ONLY, constant, layers
from tests.remote_helpers import (
    Calls,
    cached_user,
    call_async,
    call_sync,
    errors,
    on_background,
    redis_time_us,
    run_async,
    settle_bus,
    sync_client,
    value_keys,
)

pytestmark = pytest.mark.slow

SYNC_OR_ASYNC = pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])


@pytest.fixture
def server(fresh_redis_server: RedisServer) -> RedisServer:
    return fresh_redis_server


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    client = sync_client(server.url)
    yield client
    client.close()


def replica(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    config: object = REMOTE_ONLY,
    **fields: Any,
) -> GCache:
    # Small retry budgets: a dead server should not make the suite wait seconds per call.
    fields.setdefault("invalidation_budget_sec", 0.5)
    fields.setdefault("remote_write_budget_sec", 0.1)
    return make_cache(url=server.url, provider=constant(config), **fields)


def call(sync: bool, cache: GCache, func: Callable[..., Any], *args: Any) -> Any:
    return (call_sync if sync else call_async)(cache, func, *args)


def caching_works(a: GCache, get_a: Any, b: GCache, get_b: Any, calls_b: Calls, user: str) -> bool:
    """A computes (or hits) ``user``; True if B is then served from Redis without running."""
    call_sync(a, get_a, user)
    before = calls_b.count
    call_sync(b, get_b, user)
    return calls_b.count == before


# -- Redis down ----------------------------------------------------------------------------


@SYNC_OR_ASYNC
def test_killed_redis_calls_return_the_function_result(
    make_cache: Callable[..., GCache], server: RedisServer, registry: Any, sync: bool
) -> None:
    cache = replica(make_cache, server)
    calls = Calls()
    get_user = cached_user(cache, calls, sync=sync)
    assert call(sync, cache, get_user, "1") == {"id": "1", "run": 1, "by": ""}
    assert errors(registry) == 0

    server.kill()

    assert call(sync, cache, get_user, "2") == {"id": "2", "run": 2, "by": ""}
    assert call(sync, cache, get_user, "1") == {"id": "1", "run": 3, "by": ""}
    assert calls.count == 3  # exactly once per call
    assert errors(registry, layer="remote") >= 2


def test_redis_down_from_the_start(
    make_cache: Callable[..., GCache], server: RedisServer, registry: Any
) -> None:
    server.kill()
    cache = replica(make_cache, server, BOTH)
    calls = Calls()
    get_sync = cached_user(cache, calls, sync=True, use_case="Sync")
    get_async = cached_user(cache, calls, use_case="Async")

    assert call_sync(cache, get_sync, "1")["run"] == 1
    assert call_async(cache, get_async, "1")["run"] == 2
    assert calls.count == 2
    assert errors(registry, layer="remote") >= 2


@SYNC_OR_ASYNC
def test_invalidation_with_redis_down_raises_but_drops_local_entries(
    make_cache: Callable[..., GCache], server: RedisServer, sync: bool
) -> None:
    # bus=None: tracked LOCAL hits are then served without the bus's freshness proof, so a
    # LOCAL entry that survived the invalidation would show (with the bus, a dead Redis makes
    # every tracked LOCAL hit bypassed anyway).
    cache = replica(make_cache, server, BOTH, bus=None)
    calls = Calls()
    get_user = cached_user(cache, calls, sync=True)
    call_sync(cache, get_user, "1")
    call_sync(cache, get_user, "2")
    assert call_sync(cache, get_user, "1")["run"] == 1  # LOCAL hit
    assert calls.count == 2

    server.kill()

    with pytest.raises(InvalidationError):
        if sync:
            cache.invalidate(key_type="user_id", id="1")
        else:

            async def invalidate() -> None:
                await cache.ainvalidate(key_type="user_id", id="1")

            run_async(invalidate, cache)

    assert call_sync(cache, get_user, "1")["run"] == 3  # this process's LOCAL entry is gone
    assert call_sync(cache, get_user, "2")["run"] == 2  # other entities untouched
    assert calls.count == 3


@SYNC_OR_ASYNC
def test_flush_with_redis_down_raises_but_drops_local_entries(
    make_cache: Callable[..., GCache], server: RedisServer, sync: bool
) -> None:
    cache = replica(make_cache, server, BOTH, bus=None)  # LOCAL changes by this process only
    calls = Calls()
    get_user = cached_user(cache, calls, sync=True, tracked=False)
    call_sync(cache, get_user, "1")
    assert call_sync(cache, get_user, "1")["run"] == 1

    server.kill()

    with pytest.raises(InvalidationError):
        if sync:
            cache.flushall()
        else:

            async def flush() -> None:
                await cache.aflushall()

            run_async(flush, cache)
    assert call_sync(cache, get_user, "1")["run"] == 2


# -- Redis slow, restarted, connections cut ------------------------------------------------


def test_paused_redis_fails_open_and_caching_resumes(
    make_cache: Callable[..., GCache], server: RedisServer, registry: Any
) -> None:
    redis_config = RedisConfig(url=server.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    a = replica(make_cache, server, redis_config=redis_config)
    b = replica(make_cache, server, redis_config=redis_config)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")
    get_a_async = cached_user(a, calls_a, use_case="AsyncGetUser", tag="a")
    assert caching_works(a, get_a, b, get_b, calls_b, "0")

    server.pause()
    try:
        assert call_sync(a, get_a, "1") == {"id": "1", "run": 2, "by": "a"}
        assert call_async(a, get_a_async, "1") == {"id": "1", "run": 3, "by": "a"}
        assert errors(registry, layer="remote") >= 2
    finally:
        server.resume()

    wait_until(
        lambda: caching_works(a, get_a, b, get_b, calls_b, "2"),
        timeout=30,
        message="a REMOTE hit after the server was resumed",
    )


def test_restarted_empty_redis_caching_resumes(
    make_cache: Callable[..., GCache], server: RedisServer, client: redis.Redis
) -> None:
    a, b = replica(make_cache, server), replica(make_cache, server)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")
    assert caching_works(a, get_a, b, get_b, calls_b, "1")

    server.restart()
    assert value_keys(client, "gcache") == []

    assert call_sync(b, get_b, "1") == {"id": "1", "run": 1, "by": "b"}  # fails open
    wait_until(
        lambda: caching_works(a, get_a, b, get_b, calls_b, "2"),
        timeout=30,
        message="a REMOTE hit after the restart",
    )


def test_killed_client_connections_do_not_fail_calls(
    make_cache: Callable[..., GCache], server: RedisServer
) -> None:
    a, b = replica(make_cache, server), replica(make_cache, server)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")
    get_a_async = cached_user(a, calls_a, use_case="AsyncGetUser", tag="a")
    assert caching_works(a, get_a, b, get_b, calls_b, "1")

    assert server.kill_clients(name="gcache") >= 2  # both instances' connections

    assert call_sync(a, get_a, "2")["id"] == "2"
    assert call_sync(b, get_b, "2")["id"] == "2"
    assert call_async(a, get_a_async, "2")["id"] == "2"
    wait_until(
        lambda: caching_works(a, get_a, b, get_b, calls_b, "3"),
        timeout=30,
        message="a REMOTE hit after CLIENT KILL",
    )


# -- bad payloads --------------------------------------------------------------------------


def _corrupt_pickle(raw: bytes) -> bytes:
    # A well-formed header (the stored value's own timestamp, so it passes the watermarks)
    # over a broken payload.
    return encode(b"\x80\x05not a pickle", computed_at_of(raw))


GARBAGE = {
    "not_ours": lambda raw: b"definitely not a gcache value",
    "short": lambda raw: b"GC",
    "corrupt_pickle": _corrupt_pickle,
    "bad_timestamp": lambda raw: raw[:4] + b"x" * 16 + raw[HEADER_LEN:],
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_undecodable_value_is_recomputed_and_rewritten(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    kind: str,
) -> None:
    a, c = replica(make_cache, server, BOTH), replica(make_cache, server)
    calls_a, calls_c = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_c = cached_user(c, calls_c, sync=True, tag="c")

    call_sync(c, get_c, "1")
    (key,) = value_keys(client, "gcache")
    client.set(key, GARBAGE[kind](client.get(key)))

    result = call_sync(a, get_a, "1")
    assert result == {"id": "1", "run": 1, "by": "a"}  # the function's result, no exception
    assert errors(registry, error="decode") == 1

    # The entry was rewritten with A's value: it decodes, and a replica is served it.
    raw = client.get(key)
    assert raw is not None
    assert decode(raw)[1] == result
    assert call_sync(c, get_c, "1") == result
    assert calls_c.count == 1
    assert errors(registry, error="decode") == 1


def test_undecodable_value_async(
    make_cache: Callable[..., GCache], server: RedisServer, client: redis.Redis, registry: Any
) -> None:
    cache = replica(make_cache, server)
    calls = Calls()
    get_user = cached_user(cache, calls)
    call_async(cache, get_user, "1")
    (key,) = value_keys(client, "gcache")
    client.set(key, b"\x00garbage")

    assert call_async(cache, get_user, "1") == {"id": "1", "run": 2, "by": ""}
    assert errors(registry, error="decode") == 1
    assert decode(client.get(key))[1] == {"id": "1", "run": 2, "by": ""}  # type: ignore[arg-type]
    assert call_async(cache, get_user, "1")["run"] == 2


# -- values that cannot be cached ----------------------------------------------------------


UNPICKLABLE = {
    "lock": lambda: {"lock": threading.Lock()},
    "lambda": lambda: {"callback": lambda: None},
}


@SYNC_OR_ASYNC
@pytest.mark.parametrize("kind", sorted(UNPICKLABLE))
def test_unpicklable_value_is_returned_not_cached_and_computed_once_per_call(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    sync: bool,
    kind: str,
) -> None:
    cache = replica(make_cache, server, BOTH)
    calls = Calls()
    produced: list[Any] = []

    def make() -> Any:
        value = UNPICKLABLE[kind]()
        value["run"] = calls.bump()
        produced.append(value)
        return value

    decorate = cache.cached(key_type="user_id", id_arg="user_id", use_case="Unpicklable")
    if sync:
        get_user = decorate(lambda user_id: make())
    else:

        async def get_user_async(user_id: str) -> Any:
            return make()

        get_user = decorate(get_user_async)

    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        pickle.dumps(UNPICKLABLE[kind]())
    for n in range(1, 4):
        result = call(sync, cache, get_user, "1")
        assert result is produced[-1]  # the very object the function returned
        assert result["run"] == n
        assert calls.count == n  # regression: never run twice for one call
    assert errors(registry, error="unserializable") == 3
    assert value_keys(client, "gcache") == []


@SYNC_OR_ASYNC
def test_oversized_value_is_returned_not_cached_and_computed_once_per_call(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    sync: bool,
) -> None:
    cache = replica(make_cache, server, BOTH, max_value_bytes=1000)
    calls = Calls()
    decorate = cache.cached(key_type="user_id", id_arg="user_id", use_case="Big")
    small = cached_user(cache, Calls(), sync=sync, use_case="Small")

    def make() -> str:
        return f"{calls.bump()}:" + "x" * 10_000

    if sync:
        get_big = decorate(lambda user_id: make())
    else:

        async def get_big_async(user_id: str) -> str:
            return make()

        get_big = decorate(get_big_async)

    for n in range(1, 4):
        assert call(sync, cache, get_big, "1").startswith(f"{n}:")
        assert calls.count == n
    assert errors(registry, error="too_large") == 3
    assert value_keys(client, "gcache") == []
    call(sync, cache, small, "1")  # a small value of the same cache is still cached
    assert len(value_keys(client, "gcache")) == 1


@SYNC_OR_ASYNC
def test_remote_ttl_zero_runs_the_function_once_per_call(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    sync: bool,
) -> None:
    local_only = replica(make_cache, server, layers(local=60, remote=0))
    uncached = replica(make_cache, server, layers(local=0, remote=0))
    calls_local, calls_none = Calls(), Calls()
    # Untracked: a tracked LOCAL hit also needs the bus's freshness proof, renewed in the
    # background; this test is about the function running once per call, not about the bus.
    get_local = cached_user(local_only, calls_local, sync=sync, tracked=False)
    get_none = cached_user(uncached, calls_none, sync=sync, tracked=False)
    warm_up = cached_user(local_only, Calls(), sync=True, use_case="WarmUp")
    call_sync(local_only, warm_up, "0")  # starts the bus subscriber ...
    settle_bus(local_only)  # ... whose start flushes the LOCAL layer once

    assert call(sync, local_only, get_local, "1")["run"] == 1
    assert calls_local.count == 1
    assert call(sync, local_only, get_local, "1")["run"] == 1  # LOCAL hit
    assert call(sync, local_only, get_local, "2")["run"] == 2
    assert calls_local.count == 2

    for n in range(1, 4):
        assert call(sync, uncached, get_none, "1")["run"] == n
        assert calls_none.count == n
    assert value_keys(client, "gcache") == []
    assert errors(registry) == 0


# -- Redis errors around the write ---------------------------------------------------------


@SYNC_OR_ASYNC
def test_redis_error_during_write_returns_the_result_once(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    sync: bool,
) -> None:
    cache = replica(make_cache, server)
    calls = Calls()
    get_user = cached_user(cache, calls, sync=sync)
    call(sync, cache, get_user, "1")
    (key,) = value_keys(client, "gcache")

    # A value key of the wrong type: the read sees nothing, the write script fails (WRONGTYPE).
    client.delete(key)
    client.hset(key, "field", "value")
    assert call(sync, cache, get_user, "1") == {"id": "1", "run": 2, "by": ""}
    assert calls.count == 2
    assert errors(registry, layer="remote") >= 1
    assert client.type(key) == b"hash"


@SYNC_OR_ASYNC
def test_garbage_flush_watermark_fails_open(
    make_cache: Callable[..., GCache],
    server: RedisServer,
    client: redis.Redis,
    registry: Any,
    sync: bool,
) -> None:
    cache = replica(make_cache, server)
    calls = Calls()
    get_user = cached_user(cache, calls, sync=sync)
    client.set("gcache:flush:{gcache}", b"not-a-number")

    for n in range(1, 3):
        assert call(sync, cache, get_user, str(n)) == {"id": str(n), "run": n, "by": ""}
        assert calls.count == n
    assert errors(registry) >= 2
    assert value_keys(client, "gcache") == []  # nothing was written past a broken watermark

    # The write script, handed the broken watermark directly, fails (it does not store).
    remote = cache._remote
    assert remote is not None
    now = redis_time_us(client)
    encoded = encode(serialize("v"), now)
    with pytest.raises(GCacheError, match="redis write failed"):
        on_background(
            cache, lambda: remote.put("gcache:v:x", None, encoded, computed_at=now, ttl_ms=10_000)
        )
    assert client.get("gcache:v:x") is None
