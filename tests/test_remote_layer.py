"""The REMOTE layer seen through the public API: sharing between replicas, invalidation across
replicas, namespaces, the key layout in Redis and the scoped flush (DESIGN §3.1, §3.8)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from gcache import GCache
from gcache._codec import decode
from integration.redis_server import wait_until
from tests.backends import Backend
from tests.metric_values import metric
from tests.providers import BOTH, REMOTE_ONLY, constant
from tests.remote_helpers import (
    Calls,
    all_keys,
    cached_user,
    call_async,
    call_sync,
    command_calls,
    run_async,
    settle_bus,
    value_keys,
)

PROVIDERS = pytest.mark.parametrize(
    "provider_config", [REMOTE_ONLY, BOTH], ids=["remote_only", "both"]
)


@pytest.fixture
def checker(backend: Backend) -> Iterator[redis.Redis]:
    """A synchronous client of the parametrised backend (a cluster client on a Cluster)."""
    client = backend.client()
    yield client  # type: ignore[misc]
    client.close()


def replica(
    make_cache: Callable[..., GCache],
    url: str | Backend,
    config: object = REMOTE_ONLY,
    **fields: object,
) -> GCache:
    if isinstance(url, Backend):
        fields.setdefault("redis_config", url.redis_config())
        return make_cache(provider=constant(config), **fields)
    return make_cache(url=url, provider=constant(config), **fields)


# -- sharing between replicas --------------------------------------------------------------


@PROVIDERS
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_second_instance_gets_remote_hit(
    make_cache: Callable[..., GCache],
    backend: Backend,
    checker: redis.Redis,
    provider_config: object,
    sync: bool,
) -> None:
    a, b = (
        replica(make_cache, backend, provider_config),
        replica(make_cache, backend, provider_config),
    )
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=sync, tag="a")
    get_b = cached_user(b, calls_b, sync=sync, tag="b")
    call = call_sync if sync else call_async

    first = call(a, get_a, "42")
    assert first == {"id": "42", "run": 1, "by": "a"}
    assert len(value_keys(checker, "gcache")) == 1

    served = call(b, get_b, "42")
    assert served == first  # A's computation, fetched from Redis
    assert calls_b.count == 0
    assert calls_a.count == 1

    # Another id is not shared: B computes it itself.
    assert call(b, get_b, "43") == {"id": "43", "run": 1, "by": "b"}
    assert calls_b.count == 1


@PROVIDERS
def test_ainvalidate_on_other_instance_forces_recompute(
    make_cache: Callable[..., GCache], backend: Backend, provider_config: object
) -> None:
    a, b, c = (replica(make_cache, backend, provider_config) for _ in range(3))
    calls_a, calls_b, calls_c = Calls(), Calls(), Calls()
    get_a = cached_user(a, calls_a, tag="a")
    get_b = cached_user(b, calls_b, tag="b")
    get_c = cached_user(c, calls_c, tag="c")

    old = call_async(a, get_a, "7")
    assert call_async(b, get_b, "7") == old  # REMOTE hit on B
    assert calls_b.count == 0

    async def invalidate() -> None:
        await b.ainvalidate(key_type="user_id", id="7")

    run_async(invalidate, b)

    # The invalidating instance itself recomputes (its LOCAL entry, if any, was dropped).
    assert call_async(b, get_b, "7") == {"id": "7", "run": 1, "by": "b"}
    # Nobody reading Redis is served the old value any more. (B's new value may or may not
    # have been stored: computed_at is stamped pessimistically early, so a value computed
    # right after an invalidation can be refused too.)
    assert call_async(c, get_c, "7") != old
    if provider_config is REMOTE_ONLY:
        # Without a LOCAL layer, the replica that computed the old value is not served it either.
        assert call_async(a, get_a, "7") != old


@PROVIDERS
def test_sync_invalidate_on_other_instance_forces_recompute(
    make_cache: Callable[..., GCache], backend: Backend, provider_config: object
) -> None:
    a, b, c = (replica(make_cache, backend, provider_config) for _ in range(3))
    calls_a, calls_b, calls_c = Calls(), Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")
    get_c = cached_user(c, calls_c, sync=True, tag="c")

    old = call_sync(a, get_a, "7")
    assert call_sync(b, get_b, "7") == old
    assert calls_b.count == 0

    b.invalidate(key_type="user_id", id="7")

    assert call_sync(b, get_b, "7") == {"id": "7", "run": 1, "by": "b"}
    assert call_sync(c, get_c, "7") != old
    if provider_config is REMOTE_ONLY:
        assert call_sync(a, get_a, "7") != old


def test_invalidation_reaches_only_tracked_functions_of_that_entity(
    make_cache: Callable[..., GCache], backend: Backend
) -> None:
    a, b = replica(make_cache, backend), replica(make_cache, backend)
    tracked_a, untracked_a, tracked_b, untracked_b = Calls(), Calls(), Calls(), Calls()
    get_tracked_a = cached_user(a, tracked_a, use_case="Tracked", sync=True)
    get_untracked_a = cached_user(a, untracked_a, use_case="Untracked", tracked=False, sync=True)
    get_tracked_b = cached_user(b, tracked_b, use_case="Tracked", sync=True)
    get_untracked_b = cached_user(b, untracked_b, use_case="Untracked", tracked=False, sync=True)

    for user in ("1", "2"):
        call_sync(a, get_tracked_a, user)
        call_sync(a, get_untracked_a, user)
    b.invalidate(key_type="user_id", id="1")

    call_sync(b, get_tracked_b, "1")  # invalidated: recomputed
    call_sync(b, get_tracked_b, "2")  # other entity: REMOTE hit
    call_sync(b, get_untracked_b, "1")  # not tracked: REMOTE hit
    assert tracked_b.count == 1
    assert untracked_b.count == 0


# -- namespaces and key layout -------------------------------------------------------------


def test_namespaces_do_not_see_each_other(
    make_cache: Callable[..., GCache], backend: Backend, checker: redis.Redis
) -> None:
    alpha = replica(make_cache, backend, namespace="alpha")
    beta = replica(make_cache, backend, namespace="beta")
    alpha2 = replica(make_cache, backend, namespace="alpha")
    calls_alpha, calls_beta, calls_alpha2 = Calls(), Calls(), Calls()
    get_alpha = cached_user(alpha, calls_alpha, sync=True, tag="alpha")
    get_beta = cached_user(beta, calls_beta, sync=True, tag="beta")
    get_alpha2 = cached_user(alpha2, calls_alpha2, sync=True, tag="alpha2")

    from_alpha = call_sync(alpha, get_alpha, "1")
    from_beta = call_sync(beta, get_beta, "1")
    assert from_beta == {"id": "1", "run": 1, "by": "beta"}  # not alpha's value
    assert call_sync(alpha2, get_alpha2, "1") == from_alpha  # same namespace: shared
    assert calls_alpha2.count == 0

    # Invalidation is scoped too: alpha's invalidation leaves beta's value readable.
    alpha.invalidate(key_type="user_id", id="1")
    beta2 = replica(make_cache, backend, namespace="beta")
    calls_beta2 = Calls()
    assert call_sync(beta2, cached_user(beta2, calls_beta2, sync=True), "1") == from_beta
    assert calls_beta2.count == 0

    keys = all_keys(checker)
    assert keys, "the calls above wrote nothing to Redis"
    alpha_keys = [k for k in keys if k.startswith(b"alpha:")]
    beta_keys = [k for k in keys if k.startswith(b"beta:")]
    assert sorted(alpha_keys + beta_keys) == keys  # every key starts with "<namespace>:"
    assert b"alpha:w:{user_id=1}" in alpha_keys
    assert value_keys(checker, "alpha") == []  # the invalidation deleted alpha's tracked value
    assert len(value_keys(checker, "beta")) == 1


def test_key_layout_matches_the_documented_one(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis
) -> None:
    cache = replica(make_cache, redis_url, namespace="layout")
    runs = Calls()

    @cache.cached(
        key_type="user_id", id_arg="user_id", use_case="GetUser", track_for_invalidation=True
    )
    def get_user(user_id: object, page: int, query: str) -> str:
        runs.bump()
        return f"{user_id}/{page}/{query}"

    @cache.cached(key_type="org", id_arg="org_id", use_case="GetOrg")
    def get_org(org_id: str) -> str:
        runs.bump()
        return org_id

    with cache.enable():
        assert get_user("42", 2, "a:b&c=d") == "42/2/a:b&c=d"
        assert get_user(42, 2, "x") == "42/2/x"  # a non-str id is kept apart from "42"
        assert get_org("o 1") == "o 1"
    cache.flushall()  # writes the namespace's flush watermark; sweeps the values

    def all_stored_again() -> bool:
        # A value computed right after the flush may be refused (computed_at is stamped
        # pessimistically early); calling again computes a later one.
        with cache.enable():
            get_user("42", 2, "a:b&c=d")
            get_user(42, 2, "x")
            get_org("o 1")
        return len(value_keys(client, "layout")) == 3

    wait_until(all_stored_again, timeout=30, message="values stored after the flush")

    # ns:v:{key_type=id}:use_case:name=value&name=value | ns:w:{key_type=id} | ns:i:{key_type=id}
    # | ns:flush:{ns}
    # (plus the invalidation bus's own keys, ns:bus:{ns} and ns:bus:seq:{ns}: see bus/_names.py)
    keys = set(all_keys(client))
    bus_keys = {k for k in keys if k.startswith(b"layout:bus")}
    assert bus_keys <= {b"layout:bus:{layout}", b"layout:bus:seq:{layout}"}
    assert keys - bus_keys == {
        b"layout:v:{user_id=42}:GetUser:page=!i2&query=a%3Ab%26c%3Dd",
        b"layout:v:{user_id=42}:GetUser:~id=!i42&page=!i2&query=x",
        b"layout:v:{org=o%201}:GetOrg:",
        b"layout:w:{user_id=42}",  # only tracked functions have a watermark...
        b"layout:i:{user_id=42}",  # ...and an index: the value keys invalidation deletes
        b"layout:flush:{layout}",
    }
    raw = client.get(b"layout:v:{user_id=42}:GetUser:page=!i2&query=a%3Ab%26c%3Dd")
    assert raw is not None
    assert decode(raw)[1] == "42/2/a:b&c=d"


# -- scoped flush --------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["aflushall", "flushall"])
def test_flushall_removes_only_this_namespace(
    make_cache: Callable[..., GCache], redis_url: str, client: redis.Redis, sync: bool
) -> None:
    app1_a = replica(make_cache, redis_url, namespace="app1")
    app1_b = replica(make_cache, redis_url, namespace="app1")
    app2 = replica(make_cache, redis_url, namespace="app2")
    calls_a, calls_b, calls_2 = Calls(), Calls(), Calls()
    get_a = cached_user(app1_a, calls_a, sync=True, tag="a")
    get_b = cached_user(app1_b, calls_b, sync=True, tag="b")
    get_2 = cached_user(app2, calls_2, sync=True, tag="app2")

    for user in ("1", "2"):
        call_sync(app1_a, get_a, user)
    assert call_sync(app1_b, get_b, "1")["by"] == "a"  # B is served A's values
    assert calls_b.count == 0
    from_app2 = call_sync(app2, get_2, "1")
    client.set("other:app:key", b"keep me")
    client.set("app10:v:{user_id=1}:GetUser:", b"a namespace that only shares a prefix")
    app2_keys_before = value_keys(client, "app2")
    assert len(value_keys(client, "app1")) == 2

    # The fixture ran FLUSHALL before the test: compare counts across the flush only.
    flushall_before = command_calls(client, "flushall")
    flushdb_before = command_calls(client, "flushdb")

    if sync:
        app1_b.flushall()
    else:

        async def flush() -> None:
            await app1_b.aflushall()

        run_async(flush, app1_b)

    # Regression: never the server-wide FLUSHALL/FLUSHDB.
    assert command_calls(client, "flushall") == flushall_before
    assert command_calls(client, "flushdb") == flushdb_before
    # Other data on the server survives.
    assert client.get("other:app:key") == b"keep me"
    assert client.get("app10:v:{user_id=1}:GetUser:") == b"a namespace that only shares a prefix"
    assert value_keys(client, "app2") == app2_keys_before
    assert client.get(b"app1:flush:{app1}") is not None
    # This namespace's values are gone from Redis (the sweep gives the memory back).
    assert value_keys(client, "app1") == []

    # Both app1 replicas recompute; app2 is still served from Redis.
    assert call_sync(app1_a, get_a, "2") == {"id": "2", "run": 3, "by": "a"}
    assert call_sync(app1_b, get_b, "1") == {"id": "1", "run": 1, "by": "b"}
    calls_2b = Calls()
    app2_b = replica(make_cache, redis_url, namespace="app2")
    assert call_sync(app2_b, cached_user(app2_b, calls_2b, sync=True), "1") == from_app2
    assert calls_2b.count == 0


def test_flushall_drops_the_flushing_instance_local_layer(
    make_cache: Callable[..., GCache], backend: Backend
) -> None:
    cache = replica(make_cache, backend, BOTH)
    calls = Calls()
    get_user = cached_user(cache, calls, sync=True, tracked=False)

    assert call_sync(cache, get_user, "1")["run"] == 1
    assert call_sync(cache, get_user, "1")["run"] == 1  # LOCAL (or REMOTE) hit
    cache.flushall()
    assert call_sync(cache, get_user, "1")["run"] == 2
    assert calls.count == 2


def test_flushall_reaches_the_local_layer_of_other_instances(
    make_cache: Callable[..., GCache], backend: Backend
) -> None:
    a = replica(make_cache, backend, BOTH)
    b_registry = CollectorRegistry()  # B's own metrics, to tell its LOCAL hits apart
    b = replica(make_cache, backend, BOTH, metrics_registry=b_registry)
    calls_b = Calls()
    get_b = cached_user(b, calls_b, sync=True, tracked=False, tag="b")
    call_sync(b, get_b, "warm-up")  # starts B's bus subscriber ...
    settle_bus(b)  # ... whose start may flush B's LOCAL layer once

    def local_hits() -> float:
        requests = metric(b_registry, "gcache_request_counter_total", layer="local")
        return requests - metric(b_registry, "gcache_miss_counter_total", layer="local")

    users = iter(range(1_000_000))

    def b_serves_one_from_local() -> tuple[str, Any] | None:
        user = str(next(users))
        call_sync(b, get_b, user)
        hits = local_hits()
        value = call_sync(b, get_b, user)
        return (user, value) if local_hits() > hits else None

    user, old = wait_until(b_serves_one_from_local, timeout=30, message="a LOCAL hit on B")

    a.flushall()

    wait_until(
        lambda: call_sync(b, get_b, user) != old,
        timeout=30,
        message="B to stop serving, from its LOCAL layer, a value flushed by A",
    )
