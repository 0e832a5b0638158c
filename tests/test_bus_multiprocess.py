"""The invalidation bus across real replica processes (DESIGN §3.1-3.3, §5; README "The
invalidation bus").

Every replica is its own process (``tests.replica_process``) with LOCAL + REMOTE on and the bus
on; its cached ``get(uid)`` reads the source of truth, ``truth:<uid>`` in another private Redis.
The test process is the writer: it bumps the truth, then invalidates through a replica's
``ainvalidate``, a bare ``bus.Publisher`` or ``python -m bus``, and checks what every replica
serves afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from bus import Publisher
from integration.redis_server import RedisServer, wait_until
from tests.replica_process import (
    STALENESS_MS,
    WAIT,
    Fleet,
    Read,
    Replica,
    Writer,
    checked_reads,
    run_cli,
    staleness_violations,
    start_fleet,
    total_calls,
    until_local,
    until_version,
    wait_reads_after,
)

pytestmark = pytest.mark.slow

TRANSPORTS = ["streams", "pubsub"]
BOUND_S = STALENESS_MS / 1000


def cache_everywhere(fleet: list[Replica], version: int) -> None:
    """Every replica holds ``version`` of uid 1 in LOCAL (a read is a LOCAL hit)."""
    for replica in fleet:
        until_local(replica, "1", version)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_replica_follows_invalidations_and_flushes(
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    # The default bound (500 ms): a proof lapse would send a read to REMOTE, which would hide a
    # replica that never applied an invalidation; the longer bound leaves no room for one.
    fleet = a, b, c = start_fleet(
        replicas, fresh_redis_server, redis_url, transport=transport, max_staleness_ms=500
    )

    # Each replica computes or fetches version 1 once, then serves it from LOCAL without
    # calling the function again.
    for replica in fleet:
        first = replica.read()
        assert first.version == 1
        assert replica.read()[:2] == (1, first.call)  # not computed again
        assert until_local(replica, "1", 1).call == first.call
    assert total_calls(fleet) == 1  # b and c got a's value from REMOTE

    publisher = Publisher.from_url(fresh_redis_server.url, transport=transport)
    try:
        # 1. Through replica a's ainvalidate: a's own LOCAL entry is gone at once, and REMOTE
        #    refuses the old value, so a's next read runs the function.
        truth.set("truth:1", 2)
        a.invalidate("1")
        fresh = a.read()
        assert (fresh.version, fresh.source) == (2, "function")
        for replica in (b, c):
            first_new = until_version(replica, 2)
            assert first_new.source != "local", f"{replica.name} kept version 1 in LOCAL"
        cache_everywhere(fleet, 2)

        # 2. Through a bare Publisher (no cache in that process).
        calls = total_calls(fleet)
        truth.set("truth:1", 3)
        publisher.invalidate("uid", "1")
        for replica in fleet:
            assert until_version(replica, 3).source != "local"
        assert total_calls(fleet) >= calls + 1
        cache_everywhere(fleet, 3)

        # 3. Through the CLI, in another process.
        calls = total_calls(fleet)
        truth.set("truth:1", 4)
        out = run_cli(
            "invalidate",
            "--url",
            fresh_redis_server.url,
            "--transport",
            transport,
            "--key-type",
            "uid",
            "--id",
            "1",
        )
        assert "invalidated uid=1" in out.stdout
        for replica in fleet:
            assert until_version(replica, 4).source != "local"
        assert total_calls(fleet) >= calls + 1
        cache_everywhere(fleet, 4)

        # 4. A flush through a Publisher: every replica drops its LOCAL copy (the truth did
        #    not change, so "dropped" shows as a non-LOCAL read), and REMOTE no longer serves
        #    the old value, so the first replica to miss recomputes.
        calls = total_calls(fleet)
        publisher.flushall()
        missed = []
        for replica in fleet:
            missed.append(
                wait_until(
                    lambda r=replica: (x := r.read()).source != "local" and x,
                    timeout=WAIT,
                    message=f"{replica.name} to drop its LOCAL entry after the flush",
                )
            )
        assert [m.version for m in missed] == [4, 4, 4]
        assert missed[0].source == "function"
        assert total_calls(fleet) >= calls + 1
        cache_everywhere(fleet, 4)
    finally:
        publisher.close()

    for replica in fleet:
        stats = replica.stats()
        assert stats["events"] >= 4, stats  # 3 invalidations and a flush, at least
        assert stats["malformed"] == 0, stats


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_read_is_staler_than_the_bound(
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """The staleness invariant as a checker: a read that started more than max_staleness_ms
    after invalidation of version v returned never returns a version older than v."""
    fleet = start_fleet(replicas, fresh_redis_server, redis_url, transport=transport)
    a = fleet[0]
    publisher = Publisher.from_url(fresh_redis_server.url, transport=transport)

    def via_publisher() -> float:
        publisher.invalidate("uid", "1")
        return time.monotonic()

    writer = Writer(truth, [via_publisher, lambda: a.invalidate("1")], fleet)
    acks = writer.acks
    hits_before = {r.name: r.stats()["local_hits"] for r in fleet}
    for replica in fleet:
        replica.start_reading(["1"])
    try:
        writer.run(30)
        wait_reads_after(fleet, acks[-1][1] + BOUND_S)
    finally:
        reads = {r.name: r.stop_reading() for r in fleet}
        publisher.close()

    violations = staleness_violations(reads, {"1": acks}, BOUND_S)
    assert not violations, "\n".join(map(str, violations[:20]))
    assert checked_reads(reads, {"1": acks}, BOUND_S) > 0
    for replica in fleet:
        records = reads[replica.name]
        # The final version reached every replica, and most reads were served from the cache
        # (so the check above was about cached values, not about the function).
        assert records[-1][2] == acks[-1][0]
        assert replica.stats()["local_hits"] > hits_before[replica.name]
        assert sum(1 for r in records if not r[3]) > len(records) // 2, replica.name


@pytest.mark.parametrize(
    "b_starts",
    ["before_the_invalidation", "inside_the_future_buffer"],
)
def test_a_read_racing_a_write_is_never_served_later(
    b_starts: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """Replica b reads the truth (version 1), then stalls until the gate opens; meanwhile the
    truth becomes version 2 and replica a invalidates with a future buffer. b's late value must
    not be kept: not in b's LOCAL layer, not in REMOTE for c.

    ``inside_the_future_buffer``: b's call starts *after* the invalidation but still reads the
    old data (as a lagging read replica would); only ``future_buffer_ms`` refuses it."""
    buffer_ms = 2000 if b_starts == "before_the_invalidation" else 3000
    fleet = a, b, c = start_fleet(replicas, fresh_redis_server, redis_url, transport="streams")
    b.gate("1")

    def start_b() -> Any:
        pending = b.read_async("1")
        # The call counter is bumped right after the truth was read.
        wait_until(
            lambda: b.stats()["calls"].get("1", 0) == 1,
            timeout=WAIT,
            message="b's function to have read the truth",
        )
        return pending

    if b_starts == "before_the_invalidation":
        pending = start_b()
        truth.set("truth:1", 2)
        a.invalidate("1", future_buffer_ms=buffer_ms)
    else:
        a.invalidate("1", future_buffer_ms=buffer_ms)
        pending = start_b()
        truth.set("truth:1", 2)
    refused_before = b.stats()["disabled"].get("invalidated_during_call", 0)
    truth.set("gate:1", 1)
    late = Read(*pending.result(WAIT))
    assert (late.version, late.source) == (1, "function")
    # The watermark refused b's late write (REMOTE script, then LOCAL).
    assert b.stats()["disabled"].get("invalidated_during_call", 0) == refused_before + 1

    # b's own next read runs the function again (the late value is not in its LOCAL layer),
    # and c, which never computed, does not get it from REMOTE either.
    again = b.read()
    assert (again.version, again.source) == (2, "function")
    from_c = c.read()
    assert (from_c.version, from_c.source) in ((2, "function"), (2, "remote"))

    # Once the buffer has run out, caching resumes by itself everywhere.
    for replica in fleet:
        until_local(replica, "1", 2)


@pytest.mark.parametrize(
    "transport",
    [
        "streams",
        "pubsub",
    ],
)
def test_an_idle_healthy_bus_keeps_every_local_hit(
    transport: str,
    replicas: Fleet,
    fresh_redis_server: RedisServer,
    redis_url: str,
    truth: redis.Redis,
) -> None:
    """Nothing is faulted and nothing is published: a subscriber that is live must keep its
    staleness proof (README: renewed every max_staleness_ms / 4 when idle), so every read of a
    cached entry is a LOCAL hit and none is bypassed as ``bus_unsynced``."""
    fleet = start_fleet(replicas, fresh_redis_server, redis_url, ("a", "b"), transport=transport)
    for replica in fleet:
        until_local(replica, "1", 1)
    before = {r.name: r.stats() for r in fleet}
    for replica in fleet:
        replica.start_reading(["1"])
    try:
        wait_until(
            lambda: all(r.reading_count() >= 750 for r in fleet),
            timeout=WAIT,
            message="750 reads on every replica",
        )
    finally:
        reads = {r.name: r.stop_reading() for r in fleet}
    for replica in fleet:
        stats, old = replica.stats(), before[replica.name]
        records = reads[replica.name]
        assert {(version, ran) for _, _, version, ran in records} == {(1, False)}
        assert stats["gaps"] == old["gaps"] and stats["reconnects"] == old["reconnects"]
        bypassed = stats["bus_unsynced"] - old["bus_unsynced"]
        assert bypassed == 0, f"{replica.name}: {bypassed:g} of {len(records)} reads bypassed LOCAL"
        assert stats["local_hits"] - old["local_hits"] >= len(records)
