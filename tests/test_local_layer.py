"""The LOCAL layer through the public API, with no Redis configured (except the last section).

TTLs are driven by a fake timer (``GCacheConfig(timer=...)``); nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheKey, GCacheKeyConfig, RedisConfig
from gcache._local import charge
from integration.redis_server import wait_until
from tests.metric_values import metric
from tests.providers import LOCAL_ONLY, constant, layers
from tests.remote_helpers import settle


class FakeTimer:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


class Recorder:
    """Records which keys reached the function (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, key: Any) -> None:
        with self._lock:
            self.calls.append(key)


def disabled(registry: CollectorRegistry, use_case: str, reason: str, layer: str) -> float:
    return metric(
        registry, "gcache_disabled_counter_total", use_case=use_case, reason=reason, layer=layer
    )


def wall_clock_past(instant_us: int) -> None:
    """Wait until the wall clock (LOCAL-only cache time) is past ``instant_us``."""
    wait_until(lambda: time.time_ns() // 1000 > instant_us, timeout=5)


# -- hits and TTL --------------------------------------------------------------------------


def test_hits_do_not_call_the_function_again(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str, page: int = 0) -> dict[str, Any]:
        seen((uid, page))
        return {"uid": uid, "page": page}

    with cache.enable():
        for _ in range(3):
            assert get("a") == {"uid": "a", "page": 0}
            assert get("a", page=1) == {"uid": "a", "page": 1}
            assert get("b") == {"uid": "b", "page": 0}
    assert seen.calls == [("a", 0), ("a", 1), ("b", 0)]


def test_hit_returns_the_stored_object(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> list[str]:
        return [uid]

    with cache.enable():
        first = get("a")
        assert get("a") is first


def test_async_hits_do_not_call_the_function_again(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    async def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    async def main() -> list[str]:
        with cache.enable():
            return [await get("a"), await get("b"), await get("a"), await get("b")]

    assert asyncio.run(main()) == ["v:a", "v:b", "v:a", "v:b"]
    assert seen.calls == ["a", "b"]


def test_local_ttl_expires_with_the_fake_timer(make_cache: Callable[..., GCache]) -> None:
    timer = FakeTimer()
    cache = make_cache(provider=constant(layers(local=60, remote=0, remote_ramp=0)), timer=timer)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return f"v{len(seen.calls)}"

    with cache.enable():
        assert get("a") == "v1"
        timer.advance(59)
        assert get("a") == "v1"
        timer.advance(2)  # 61 s after the store
        assert get("a") == "v2"
        assert get("a") == "v2"
    assert seen.calls == ["a", "a"]


def test_local_ttl_follows_the_providers_current_value(make_cache: Callable[..., GCache]) -> None:
    """Regression: the TTL in force when an entry was stored must not outlive a lowered TTL."""
    timer = FakeTimer()
    state = {"ttl": 60.0}

    def provider(key: GCacheKey) -> GCacheKeyConfig:
        return layers(local=state["ttl"], remote=0, remote_ramp=0)

    cache = make_cache(provider=provider, timer=timer)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return f"v{len(seen.calls)}"

    with cache.enable():
        assert get("a") == "v1"  # stored under ttl 60
        timer.advance(10)
        assert get("a") == "v1"  # still fresh under ttl 60
        state["ttl"] = 5.0
        assert get("a") == "v2"  # 10 s old, current ttl is 5: a miss
        assert get("a") == "v2"
    assert seen.calls == ["a", "a"]


def test_local_ttl_zero_means_no_local_caching(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(layers(local=0, remote=0)))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        get("a")
        get("a")
    assert seen.calls == ["a", "a"]


# -- bounds and LRU ------------------------------------------------------------------------


def test_bounded_by_max_local_entries_least_recently_used_goes_first(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), max_local_entries=3)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: int) -> str:
        seen(uid)
        return f"v{uid}"

    with cache.enable():
        for uid in (1, 2, 3):
            get(uid)
        assert get(1) == "v1"  # hit: 1 becomes the most recently used; 2 is now the oldest
        get(4)  # evicts 2
        assert seen.calls == [1, 2, 3, 4]
        assert [get(uid) for uid in (1, 3, 4)] == ["v1", "v3", "v4"]  # all hits
        assert seen.calls == [1, 2, 3, 4]
        assert get(2) == "v2"  # evicted: a miss, which evicts 1 (now the oldest)
        assert seen.calls == [1, 2, 3, 4, 2]
        assert get(1) == "v1"
        assert seen.calls == [1, 2, 3, 4, 2, 1]
    assert len(cache._local) == 3


def test_bounded_by_max_local_bytes_least_recently_used_goes_first(
    make_cache: Callable[..., GCache],
) -> None:
    def value(uid: int) -> str:
        return f"{uid}" + "x" * 200  # the same pickled size for uid 1..9

    cost = charge(len(pickle.dumps(value(1), protocol=pickle.HIGHEST_PROTOCOL)))
    max_bytes = 3 * cost + cost // 2  # room for three entries, not four
    cache = make_cache(
        provider=constant(LOCAL_ONLY), max_local_bytes=max_bytes, max_local_entries=1000
    )
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: int) -> str:
        seen(uid)
        return value(uid)

    with cache.enable():
        for uid in (1, 2, 3):
            get(uid)
        assert get(1) == value(1)  # hit: 2 is now the oldest
        get(4)  # evicts 2
        assert [get(uid) for uid in (1, 3, 4)] == [value(1), value(3), value(4)]
        assert seen.calls == [1, 2, 3, 4]
        assert get(2) == value(2)
        assert seen.calls == [1, 2, 3, 4, 2]
        assert cache._local.nbytes <= max_bytes
        for uid in range(1, 10):
            get(uid)
        assert cache._local.nbytes <= max_bytes
        assert len(cache._local) == 3


