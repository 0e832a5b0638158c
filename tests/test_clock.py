"""Cache time: the Redis-time estimate is never ahead of the truth."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bus._clock import RedisClock, WallClock


class FakeMonotonic:
    def __init__(self) -> None:
        self.ns = 5_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_unsynced_until_a_sample_arrives() -> None:
    clock = RedisClock(monotonic_ns=FakeMonotonic())
    assert not clock.synced and clock.due()


@given(
    true_offset_us=st.integers(-(10**12), 10**12),
    samples=st.lists(
        st.tuples(st.integers(1, 5_000_000), st.floats(0, 1)), min_size=1, max_size=10
    ),
)
def test_estimate_is_a_lower_bound_of_redis_time(
    true_offset_us: int, samples: list[tuple[int, float]]
) -> None:
    """Whatever the round trips and wherever in them Redis read its clock, ``now_us`` never
    exceeds the true Redis time (the uncertainty counts against values, DESIGN §4)."""
    mono = FakeMonotonic()
    clock = RedisClock(monotonic_ns=mono, max_age=3600)
    for rtt_ns, where in samples:
        t0 = mono.ns
        served_at = t0 + int(rtt_ns * where)  # when Redis read its clock
        t1 = t0 + rtt_ns
        redis_us = served_at // 1000 + true_offset_us
        mono.ns = t1
        clock.observe(t0, redis_us, t1)
        assert clock.now_us() <= mono.ns // 1000 + true_offset_us
        mono.ns += 1_000_000


def test_tighter_sample_wins_and_old_samples_expire() -> None:
    mono = FakeMonotonic()
    clock = RedisClock(monotonic_ns=mono, max_age=10)
    clock.observe(mono.ns - 2_000_000, 1_000_000_000, mono.ns)  # 2 ms round trip
    loose = clock.now_us()
    clock.observe(mono.ns - 10_000, 1_000_000_000 + 1_000, mono.ns)  # tighter bound
    assert clock.now_us() > loose
    assert not clock.due()
    mono.ns += 11_000_000_000
    assert clock.due()
    clock.observe(mono.ns - 1000, 5, mono.ns)  # expired: a fresh sample replaces it
    assert clock.now_us() == 5


def test_wall_clock_needs_no_sync() -> None:
    clock = WallClock()
    assert clock.synced and not clock.due() and clock.now_us() > 1_600_000_000_000_000
