"""The staleness checker: every read judged against the version history (Polaris-style).

The rule (DESIGN §3.1 and §3.3, README "The guarantee"): once an invalidation of entity ``e``
has been *acknowledged* (the ``ainvalidate``/``Publisher.invalidate`` call returned) at time
``A``, a read of ``e`` that *began* at ``t`` with ``A < t - bound`` must return a version at least
as new as the one written before that invalidation. So for a read of ``e`` starting at ``t``::

    required(e, t) = max { version(w) : w writes e, ack(w) < t - bound }

and the read is **stale** if it returned less. Reads starting within the bound after an
acknowledgement are not constrained by it (the LOCAL layer may still hold the old value for
that long). For REMOTE hits and function results the invariant has no bound — Redis checks the
watermark with the value — so those are also checked with ``bound = 0`` (``remote_stale``).

Two more things are collected: reads that raised (errors surfaced to callers, which fail-open
forbids) and reads of a version whose write had not begun when the read ended (impossible:
a bug of the harness or of the clock, never of the cache).

Boundaries are strict on the side of the cache: an acknowledgement at exactly ``t - bound`` does
not constrain a read starting at ``t``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import CheckResult, ReadRecord, StaleRead, WriteRecord

__all__ = ["History", "check"]

_STRICT_SOURCES = frozenset({"remote", "function"})


@dataclass(slots=True)
class _Acked:
    """One entity's acknowledged writes in acknowledgement order, with running maxima."""

    acks: list[int]
    writes: list[WriteRecord]
    running_max: list[int]


@dataclass(slots=True)
class _Begun:
    """One entity's writes in begin order, with the running maximum of their versions."""

    begins: list[int]
    running_max: list[int]


class History:
    """The version history of every entity, indexed for the two questions the checker asks."""

    def __init__(self, writes: Iterable[WriteRecord], initial_version: int = 1) -> None:
        self.initial_version = initial_version
        acked: dict[int, list[WriteRecord]] = defaultdict(list)
        begun: dict[int, list[WriteRecord]] = defaultdict(list)
        for write in writes:
            begun[write.entity].append(write)
            if write.ack_ns is not None:
                acked[write.entity].append(write)
        self._acked: dict[int, _Acked] = {}
        for entity, items in acked.items():
            items.sort(key=lambda w: (w.ack_ns, w.version))
            self._acked[entity] = _Acked(
                acks=[w.ack_ns for w in items if w.ack_ns is not None],
                writes=items,
                running_max=_running_max(w.version for w in items),
            )
        self._begun: dict[int, _Begun] = {}
        for entity, items in begun.items():
            items.sort(key=lambda w: w.begin_ns)
            self._begun[entity] = _Begun(
                begins=[w.begin_ns for w in items],
                running_max=_running_max(w.version for w in items),
            )

    def required(self, entity: int, before_ns: int) -> tuple[int, int] | None:
        """``(version, index)``: the newest version acknowledged strictly before ``before_ns``,
        and how many acknowledgements that covers; None if there is none."""
        acked = self._acked.get(entity)
        if acked is None:
            return None
        count = bisect.bisect_left(acked.acks, before_ns)
        if count == 0:
            return None
        return acked.running_max[count - 1], count

    def first_newer(self, entity: int, version: int) -> WriteRecord:
        """The earliest-acknowledged write of ``entity`` with a version above ``version`` (the
        one a stale read missed); only called when such a write exists."""
        acked = self._acked[entity]
        index = bisect.bisect_right(acked.running_max, version)
        return acked.writes[index]

    def newest_begun(self, entity: int, before_ns: int) -> int:
        """The highest version whose write began strictly before ``before_ns``."""
        begun = self._begun.get(entity)
        if begun is None:
            return self.initial_version
        count = bisect.bisect_left(begun.begins, before_ns)
        if count == 0:
            return self.initial_version
        return max(self.initial_version, begun.running_max[count - 1])


def _running_max(values: Iterable[int]) -> list[int]:
    out: list[int] = []
    best = -(2**63)
    for value in values:
        best = max(best, value)
        out.append(best)
    return out


def _stale(history: History, read: ReadRecord, before_ns: int) -> StaleRead | None:
    found = history.required(read.entity, before_ns)
    if found is None or read.version >= found[0]:
        return None
    write = history.first_newer(read.entity, read.version)
    assert write.ack_ns is not None
    return StaleRead(
        read=read,
        required_version=found[0],
        write=write,
        late_ms=(read.start_ns - write.ack_ns) / 1e6,
    )


def check(
    reads: Sequence[ReadRecord],
    writes: Iterable[WriteRecord],
    bound_ms: float,
    *,
    initial_version: int = 1,
) -> CheckResult:
    """Judge every read; see the module docstring for the rules."""
    history = History(writes, initial_version)
    bound_ns = int(bound_ms * 1_000_000)
    result = CheckResult(bound_ms=bound_ms, reads=len(reads), constrained=0)
    for read in reads:
        if read.source == "error":
            result.errors.append(read)
            continue
        if history.required(read.entity, read.start_ns - bound_ns) is not None:
            result.constrained += 1
        stale = _stale(history, read, read.start_ns - bound_ns)
        if stale is not None:
            result.stale.append(stale)
        if read.source in _STRICT_SOURCES:
            strict = _stale(history, read, read.start_ns)
            if strict is not None:
                result.remote_stale.append(strict)
        if read.version > history.newest_begun(read.entity, read.end_ns):
            result.future.append(read)
    return result
