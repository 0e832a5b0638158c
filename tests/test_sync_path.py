"""The sync wrapper: the function and LOCAL hits stay in the caller's thread; Redis I/O of every
thread goes through ONE background loop thread per cache, started only when needed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from gcache import GCache
from tests.providers import BOTH, LOCAL_ONLY, constant
from tests.remote_helpers import patient, settle

JOIN_TIMEOUT = 30.0


def loop_threads(namespace: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"gcache-{namespace}"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


class ThreadRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, int]] = []
        self._lock = threading.Lock()

    def __call__(self, key: Any) -> None:
        with self._lock:
            self.calls.append((key, threading.get_ident()))


def test_local_only_miss_and_hit_run_in_the_callers_thread_without_a_loop(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), namespace="syncpath-local")
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    with cache.enable():
        assert [get("a"), get("a"), get("b")] == ["v:a", "v:a", "v:b"]
    me = threading.get_ident()
    assert seen.calls == [("a", me), ("b", me)]
    assert cache._background.thread is None
    assert loop_threads("syncpath-local") == []


def test_local_only_from_many_threads_never_starts_the_loop(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), namespace="syncpath-threads")
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: int) -> int:
        seen(uid)
        return uid * 2

    errors: list[BaseException] = []
    own_ids: dict[int, int] = {}

    def work(n: int) -> None:
        try:
            own_ids[n] = threading.get_ident()
            with cache.enable():
                for i in range(50):
                    assert get(i % 10 + n * 100) == (i % 10 + n * 100) * 2
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    # Every key belongs to one thread and was computed in that thread.
    for key, ident in seen.calls:
        assert ident == own_ids[key // 100]
    assert len(seen.calls) == 40
    assert cache._background.thread is None


def test_with_redis_the_function_runs_in_the_callers_thread(
    make_cache: Callable[..., GCache], redis_url: str
) -> None:
    cache = make_cache(url=redis_url, provider=constant(BOTH), namespace="syncpath-redis")
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    with cache.enable():
        assert get("a") == "v:a"
        assert get("a") == "v:a"
    assert seen.calls == [("a", threading.get_ident())]
    background = cache._background.thread
    assert background is not None  # Redis I/O went through the loop thread...
    assert background.ident != threading.get_ident()  # ...which is not the caller's


def test_with_redis_a_local_hit_makes_no_background_call(
    make_cache: Callable[..., GCache], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache(url=redis_url, provider=constant(BOTH), namespace="syncpath-hop")
    hops: list[int] = []
    real_call = cache._background.call

    def counting_call(func: Callable[[], Awaitable[Any]]) -> Any:
        hops.append(threading.get_ident())
        return real_call(func)

    monkeypatch.setattr(cache._background, "call", counting_call)

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        return "v:" + uid

    settle(cache)
    with cache.enable():
        assert get("a") == "v:a"  # miss: REMOTE lookup and REMOTE write on the loop
        after_miss = len(hops)
        for _ in range(20):
            assert get("a") == "v:a"  # LOCAL hits
    assert after_miss > 0
    assert len(hops) == after_miss


def test_many_threads_share_one_background_loop_thread(
    make_cache: Callable[..., GCache], redis_url: str, redis_client: redis.Redis
) -> None:
    namespace = "syncpath-shared"
    cache = make_cache(provider=constant(BOTH), namespace=namespace, **patient(redis_url))
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: int) -> str:
        seen(uid)
        return f"value-{uid}"

    @cache.cached(key_type="org_id", id_arg="org")
    def get_org(org: int) -> str:
        return f"org-{org}"

    threads_n = 16
    start = threading.Barrier(threads_n)
    errors: list[BaseException] = []
    wrong: list[Any] = []

    def work(n: int) -> None:
        try:
            start.wait(timeout=JOIN_TIMEOUT)
            with cache.enable():
                for i in range(10):
                    uid = (n + i) % 12
                    if get(uid) != f"value-{uid}" or get_org(uid) != f"org-{uid}":
                        wrong.append((n, uid))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert wrong == []
    assert loop_threads(namespace) == [cache._background.thread]
    assert cache._background.thread is not None
    # The values did reach Redis (through that loop): 12 users + 12 orgs.
    assert len(redis_client.keys(f"{namespace}:v:*")) == 24
    assert sorted({key for key, _ in seen.calls}) == list(range(12))


def test_sync_cached_function_called_inside_a_running_loop_local_only(
    make_cache: Callable[..., GCache],
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY), namespace="syncpath-inloop-local")
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    async def main() -> list[str]:
        with cache.enable():
            return [get("a"), get("a")]

    assert asyncio.run(main()) == ["v:a", "v:a"]
    assert seen.calls == [("a", threading.get_ident())]
    assert cache._background.thread is None


def test_sync_cached_function_called_inside_a_running_loop_with_redis(
    make_cache: Callable[..., GCache], redis_url: str, redis_client: redis.Redis
) -> None:
    namespace = "syncpath-inloop"
    cache = make_cache(provider=constant(BOTH), namespace=namespace, **patient(redis_url))
    seen = ThreadRecorder()

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        seen(uid)
        return "v:" + uid

    async def main() -> list[str]:
        with cache.enable():
            first = get("a")
            await asyncio.sleep(0)
            return [first, get("a"), get("b")]

    assert asyncio.run(main()) == ["v:a", "v:a", "v:b"]
    me = threading.get_ident()
    assert seen.calls == [("a", me), ("b", me)]
    assert len(redis_client.keys(f"{namespace}:v:*")) == 2
    # A second instance (empty LOCAL layer) reads them from Redis without calling anything.
    other = make_cache(provider=constant(BOTH), namespace=namespace, **patient(redis_url))

    @other.cached(
        key_type="user_id", id_arg="uid", use_case=get.__module__ + "." + get.__qualname__
    )
    def get_again(uid: str) -> str:
        seen(uid)
        return "wrong"

    with other.enable():
        assert [get_again("a"), get_again("b")] == ["v:a", "v:b"]
    assert len(seen.calls) == 2


def test_background_loop_is_restarted_after_close(
    make_cache: Callable[..., GCache], redis_url: str
) -> None:
    namespace = "syncpath-close"
    cache = make_cache(url=redis_url, provider=constant(BOTH), namespace=namespace)

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        return "v:" + uid

    with cache.enable():
        assert get("a") == "v:a"
    first = cache._background.thread
    assert first is not None
    cache.close()
    assert cache._background.thread is None
    assert not first.is_alive()
    assert loop_threads(namespace) == []
    with cache.enable():
        assert get("b") == "v:b"
    assert cache._background.thread is not None
    assert loop_threads(namespace) == [cache._background.thread]
