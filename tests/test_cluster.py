"""Redis Cluster specifics: the per-slot hash tags, the flush watermark's copies, and a master
that dies and comes back (DESIGN §5 "Scale-out", §6 fail open).

The rest of the Cluster coverage is the ``backend``-parametrised tests in test_remote_layer,
test_bus_subscriber and test_bus_publisher, which run against the session's shared Cluster.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from bus._names import bus_key, flush_copy_key, flush_key
from bus._slots import SLOTS, slot_of, slot_tag, slot_tags
from gcache import GCache, InvalidationError
from gcache._codec import encode, serialize
from gcache._keys import watermark_key
from gcache._scripts import WriteResult
from integration.redis_cluster import RedisClusterServers
from integration.redis_server import RedisServer, wait_until
from tests.backends import Backend
from tests.metric_values import metric
from tests.providers import BOTH, REMOTE_ONLY, constant
from tests.remote_helpers import Calls, cached_user, call_sync, on_background

WAIT = 60.0


def test_every_slot_has_one_tag_that_maps_to_it() -> None:
    tags = slot_tags()
    assert len(tags) == SLOTS
    assert len(set(tags)) == SLOTS
    for slot in (0, 1, 777, 8191, 16383):
        assert slot_of("x{" + slot_tag(slot) + "}y") == slot
    assert all(slot_of("{" + tag + "}") == slot for slot, tag in enumerate(tags))


def test_a_write_computed_before_a_flush_is_refused_in_every_slot(
    make_cache: Callable[..., GCache], cluster_url: str
) -> None:
    """The write script reads F's copy in the value's own slot: after a flush, a value computed
    before it is refused whatever slot it lands in."""
    backend = Backend(url=cluster_url, cluster=True)
    cache = make_cache(provider=constant(REMOTE_ONLY), redis_config=backend.redis_config())
    calls = Calls()
    get_user = cached_user(cache, calls, sync=True)
    call_sync(cache, get_user, "1")  # creates the namespace (and F's copies)
    remote = cache._remote
    assert remote is not None
    before = remote.clock.now_us()  # synced by the call above
    cache.flushall()
    check = backend.client()
    flushed = int(check.get(flush_key("gcache")))
    assert flushed > before
    ids = [str(n) for n in range(40)]
    slots = {slot_of(watermark_key("gcache", "user_id", i)) for i in ids}
    assert len(slots) == len(ids)  # 40 different slots, spread over the 3 masters
    for entity_id in ids:
        key = f"gcache:v:{{user_id={entity_id}}}:Test:"
        result = on_background(
            cache,
            lambda key=key, entity_id=entity_id: remote.put(  # type: ignore[misc]
                key,
                watermark_key("gcache", "user_id", entity_id),
                encode(serialize(entity_id), before),
                computed_at=before,
                ttl_ms=60_000,
            ),
        )
        assert result == WriteResult.STALE, entity_id
    try:
        for slot in (0, 8000, 16383):
            assert int(check.get(flush_copy_key("gcache", slot_tag(slot)))) == flushed
    finally:
        check.close()


# -- a master dies ---------------------------------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterServers]:
    """A Cluster of this test's own, free to lose a master."""
    with RedisClusterServers.start() as cluster:
        yield cluster


def _node_serving(cluster: RedisClusterServers, key: str) -> RedisServer:
    check = cluster.client()
    try:
        port = check.get_node_from_key(key).port
    finally:
        check.close()
    [node] = [node for node in cluster.nodes if node.port == int(port)]
    return node


