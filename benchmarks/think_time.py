"""``python -m benchmarks.think_time``: what this machine charges for CPU work between GETs.

The tracked REMOTE hit is judged against back-to-back raw GETs, whose Python side is the same
redis-py call; what gcache adds is a few microseconds of Python (key, config provider,
single-flight, unpickling, metrics) between one reply and the next request. On a machine where
the Redis server and the client share two vCPUs, those microseconds can cost more than
themselves (likely the price of waking an idle server, or of caches gone cold meanwhile; this
tool measures the effect, not its cause).

This measures that on its own, with no gcache involved: back-to-back GETs with a pure-Python
busy loop of a known length after each, against GETs with nothing after them, alternating
within rounds. ``added`` is what the loop cost per GET; ``added / work`` above 1 is the machine's
surcharge on "think time", which gcache's overhead pays like any other code.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from time import perf_counter_ns

from redis.asyncio import Redis

from integration.redis_server import RedisServer

__all__ = ["main"]

_WORK_US = (0.0, 1.0, 3.0, 7.0, 15.0, 30.0)
_CALLS = 200
_VALUE = b"x" * 219  # the size of the value the tracked REMOTE hit reads


def _spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


def _calibrate(target_us: float) -> tuple[int, float]:
    """Iterations of :func:`_spin` that take about ``target_us`` hot, and their measured µs."""
    if target_us == 0:
        return 0, 0.0
    per_iteration = _hot_us(10_000) / 10_000
    iterations = max(1, round(target_us / per_iteration))
    return iterations, _hot_us(iterations)


def _hot_us(iterations: int, repeat: int = 2_000) -> float:
    start = perf_counter_ns()
    for _ in range(repeat):
        _spin(iterations)
    return (perf_counter_ns() - start) / repeat / 1000


async def _measure(url: str, rounds: int) -> list[tuple[float, float, float]]:
    """``(work µs hot, GET+work µs, added µs)`` per work size: medians over ``rounds``."""
    client = Redis.from_url(url)
    try:
        await client.set("think-time", _VALUE)
        sizes = [_calibrate(target) for target in _WORK_US]
        samples: list[list[float]] = [[] for _ in sizes]
        get = client.get
        for index in range(rounds + 1):  # round 0 warms up and is dropped
            shift = index % len(sizes)
            for slot in [*range(shift, len(sizes)), *range(shift)]:
                iterations = sizes[slot][0]
                start = perf_counter_ns()
                for _ in range(_CALLS):
                    await get("think-time")
                    _spin(iterations)
                if index:
                    samples[slot].append((perf_counter_ns() - start) / _CALLS / 1000)
    finally:
        await client.aclose()
    bare = statistics.median(samples[0])
    return [
        (hot, statistics.median(timed), statistics.median(timed) - bare)
        for (_, hot), timed in zip(sizes, samples, strict=True)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.think_time",
        description="Per-GET cost of pure-Python work between back-to-back redis-py GETs.",
    )
    parser.add_argument("--rounds", type=int, default=30, help="rounds (default 30)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    with RedisServer.start() as server:
        rows = asyncio.run(_measure(server.url, args.rounds))
    print(f"redis-py asyncio GET of {len(_VALUE)} bytes, then a pure-Python loop; "
          f"medians of {args.rounds} rounds of {_CALLS} GETs")  # fmt: skip
    print(f"{'work (hot) us':>14} {'GET+work us':>12} {'added us':>9} {'added/work':>11}")
    for hot, timed, added in rows:
        surcharge = f"{added / hot:.2f}" if hot else "-"
        print(f"{hot:14.1f} {timed:12.1f} {added:9.1f} {surcharge:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
