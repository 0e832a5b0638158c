"""``GCacheConfig(config_reuse_sec=...)``: the provider's answer reused per decorated function.

A fake timer drives time (``GCacheConfig(timer=...)``); nothing here sleeps. No Redis: the
option lives before any layer is consulted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheConfig, GCacheKey, GCacheKeyConfig
from tests.metric_values import metric
from tests.providers import LOCAL_ONLY, layers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """Answers ``self.config`` (or raises ``self.error``) and counts the calls, per use case."""

    def __init__(self, config: GCacheKeyConfig | None = LOCAL_ONLY) -> None:
        self.config = config
        self.error: Exception | None = None
        self.calls: list[str] = []

    def __call__(self, key: GCacheKey) -> GCacheKeyConfig | None:
        self.calls.append(key.use_case)
        if self.error is not None:
            raise self.error
        return self.config


def test_default_asks_the_provider_on_every_call(make_cache: Callable[..., GCache]) -> None:
    provider = CountingProvider()
    cache = make_cache(provider=provider)

    @cache.cached(key_type="user_id", id_arg="uid", use_case="profile")
    def get(uid: str) -> str:
        return uid

    with cache.enable():
        for uid in ("a", "a", "b"):
            get(uid)
    assert provider.calls == ["profile"] * 3


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_answer_is_reused_per_function_until_it_expires(
    make_cache: Callable[..., GCache], kind: str
) -> None:
    clock = Clock()
    provider = CountingProvider()
    cache = make_cache(provider=provider, timer=clock, config_reuse_sec=5.0)
    runs: list[str] = []

    if kind == "sync":

        @cache.cached(key_type="user_id", id_arg="uid", use_case="profile")
        def get(uid: str) -> str:
            runs.append(uid)
            return uid

        call = get
    else:

        @cache.cached(key_type="user_id", id_arg="uid", use_case="profile")
        async def aget(uid: str) -> str:
            runs.append(uid)
            return uid

        def call(uid: str) -> str:
            return asyncio.run(aget(uid))

    @cache.cached(key_type="user_id", id_arg="uid", use_case="other")
    def other(uid: str) -> str:
        return uid

    with cache.enable():
        call("a")
        call("b")  # another id, same function: the remembered answer
        other("a")  # another function asks for itself
        assert provider.calls == ["profile", "other"]
        assert runs == ["a", "b"]

        provider.config = layers(local=0, remote=0)  # caching turned off...
        clock.now += 4.9
        call("a")  # ...but not yet seen: still a LOCAL hit
        assert runs == ["a", "b"] and provider.calls == ["profile", "other"]
        clock.now += 0.2
        call("a")  # expired: asked again, now uncached
        assert provider.calls == ["profile", "other", "profile"]
        assert runs == ["a", "b", "a"]


def test_a_provider_that_raises_is_asked_again(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    provider = CountingProvider()
    provider.error = RuntimeError("flag service down")
    cache = make_cache(provider=provider, timer=Clock(), config_reuse_sec=60.0)

    @cache.cached(key_type="user_id", id_arg="uid", use_case="profile")
    def get(uid: str) -> str:
        return uid

    with cache.enable():
        assert get("a") == "a"
        assert get("a") == "a"
        assert len(provider.calls) == 2  # the failure was not remembered
        provider.error = None
        get("a")
        get("a")
    assert len(provider.calls) == 3
    assert metric(registry, "gcache_disabled_counter_total", reason="config_error") == 2


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_or_nan_reuse_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="config_reuse_sec"):
        GCacheConfig(cache_config_provider=CountingProvider(), config_reuse_sec=bad)
