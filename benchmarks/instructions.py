"""``python -m benchmarks.instructions``: instructions per call of the hot paths, under callgrind.

Wall-clock figures on a shared two-core machine move by more than the margins they are judged
against. Instruction counts do not: ``valgrind --tool=callgrind`` counts what the client process
executes, whatever else the machine is doing, and the Redis server (a separate, native process)
is not counted at all. So this reports, for each path, the instructions one call costs in the
process that makes it: gcache's Python, redis-py's command path, asyncio's loop and the kernel
interface on the client side.

Each path runs in a child process under callgrind twice, with ``n`` and ``2n`` timed calls after
the same warm-up; the difference divided by ``n`` is the per-call figure, with start-up, imports
and warm-up cancelled out. Every timed block is checked to have taken its path (the checks of
:mod:`benchmarks.checks`), as in the timed benchmark.

The caches are built without the invalidation bus: its subscriber's heartbeats cost CPU per
second, not per call (about 0.5% of a core here, idle), and callgrind's slowdown would charge
fifty times more of them to each call. The hit paths measured do not depend on the bus (the
REMOTE hit and the untracked LOCAL hits take the same path with or without it).

The tracked REMOTE hit against the raw GET is then a noise-free reading of the CPU that gcache
adds to one round trip (its wall-clock ratio adds the round trip's kernel and idle time, which
gcache does not add to).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gcache._codec import encode, serialize
from integration.redis_server import RedisServer

from .checks import expect_path, local_hits, remote_hits
from .subjects import ENTITY_ID, VALUE, Subjects, bare_async, bare_sync

__all__ = ["counting_main", "main"]

PATHS: Final = (
    "async_bare",
    "sync_bare",
    "async_local_hit",
    "sync_local_hit",
    "raw_redis_get",
    "tracked_remote_hit",
)
_BASELINES: Final = {
    "async_local_hit": "async_bare",
    "sync_local_hit": "sync_bare",
    "tracked_remote_hit": "raw_redis_get",
}
_WARMUP: Final = 300
_RAW_KEY: Final = "bench-instructions:raw"
_MODULE: Final = "benchmarks.instructions"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


# -- the child: one path, n calls, under callgrind ------------------------------------------------


async def _run_path(path: str, url: str, calls: int) -> None:
    subjects = Subjects(url, CollectorRegistry(), bus=False)
    ids = [ENTITY_ID] * calls
    if path == "async_bare":
        await _loop(bare_async, ids)
    elif path == "sync_bare":
        _sync_loop(bare_sync, ids)
    elif path == "raw_redis_get":
        raw = Redis.from_url(url)
        # A value of the size gcache stores for the REMOTE hit (what the raw GET is compared to).
        await raw.set(_RAW_KEY, encode(serialize(VALUE), 0))
        get: Callable[[str], Awaitable[Any]] = raw.get
        await _loop(get, [_RAW_KEY] * calls)
    elif path == "tracked_remote_hit":
        check = expect_path(subjects, path, body_runs=0, counters=remote_hits(calls))
        with subjects.remote_cache.enable():
            await _loop(subjects.tracked_remote_hit, ids, check)
    elif path == "async_local_hit":
        check = expect_path(subjects, "async_hit", body_runs=0, counters=local_hits(calls))
        with subjects.hit_cache.enable():
            await _loop(subjects.async_hit, ids, check)
    elif path == "sync_local_hit":
        check = expect_path(subjects, "sync_hit", body_runs=0, counters=local_hits(calls))

        def in_plain_thread() -> None:
            with subjects.hit_cache.enable():
                _sync_loop(subjects.sync_hit, ids, check)

        thread = threading.Thread(target=in_plain_thread)
        thread.start()
        thread.join()
    else:
        raise ValueError(f"unknown path {path!r}; one of {', '.join(PATHS)}")


async def _loop(
    fn: Callable[[str], Awaitable[Any]],
    ids: list[str],
    check: AbstractContextManager[None] | None = None,
) -> None:
    """Warm up, then the counted calls, inside ``check`` (the path check) when given."""
    for arg in ids[:1] * _WARMUP:  # the same warm-up whatever n (ids are all alike)
        await fn(arg)
    gc.collect()  # both runs start their counted calls from the same heap
    with check or nullcontext():
        for arg in ids:
            await fn(arg)


def _sync_loop(
    fn: Callable[[str], Any],
    ids: list[str],
    check: AbstractContextManager[None] | None = None,
) -> None:
    """:func:`_loop` for a sync function, in the calling thread."""
    for arg in ids[:1] * _WARMUP:  # the same warm-up whatever n (ids are all alike)
        fn(arg)
    gc.collect()
    with check or nullcontext():
        for arg in ids:
            fn(arg)


def _child(path: str, url: str, calls: int) -> None:
    asyncio.run(_run_path(path, url, calls))
    sys.stdout.flush()
    # Leave at once: what closing connections and threads costs is not a per-call figure, and
    # the two runs of a path must differ only by their timed calls.
    os._exit(0)


# -- the parent: two runs per path, the difference per call ----------------------------------------


def _instructions(valgrind: str, module: str, path: str, url: str, calls: int) -> int:
    command = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        module,
        "--child",
        path,
        "--url",
        url,
        "--calls",
        str(calls),
    ]
    # A fixed hash seed: with a random one, start-up (imports, dict layouts) differs from run to
    # run by more than the calls being counted.
    env = os.environ | {"PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{path} under callgrind failed ({done.returncode}):\n{done.stderr}")
    return int(found.group(1).replace(",", ""))


def _count_on_new_server(valgrind: str, module: str, path: str, calls: int) -> int:
    """Instructions of ``python -m module --child path --url URL --calls calls`` under
    callgrind, against a Redis server of its own."""
    # A server of its own per run: both runs of a path must start from the same (empty) Redis,
    # or the priming calls of one would find what another left and take another path.
    with RedisServer.start() as server:
        return _instructions(valgrind, module, path, server.url, calls)


def _per_call(
    valgrind: str, module: str, paths: Sequence[str], calls: int, jobs: int
) -> dict[str, float]:
    """Instructions per call of each of ``paths`` (children of ``module``): two runs each, of
    ``calls`` and ``2 * calls`` calls, ``jobs`` runs at once; the difference divided by
    ``calls``."""
    runs = [(path, n) for path in paths for n in (calls, 2 * calls)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        counts = list(pool.map(lambda run: _count_on_new_server(valgrind, module, *run), runs))
    totals = dict(zip(runs, counts, strict=True))
    return {path: (totals[(path, 2 * calls)] - totals[(path, calls)]) / calls for path in paths}


def counting_main(
    argv: Sequence[str] | None,
    *,
    module: str,
    description: str,
    paths: Sequence[str],
    default_calls: int,
    child: Callable[[str, str, int], None],
) -> dict[str, float] | None:
    """The command line shared by the callgrind tools: in a child (``--child PATH``), run
    ``child(path, url, calls)``, which leaves the process; otherwise count every path and return
    its per-call figure, or None (after saying why) without valgrind."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument(
        "--calls", type=int, default=default_calls, help="n: calls in the shorter run"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="runs under callgrind at once"
    )
    parser.add_argument("--child", choices=paths, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.jobs < 1:
        parser.error("--calls and --jobs must be >= 1")
    if args.child is not None:
        child(args.child, args.url, args.calls)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return None
    figures = _per_call(valgrind, module, paths, args.calls, args.jobs)
    print(f"instructions per call, client process only (callgrind; runs of {args.calls:,} and "
          f"{2 * args.calls:,} calls, difference / {args.calls:,})")  # fmt: skip
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    figures = counting_main(
        argv,
        module=_MODULE,
        description="Instructions per call of gcache's hot paths, counted by callgrind.",
        paths=PATHS,
        default_calls=2000,
        child=_child,
    )
    if figures is None:
        return 2
    print(f"{'path':<20} {'instructions':>12}  vs baseline")
    for path in PATHS:
        baseline = _BASELINES.get(path)
        versus = ""
        if baseline is not None:
            added = figures[path] - figures[baseline]
            versus = f"{figures[path] / figures[baseline]:.3f}x {baseline} (+{added:,.0f})"
        print(f"{path:<20} {figures[path]:>12,.0f}  {versus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
