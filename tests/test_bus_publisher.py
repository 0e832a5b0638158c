"""``bus.Publisher`` against a real private Redis: watermarks, the stream / channel and errors.

Every publish must raise the watermarks and announce them in one atomic step (DESIGN §5), with
a per-namespace sequence number, and report failure after bounded retries (DESIGN §3.6).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio import RedisCluster as AsyncRedisCluster

from bus import (
    BusMetrics,
    FlushEvent,
    InvalidateEvent,
    Publisher,
    PublishError,
    Topic,
    decode,
)
from bus._names import bus_key, flush_copy_key, flush_key, seq_key, watermark_key
from bus._slots import slot_tag
from integration.redis_server import RedisServer, wait_until
from tests.metric_values import metric

NS = "pubtest"
HOUR_MS = 3_600_000


def redis_now(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def stream(client: redis.Redis, namespace: str = NS) -> list[tuple[bytes, Any]]:
    """Every entry of the namespace's stream as (id, decoded event)."""
    return [
        (entry_id, decode(fields[b"d"])) for entry_id, fields in client.xrange(bus_key(namespace))
    ]


def stored_watermark(
    client: redis.Redis, key_type: str, entity_id: str, ns: str = NS
) -> int | None:
    raw = client.get(watermark_key(ns, key_type, entity_id))
    return None if raw is None else int(raw)


# -- invalidate ------------------------------------------------------------------------------


def test_sync_invalidate_raises_watermark_and_announces(
    redis_url: str, client: redis.Redis
) -> None:
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        before = redis_now(client)
        mark = publisher.invalidate("user_id", "42", future_buffer_ms=10)
        after = redis_now(client)
    assert before + 10_000 <= mark <= after + 10_000
    assert stored_watermark(client, "user_id", "42") == mark
    # The watermark expires eventually: its TTL is the default 1 h plus the buffer.
    ttl = client.pttl(watermark_key(NS, "user_id", "42"))
    assert 0 < ttl <= HOUR_MS + 10
    [(_, event)] = stream(client)
    assert isinstance(event, InvalidateEvent)
    assert event.namespace == NS
    assert event.seq == 1
    assert before <= event.sent_at <= after
    assert event.entities == (("user_id", "42", mark),)
    assert int(client.get(seq_key(NS))) == 1


def test_async_invalidate_raises_watermark_and_announces(
    redis_url: str, client: redis.Redis
) -> None:
    async def main() -> int:
        async with Publisher.from_url(redis_url, namespace=NS) as publisher:
            return await publisher.ainvalidate("user_id", "7")

    before = redis_now(client)
    mark = asyncio.run(main())
    after = redis_now(client)
    assert before <= mark <= after
    assert stored_watermark(client, "user_id", "7") == mark
    [(_, event)] = stream(client)
    assert event == InvalidateEvent(NS, 1, event.sent_at, (("user_id", "7", mark),))


def test_non_string_ids_are_published_as_text(redis_url: str, client: redis.Redis) -> None:
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        mark = publisher.invalidate("user_id", 42)
    assert stored_watermark(client, "user_id", "42") == mark
    [(_, event)] = stream(client)
    assert event.entities == (("user_id", "42", mark),)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_invalidate_many_is_one_event_with_every_entity(
    redis_url: str, client: redis.Redis, mode: str
) -> None:
    entities = [("user_id", "1"), ("user_id", "2"), ("org_id", "1"), ("user_id", "3")]
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        before = redis_now(client)
        if mode == "sync":
            marks = publisher.invalidate_many(iter(entities), future_buffer_ms=5)
        else:

            async def main() -> list[int]:
                try:
                    return await publisher.ainvalidate_many(entities, future_buffer_ms=5)
                finally:
                    await publisher.aclose()

            marks = asyncio.run(main())
        after = redis_now(client)
    assert len(marks) == len(entities)
    for (key_type, entity_id), mark in zip(entities, marks, strict=True):
        assert before + 5000 <= mark <= after + 5000
        assert stored_watermark(client, key_type, entity_id) == mark
    [(_, event)] = stream(client)
    assert event.seq == 1
    assert event.entities == tuple((kt, i, m) for (kt, i), m in zip(entities, marks, strict=True))