def test_value_larger_than_max_local_bytes_is_returned_not_cached(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), max_local_bytes=1024)
    seen = Recorder()
    big = "y" * 4096

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return big if uid == "big" else uid

    with cache.enable():
        assert get("small") == "small"
        assert get("big") == big
        assert get("big") == big
        assert get("small") == "small"
    assert seen.calls == ["small", "big", "big"]
    assert cache._local.nbytes <= 1024


def test_unpicklable_value_is_returned_not_cached(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Unpicklable")
    def get(uid: str) -> Any:
        seen(uid)
        return lambda: uid  # lambdas do not pickle

    with cache.enable():
        assert get("a")() == "a"
        assert get("a")() == "a"
    assert seen.calls == ["a", "a"]
    assert metric(registry, "gcache_error_counter_total", use_case="Unpicklable") == 2


# -- thread safety -------------------------------------------------------------------------


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads as often as possible, to make interleavings likely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_thread_safety_stress(
    make_cache: Callable[..., GCache], registry: CollectorRegistry, fast_thread_switching: None
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), max_local_entries=8)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", arg_adapters={"tag": str})
    def get(uid: int, tag: str) -> tuple[int, str, str]:
        seen(uid)
        return (uid, tag, f"value-{uid}-{tag}")

    threads_n, calls_n, keys_n = 8, 400, 24
    start = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    wrong: list[tuple[Any, Any]] = []

    def work(offset: int) -> None:
        try:
            start.wait(timeout=30)
            with cache.enable():
                for i in range(calls_n):
                    k = (i * 7 + offset) % keys_n
                    tag = "even" if k % 2 == 0 else "odd"
                    got = get(k, tag)
                    if got != (k, tag, f"value-{k}-{tag}"):
                        wrong.append((k, got))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert wrong == []
    assert len(cache._local) <= 8
    assert 0 < len(seen.calls) <= threads_n * calls_n
    # Races inside the LOCAL layer would be swallowed (fail open) but counted here.
    assert metric(registry, "gcache_error_counter_total") == 0


class _HitDuringEviction(OrderedDict):  # type: ignore[type-arg]
    """A LOCAL map that lets another thread's cache hit land right after ``put`` has created its
    eviction iterator: the interleaving that a preempted ``put`` meets in production."""

    def __init__(self, hit: Callable[[], None]) -> None:
        super().__init__()
        self._hit = hit

    def items(self) -> Any:
        return _ItemsThenHit(self)


