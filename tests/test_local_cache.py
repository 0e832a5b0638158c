"""LocalCache on its own: watermark rules, bounds and the entity index (fake timer, no I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gcache._local import CHARGE_UNIT, ENTRY_OVERHEAD, MISS, LocalCache, charge


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(max_entries: int = 100, max_bytes: int = 10**9) -> tuple[LocalCache, FakeTimer]:
    timer = FakeTimer()
    return LocalCache(max_entries=max_entries, max_bytes=max_bytes, timer=timer), timer


ALICE = ("user_id", "alice")
BOB = ("user_id", "bob")


def test_put_get_and_ttl_is_the_callers_current_one() -> None:
    cache, timer = make()
    assert cache.put("k", "v", computed_at=10, size=1, entity=None)
    assert cache.get("k", ttl=60) == "v"
    timer.now += 30
    assert cache.get("k", ttl=60) == "v"
    assert cache.get("k", ttl=10) is MISS  # a lower TTL applies to what is already stored
    assert len(cache) == 0


def test_invalidate_drops_the_entity_and_refuses_older_writes() -> None:
    cache, _ = make()
    cache.put("a1", 1, computed_at=100, size=1, entity=ALICE)
    cache.put("a2", 2, computed_at=100, size=1, entity=ALICE)
    cache.put("b1", 3, computed_at=100, size=1, entity=BOB)
    cache.put("u", 4, computed_at=100, size=1, entity=None)
    assert cache.invalidate(ALICE, watermark=200) == 2
    assert cache.get("a1", 60) is MISS and cache.get("a2", 60) is MISS
    assert cache.get("b1", 60) == 3 and cache.get("u", 60) == 4
    # A fallback that started before the invalidation cannot leave its value behind...
    assert not cache.put("a1", "stale", computed_at=200, size=1, entity=ALICE)
    # ...one that started after it can.
    assert cache.put("a1", "fresh", computed_at=201, size=1, entity=ALICE)


def test_watermarks_never_move_back() -> None:
    cache, _ = make()
    cache.invalidate(ALICE, watermark=500)
    cache.invalidate(ALICE, watermark=300)
    assert not cache.put("a", 1, computed_at=400, size=1, entity=ALICE)


def test_flush_drops_everything_and_refuses_older_writes() -> None:
    cache, _ = make()
    cache.put("a", 1, computed_at=100, size=1, entity=ALICE)
    cache.put("u", 2, computed_at=100, size=1, entity=None)
    cache.flush(watermark=150)
    assert len(cache) == 0 and cache.nbytes == 0
    assert not cache.put("u", 2, computed_at=150, size=1, entity=None)
    assert cache.put("u", 2, computed_at=151, size=1, entity=None)


def test_entry_bound_evicts_least_recently_used() -> None:
    cache, _ = make(max_entries=2)
    cache.put("a", 1, computed_at=1, size=1, entity=None)
    cache.put("b", 2, computed_at=1, size=1, entity=None)
    assert cache.get("a", 60) == 1  # a is now the most recently used
    cache.put("c", 3, computed_at=1, size=1, entity=None)
    assert cache.get("b", 60) is MISS
    assert cache.get("a", 60) == 1 and cache.get("c", 60) == 3


def test_byte_bound_counts_value_size_plus_overhead() -> None:
    cache, _ = make(max_bytes=3 * charge(100))
    for key in "abcd":
        cache.put(key, key, computed_at=1, size=100, entity=None)
    assert len(cache) == 3 and cache.get("a", 60) is MISS
    assert cache.nbytes == 3 * charge(100)
    assert not cache.put("huge", "x", computed_at=1, size=10**6, entity=None)


def test_forgotten_watermarks_raise_a_floor_that_only_refuses_more() -> None:
    cache, _ = make(max_entries=2)
    cache.invalidate(("t", "1"), watermark=100)
    cache.invalidate(("t", "2"), watermark=200)
    cache.invalidate(("t", "3"), watermark=300)  # forgets ("t", "1"): floor becomes 100
    assert not cache.put("k", 1, computed_at=100, size=1, entity=("t", "1"))
    assert not cache.put("k", 1, computed_at=50, size=1, entity=("t", "never-seen"))
    assert cache.put("k", 1, computed_at=101, size=1, entity=("t", "1"))


def test_replacing_a_key_keeps_the_accounting_and_index_right() -> None:
    cache, _ = make()
    cache.put("a", 1, computed_at=1, size=10, entity=ALICE)
    cache.put("a", 2, computed_at=2, size=20, entity=ALICE)
    assert len(cache) == 1 and cache.nbytes == charge(20)
    assert cache.invalidate(ALICE, watermark=5) == 1
    assert cache.nbytes == 0


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abcdef"), st.integers(0, 50),
                  st.sampled_from([ALICE, BOB, None])),
        st.tuples(st.just("inv"), st.sampled_from([ALICE, BOB]), st.integers(0, 50)),
        st.tuples(st.just("flush"), st.integers(0, 50)),
    ),
    max_size=60,
)  # fmt: skip


@given(operations)
def test_model_no_entry_is_older_than_its_watermarks(ops: list[tuple[object, ...]]) -> None:
    """Property: whatever the sequence, every stored entry is newer than the watermarks that
    applied when it was stored, and stays consistent with a simple model."""
    cache, _ = make(max_entries=4)
    watermarks: dict[object, int] = {}
    flushed = 0
    for op in ops:
        if op[0] == "put":
            _, key, at, entity = op
            stored = cache.put(key, at, computed_at=at, size=1, entity=entity)  # type: ignore[arg-type]
            bound = max(flushed, watermarks.get(entity, 0) if entity else 0)
            assert stored == (at > bound)  # type: ignore[operator]
        elif op[0] == "inv":
            _, entity, at = op
            cache.invalidate(entity, watermark=at)  # type: ignore[arg-type]
            watermarks[entity] = max(watermarks.get(entity, 0), at)  # type: ignore[call-overload]
        else:
            cache.flush(watermark=op[1])  # type: ignore[arg-type]
            flushed = max(flushed, op[1])  # type: ignore[call-overload]
        assert len(cache) <= 4
        assert cache.nbytes == len(cache) * charge(1)
    for key in "abcdef":
        entry = cache._data.get(key)
        if entry is not None:  # each put stored its computed_at as the value
            assert entry.value > flushed
            if entry.entity is not None:
                assert entry.value > watermarks.get(entry.entity, 0)


def test_charge_rounds_up_to_whole_units_and_covers_the_overhead() -> None:
    for size in (0, 1, 63, 64, 1000, 16 * 1024, 10**6):
        cost = charge(size)
        assert cost % CHARGE_UNIT == 0
        assert size + ENTRY_OVERHEAD <= cost < size + ENTRY_OVERHEAD + CHARGE_UNIT