def test_invalidate_many_of_nothing_publishes_nothing(redis_url: str, client: redis.Redis) -> None:
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        assert publisher.invalidate_many([]) == []
    assert client.exists(bus_key(NS), seq_key(NS)) == 0


def test_duplicate_entities_in_a_batch_get_the_same_watermark(
    redis_url: str, client: redis.Redis
) -> None:
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        marks = publisher.invalidate_many([("user_id", "1"), ("user_id", "1")])
    assert marks[0] == marks[1] == stored_watermark(client, "user_id", "1")


def test_watermarks_never_decrease(redis_url: str, client: redis.Redis) -> None:
    key = watermark_key(NS, "user_id", "42")
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        high = publisher.invalidate("user_id", "42", future_buffer_ms=600_000)
        ttl_after_high = client.pttl(key)
        # A later, smaller buffer must neither lower the watermark nor shorten its lifetime.
        again = publisher.invalidate("user_id", "42", future_buffer_ms=0)
        many = publisher.invalidate_many([("user_id", "42"), ("user_id", "43")], future_buffer_ms=1)
    assert again == high
    assert many[0] == high
    assert many[1] < high
    assert stored_watermark(client, "user_id", "42") == high
    assert ttl_after_high > HOUR_MS + 500_000
    assert client.pttl(key) > HOUR_MS + 500_000
    # The announced watermark is the effective (max) one, not now + the smaller buffer.
    events = [event for _, event in stream(client)]
    assert [e.entities[0][2] for e in events] == [high, high, high]


def test_watermarks_never_decrease_async(redis_url: str, client: redis.Redis) -> None:
    async def main() -> tuple[int, int]:
        async with Publisher.from_url(redis_url, namespace=NS) as publisher:
            high = await publisher.ainvalidate("user_id", "9", future_buffer_ms=600_000)
            low = await publisher.ainvalidate("user_id", "9", future_buffer_ms=3)
            return high, low

    high, low = asyncio.run(main())
    assert low == high == stored_watermark(client, "user_id", "9")


def test_awkward_key_types_and_long_ids(redis_url: str, client: redis.Redis) -> None:
    long_id = "x" * 1000
    entities = [("a:b", "{c}=d"), ("user_id", long_id), ("ü", "/")]
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        marks = publisher.invalidate_many(entities)
    for (key_type, entity_id), mark in zip(entities, marks, strict=True):
        assert stored_watermark(client, key_type, entity_id) == mark
    [(_, event)] = stream(client)
    assert [e[:2] for e in event.entities] == entities  # the event carries the full id


def test_ids_survive_the_lua_json_encoder(redis_url: str, client: redis.Redis) -> None:
    """The scripts build the event JSON in Lua (cjson): every id must decode back unchanged."""
    ids = st.text(
        alphabet=st.one_of(
            st.characters(blacklist_categories=("Cs",)),
            st.sampled_from(['"', "\\", "/", "\n", "\x00", "\x7f", "\u2028", "\U0001f680"]),
        ),
        min_size=0,
        max_size=30,
    )

    with Publisher.from_url(redis_url, namespace=NS) as publisher:

        @settings(max_examples=30, deadline=None)
        @given(st.lists(ids, min_size=1, max_size=4), ids.filter(bool))
        def check(batch: list[str], key_type: str) -> None:
            marks = publisher.invalidate_many([(key_type, i) for i in batch])
            [(_, fields)] = client.xrevrange(bus_key(NS), count=1)
            event = decode(fields[b"d"])
            assert event.entities == tuple(
                (key_type, i, m) for i, m in zip(batch, marks, strict=True)
            )

        check()


