"""Faults under the invalidation bus, with real replica processes (DESIGN §3.3-3.4, §6).

The cache's Redis (a ``fresh_redis_server``, this test's alone) is the one the faults hit:
its bus connections are killed, it is frozen with SIGSTOP, it is restarted empty; or a replica
process itself is frozen while the stream is trimmed past it. The source of truth lives in the
shared private server, untouched, so every replica can always compute the right value: what is
checked is that none serves a wrong one, that the bus notices, and that caching comes back by
itself.
"""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from bus import Publisher, PublishError
from bus._names import bus_key, seq_key
from integration.redis_server import RedisServer, wait_until
from tests.replica_process import (
    STALENESS_MS,
    WAIT,
    Fleet,
    Writer,
    checked_reads,
    staleness_violations,
    start_fleet,
    until_local,
    until_stats,
    until_version,
    wait_reads_after,
)

pytestmark = pytest.mark.slow

BOUND_S = STALENESS_MS / 1000


def check(
    reads: dict[str, list[tuple[str, float, int, bool]]], acks: list[tuple[int, float]]
) -> None:
    violations = staleness_violations(reads, {"1": acks}, BOUND_S)
    assert not violations, "\n".join(map(str, violations[:20]))
    assert checked_reads(reads, {"1": acks}, BOUND_S) > 0


