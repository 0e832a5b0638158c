"""The LOCAL layer: a bounded, thread-safe LRU map in process memory.

Besides values it keeps the two things that make a local write safe to accept:

* a table of entity watermarks (``W(e)`` as this process knows it) and the namespace flush
  watermark; ``put`` refuses a value whose ``computed_at`` is not newer than either, which closes
  the read-before-write race for the LOCAL layer (a fallback that started before an invalidation
  cannot leave its result behind);
* an index from entity to its tracked keys, so ``invalidate`` removes exactly those entries.

Because invalidation *removes* entries and ``put`` checks watermarks under the same lock, a hit
needs no watermark check. Hits take no lock: ``dict.get`` is atomic under the GIL and a
concurrent removal only means the reader saw the value just before it was invalidated.

Every structure is bounded. The watermark table forgets its oldest entity when full, raising a
``floor`` that then applies to every entity: forgetting can only make ``put`` stricter, never let
a stale value in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["CHARGE_UNIT", "ENTRY_OVERHEAD", "MISS", "Entity", "LocalCache", "charge"]

Entity = tuple[str, str]
"""``(key_type, id)``"""

ENTRY_OVERHEAD = 256
"""Bytes charged per entry on top of the serialized value size: the key tuple, the entry record
and the LRU map's slot (``python -m benchmarks`` measures about 270 bytes). An estimate; the byte
bound is a budget, not an exact RSS figure."""

CHARGE_UNIT = 64
"""Entries are charged in whole units of this many bytes (rounded up). A value under 16 KiB then
costs at most 256 units, and CPython shares the int objects 0..256: the per-entry charge needs
no int of its own (28 bytes saved per entry; the bound only becomes more conservative)."""


def charge(size: int) -> int:
    """Bytes charged for a value of ``size`` serialized bytes (see :data:`CHARGE_UNIT`)."""
    return -(-(size + ENTRY_OVERHEAD) // CHARGE_UNIT) * CHARGE_UNIT


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()


class _Entry:
    """One cached value. Kept small: it is most of the layer's memory per entry."""

    __slots__ = ("entity", "stored_at", "units", "value")

    def __init__(self, value: Any, stored_at: float, units: int, entity: Entity | None) -> None:
        self.value = value
        self.stored_at = stored_at
        self.units = units  # the charge in CHARGE_UNITs (a shared small int for most values)
        self.entity = entity


class LocalCache:
    """LRU of cached values, bounded by entry count and by (approximate) bytes."""

    def __init__(self, *, max_entries: int, max_bytes: int, timer: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._timer = timer
        self._lock = threading.Lock()
        self._data: OrderedDict[Hashable, _Entry] = OrderedDict()
        # The pieces of a hit, for the cached-function wrappers, which write out get()'s hit
        # rather than pay a call for it (the map is never replaced, only cleared).
        self.entry_of: Callable[[Hashable], _Entry | None] = self._data.get
        """``key`` -> its entry (``.value``, ``.stored_at``), expired or not, or None."""
        self.touch: Callable[[Hashable], None] = self._data.move_to_end
        """Mark ``key`` most recently used; KeyError if it is gone."""
        self._bytes = 0
        self._by_entity: dict[Entity, set[Hashable]] = {}
        self._watermarks: OrderedDict[Entity, int] = OrderedDict()
        self._floor = 0
        self._flushed_at = 0
        self._gap_floor = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable, ttl: float) -> Any:
        """The value, or :data:`MISS`. ``ttl`` is the config's *current* LOCAL TTL, so lowering
        it in the config provider takes effect on entries already stored.

        The wrappers in ``_cached`` write out this method's hit (``entry_of``, ``touch``) and
        call it for the rest: keep them in step."""
        entry = self._data.get(key)
        if entry is None:
            return MISS
        if self._timer() - entry.stored_at >= ttl:
            with self._lock:
                if self._data.get(key) is entry:
                    self._remove(key, entry)
            return MISS
        try:  # noqa: SIM105 - contextlib.suppress costs ~0.3 us on the hot path
            self._data.move_to_end(key)
        except KeyError:  # removed by another thread since the get; still a valid read
            pass
        return entry.value

    def put(
        self,
        key: Hashable,
        value: Any,
        *,
        computed_at: int,
        size: int,
        entity: Entity | None,
        verified_at: int | None = None,
    ) -> bool:
        """Store unless a watermark says the value is already stale; True if stored.

        ``verified_at`` is when the value was last shown valid against the server-side
        watermarks (the start of the REMOTE read it came from); by default its ``computed_at``.
        """
        cost = charge(size)
        if cost > self._max_bytes:
            return False
        with self._lock:
            if computed_at <= self._flushed_at:
                return False
            if (computed_at if verified_at is None else verified_at) <= self._gap_floor:
                return False
            if entity is not None and computed_at <= max(
                self._watermarks.get(entity, 0), self._floor
            ):
                return False
            old = self._data.get(key)
            if old is not None:
                self._remove(key, old)
            self._data[key] = _Entry(value, self._timer(), cost // CHARGE_UNIT, entity)
            self._bytes += cost
            if entity is not None:
                self._by_entity.setdefault(entity, set()).add(key)
            while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
                # popitem is one C call: a lock-free hit's move_to_end cannot interleave with
                # it the way it could with iterating the map.
                oldest, entry = self._data.popitem(last=False)
                self._unaccount(oldest, entry)
            return True

    def invalidate(self, entity: Entity, watermark: int) -> int:
        """Raise ``W(entity)`` to ``watermark`` (never lower it) and drop the entity's entries.
        Returns how many entries were dropped."""
        with self._lock:
            current = self._watermarks.get(entity)
            if current is None or watermark > current:
                self._watermarks[entity] = watermark
            self._watermarks.move_to_end(entity)
            while len(self._watermarks) > self._max_entries:
                _, forgotten = self._watermarks.popitem(last=False)
                self._floor = max(self._floor, forgotten)
            keys = self._by_entity.pop(entity, ())
            for key in keys:
                self._remove(key, self._data[key], unindex=False)
            return len(keys)

    def flush(self, watermark: int) -> None:
        """Drop everything and refuse values computed at or before ``watermark``."""
        with self._lock:
            self._flushed_at = max(self._flushed_at, watermark)
            self._clear()

    def reset(self, since: int) -> None:
        """Drop everything, after events before ``since`` may have been missed (a bus gap).

        Unlike :meth:`flush` this refuses values by when they were last *verified*, not when
        they were computed: a REMOTE value read after ``since`` was checked against watermarks
        that include every lost event, so it may be kept even if it is older."""
        with self._lock:
            self._gap_floor = max(self._gap_floor, since)
            self._clear()

    def _clear(self) -> None:
        self._data.clear()
        self._by_entity.clear()
        self._bytes = 0

    def _remove(self, key: Hashable, entry: _Entry, *, unindex: bool = True) -> None:
        del self._data[key]
        self._unaccount(key, entry, unindex=unindex)

    def _unaccount(self, key: Hashable, entry: _Entry, *, unindex: bool = True) -> None:
        self._bytes -= entry.units * CHARGE_UNIT
        if unindex and entry.entity is not None:
            keys = self._by_entity.get(entry.entity)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_entity[entry.entity]