@pytest.mark.parametrize("namespace", ["ns/with\\slash", 'q"uote', "ünï 🚀", "a:b{c}"])
def test_awkward_namespaces_round_trip(redis_url: str, client: redis.Redis, namespace: str) -> None:
    """The namespace is JSON-encoded by Lua (cjson escapes '/' as '\\/'): it must decode back."""
    with Publisher.from_url(redis_url, namespace=namespace) as publisher:
        mark = publisher.invalidate("user_id", "1")
        flushed = publisher.flushall()
    events = [event for _, event in stream(client, namespace)]
    assert [(e.namespace, e.seq) for e in events] == [(namespace, 1), (namespace, 2)]
    assert events[0].entities == (("user_id", "1", mark),)
    assert events[1].watermark == flushed
    assert stored_watermark(client, "user_id", "1", namespace) == mark


def test_a_large_batch_is_one_event(redis_url: str, client: redis.Redis) -> None:
    entities = [("user_id", str(i)) for i in range(5000)]
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        marks = publisher.invalidate_many(entities)
    [(_, event)] = stream(client)
    assert len(event.entities) == 5000
    assert [e[:2] for e in event.entities] == entities
    assert [e[2] for e in event.entities] == marks
    assert stored_watermark(client, "user_id", "4999") == marks[-1]


def test_a_refused_invalidation_leaves_nothing_behind(redis_url: str, client: redis.Redis) -> None:
    """All or nothing: an invalidation either raises W(e) *and* announces it, or does neither."""
    with Publisher.from_url(redis_url, namespace=NS, attempts=1) as publisher:
        try:
            mark = publisher.invalidate("user_id", "1", future_buffer_ms=2**62)
        except (ValueError, PublishError):
            assert client.exists(watermark_key(NS, "user_id", "1")) == 0
            assert client.exists(bus_key(NS)) == 0
        else:
            assert [e.entities for _, e in stream(client)] == [(("user_id", "1", mark),)]
            assert client.pttl(watermark_key(NS, "user_id", "1")) > 0


# -- flush -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_flushall_sets_the_namespace_watermark(
    redis_url: str, client: redis.Redis, mode: str
) -> None:
    client.set(b"unrelated", b"stays")
    before = redis_now(client)
    if mode == "sync":
        with Publisher.from_url(redis_url, namespace=NS) as publisher:
            first = publisher.flushall()
            second = publisher.flushall()
    else:

        async def main() -> tuple[int, int]:
            async with Publisher.from_url(redis_url, namespace=NS) as publisher:
                return await publisher.aflushall(), await publisher.aflushall()

        first, second = asyncio.run(main())
    after = redis_now(client)
    assert before <= first <= second <= after
    assert int(client.get(flush_key(NS))) == second
    assert client.pttl(flush_key(NS)) == -1  # never expires
    assert client.get(b"unrelated") == b"stays"  # a watermark, never FLUSHALL
    events = [event for _, event in stream(client)]
    assert [type(e) for e in events] == [FlushEvent, FlushEvent]
    assert [(e.seq, e.watermark) for e in events] == [(1, first), (2, second)]


def test_flush_watermark_never_decreases(redis_url: str, client: redis.Redis) -> None:
    topic = Topic(namespace=NS)

    async def main() -> tuple[int, int]:
        async with AsyncRedis.from_url(redis_url) as conn:
            high = await topic.flush(conn, future_buffer_ms=600_000)
            low = await topic.flush(conn, future_buffer_ms=0)
            return high, low

    high, low = asyncio.run(main())
    assert low == high == int(client.get(flush_key(NS)))


# -- sequence, stream bound, transports, namespaces -----------------------------------------