@pytest.mark.parametrize("transport", ["streams", "pubsub"])
def test_killed_bus_connections_reconnect_and_lose_nothing(
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """CLIENT KILL of every subscriber connection (named ``<client_name>-bus``): the reconnect
    is counted, caching resumes by itself, and nothing published meanwhile is lost.

    a and b keep reading under the staleness checker while a writer invalidates across the
    kill. c is frozen (SIGSTOP) from before the kill until invalidations have been published
    on a bus it is no longer connected to: with streams it must resume from its last id and
    apply them (no gap, no flush), with pub/sub they are gone and it must flush LOCAL. Either
    way its first read once live again must not be the version it had cached."""
    fleet = a, b, c = start_fleet(replicas, fresh_redis_server, redis_url, transport=transport)
    for replica in fleet:
        until_local(replica, "1", 1)
    publisher = Publisher.from_url(fresh_redis_server.url, transport=transport)

    def via_publisher() -> float:
        publisher.invalidate("uid", "1")
        return time.monotonic()

    readers = [a, b]
    writer = Writer(truth, [via_publisher], readers)
    for replica in readers:
        replica.start_reading(["1"])
    try:
        writer.run(3)
        cached = until_local(c, "1", writer.acks[-1][0])
        before = {r.name: r.stats() for r in fleet}
        c.pause()
        try:
            killed = fresh_redis_server.kill_clients(name="gcache-bus")
            assert killed >= len(fleet)
            writer.run(3)  # published while a and b reconnect, and c is cut off
        finally:
            c.resume()
        for replica in fleet:
            old = before[replica.name]
            until_stats(
                replica,
                lambda s, old=old: s["reconnects"] > old["reconnects"] and s["state"] == "live",
                "reconnected and live",
            )
        missed = writer.acks[-1]
        wait_until(lambda: time.monotonic() > missed[1] + BOUND_S, timeout=WAIT, message="bound")
        first = c.read()
        assert first.version == missed[0] > cached.version, first
        assert first.source != "local"
        writer.run(3)
        wait_reads_after(readers, writer.acks[-1][1] + BOUND_S)
    finally:
        reads = {r.name: r.stop_reading() for r in readers}
        publisher.close()
    check(reads, writer.acks)

    final = writer.acks[-1][0]
    for replica in fleet:
        stats = replica.stats()
        old = before[replica.name]
        assert stats["reconnects_metric"] > old["reconnects_metric"]
        if transport == "streams":
            # Resumed from its last id: nothing was lost, so nothing was flushed.
            assert stats["gaps"] == old["gaps"], stats
        else:
            assert stats["gap_reasons"].get("subscribed", 0) > old["gap_reasons"]["subscribed"]
        if replica in readers:
            assert reads[replica.name][-1][2] == final
        until_local(replica, "1", final)


@pytest.mark.parametrize("transport", ["streams", "pubsub"])
def test_redis_paused_beyond_the_bound(
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """SIGSTOP the cache's Redis for longer than max_staleness_ms while replicas read and a
    writer updates: every subscriber stops being fresh, tracked LOCAL hits are bypassed
    (``bus_unsynced``) and reads keep returning correct values (from the function: REMOTE
    times out); after SIGCONT each is fresh again by itself and LOCAL hits come back. The
    staleness checker runs across the whole pause."""
    fleet = start_fleet(
        replicas, fresh_redis_server, redis_url, transport=transport, socket_timeout=0.3
    )
    for replica in fleet:
        until_local(replica, "1", 1)
    publisher = Publisher.from_url(fresh_redis_server.url, transport=transport)

    def via_publisher() -> float:
        # Sent while Redis is frozen, an invalidation waits for SIGCONT, or fails once its
        # retries run out (PublishError): a writer then tries again until one is acknowledged
        # (raising a watermark twice is harmless), and the ack is when that one returned.
        deadline = time.monotonic() + WAIT
        while True:
            try:
                publisher.invalidate("uid", "1")
            except PublishError:
                if time.monotonic() > deadline:
                    raise
                continue
            return time.monotonic()

    writer = Writer(truth, [via_publisher], fleet, reads_between=2)
    for replica in fleet:
        replica.start_reading(["1"])
    paused_at = resumed_at = 0.0
    try:
        writer.start()
        writer.wait_acks(3)
        before = {r.name: r.stats() for r in fleet}
        fresh_redis_server.pause()
        paused_at = time.monotonic()
        try:
            for replica in fleet:
                old = before[replica.name]
                until_stats(  # (not LIVE: the subscriber has given up on its session)
                    replica,
                    lambda s, old=old: (
                        not s["fresh"]
                        and s["state"] != "live"
                        and s["bus_unsynced"] > old["bus_unsynced"]
                    ),
                    "unfresh, reconnecting, bypassing LOCAL hits",
                )
            counts = {r.name: r.reading_count() for r in fleet}
            for replica in fleet:  # reads go on (slowly: REMOTE times out) while Redis is frozen
                until_stats(
                    replica,
                    lambda s, r=replica: r.reading_count() >= counts[r.name] + 2,
                    "two more reads while Redis is paused",
                )
        finally:
            fresh_redis_server.resume()
            resumed_at = time.monotonic()
        during = {r.name: r.stats() for r in fleet}
        for replica in fleet:
            old = during[replica.name]
            until_stats(
                replica,
                lambda s, old=old: s["fresh"] and s["local_hits"] > old["local_hits"],
                "fresh again, serving LOCAL hits",
            )
        writer.wait_acks(len(writer.acks) + 3)
        writer.stop()
        wait_reads_after(fleet, writer.acks[-1][1] + BOUND_S)
    finally:
        writer.stop()
        reads = {r.name: r.stop_reading() for r in fleet}
        publisher.close()
    check(reads, writer.acks)

    for replica in fleet:
        records = reads[replica.name]
        in_pause = [r for r in records if paused_at < r[1] < resumed_at]
        # Served by the function (REMOTE timed out, LOCAL bypassed), and correct (the checker).
        assert any(ran for _, _, _, ran in in_pause), f"{replica.name}: no read ran the function"
        assert records[-1][2] == writer.acks[-1][0]


def test_redis_restarted_empty(
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """Redis comes back empty (the stream, its sequence and every watermark gone): each replica
    reports a gap and flushes LOCAL, so the next read recomputes; caching then resumes."""
    fleet = a, b, c = start_fleet(replicas, fresh_redis_server, redis_url)
    for replica in fleet:
        until_local(replica, "1", 1)
    before = {r.name: r.stats() for r in fleet}

    fresh_redis_server.restart()
    for replica in fleet:
        old = before[replica.name]
        stats = until_stats(
            replica,
            lambda s, old=old: s["gaps"] > old["gaps"] and s["state"] == "live",
            "a gap reported and live again",
        )
        assert stats["gap_reasons"].get("server_restarted", 0) == 1, stats

    # LOCAL was flushed and REMOTE is empty: nobody serves the pre-restart entry from LOCAL,
    # the first reader runs the function. (A replica's first REMOTE call may also meet its
    # pooled connection closed by the restart: it then fails open to the function too.)
    first = a.read()
    assert (first.version, first.source) == (1, "function")
    for replica in (b, c):
        after = replica.read()
        assert (after.version, after.source) in ((1, "remote"), (1, "function"))

    # The bus works on the new server: an invalidation reaches everyone.
    truth.set("truth:1", 2)
    with Publisher.from_url(fresh_redis_server.url) as publisher:
        publisher.invalidate("uid", "1")
    for replica in fleet:
        assert until_version(replica, 2).source != "local"
        until_local(replica, "1", 2)


def test_stream_trimmed_past_a_frozen_replica(
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """A replica process is frozen (SIGSTOP) while more events than ``stream_maxlen`` are
    published: when it is thawed its position has been trimmed away, so it reports
    ``missed_events`` and flushes its LOCAL layer (the lost events might have named its
    entries); then it caches again."""
    maxlen = 100
    a, b = start_fleet(replicas, fresh_redis_server, redis_url, ("a", "b"), stream_maxlen=maxlen)
    for replica in (a, b):
        until_local(replica, "1", 1)
    before, a_before = b.stats(), a.stats()

    client = fresh_redis_server.client()
    b.pause()
    try:
        with Publisher.from_url(fresh_redis_server.url, stream_maxlen=maxlen) as publisher:
            for chunk in range(8):  # 400 events, none about uid 1
                for i in range(maxlen // 2):
                    publisher.invalidate("uid", f"other-{chunk}-{i}")
                # a keeps up (never more than half the stream behind), b is frozen.
                published = int(client.get(seq_key("gcache")) or 0)
                until_stats(a, lambda s, p=published: s["last_seq"] == p, "a to keep up")
        oldest = client.xrange(bus_key("gcache"), count=1)
        assert client.xlen(bus_key("gcache")) < 8 * (maxlen // 2)
        oldest_seq = orjson.loads(oldest[0][1][b"d"])["s"]
        assert oldest_seq > before["last_seq"] + 1, "the stream was not trimmed past b"
    finally:
        b.resume()
        client.close()

    stats = until_stats(
        b,
        lambda s: s["gaps"] > before["gaps"] and s["state"] == "live",
        "a gap reported after the thaw",
    )
    assert stats["gap_reasons"].get("missed_events", 0) == 1, stats
    # uid 1 was not invalidated, but b cannot know: its LOCAL copy is gone (REMOTE still holds
    # a valid value: a REMOTE hit, or the function if REMOTE is slow; never a LOCAL hit).
    after = b.read()
    assert (after.version, after.source) in ((1, "remote"), (1, "function"))
    until_local(b, "1", 1)
    # a kept up all along: it saw every event, so no gap.
    assert a.stats()["gaps"] == a_before["gaps"]


@pytest.mark.parametrize("transport", ["streams", "pubsub"])
@pytest.mark.parametrize("stalled", ["process_frozen", "bus_loop_blocked"])
def test_a_stalled_replica_never_serves_what_was_invalidated_meanwhile(
    stalled: str,
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """uid 1 is invalidated while replica b cannot follow the bus: its whole process is frozen
    (SIGSTOP; the event may then still sit unread in its socket when it is thawed), or only the
    event loop its subscriber runs on is blocked (b keeps serving). Once the bound has passed,
    b's next read must not be the LOCAL copy it still holds: its last proof has expired."""
    a, b = start_fleet(replicas, fresh_redis_server, redis_url, ("a", "b"), transport=transport)
    for replica in (a, b):
        until_local(replica, "1", 1)
    stall, unstall = (b.pause, b.resume) if stalled == "process_frozen" else (b.stall_bus, None)
    stall()
    try:
        truth.set("truth:1", 2)
        with Publisher.from_url(fresh_redis_server.url, transport=transport) as publisher:
            publisher.invalidate("uid", "1")
        ack = time.monotonic()
        wait_until(lambda: time.monotonic() > ack + BOUND_S, timeout=WAIT, message="the bound")
    finally:
        if unstall is not None:
            unstall()
    first = b.read()  # with the bus loop blocked, still blocked now
    if unstall is None:
        b.unstall_bus()
    assert first.start > ack + BOUND_S
    assert first.version == 2, first
    assert first.source != "local"
    assert until_version(a, 2).source != "local"
    for replica in (a, b):
        until_local(replica, "1", 2)
