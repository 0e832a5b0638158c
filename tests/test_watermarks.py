"""The conditional-write rules (DESIGN §2-4, §3.2, §3.5), through the public API and directly
through the REMOTE store (``cache._remote``: ``put`` / ``invalidate`` / ``flush`` / ``get``).

A value for entity ``e`` may be stored only if ``computed_at > W(e)`` and ``> F`` and newer than
the value it replaces; watermarks only move forward and outlive the values they guard; every
timestamp is Redis server time.

The read-before-write races run twice (the ``backend`` fixture): on one server and on a 3-master
Cluster, where the conditional write reads F's copy in the value's own slot.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus._names import flush_key
from gcache import GCache
from gcache._codec import computed_at_of, encode, serialize
from gcache._keys import watermark_key
from gcache._scripts import WriteResult
from integration.redis_server import wait_until
from tests.backends import Backend
from tests.providers import BOTH, REMOTE_ONLY, constant, layers
from tests.remote_helpers import (
    Calls,
    cached_user,
    call_async,
    call_sync,
    disabled,
    on_background,
    redis_time_us,
    run_async,
    stored_computed_at,
    value_keys,
)

NS = "wm"
HOUR_US = 3600 * 1_000_000


@pytest.fixture
def backend_client(backend: Backend) -> Iterator[redis.Redis | redis.RedisCluster]:
    client = backend.client()
    yield client
    client.close()


def replica(
    make_cache: Callable[..., GCache],
    where: str | Backend,
    config: object = REMOTE_ONLY,
    **fields: Any,
) -> GCache:
    """A cache of namespace NS on ``where``: a server URL, or a parametrised ``Backend``."""
    fields.setdefault("namespace", NS)
    if isinstance(where, Backend):
        return make_cache(provider=constant(config), redis_config=where.redis_config(), **fields)
    return make_cache(url=where, provider=constant(config), **fields)


# -- direct access to the REMOTE store -----------------------------------------------------


def vkey(entity: str = "1", use_case: str = "uc") -> str:
    return f"{NS}:v:{{user_id={entity}}}:{use_case}:"


def wkey(entity: str = "1") -> str:
    return watermark_key(NS, "user_id", entity)


def put(
    cache: GCache,
    key: str,
    computed_at: int,
    *,
    tracked: str | None = "1",
    payload: object = None,
    ttl_ms: int = 600_000,
) -> int:
    """Conditional write of ``payload`` stamped ``computed_at``; returns the WriteResult code.

    Like every process before its first write, it first makes sure the namespace has a flush
    watermark (the clock sync creates it); the write script treats a missing one as data loss.
    """
    encoded = encode(serialize(payload if payload is not None else computed_at), computed_at)
    remote = cache._remote
    assert remote is not None
    on_background(cache, lambda: remote.client().set(flush_key(NS), 0, nx=True))
    watermark = None if tracked is None else wkey(tracked)
    return on_background(
        cache,
        lambda: remote.put(key, watermark, encoded, computed_at=computed_at, ttl_ms=ttl_ms),
    )


def invalidate(cache: GCache, entity: str = "1", buffer_ms: int = 0) -> int:
    remote = cache._remote
    assert remote is not None
    return on_background(
        cache, lambda: remote.invalidate(("user_id", entity), future_buffer_ms=buffer_ms)
    )


def flush(cache: GCache) -> int:
    remote = cache._remote
    assert remote is not None
    return on_background(cache, remote.flush)


def pttls(client: redis.Redis, *keys: bytes | str) -> list[int]:
    """PTTL of several keys read in one MULTI, so they are compared at one instant."""
    with client.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.pttl(key)
        return [int(v) for v in pipe.execute()]


def call_until_stored(client: redis.Redis, call: Callable[[], object], part: bytes) -> bytes:
    """Call until the value is in Redis; returns its key. A value computed right after an
    invalidation may be refused (computed_at is stamped pessimistically early), and with a
    tiny watermark_ttl_sec a stalled machine may make it TOO_OLD: one call is not always
    enough."""

    def stored() -> bytes | None:
        call()
        return next((k for k in value_keys(client, NS) if part in k), None)

    return wait_until(stored, timeout=30, message="a value stored after the invalidation")


def only_value_key(client: redis.Redis) -> bytes:
    keys = value_keys(client, NS)
    assert len(keys) == 1, keys
    return keys[0]


# -- the read-before-write race (regression: the watermark is checked at WRITE time) --------


def _blocked_call_with_invalidation(
    blocked: GCache, invalidator: GCache, *, flush_instead: bool = False
) -> tuple[dict[str, Any], Callable[..., Any], Calls]:
    """``blocked`` starts a fallback, ``invalidator`` invalidates (or flushes) while it runs,
    then the fallback finishes. Returns what the blocked caller got, the cached function and
    its call counter."""
    calls = Calls()
    started = asyncio.Event()
    release = asyncio.Event()

    @blocked.cached(
        key_type="user_id", id_arg="user_id", use_case="GetUser", track_for_invalidation=True
    )
    async def get_user(user_id: str) -> dict[str, Any]:
        run = calls.bump()
        if run == 1:
            started.set()
            await release.wait()
        return {"id": user_id, "run": run}

    async def main() -> dict[str, Any]:
        with blocked.enable():
            task = asyncio.create_task(get_user("7"))
            await asyncio.wait_for(started.wait(), timeout=30)
            if flush_instead:
                await invalidator.aflushall()
            else:
                await invalidator.ainvalidate(key_type="user_id", id="7")
            release.set()
            return await asyncio.wait_for(task, timeout=30)

    first = run_async(main, blocked, invalidator)
    return first, get_user, calls


def test_fallback_racing_an_invalidation_elsewhere_is_not_stored_remotely(
    make_cache: Callable[..., GCache],
    backend: Backend,
    backend_client: redis.Redis,
    registry: Any,
) -> None:
    a, b, c = (replica(make_cache, backend) for _ in range(3))
    first, get_user, _ = _blocked_call_with_invalidation(a, b)

    assert first == {"id": "7", "run": 1}  # the caller still gets its result
    assert value_keys(backend_client, NS) == []  # but the write was refused
    assert disabled(registry, reason="invalidated_during_call") == 1
    fresh = Calls()
    assert call_sync(c, cached_user(c, fresh, sync=True, tag="c"), "7")["by"] == "c"
    assert fresh.count == 1  # a fresh replica recomputes
    assert call_async(a, get_user, "7") != first  # and so does A (or it gets C's value)


def test_fallback_racing_its_own_instance_invalidation_is_not_stored_anywhere(
    make_cache: Callable[..., GCache], backend: Backend, backend_client: redis.Redis
) -> None:
    # bus=None: LOCAL hits of tracked entries are served without waiting for the bus, so a
    # value wrongly kept in the LOCAL layer would be served (not bypassed).
    a = replica(make_cache, backend, BOTH, bus=None)
    c = replica(make_cache, backend)
    first, get_user, _ = _blocked_call_with_invalidation(a, a)

    assert first == {"id": "7", "run": 1}
    assert value_keys(backend_client, NS) == []
    assert call_async(a, get_user, "7") == {"id": "7", "run": 2}  # not in LOCAL either
    assert call_sync(c, cached_user(c, Calls(), sync=True), "7") != first


def test_fallback_racing_an_invalidation_elsewhere_is_not_kept_in_local_layer(
    make_cache: Callable[..., GCache], backend: Backend, backend_client: redis.Redis
) -> None:
    # bus=None: A hears of B's invalidation only through the refused write (with the bus, the
    # event would also drop the entry, a little later).
    a = replica(make_cache, backend, BOTH, bus=None)
    b = replica(make_cache, backend)
    first, get_user, _ = _blocked_call_with_invalidation(a, b)

    assert first == {"id": "7", "run": 1}
    assert value_keys(backend_client, NS) == []  # Redis refused run 1 (computed before W) ...
    # ... this instance learnt it from the write's reply, so it must not serve run 1 from
    # its LOCAL layer either.
    assert call_async(a, get_user, "7") == {"id": "7", "run": 2}


def test_local_only_fallback_racing_an_invalidation_is_not_kept(
    make_cache: Callable[..., GCache], backend: Backend, backend_client: redis.Redis
) -> None:
    # No REMOTE write to refuse the value: the LOCAL layer's own watermark check must.
    # (bus=None: tracked LOCAL hits are served without waiting for the bus.)
    a = replica(make_cache, backend, layers(local=60, remote=0), bus=None)
    first, get_user, calls = _blocked_call_with_invalidation(a, a)

    assert first == {"id": "7", "run": 1}
    assert call_async(a, get_user, "7") == {"id": "7", "run": 2}
    assert value_keys(backend_client, NS) == []

    # future_buffer_ms reaches the LOCAL layer too: values computed within it are not kept.
    a.invalidate(key_type="user_id", id="8", future_buffer_ms=60_000)
    assert call_async(a, get_user, "8") == {"id": "8", "run": 3}
    assert call_async(a, get_user, "8") == {"id": "8", "run": 4}
    assert calls.count == 4


def test_sync_fallback_racing_an_invalidation_is_not_stored(
    make_cache: Callable[..., GCache], backend: Backend, backend_client: redis.Redis
) -> None:
    a, b, c = (replica(make_cache, backend) for _ in range(3))
    calls = Calls()
    started, release = threading.Event(), threading.Event()
    results: list[Any] = []

    @a.cached(key_type="user_id", id_arg="user_id", use_case="GetUser", track_for_invalidation=True)
    def get_user(user_id: str) -> dict[str, Any]:
        run = calls.bump()
        if run == 1:
            started.set()
            assert release.wait(timeout=30)
        return {"id": user_id, "run": run}

    def worker() -> None:
        results.append(call_sync(a, get_user, "7"))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert started.wait(timeout=30)
        b.invalidate(key_type="user_id", id="7")
    finally:
        release.set()
        thread.join(timeout=30)
    assert results == [{"id": "7", "run": 1}]
    assert value_keys(backend_client, NS) == []  # the write was refused
    fresh = Calls()
    call_sync(c, cached_user(c, fresh, sync=True), "7")
    assert fresh.count == 1


def test_fallback_racing_a_flush_is_not_stored(
    make_cache: Callable[..., GCache], backend: Backend, backend_client: redis.Redis
) -> None:
    a = replica(make_cache, backend, BOTH)
    b, c = replica(make_cache, backend), replica(make_cache, backend)
    first, _, _ = _blocked_call_with_invalidation(b, a, flush_instead=True)

    assert first == {"id": "7", "run": 1}
    assert value_keys(backend_client, NS) == []
    fresh = Calls()
    call_sync(c, cached_user(c, fresh, sync=True), "7")
    assert fresh.count == 1


# -- future_buffer_ms -----------------------------------------------------------------------


def test_values_computed_within_the_future_buffer_are_refused(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis, registry: Any
) -> None:
    a, b, c = (replica(make_cache, redis_url) for _ in range(3))
    calls_a, calls_c = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True)
    get_c = cached_user(c, calls_c, sync=True)

    b.invalidate(key_type="user_id", id="7", future_buffer_ms=60_000)
    watermark = int(client.get(wkey("7")))
    assert watermark > redis_time_us(client)  # the watermark lies in the future

    assert call_sync(a, get_a, "7")["run"] == 1
    assert call_sync(a, get_a, "7")["run"] == 2  # started within the buffer: not cached
    assert disabled(registry, reason="invalidated_during_call") == 2
    assert value_keys(client, NS) == []
    call_sync(c, get_c, "7")
    assert calls_c.count == 1

    # Through the LOCAL layer of the invalidating instance as well (bus=None: its LOCAL hits
    # are served without waiting for the bus, so a value it kept would show).
    both = replica(make_cache, redis_url, BOTH, bus=None)
    calls_both = Calls()
    get_both = cached_user(both, calls_both, sync=True)
    both.invalidate(key_type="user_id", id="8", future_buffer_ms=60_000)
    call_sync(both, get_both, "8")
    call_sync(both, get_both, "8")
    assert calls_both.count == 2


def test_values_computed_after_the_future_buffer_are_cached(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    a, b, c = (replica(make_cache, redis_url) for _ in range(3))
    calls_a, calls_c = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True)

    b.invalidate(key_type="user_id", id="7", future_buffer_ms=300)
    watermark = int(client.get(wkey("7")))
    wait_until(lambda: redis_time_us(client) > watermark, timeout=30, message="buffer to run out")

    def cached_after_buffer() -> bool:
        call_sync(a, get_a, "7")
        keys = value_keys(client, NS)
        return bool(keys) and (stored_computed_at(client, keys[0]) or 0) > watermark

    wait_until(cached_after_buffer, timeout=30, message="a value computed after the buffer")
    served = call_sync(c, cached_user(c, calls_c, sync=True), "7")
    assert calls_c.count == 0
    assert served["run"] == calls_a.count


def test_future_buffer_boundary_through_the_store(
    make_cache: Callable[..., GCache], redis_url: str
) -> None:
    cache = replica(make_cache, redis_url)
    watermark = invalidate(cache, buffer_ms=2000)

    assert put(cache, vkey(), watermark - 1) == WriteResult.STALE
    assert put(cache, vkey(), watermark) == WriteResult.STALE  # refused when computed_at <= W
    assert put(cache, vkey(), watermark + 1) == WriteResult.STORED
    raw = on_background(cache, lambda: cache._remote.client().get(vkey()))  # type: ignore[union-attr]
    assert raw is not None and computed_at_of(raw) == watermark + 1


# -- watermarks only move forward (regression) ---------------------------------------------


def test_watermark_never_decreases(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    cache = replica(make_cache, redis_url)

    first = invalidate(cache, buffer_ms=5000)
    assert int(client.get(wkey())) == first
    second = invalidate(cache, buffer_ms=0)
    assert second == first  # the reply is the effective watermark, max(W, now + 0)
    assert int(client.get(wkey())) == first

    # The same through the public API.
    cache.invalidate(key_type="user_id", id="2", future_buffer_ms=5000)
    high = int(client.get(wkey("2")))

    async def lower() -> None:
        await cache.ainvalidate(key_type="user_id", id="2", future_buffer_ms=0)

    run_async(lower, cache)
    assert int(client.get(wkey("2"))) == high


def test_flush_watermark_never_decreases_and_refuses_older_values(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    cache = replica(make_cache, redis_url)
    assert put(cache, vkey(), redis_time_us(client) - 1000) == WriteResult.STORED

    f1 = flush(cache)
    assert int(client.get(flush_key(NS))) == f1
    raw = on_background(cache, lambda: cache._remote.client().get(vkey()))  # type: ignore[union-attr]
    assert raw is None  # computed before the flush: the read script refuses it
    assert put(cache, vkey(), f1) == WriteResult.STALE
    assert put(cache, vkey("2"), f1 - 5_000_000, tracked=None) == WriteResult.STALE
    assert put(cache, vkey(), f1 + 1) == WriteResult.STORED
    f2 = flush(cache)
    assert f2 >= f1
    assert int(client.get(flush_key(NS))) == f2


# -- late writes never replace newer values (regression) -----------------------------------


@pytest.mark.parametrize("tracked", ["1", None], ids=["tracked", "untracked"])
def test_late_write_never_replaces_a_newer_value(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis, tracked: str | None
) -> None:
    cache = replica(make_cache, redis_url)
    now = redis_time_us(client)

    assert put(cache, vkey(), now, tracked=tracked, payload="newer") == WriteResult.STORED
    stored = client.get(vkey())
    assert stored is not None

    late = put(cache, vkey(), now - 1000, tracked=tracked, payload="older")
    assert late == WriteResult.NEWER_EXISTS
    assert client.get(vkey()) == stored
    retried = put(cache, vkey(), now, tracked=tracked, payload="same time")
    assert retried == WriteResult.NEWER_EXISTS
    assert client.get(vkey()) == stored

    assert put(cache, vkey(), now + 1, tracked=tracked, payload="newest") == WriteResult.STORED
    assert computed_at_of(client.get(vkey())) == now + 1  # type: ignore[arg-type]


# -- a watermark outlives the values it guards (regression) --------------------------------


def test_watermark_lives_at_least_as_long_as_its_values(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    long_remote = layers(local=0, remote=7200, local_ramp=0)  # longer than watermark_ttl_sec
    a = replica(make_cache, redis_url, long_remote)
    calls = Calls()
    get_user = cached_user(a, calls, sync=True)

    # Value first, then the invalidation: the value is deleted with it, so nothing can
    # outlive the watermark and come back.
    call_sync(a, get_user, "1")
    old_key = only_value_key(client)
    a.invalidate(key_type="user_id", id="1")
    assert client.get(old_key) is None

    # Invalidation first (watermark lifetime = watermark_ttl_sec), then a longer-lived value.
    a.invalidate(key_type="user_id", id="2")
    new_key = call_until_stored(client, lambda: call_sync(a, get_user, "2"), b"user_id=2")
    w_ttl, v_ttl = pttls(client, wkey("2"), new_key)
    assert v_ttl > 3600 * 1000
    assert w_ttl >= v_ttl


def test_tiny_watermark_ttl_does_not_let_an_old_value_come_back(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    config = layers(local=0, remote=600, local_ramp=0)
    a = replica(make_cache, redis_url, config, watermark_ttl_sec=1.0)
    b = replica(make_cache, redis_url, config, watermark_ttl_sec=1.0)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")

    old_key = call_until_stored(client, lambda: call_sync(a, get_a, "1"), b"user_id=1")
    b.invalidate(key_type="user_id", id="1")
    assert client.get(old_key) is None  # deleted with the invalidation: it cannot come back
    assert call_sync(b, get_b, "1") == {"id": "1", "run": 1, "by": "b"}  # not A's old value

    # A write after an invalidation extends the short-lived watermark to the value's TTL.
    b.invalidate(key_type="user_id", id="2")
    key_2 = call_until_stored(client, lambda: call_sync(b, get_b, "2"), b"user_id=2")
    w_ttl, v_ttl = pttls(client, wkey("2"), key_2)
    assert w_ttl >= v_ttl > 1000


# -- TOO_OLD -------------------------------------------------------------------------------


def test_values_older_than_watermark_ttl_are_refused(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    cache = replica(make_cache, redis_url)
    now = redis_time_us(client)

    assert put(cache, vkey(), now - HOUR_US - 1_000_000) == WriteResult.TOO_OLD
    assert put(cache, vkey("2"), now - HOUR_US - 1_000_000, tracked=None) == WriteResult.TOO_OLD
    assert value_keys(client, NS) == []
    assert put(cache, vkey(), now - HOUR_US + 60_000_000) == WriteResult.STORED


def test_fallback_slower_than_watermark_ttl_is_not_cached(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis, registry: Any
) -> None:
    a = replica(make_cache, redis_url, watermark_ttl_sec=0.3)
    calls = Calls()

    @a.cached(key_type="user_id", id_arg="user_id", use_case="Slow")
    def slow(user_id: str) -> str:
        calls.bump()
        started = redis_time_us(client)
        wait_until(lambda: redis_time_us(client) > started + 500_000, timeout=30)
        return user_id

    assert call_sync(a, slow, "1") == "1"
    assert value_keys(client, NS) == []
    assert disabled(registry, reason="fallback_too_slow") == 1
    assert calls.count == 1


# -- property: the watermark rule (DESIGN §7) ----------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("invalidate"), st.integers(min_value=0, max_value=3000)),
        st.tuples(
            st.just("write"),
            st.sampled_from(["a", "b"]),
            st.integers(min_value=-3000, max_value=6000),
        ),
        st.tuples(st.just("flush")),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def property_cache(make_cache: Callable[..., GCache], redis_url: str) -> GCache:
    return replica(make_cache, redis_url)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=_OPS)
def test_watermark_rule_property(
    property_cache: GCache, client: redis.Redis, ops: list[Any]
) -> None:
    cache = property_cache  # fixtures are set up once for all the examples
    keys = {"a": vkey("1", "a"), "b": vkey("1", "b")}
    client.delete(*keys.values(), wkey("1"))  # reset between examples
    client.set(flush_key(NS), 0)

    base = redis_time_us(client)
    entity_w = 0  # highest watermark returned so far
    flush_w = 0
    stored: dict[str, int | None] = {"a": None, "b": None}
    for step, op in enumerate(ops):
        if op[0] == "invalidate":
            before = redis_time_us(client)
            w = invalidate(cache, buffer_ms=op[1])
            assert w >= entity_w, "watermark moved back"
            assert w >= before + op[1] * 1000
            assert int(client.get(wkey("1"))) == w
            entity_w = w
            stored = dict.fromkeys(stored)  # the entity's values are deleted with it
        elif op[0] == "flush":
            f = flush(cache)
            assert f >= flush_w
            flush_w = f
            stored = dict.fromkeys(stored)  # a flush deletes every value before returning
        else:
            _, name, offset_ms = op
            computed_at = base + offset_ms * 1000 + step  # + step: distinct per write
            result = put(cache, keys[name], computed_at)
            current = stored[name]
            if computed_at <= flush_w or computed_at <= entity_w:
                expected = WriteResult.STALE
            elif current is not None and current >= computed_at:
                expected = WriteResult.NEWER_EXISTS
            else:
                expected = WriteResult.STORED
                stored[name] = computed_at
            assert result == expected, (op, entity_w, flush_w, current)
        for name, key in keys.items():
            assert stored_computed_at(client, key) == stored[name]
            raw = on_background(cache, lambda k=key: cache._remote.client().get(k))  # type: ignore[union-attr,misc]
            # Readable exactly when the stored value is newer than every watermark so far.
            readable = stored[name] is not None and stored[name] > max(entity_w, flush_w)  # type: ignore[operator]
            assert (raw is not None) == readable


# -- timestamps are Redis server time (DESIGN §4) ------------------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_computed_at_is_redis_time(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis, sync: bool
) -> None:
    cache = replica(make_cache, redis_url)
    get_user = cached_user(cache, Calls(), sync=sync)
    before = redis_time_us(client)
    (call_sync if sync else call_async)(cache, get_user, "1")
    after = redis_time_us(client)

    computed_at = stored_computed_at(client, only_value_key(client))
    assert computed_at is not None
    assert computed_at <= after  # never ahead of the server
    assert computed_at >= before - 5_000_000  # pessimistically early, but not by much


@pytest.mark.parametrize("skew_sec", [-3 * 3600, 3 * 3600], ids=["behind", "ahead"])
def test_a_replica_with_a_wrong_wall_clock_still_stamps_redis_time(
    make_cache: Callable[..., GCache],
    redis_url: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    skew_sec: int,
) -> None:
    real_time, real_time_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + skew_sec)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + skew_sec * 1_000_000_000)
    a, b = replica(make_cache, redis_url), replica(make_cache, redis_url)
    calls_b = Calls()

    call_sync(a, cached_user(a, Calls(), sync=True), "1")
    after = redis_time_us(client)
    computed_at = stored_computed_at(client, only_value_key(client))
    assert computed_at is not None
    assert after - 5_000_000 <= computed_at <= after
    call_sync(b, cached_user(b, calls_b, sync=True), "1")
    assert calls_b.count == 0  # stored, and readable by another replica

    before = redis_time_us(client)
    a.invalidate(key_type="user_id", id="1")
    after = redis_time_us(client)
    assert before <= int(client.get(wkey("1"))) <= after


def test_watermarks_are_stamped_with_redis_time(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    cache = replica(make_cache, redis_url)

    before = redis_time_us(client)
    watermark = invalidate(cache)
    after = redis_time_us(client)
    assert before <= watermark <= after

    before = redis_time_us(client)
    buffered = invalidate(cache, entity="2", buffer_ms=1500)
    after = redis_time_us(client)
    assert before + 1_500_000 <= buffered <= after + 1_500_000

    before = redis_time_us(client)

    async def public() -> None:
        await cache.ainvalidate(key_type="user_id", id="3")

    run_async(public, cache)
    after = redis_time_us(client)
    assert before <= int(client.get(wkey("3"))) <= after

    before = redis_time_us(client)
    flushed = flush(cache)
    after = redis_time_us(client)
    assert before <= flushed <= after


def test_a_write_after_redis_lost_its_data_refuses_older_values(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    """Redis restarted empty: the entity watermarks of invalidations acknowledged before are
    gone. A write (say, retried across the restart) of a value computed before the loss must
    not land: with no flush watermark the script starts one at its own time."""
    cache = replica(make_cache, redis_url)
    computed_before_loss = redis_time_us(client) - 1000
    client.delete(flush_key(NS))  # what an empty restart leaves: no F, no W
    remote = cache._remote
    assert remote is not None
    encoded = encode(serialize("stale"), computed_before_loss)
    result = on_background(
        cache,
        lambda: remote.put(
            vkey(), wkey(), encoded, computed_at=computed_before_loss, ttl_ms=600_000
        ),
    )
    assert result == WriteResult.STALE
    assert int(client.get(flush_key(NS))) > computed_before_loss
    assert client.get(vkey()) is None