def test_sequence_numbers_are_consecutive(redis_url: str, client: redis.Redis) -> None:
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        publisher.invalidate("user_id", "1")
        publisher.invalidate_many([("user_id", "2"), ("user_id", "3")])
        publisher.flushall()

        async def main() -> None:
            await publisher.ainvalidate("user_id", "4")
            await publisher.aflushall()
            await publisher.ainvalidate_many([("org", "1")])
            await publisher.aclose()

        asyncio.run(main())
        publisher.invalidate("user_id", "5")
    entries = stream(client)
    assert [event.seq for _, event in entries] == list(range(1, 8))
    ids = [entry_id for entry_id, _ in entries]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(b"-")))
    assert int(client.get(seq_key(NS))) == 7


def test_stream_length_is_bounded(redis_url: str, client: redis.Redis) -> None:
    publisher = Publisher.from_url(redis_url, namespace=NS, stream_maxlen=100)

    async def main() -> None:
        try:
            for i in range(2000):
                await publisher.ainvalidate("user_id", str(i))
        finally:
            await publisher.aclose()

    asyncio.run(main())
    length = client.xlen(bus_key(NS))
    assert 100 <= length <= 400  # MAXLEN ~ trims whole nodes: approximately, never unbounded
    [(_, newest)] = client.xrevrange(bus_key(NS), count=1)
    assert decode(newest[b"d"]).seq == 2000  # trimming only ever drops the oldest


def test_pubsub_transport_publishes_on_the_channel(redis_url: str, client: redis.Redis) -> None:
    listener = client.pubsub()
    try:
        listener.subscribe(bus_key(NS))
        wait_until(
            lambda: (m := listener.get_message(timeout=0.1)) and m["type"] == "subscribe",
            timeout=10,
        )
        with Publisher.from_url(redis_url, namespace=NS, transport="pubsub") as publisher:
            mark = publisher.invalidate("user_id", "42")
            flushed = publisher.flushall()
        received: list[bytes] = []

        def got_two() -> bool:
            message = listener.get_message(timeout=0.1)
            if message is not None and message["type"] == "message":
                received.append(message["data"])
            return len(received) == 2

        wait_until(got_two, timeout=10)
    finally:
        listener.close()
    first, second = (decode(data) for data in received)
    assert isinstance(first, InvalidateEvent)
    assert first.entities == (("user_id", "42", mark),)
    assert first.seq == 1
    assert isinstance(second, FlushEvent)
    assert (second.seq, second.watermark) == (2, flushed)
    assert stored_watermark(client, "user_id", "42") == mark
    assert client.exists(bus_key(NS)) == 0  # no stream with pub/sub


def test_namespaces_are_isolated(redis_url: str, client: redis.Redis) -> None:
    with (
        Publisher.from_url(redis_url, namespace="alpha") as alpha,
        Publisher.from_url(redis_url, namespace="beta") as beta,
    ):
        a1 = alpha.invalidate("user_id", "1")
        alpha.invalidate("user_id", "2")
        b1 = beta.invalidate("user_id", "1", future_buffer_ms=600_000)
        beta.flushall()
    assert stored_watermark(client, "user_id", "1", "alpha") == a1
    assert stored_watermark(client, "user_id", "1", "beta") == b1 != a1
    assert stored_watermark(client, "user_id", "2", "beta") is None
    assert client.get(flush_key("alpha")) is None
    assert client.get(flush_key("beta")) is not None
    assert [(e.namespace, e.seq) for _, e in stream(client, "alpha")] == [
        ("alpha", 1),
        ("alpha", 2),
    ]
    assert [(e.namespace, e.seq) for _, e in stream(client, "beta")] == [("beta", 1), ("beta", 2)]


def test_publisher_counts_published_events(redis_url: str) -> None:
    registry = CollectorRegistry()
    metrics = BusMetrics(NS, registry=registry)
    with Publisher.from_url(redis_url, namespace=NS, metrics=metrics) as publisher:
        publisher.invalidate("user_id", "1")
        publisher.invalidate_many([("user_id", "2"), ("user_id", "3")])
        publisher.flushall()
    name = "gcache_bus_published_total"
    assert metric(registry, name, namespace=NS, type="invalidate") == 3
    assert metric(registry, name, namespace=NS, type="flush") == 1


