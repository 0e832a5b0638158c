"""Decoration-time validation, configuration validation, and what the decorator returns.

Mistakes in ``@cached(...)`` and in the config objects must fail where they were written (at
decoration or construction time, with ``ValueError``/``TypeError``), never on the first miss in
production. What the decorator returns must look like the function it wraps.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import pytest

from gcache import (
    CacheLayer,
    GCache,
    GCacheConfig,
    GCacheKey,
    GCacheKeyConfig,
    RedisConfig,
)
from tests.providers import LOCAL_ONLY, constant

LOCAL = CacheLayer.LOCAL
REMOTE = CacheLayer.REMOTE


@pytest.fixture
def cache(make_cache: Callable[..., GCache]) -> GCache:
    return make_cache(provider=constant(LOCAL_ONLY))


# -- @cached(...) validation ---------------------------------------------------------------


def test_unknown_id_arg_is_rejected(cache: GCache) -> None:
    with pytest.raises(ValueError, match="user_id"):

        @cache.cached(key_type="user_id", id_arg="user_id")
        def get(uid: str) -> str:
            return uid


def test_unknown_id_arg_in_tuple_is_rejected(cache: GCache) -> None:
    with pytest.raises(ValueError, match="user"):

        @cache.cached(key_type="user_id", id_arg=("user", lambda u: u.id))
        def get(uid: str) -> str:
            return uid


def test_ignore_args_naming_no_parameter_is_rejected(cache: GCache) -> None:
    with pytest.raises(ValueError, match="db_session"):

        @cache.cached(key_type="user_id", id_arg="uid", ignore_args=["db_session"])
        def get(uid: str, session: object) -> str:
            return uid


def test_arg_adapters_naming_no_parameter_is_rejected(cache: GCache) -> None:
    with pytest.raises(ValueError, match="filters"):

        @cache.cached(key_type="user_id", id_arg="uid", arg_adapters={"filters": str})
        def get(uid: str, page: int) -> str:
            return uid


def test_non_callable_arg_adapter_is_rejected(cache: GCache) -> None:
    with pytest.raises(TypeError):

        @cache.cached(key_type="user_id", id_arg="uid", arg_adapters={"page": 3})  # type: ignore[dict-item]
        def get(uid: str, page: int) -> str:
            return uid


def test_id_arg_cannot_be_ignored(cache: GCache) -> None:
    with pytest.raises(ValueError, match="uid"):

        @cache.cached(key_type="user_id", id_arg="uid", ignore_args=["uid"])
        def get(uid: str) -> str:
            return uid


@pytest.mark.parametrize(
    "id_arg",
    [
        ("uid",),
        ("uid", str, str),
        ("uid", "not callable"),
        (lambda u: u, "uid"),
        42,
        None,
        ["uid", str],
    ],
    ids=["1-tuple", "3-tuple", "non-callable-extractor", "swapped", "int", "none", "list"],
)
def test_bad_id_arg_is_rejected(cache: GCache, id_arg: Any) -> None:
    with pytest.raises(TypeError):

        @cache.cached(key_type="user_id", id_arg=id_arg)
        def get(uid: str) -> str:
            return uid


@pytest.mark.parametrize("key_type", ["", None, 5])
def test_bad_key_type_is_rejected(cache: GCache, key_type: Any) -> None:
    with pytest.raises(ValueError):

        @cache.cached(key_type=key_type, id_arg="uid")
        def get(uid: str) -> str:
            return uid


def test_use_case_registered_twice_on_one_cache_is_rejected(cache: GCache) -> None:
    @cache.cached(key_type="user_id", id_arg="uid", use_case="GetUser")
    def first(uid: str) -> str:
        return uid

    with pytest.raises(ValueError, match="GetUser"):

        @cache.cached(key_type="user_id", id_arg="uid", use_case="GetUser")
        def second(uid: str) -> str:
            return uid

    # The rejected decoration did not disturb the first registration.
    with cache.enable():
        assert first("u1") == "u1"


def test_default_use_case_registered_twice_is_rejected(cache: GCache) -> None:
    """The default use_case is module.qualname: one function decorated twice collides."""

    def get(uid: str) -> str:
        return uid

    cache.cached(key_type="user_id", id_arg="uid")(get)
    with pytest.raises(ValueError, match="already registered"):
        cache.cached(key_type="user_id", id_arg="uid")(get)


def test_same_use_case_on_two_caches_is_allowed(make_cache: Callable[..., GCache]) -> None:
    one = make_cache(provider=constant(LOCAL_ONLY))
    two = make_cache(provider=constant(LOCAL_ONLY))
    calls: list[str] = []

    @one.cached(key_type="user_id", id_arg="uid", use_case="GetUser")
    def get_one(uid: str) -> str:
        calls.append("one")
        return "one:" + uid

    @two.cached(key_type="user_id", id_arg="uid", use_case="GetUser")
    def get_two(uid: str) -> str:
        calls.append("two")
        return "two:" + uid

    with one.enable(), two.enable():
        assert get_one("u") == "one:u"
        assert get_two("u") == "two:u"
        assert get_one("u") == "one:u"
        assert get_two("u") == "two:u"
    # Two caches, two LOCAL layers: each computed once and then hit its own entry.
    assert calls == ["one", "two"]


def test_failed_validation_does_not_register_the_use_case(cache: GCache) -> None:
    with pytest.raises(ValueError):

        @cache.cached(key_type="user_id", id_arg="nope", use_case="GetUser")
        def bad(uid: str) -> str:
            return uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="GetUser")
    def good(uid: str) -> str:
        return uid

    with cache.enable():
        assert good("u1") == "u1"


def test_generator_functions_are_rejected(cache: GCache) -> None:
    with pytest.raises(TypeError, match="generator"):

        @cache.cached(key_type="user_id", id_arg="uid")
        def rows(uid: str) -> Any:
            yield uid


def test_async_generator_functions_are_rejected(cache: GCache) -> None:
    with pytest.raises(TypeError, match="generator"):

        @cache.cached(key_type="user_id", id_arg="uid")
        async def rows(uid: str) -> Any:
            yield uid


def test_rejected_generator_does_not_register_the_use_case(cache: GCache) -> None:
    with pytest.raises(TypeError):

        @cache.cached(key_type="user_id", id_arg="uid", use_case="Rows")
        def rows(uid: str) -> Any:
            yield uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Rows")
    def rows_list(uid: str) -> list[str]:
        return [uid]

    with cache.enable():
        assert rows_list("u") == ["u"]


def test_non_callable_is_rejected(cache: GCache) -> None:
    with pytest.raises(TypeError):
        cache.cached(key_type="user_id", id_arg="uid")(42)  # type: ignore[type-var]


# -- GCacheKeyConfig -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "ramp"),
    [
        ({LOCAL: -1}, {LOCAL: 100}),
        ({REMOTE: -0.001}, {REMOTE: 100}),
        ({LOCAL: 60}, {LOCAL: 100.5}),
        ({LOCAL: 60}, {REMOTE: 1000}),
        ({LOCAL: 60}, {LOCAL: -1}),
        ({LOCAL: 60}, {REMOTE: -0.5}),
        ({LOCAL: 60}, {LOCAL: math.inf}),
        ({LOCAL: -math.inf}, {LOCAL: 100}),
    ],
    ids=[
        "negative-local-ttl",
        "negative-remote-ttl",
        "local-ramp-over-100",
        "remote-ramp-over-100",
        "negative-local-ramp",
        "negative-remote-ramp",
        "infinite-ramp",
        "minus-infinite-ttl",
    ],
)
def test_key_config_out_of_range_values_raise_value_error(
    ttl: dict[CacheLayer, float], ramp: dict[CacheLayer, float]
) -> None:
    with pytest.raises(ValueError):
        GCacheKeyConfig(ttl_sec=ttl, ramp=ramp)


@pytest.mark.parametrize(
    ("ttl", "ramp"),
    [
        ({"local": 60}, {LOCAL: 100}),
        ({LOCAL: 60}, {"remote": 100}),
        ({0: 60}, {LOCAL: 100}),
        ({LOCAL: True}, {LOCAL: 100}),
        ({LOCAL: 60}, {LOCAL: False}),
        ({LOCAL: 60}, {REMOTE: True}),
        ({LOCAL: "60"}, {LOCAL: 100}),
        ({LOCAL: None}, {LOCAL: 100}),
        ({LOCAL: 60}, {LOCAL: "100"}),
    ],
    ids=[
        "str-key-ttl",
        "str-key-ramp",
        "int-key",
        "bool-ttl",
        "bool-ramp-false",
        "bool-ramp-true",
        "str-ttl",
        "none-ttl",
        "str-ramp",
    ],
)
def test_key_config_wrong_types_raise_type_error(ttl: dict[Any, Any], ramp: dict[Any, Any]) -> None:
    with pytest.raises(TypeError):
        GCacheKeyConfig(ttl_sec=ttl, ramp=ramp)


def test_key_config_accepts_the_boundaries() -> None:
    config = GCacheKeyConfig(ttl_sec={LOCAL: 0, REMOTE: 1.5}, ramp={LOCAL: 0, REMOTE: 100})
    assert (config.local_ttl, config.remote_ttl) == (0.0, 1.5)
    assert (config.local_ramp, config.remote_ramp) == (0.0, 100.0)


def test_key_config_missing_layer_means_unused() -> None:
    config = GCacheKeyConfig(ttl_sec={LOCAL: 30}, ramp={LOCAL: 50})
    assert (config.local_ttl, config.local_ramp) == (30.0, 50.0)
    assert (config.remote_ttl, config.remote_ramp) == (0.0, 0.0)


@pytest.mark.parametrize("field", ["ttl_sec", "ramp"])
def test_key_config_rejects_nan(field: str) -> None:
    values: dict[str, dict[CacheLayer, float]] = {"ttl_sec": {LOCAL: 60}, "ramp": {LOCAL: 100}}
    values[field] = {LOCAL: math.nan}
    with pytest.raises(ValueError):
        GCacheKeyConfig(**values)  # type: ignore[arg-type]


def test_key_config_non_mapping_raises_type_error() -> None:
    with pytest.raises(TypeError):
        GCacheKeyConfig(ttl_sec=60, ramp={LOCAL: 100})  # type: ignore[arg-type]


# -- GCacheConfig / RedisConfig ------------------------------------------------------------


def test_redis_config_and_factory_together_are_rejected() -> None:
    with pytest.raises(ValueError):
        GCacheConfig(
            cache_config_provider=constant(LOCAL_ONLY),
            redis_config=RedisConfig(port=1234),
            redis_client_factory=lambda: None,  # type: ignore[arg-type,return-value]
        )


@pytest.mark.parametrize(
    "namespace", ["", "a b", "a:b", "{tag}", "ns*", "é", "\nns", "ns/x"], ids=repr
)
def test_bad_namespace_is_rejected(namespace: str) -> None:
    with pytest.raises(ValueError):
        GCacheConfig(cache_config_provider=constant(LOCAL_ONLY), namespace=namespace)


def test_namespace_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(ValueError):
        GCacheConfig(cache_config_provider=constant(LOCAL_ONLY), namespace="gcache\n")


def test_good_namespace_is_accepted() -> None:
    config = GCacheConfig(cache_config_provider=constant(LOCAL_ONLY), namespace="my-app_v1.2")
    assert config.namespace == "my-app_v1.2"
    assert not config.has_redis


@pytest.mark.parametrize("provider", [None, 42, "provider", LOCAL_ONLY], ids=repr)
def test_non_callable_provider_is_rejected(provider: Any) -> None:
    with pytest.raises(TypeError):
        GCacheConfig(cache_config_provider=provider)


def test_gcache_requires_a_gcache_config() -> None:
    with pytest.raises(TypeError):
        GCache({"cache_config_provider": constant(LOCAL_ONLY)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"port": 0},
        {"port": -1},
        {"port": 65536},
        {"socket_timeout": 0},
        {"socket_timeout": -1.0},
        {"socket_connect_timeout": 0},
        {"socket_connect_timeout": -0.5},
        {"url": "http://localhost:6379"},
        {"url": "localhost:6379"},
    ],
    ids=repr,
)
def test_bad_redis_config_is_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RedisConfig(**fields)


def test_good_redis_config_is_accepted() -> None:
    config = RedisConfig(host="redis.example", port=65535, socket_timeout=0.01)
    assert config.client_kwargs()["port"] == 65535
    assert RedisConfig(url="rediss://h:1/0").client_kwargs().get("host") is None


# -- what the decorator returns ------------------------------------------------------------


def test_wraps_metadata_is_preserved(cache: GCache) -> None:
    def get_user(user_id: str, verbose: bool = False) -> dict[str, str]:
        """Fetch one user."""
        return {"id": user_id}

    async def aget_user(user_id: str) -> dict[str, str]:
        """Fetch one user, async."""
        return {"id": user_id}

    for func in (get_user, aget_user):
        wrapped = cache.cached(key_type="user_id", id_arg="user_id")(func)
        assert wrapped is not func
        assert wrapped.__name__ == func.__name__
        assert wrapped.__qualname__ == func.__qualname__
        assert wrapped.__doc__ == func.__doc__
        assert wrapped.__module__ == func.__module__
        assert wrapped.__wrapped__ is func  # type: ignore[attr-defined]
        assert wrapped.__annotations__ == func.__annotations__
        assert inspect.signature(wrapped) == inspect.signature(func)


def test_async_wrapper_is_a_coroutine_function_and_sync_is_not(cache: GCache) -> None:
    @cache.cached(key_type="user_id", id_arg="uid")
    async def aget(uid: str) -> str:
        return uid

    @cache.cached(key_type="user_id", id_arg="uid")
    def get(uid: str) -> str:
        return uid

    assert inspect.iscoroutinefunction(aget)
    assert asyncio.iscoroutinefunction(aget)
    assert not inspect.iscoroutinefunction(get)

    async def main() -> str:
        with cache.enable():
            return await aget("u")  # type: ignore[no-any-return]

    assert asyncio.run(main()) == "u"
    with cache.enable():
        assert get("u") == "u"


def _type_error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(TypeError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("u", 1, 2), {}),  # too many positional
        ((), {}),  # missing required
        (("u",), {"nope": 1}),  # unknown keyword
        (("u",), {"uid": "v"}),  # given twice
    ],
    ids=["too-many", "missing", "unknown-kw", "twice"],
)
def test_wrong_arguments_raise_the_functions_own_type_error(
    cache: GCache, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ran: list[str] = []

    def get(uid: str, page: int = 0) -> str:
        ran.append(uid)
        return uid

    async def aget(uid: str, page: int = 0) -> str:
        ran.append(uid)
        return uid

    expected = _type_error_of(lambda: get(*args, **kwargs))
    cached = cache.cached(key_type="user_id", id_arg="uid")(get)
    acached = cache.cached(key_type="user_id", id_arg="uid")(aget)
    with cache.enable():
        assert _type_error_of(lambda: cached(*args, **kwargs)) == expected

        async def main() -> None:
            await acached(*args, **kwargs)

        message = _type_error_of(lambda: asyncio.run(main()))
    assert message == expected.replace("get()", "aget()")
    assert ran == []


# -- methods -------------------------------------------------------------------------------


def test_cached_method_leaves_self_out_of_the_key(make_cache: Callable[..., GCache]) -> None:
    seen: list[GCacheKey] = []

    async def provider(key: GCacheKey) -> GCacheKeyConfig:
        seen.append(key)
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    calls: list[tuple[object, str]] = []

    class Repository:  # default object repr: would be unkeyable if `self` were in the key
        @cache.cached(key_type="user_id", id_arg="user_id")
        def get(self, user_id: str, field: str = "name") -> str:
            calls.append((self, user_id))
            return f"{user_id}.{field}"

    first, second = Repository(), Repository()
    with cache.enable():
        assert first.get("u1") == "u1.name"
        assert second.get("u1") == "u1.name"  # shared entry: self is not part of the key
        assert second.get("u1", field="mail") == "u1.mail"
    assert calls == [(first, "u1"), (second, "u1")]
    assert [name for name, _ in seen[0].args] == ["field"]
    assert seen[0].id == "u1"


def test_cached_async_method_and_classmethod(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    calls: list[str] = []

    class Service:
        @cache.cached(key_type="user_id", id_arg="uid")
        async def load(self, uid: str) -> str:
            calls.append("load")
            return "load:" + uid

        @classmethod
        @cache.cached(key_type="user_id", id_arg="uid")
        def build(cls, uid: str) -> str:
            calls.append("build")
            return f"{cls.__name__}:{uid}"

    async def main() -> list[str]:
        with cache.enable():
            return [await Service().load("u"), await Service().load("u")]

    assert asyncio.run(main()) == ["load:u", "load:u"]
    with cache.enable():
        assert Service.build("u") == "Service:u"
        assert Service().build("u") == "Service:u"
    assert calls == ["load", "build"]


def test_partial_objects_can_be_cached(cache: GCache) -> None:
    calls: list[str] = []

    def fetch(prefix: str, uid: str) -> str:
        calls.append(uid)
        return prefix + uid

    cached = cache.cached(key_type="user_id", id_arg="uid", use_case="Partial")(
        functools.partial(fetch, "p:")
    )
    with cache.enable():
        assert cached(uid="u") == "p:u"
        assert cached(uid="u") == "p:u"
    assert calls == ["u"]


class _CallableObject:
    def __call__(self, uid: str) -> str:
        return uid


@pytest.mark.parametrize(
    "func",
    [functools.partial(lambda prefix, uid: prefix + uid, "p:"), _CallableObject()],
    ids=["partial", "callable-object"],
)
def test_callable_without_qualname_gets_a_default_use_case_or_a_clear_error(
    cache: GCache, func: Callable[..., str]
) -> None:
    try:
        wrapped = cache.cached(key_type="user_id", id_arg="uid")(func)
    except (TypeError, ValueError) as exc:  # a clear decoration-time error is acceptable too
        assert "use_case" in str(exc)
        return
    with cache.enable():
        assert wrapped(uid="u") == func(uid="u")