# When a node dies, redis-py's cluster client rebuilds its node table and drops the old
# ClusterNode objects without closing their connections (its own internals, not ours: every
# client gcache made is closed); their ResourceWarnings surface at garbage collection.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_cache_fails_open_while_a_master_is_down_and_resumes_after(
    make_cache: Callable[..., GCache], own_cluster: RedisClusterServers
) -> None:
    """Kill the master of the bus's slot (and of the entities used): cached calls still return
    the function's result, no exception; once the node is back (empty, same slots), values are
    shared again and an invalidation reaches the other replica's LOCAL layer again."""
    victim = _node_serving(own_cluster, bus_key("gcache"))
    # The clients' startup node must not be the victim.
    survivor = next(node for node in own_cluster.nodes if node is not victim)
    backend = Backend(url=survivor.url, cluster=True)
    on_victim = (
        str(n)
        for n in range(100_000)
        if _node_serving(own_cluster, watermark_key("gcache", "user_id", str(n))) is victim
    )
    config = backend.redis_config(socket_timeout=1.0, socket_connect_timeout=1.0)
    a = make_cache(provider=constant(BOTH), redis_config=config)
    b = make_cache(provider=constant(BOTH), redis_config=config)
    get_a = cached_user(a, Calls(), sync=True, tag="a")
    get_b = cached_user(b, Calls(), sync=True, tag="b")

    def shared() -> str | None:
        """A new id on the victim, computed by A and then served to B from Redis."""
        entity = next(on_victim)
        call_sync(a, get_a, entity)
        return entity if call_sync(b, get_b, entity)["by"] == "a" else None

    wait_until(shared, timeout=WAIT, message="B served A's value from Redis")

    victim.kill()
    # Fail open: every call returns the function's own result, never raises.
    for _ in range(5):
        entity = next(on_victim)
        assert call_sync(b, get_b, entity)["id"] == entity
        assert call_sync(a, get_a, entity)["id"] == entity
    with pytest.raises(InvalidationError):  # an invalidation reports its failure instead
        a.invalidate(key_type="user_id", id=entity)

    victim.restart(graceful=False)
    own_cluster.wait_ok()

    # Caching resumes by itself ...
    entity = wait_until(shared, timeout=WAIT, message="values shared again after recovery")
    # ... and B's bus subscriber is back: A's invalidation reaches B's LOCAL layer (and Redis).
    a.invalidate(key_type="user_id", id=entity)
    wait_until(
        lambda: call_sync(b, get_b, entity)["by"] == "b",
        timeout=WAIT,
        message="B stops serving the invalidated value",
    )
    a.close()
    b.close()
    gc.collect()  # the dropped ClusterNodes' warnings fire here, under this test's filters


# -- a slot moves ----------------------------------------------------------------------------


def _node_id(node: RedisServer) -> str:
    with node.client() as admin:
        return str(admin.execute_command("CLUSTER", "MYID").decode())


# A moved slot makes redis-py's cluster client rebuild its node table too (see above).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_reads_follow_a_slot_through_ask_and_moved_and_invalidation_lands_on_its_new_node(
    make_cache: Callable[..., GCache], own_cluster: RedisClusterServers, registry: CollectorRegistry
) -> None:
    """Resharding under a running cache: while an entity's slot is being migrated (keys already
    on the new node: the old one answers ASK) and after it has moved (MOVED), REMOTE reads keep
    hitting, with no error counted; an invalidation afterwards raises W(e) where the slot now
    lives, so the other replica stops being served the old value."""
    entity = "moving"
    value_key = f"gcache:v:{{user_id={entity}}}:GetUser:"
    key_slot = slot_of(watermark_key("gcache", "user_id", entity))
    source = _node_serving(own_cluster, watermark_key("gcache", "user_id", entity))
    target = next(node for node in own_cluster.nodes if node is not source)
    backend = Backend(url=target.url, cluster=True)
    a = make_cache(provider=constant(REMOTE_ONLY), redis_config=backend.redis_config())
    b = make_cache(provider=constant(REMOTE_ONLY), redis_config=backend.redis_config())
    get_a = cached_user(a, Calls(), sync=True, tag="a")
    get_b = cached_user(b, Calls(), sync=True, tag="b")
    call_sync(a, get_a, entity)
    assert call_sync(b, get_b, entity)["by"] == "a"  # B reads A's value from the source node

    source_id, target_id = _node_id(source), _node_id(target)
    with target.client() as at_target, source.client() as at_source:
        at_target.execute_command("CLUSTER", "SETSLOT", key_slot, "IMPORTING", source_id)
        at_source.execute_command("CLUSTER", "SETSLOT", key_slot, "MIGRATING", target_id)
        keys = at_source.execute_command("CLUSTER", "GETKEYSINSLOT", key_slot, 100)
        assert len(keys) >= 3  # the value, W(e) and the entity's index
        at_source.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        # Mid-migration: the source no longer has the keys and answers ASK.
        with pytest.raises(redis.exceptions.AskError):
            at_source.get(value_key)
        assert call_sync(b, get_b, entity)["by"] == "a"
        for node in own_cluster.nodes:
            with node.client() as admin:
                admin.execute_command("CLUSTER", "SETSLOT", key_slot, "NODE", target_id)
    # Moved: the source answers MOVED; the client refreshes its map and reads the target.
    with source.client() as at_source, pytest.raises(redis.exceptions.MovedError):
        at_source.get(value_key)
    assert call_sync(b, get_b, entity)["by"] == "a"
    assert _node_serving(own_cluster, watermark_key("gcache", "user_id", entity)) is target
    assert metric(registry, "gcache_error_counter_total") == 0

    a.invalidate(key_type="user_id", id=entity)
    assert call_sync(b, get_b, entity)["by"] == "b"  # W(e) raised and the value gone, on target
    a.close()
    b.close()
    gc.collect()  # the dropped ClusterNodes' warnings fire here, under this test's filters