# -- bad arguments ---------------------------------------------------------------------------

BAD_CALLS = [
    pytest.param(("", "1", 0), ValueError, id="empty-key-type"),
    pytest.param((None, "1", 0), ValueError, id="none-key-type"),
    pytest.param(("user_id", "1", -1), ValueError, id="negative-buffer"),
    pytest.param(("user_id", "1", 1.5), TypeError, id="float-buffer"),
    pytest.param(("user_id", "1", True), TypeError, id="bool-buffer"),
    pytest.param(("user_id", "1", "10"), TypeError, id="str-buffer"),
    pytest.param(("user_id", "1", None), TypeError, id="none-buffer"),
]


@pytest.mark.parametrize(("args", "error"), BAD_CALLS)
def test_bad_arguments_are_refused_sync(
    redis_url: str, client: redis.Redis, args: tuple[Any, Any, Any], error: type[Exception]
) -> None:
    key_type, entity_id, buffer = args
    with Publisher.from_url(redis_url, namespace=NS) as publisher:
        with pytest.raises(error):
            publisher.invalidate(key_type, entity_id, future_buffer_ms=buffer)
        with pytest.raises(error):
            publisher.invalidate_many(
                [("user_id", "0"), (key_type, entity_id)], future_buffer_ms=buffer
            )
    # Nothing at all was published: a batch is refused as a whole.
    assert client.exists(bus_key(NS), seq_key(NS)) == 0
    assert list(client.scan_iter(match=f"{NS}:w:*")) == []