class _ItemsThenHit:
    def __init__(self, data: _HitDuringEviction) -> None:
        self._data = data

    def __iter__(self) -> Any:
        iterator = iter(OrderedDict.items(self._data))
        self._data._hit()
        return iterator


def test_hit_concurrent_with_eviction_is_not_an_internal_error(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), max_local_entries=2)

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Evict")
    def get(uid: int) -> str:
        return f"v{uid}"

    hits: list[str] = []

    def hit_from_another_thread() -> None:
        def reader() -> None:
            with cache.enable():
                hits.append(get(1))  # a LOCAL hit: LocalCache.get -> move_to_end, no lock

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=5)  # a fix that takes the lock in get() only delays the reader

    with cache.enable():
        get(1)
        get(2)
        racy = _HitDuringEviction(hit_from_another_thread)
        racy.update(cache._local._data)  # same entries, same LRU order
        cache._local._data = racy
        assert get(3) == "v3"  # a miss whose put() must evict the oldest entry
    assert all(hit == "v1" for hit in hits)  # (no hit at all if eviction does not iterate)
    assert len(cache._local) == 2
    assert metric(registry, "gcache_error_counter_total", use_case="Evict") == 0


# -- invalidation and flush without Redis --------------------------------------------------


class Users:
    """A tracked and an untracked function of one key_type, sync and async."""

    def __init__(self, cache: GCache) -> None:
        self.seen = Recorder()
        seen = self.seen

        @cache.cached(key_type="user_id", id_arg="uid", track_for_invalidation=True)
        def tracked(uid: Any) -> str:
            seen(("tracked", uid))
            return f"t:{uid}"

        @cache.cached(key_type="user_id", id_arg="uid")
        def untracked(uid: Any) -> str:
            seen(("untracked", uid))
            return f"u:{uid}"

        @cache.cached(key_type="user_id", id_arg="uid", track_for_invalidation=True)
        async def atracked(uid: Any) -> str:
            seen(("atracked", uid))
            return f"a:{uid}"

        self.tracked, self.untracked, self.atracked = tracked, untracked, atracked

    def all(self, uid: Any) -> list[str]:
        return [self.tracked(uid), self.untracked(uid), asyncio.run(self.atracked(uid))]


