"""The run's yardstick of interpreter speed: a fixed piece of plain Python, timed in every round.

The virtual machines this project is measured on do not run at one speed. On the 2-core VM of
December 2026, 80 samples of this very function over 30 seconds took 1.45 µs per call at best,
1.52 µs at the median, more than 2.38 µs in a quarter of them and up to 3.13 µs, the slow spells
lasting a few seconds, with no steal time reported and on either CPU; on the 2-core AMD EPYC VM
of a later session the same function took 0.73-0.89 µs (196 samples over 30 s). Every figure in
microseconds moves with it (the same code's async LOCAL hit measured 1.79 µs in one full run and
2.70 µs in another), while ratios timed close together and instruction counts
(:mod:`benchmarks.instructions`) do not.

So every round also times :func:`reference_work`, about as much plain Python as a LOCAL hit
(calls, attribute and dict access, small-int arithmetic, a tuple). Its row in the report shows
the speed the machine ran at during the run; a per-call figure is only comparable across runs
or machines next to it.
"""

from __future__ import annotations

__all__ = ["reference_work"]

_TABLE: dict[int, int] = {}


def reference_work(seed: int) -> int:
    """The same work on every call, whatever ``seed`` (the loop's argument, as for a hit)."""
    total = 0
    table = _TABLE
    for i in range(8):
        key = (seed + i) & 7
        table[key] = table.get(key, 0) + 1
        pair = (i, key)
        total += pair[1] + len(pair)
    return total