@pytest.mark.parametrize(("args", "error"), BAD_CALLS)
def test_bad_arguments_are_refused_async(
    redis_url: str, client: redis.Redis, args: tuple[Any, Any, Any], error: type[Exception]
) -> None:
    key_type, entity_id, buffer = args

    async def main() -> None:
        async with Publisher.from_url(redis_url, namespace=NS) as publisher:
            with pytest.raises(error):
                await publisher.ainvalidate(key_type, entity_id, future_buffer_ms=buffer)
            with pytest.raises(error):
                await publisher.ainvalidate_many([(key_type, entity_id)], future_buffer_ms=buffer)

    asyncio.run(main())
    assert client.exists(bus_key(NS), seq_key(NS)) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"transport": "kafka"},
        {"stream_maxlen": 0},
        {"watermark_ttl_sec": 0},
        {"watermark_ttl_sec": -1.0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Publisher.from_url("redis://127.0.0.1:1/0", namespace=NS, **options)


# -- failures --------------------------------------------------------------------------------


def test_redis_down_raises_publish_error_then_recovers(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    with Publisher.from_url(server.url, namespace=NS, attempts=2, budget_sec=0.5) as publisher:
        publisher.invalidate("user_id", "0")  # connected once, then the server dies
        server.kill()
        with pytest.raises(PublishError) as caught:
            publisher.invalidate("user_id", "1")
        assert isinstance(caught.value.__cause__, (redis.RedisError, OSError, TimeoutError))
        with pytest.raises(PublishError):
            publisher.invalidate_many([("user_id", "1"), ("user_id", "2")])
        with pytest.raises(PublishError):
            publisher.flushall()

        async def main() -> None:
            try:
                with pytest.raises(PublishError):
                    await publisher.ainvalidate("user_id", "1")
                with pytest.raises(PublishError):
                    await publisher.aflushall()
            finally:
                await publisher.aclose()

        asyncio.run(main())

        # The same publisher works again once Redis is back (empty: seq restarts at 1).
        server.restart()
        mark = wait_until(_publish_ok(publisher), timeout=20)
    check = server.client()
    try:
        assert stored_watermark(check, "user_id", "3") == mark
        assert [e.seq for _, e in stream(check)] == [1]
    finally:
        check.close()


def _publish_ok(publisher: Publisher) -> Any:
    def attempt() -> int | None:
        try:
            return publisher.invalidate("user_id", "3")
        except PublishError:
            return None

    return attempt


def test_unreachable_redis_raises_publish_error_on_first_use(
    fresh_redis_server: RedisServer,
) -> None:
    url = fresh_redis_server.url
    fresh_redis_server.kill()
    with (
        Publisher.from_url(url, namespace=NS, attempts=2, budget_sec=0.5) as publisher,
        pytest.raises(PublishError),
    ):
        publisher.invalidate("user_id", "1")


def test_publisher_built_from_an_async_client(redis_url: str, client: redis.Redis) -> None:
    async def main() -> tuple[int, list[int], int]:
        conn = AsyncRedis.from_url(redis_url)
        try:
            publisher = Publisher(conn, namespace=NS)
            one = await publisher.ainvalidate("user_id", "1")
            many = await publisher.ainvalidate_many([("user_id", "2"), ("user_id", "3")])
            flushed = await publisher.aflushall()
            await publisher.aclose()
            assert await conn.ping()  # not owned: the publisher must not close it
            return one, many, flushed
        finally:
            await conn.aclose()

    one, many, flushed = asyncio.run(main())
    assert stored_watermark(client, "user_id", "1") == one
    assert [stored_watermark(client, "user_id", i) for i in ("2", "3")] == many
    assert int(client.get(flush_key(NS))) == flushed
    assert [e.seq for _, e in stream(client)] == [1, 2, 3]


def test_publisher_from_a_client_factory(redis_url: str, client: redis.Redis) -> None:
    made: list[AsyncRedis] = []

    def factory() -> AsyncRedis:
        made.append(AsyncRedis.from_url(redis_url))
        return made[-1]

    with Publisher(factory, namespace=NS) as publisher:
        first = publisher.invalidate("user_id", "1")
        second = publisher.invalidate("user_id", "2")
    assert len(made) == 1  # one client per event loop, reused
    assert stored_watermark(client, "user_id", "1") == first
    assert stored_watermark(client, "user_id", "2") == second


# -- Redis Cluster (DESIGN §5: "a Redis Cluster deployment must work for ... the bus") -------


def test_publisher_works_on_redis_cluster(cluster_url: str) -> None:
    """Invalidation and flush on a 3-master Cluster: the watermark in the entity's slot, F and
    the stream in the namespace's slot, F's copy in every slot (bus._flush_copies)."""
    with Publisher(
        lambda: AsyncRedisCluster.from_url(cluster_url), namespace=NS, attempts=1
    ) as publisher:
        marks = publisher.invalidate_many([("user_id", str(n)) for n in range(20)])
        flushed = publisher.flushall()
    check = redis.RedisCluster.from_url(cluster_url)
    try:
        for n, mark in enumerate(marks):
            assert int(check.get(watermark_key(NS, "user_id", str(n)))) == mark
        assert int(check.get(flush_key(NS))) == flushed
        events = [decode(fields[b"d"]) for _, fields in check.xrange(bus_key(NS))]
        assert [event.seq for event in events] == [1, 2]
        assert isinstance(events[0], InvalidateEvent)
        assert [(k, i, w) for k, i, w in events[0].entities] == [
            ("user_id", str(n), mark) for n, mark in enumerate(marks)
        ]
        assert isinstance(events[1], FlushEvent) and events[1].watermark == flushed
        assert int(check.get(seq_key(NS))) == 2
        copies = [flush_copy_key(NS, slot_tag(slot)) for slot in (0, 5000, 16383)]
        assert [int(check.get(copy)) for copy in copies] == [flushed] * 3
    finally:
        check.close()