def test_invalidate_without_redis_drops_local_entries_of_tracked_functions(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)
    with cache.enable():
        users.all("1")
        users.all("2")
        users.seen.calls.clear()
        cache.invalidate(key_type="user_id", id="1")
        # Values computed after the invalidation are cached again; make sure "after" is a
        # later microsecond even on a coarse clock.
        wall_clock_past(time.time_ns() // 1000)
        assert users.all("1") == ["t:1", "u:1", "a:1"]
        assert users.all("2") == ["t:2", "u:2", "a:2"]
        # Only the tracked entries of entity ("user_id", "1") were dropped...
        assert users.seen.calls == [("tracked", "1"), ("atracked", "1")]
        # ...and the recomputed values were stored again.
        assert users.all("1") == ["t:1", "u:1", "a:1"]
        assert users.seen.calls == [("tracked", "1"), ("atracked", "1")]
    assert metric(registry, "gcache_invalidation_counter_total", layer="local") == 1


def test_ainvalidate_without_redis_drops_local_entries_of_tracked_functions(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)

    async def main() -> None:
        with cache.enable():
            await users.atracked(7)
            await users.atracked(8)
            users.untracked(7)
            await cache.ainvalidate(key_type="user_id", id=7)
            assert await users.atracked(7) == "a:7"  # dropped: a miss
            assert await users.atracked(8) == "a:8"  # another entity: a hit
            assert users.untracked(7) == "u:7"  # untracked: a hit

    asyncio.run(main())
    assert users.seen.calls == [
        ("atracked", 7),
        ("atracked", 8),
        ("untracked", 7),
        ("atracked", 7),
    ]


def test_invalidate_id_is_matched_as_a_string(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)
    with cache.enable():
        users.tracked(42)
        users.tracked("42")
        cache.invalidate(key_type="user_id", id="42")
        users.tracked(42)
        users.tracked("42")
    assert users.seen.calls == [("tracked", 42), ("tracked", "42")] * 2


def test_invalidate_other_key_type_does_not_drop_entries(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)
    with cache.enable():
        users.tracked("1")
        cache.invalidate(key_type="org_id", id="1")
        users.tracked("1")
    assert users.seen.calls == [("tracked", "1")]


def test_invalidate_future_buffer_without_redis_refuses_new_local_values(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)
    with cache.enable():
        users.tracked("1")
        cache.invalidate(key_type="user_id", id="1", future_buffer_ms=600_000)
        users.tracked("1")  # computed inside the buffer: returned, not stored
        users.tracked("1")
        users.untracked("1")
        users.untracked("1")
    assert users.seen.calls == [("tracked", "1")] * 3 + [("untracked", "1")]


@pytest.mark.parametrize(
    ("key_type", "future_buffer_ms", "error"),
    [("", 0, ValueError), ("user_id", -1, ValueError), ("user_id", 1.5, TypeError)],
)
def test_invalidate_rejects_bad_arguments(
    make_cache: Callable[..., GCache], key_type: str, future_buffer_ms: Any, error: type
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    with pytest.raises(error):
        cache.invalidate(key_type=key_type, id="1", future_buffer_ms=future_buffer_ms)
    with pytest.raises(error):
        asyncio.run(cache.ainvalidate(key_type=key_type, id="1", future_buffer_ms=future_buffer_ms))


@pytest.mark.parametrize("use_async", [False, True], ids=["flushall", "aflushall"])
def test_flushall_without_redis_clears_the_local_layer(
    make_cache: Callable[..., GCache], registry: CollectorRegistry, use_async: bool
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    users = Users(cache)
    with cache.enable():
        users.all("1")
        users.all("2")
        assert len(cache._local) == 6
        users.seen.calls.clear()
        if use_async:
            asyncio.run(cache.aflushall())
        else:
            cache.flushall()
        assert len(cache._local) == 0
        wall_clock_past(time.time_ns() // 1000)
        users.all("1")
        assert len(users.seen.calls) == 3  # tracked or not, everything was dropped
        users.all("1")
        assert len(users.seen.calls) == 3  # caching resumes after the flush
    assert metric(registry, "gcache_invalidation_counter_total", layer="local") == 1
    assert cache._background.thread is None  # no Redis: no background loop either


# -- ramp ----------------------------------------------------------------------------------


def test_ramp_zero_never_caches_and_counts_ramped_down(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(layers(local=60, local_ramp=0, remote=0, remote_ramp=0)))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Ramp0")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        for _ in range(5):
            assert get("a") == "a"
    assert seen.calls == ["a"] * 5
    assert disabled(registry, "Ramp0", "ramped_down", "local") == 5
    assert len(cache._local) == 0


def test_ramp_hundred_always_caches(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Ramp100")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        for _ in range(50):
            get("a")
    assert seen.calls == ["a"]
    assert metric(registry, "gcache_disabled_counter_total", use_case="Ramp100") == 0


def test_partial_ramp_caches_some_calls(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(layers(local=60, local_ramp=50, remote=0)))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Ramp50")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        for _ in range(200):
            assert get("a") == "a"
    ramped = disabled(registry, "Ramp50", "ramped_down", "local")
    # Each call draws independently: the chance of either bound failing is below 2**-190.
    assert 0 < ramped < 200
    assert len(seen.calls) < 200
    assert len(seen.calls) >= ramped


# -- the config provider -------------------------------------------------------------------


def test_provider_returning_none_skips_caching(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(None))
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="NoConfig")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="NoConfigAsync")
    async def aget(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        assert [get("a"), get("a")] == ["a", "a"]
        assert [asyncio.run(aget("b")), asyncio.run(aget("b"))] == ["b", "b"]
    assert seen.calls == ["a", "a", "b", "b"]
    assert disabled(registry, "NoConfig", "missing_config", "all") == 2
    assert disabled(registry, "NoConfigAsync", "missing_config", "all") == 2


def test_provider_sees_the_call(make_cache: Callable[..., GCache]) -> None:
    seen: list[GCacheKey] = []

    def provider(key: GCacheKey) -> GCacheKeyConfig:
        seen.append(key)
        return LOCAL_ONLY

    cache = make_cache(provider=provider)

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Seen", track_for_invalidation=True)
    def get(uid: int, page: int = 0) -> int:
        return uid

    with cache.enable():
        get(5, page=2)
    key = seen[0]
    assert (key.key_type, key.id, key.use_case, key.invalidation_tracking) == (
        "user_id",
        "5",
        "Seen",
        True,
    )
    assert [name for name, _ in key.args] == ["page"]


def _raising_async_provider(key: GCacheKey) -> Any:
    async def provider() -> GCacheKeyConfig:
        raise Boom("provider down")

    return provider()


def _raising_sync_provider(key: GCacheKey) -> GCacheKeyConfig:
    raise Boom("provider down")


@pytest.mark.parametrize(
    "provider", [_raising_async_provider, _raising_sync_provider], ids=["async", "sync"]
)
def test_provider_raising_fails_open(
    make_cache: Callable[..., GCache],
    registry: CollectorRegistry,
    provider: Callable[[GCacheKey], Any],
) -> None:
    cache = make_cache(provider=provider)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Raising")
    def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="RaisingAsync")
    async def aget(uid: str) -> str:
        seen(uid)
        return "a:" + uid

    async def amain() -> list[str]:
        with cache.enable():
            return [await aget("b"), await aget("b")]

    with cache.enable():
        assert [get("a"), get("a")] == ["v:a", "v:a"]
    assert asyncio.run(amain()) == ["a:b", "a:b"]
    assert seen.calls == ["a", "a", "b", "b"]
    assert disabled(registry, "Raising", "config_error", "all") == 2
    assert disabled(registry, "RaisingAsync", "config_error", "all") == 2


def _wrong_type_async(key: GCacheKey) -> Any:
    async def provider() -> Any:
        return {"ttl": 60}

    return provider()


def _wrong_type_sync(key: GCacheKey) -> Any:
    return {"ttl": 60}


@pytest.mark.parametrize(
    ("provider", "use_async"),
    [
        (_wrong_type_sync, False),
        (_wrong_type_sync, True),
        (_wrong_type_async, False),
        (_wrong_type_async, True),
    ],
    ids=[
        "sync-provider-sync-function",
        "sync-provider-async-function",
        "async-provider-sync-function",
        "async-provider-async-function",
    ],
)
def test_provider_returning_a_wrong_type_fails_open(
    make_cache: Callable[..., GCache],
    registry: CollectorRegistry,
    provider: Callable[[GCacheKey], Any],
    use_async: bool,
) -> None:
    cache = make_cache(provider=provider)

    @cache.cached(key_type="user_id", id_arg="uid", use_case="WrongType")
    def get(uid: str) -> str:
        return "v:" + uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="WrongTypeAsync")
    async def aget(uid: str) -> str:
        return "v:" + uid

    with cache.enable():
        result = asyncio.run(aget("a")) if use_async else get("a")
    assert result == "v:a"
    use_case = "WrongTypeAsync" if use_async else "WrongType"
    assert disabled(registry, use_case, "config_error", "all") == 1


def test_sync_provider_works_for_sync_and_async_functions(
    make_cache: Callable[..., GCache],
) -> None:
    asked: list[str] = []

    def provider(key: GCacheKey) -> GCacheKeyConfig:
        asked.append(key.id)
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    @cache.cached(key_type="user_id", id_arg="uid")
    async def aget(uid: str) -> str:
        seen(uid)
        return uid

    async def amain() -> list[str]:
        with cache.enable():
            return [await aget("b"), await aget("b")]

    with cache.enable():
        assert [get("a"), get("a")] == ["a", "a"]
    assert asyncio.run(amain()) == ["b", "b"]
    assert seen.calls == ["a", "b"]
    assert asked == ["a", "a", "b", "b"]  # asked on every call, hits included


def test_async_provider_from_sync_function_needs_no_event_loop(
    make_cache: Callable[..., GCache],
) -> None:
    asked: list[str] = []

    async def provider(key: GCacheKey) -> GCacheKeyConfig:
        asked.append(key.id)
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # this test really runs without a loop
    with cache.enable():
        assert [get("a"), get("a"), get("b")] == ["a", "a", "b"]
    assert seen.calls == ["a", "b"]
    assert asked == ["a", "a", "b"]
    assert cache._background.thread is None  # the provider never needed a loop


def test_async_provider_that_yields_from_sync_function(make_cache: Callable[..., GCache]) -> None:
    async def provider(key: GCacheKey) -> GCacheKeyConfig:
        await asyncio.sleep(0)  # suspends once, without needing a running loop
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        assert [get("a"), get("a")] == ["a", "a"]
    assert seen.calls == ["a"]


def test_async_provider_doing_real_async_work_from_sync_function(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    async def provider(key: GCacheKey) -> GCacheKeyConfig:
        await asyncio.sleep(0.001)  # e.g. an async config lookup: needs a running loop
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    seen = Recorder()

    @cache.cached(key_type="user_id", id_arg="uid", use_case="RealAsyncProvider")
    def get(uid: str) -> str:
        seen(uid)
        return uid

    with cache.enable():
        assert [get("a"), get("a")] == ["a", "a"]
    assert metric(registry, "gcache_disabled_counter_total", use_case="RealAsyncProvider") == 0
    assert seen.calls == ["a"]


class _CountingProvider:
    """An async provider that counts how often its body starts."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.started = 0

    async def __call__(self, key: GCacheKey) -> GCacheKeyConfig:
        self.started += 1
        if self.behaviour == "raises":
            raise Boom("provider down")
        if self.behaviour == "awaits-io":
            await asyncio.sleep(0.001)  # needs a running loop
        return LOCAL_ONLY


@pytest.mark.parametrize(
    "behaviour",
    [
        "returns",
        pytest.param(
            "raises",
        ),
        pytest.param(
            "awaits-io",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known limitation (README, Runtime Configuration): a provider that really "
                "awaits I/O from a sync caller is re-run on the background loop",
            ),
        ),
    ],
)
def test_async_provider_runs_once_per_sync_call(
    make_cache: Callable[..., GCache], behaviour: str
) -> None:
    provider = _CountingProvider(behaviour)
    cache = make_cache(provider=provider)

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        return uid

    with cache.enable():
        assert [get("a"), get("a"), get("b")] == ["a", "a", "b"]
    assert provider.started == 3
    if behaviour != "awaits-io":  # nothing here needs a loop
        assert cache._background.thread is None


# -- with Redis: what the LOCAL layer keeps from REMOTE hits -------------------------------


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_remote_hit_is_kept_in_the_local_layer_of_a_new_replica(
    make_cache: Callable[..., GCache], redis_url: str, tracked: bool
) -> None:
    patient = {
        "redis_config": RedisConfig(url=redis_url, socket_timeout=10, socket_connect_timeout=10),
        "remote_write_budget_sec": 30,
    }
    writer = make_cache(**patient)
    seen = Recorder()

    def make(cache: GCache) -> Callable[[str], str]:
        @cache.cached(
            key_type="user_id", id_arg="uid", use_case="Replica", track_for_invalidation=tracked
        )
        def get(uid: str) -> str:
            seen(uid)
            return "v:" + uid

        return get  # type: ignore[no-any-return]

    write = make(writer)
    with writer.enable():
        assert write("a") == "v:a"
    reader = make_cache(**patient)  # a replica started after the value was computed
    read = make(reader)
    settle(reader)  # (its subscriber is connected: no race with the start gap)
    before = len(reader._local)
    with reader.enable():
        assert read("a") == "v:a"  # REMOTE hit ("Hit? Store in local, return")
        assert len(reader._local) == before + 1
        assert read("a") == "v:a"
    assert seen.calls == ["a"]
