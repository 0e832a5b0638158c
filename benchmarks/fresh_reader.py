"""The reader of the cross-process freshness scenario: another process, serving reads.

:mod:`benchmarks.fresh_read` spawns one (``multiprocessing`` "spawn": a fresh interpreter, as
another replica would be). It builds its own instance of every contender
(:mod:`.fresh_contenders`) and answers commands on its pipe, one at a time::

    ("prime", contender, entity_id, deadline_sec)
        -> ("primed", version)   once the contender serves ``version`` from its cache (for the
                                 uncached redis-py floor: once it has read it)
        then ("fresh", t)        at the first read that returned a newer version, or
             ("never",)          if none had after ``deadline_sec``
    ("stop",)  -> the process exits

``t`` is ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process on Linux, so it
compares with the writer's). A failure answers ``("error", text)``.

After priming, the reader calls the cached function every millisecond (``asyncio.sleep(0.001)``,
the event loop's timer resolution) until it sees the new version. Polling with a sleep leaves
the CPU and the GIL to the background work being timed (gcache's subscriber thread, the peers'
listener tasks), at the price of up to one millisecond of resolution, the same for everyone.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Final

from redis.asyncio import Redis

from .checks import PathError
from .fresh_contenders import CONTENDERS, build
from .peer_caches import PeerCache, installed

__all__ = ["serve"]

_POLL_SEC: Final = 0.001
_PRIME_ATTEMPTS: Final = 5


class _Reader:
    def __init__(self, caches: dict[str, tuple[PeerCache, Callable[[], int]]]) -> None:
        self.caches = caches

    async def prime(self, name: str, entity_id: str) -> int:
        cache, runs = self.caches[name]
        with cache.enable():
            for _ in range(_PRIME_ATTEMPTS):
                first = await cache.function(entity_id)
                before = runs()
                second = await cache.function(entity_id)
                if name == "redis_py" or (runs() == before and second == first):
                    assert isinstance(second, int)
                    return second
        raise PathError(f"{name}: {entity_id!r} was never served from the cache")

    async def await_fresh(self, name: str, entity_id: str, old: int, deadline_sec: float) -> int:
        cache, _ = self.caches[name]
        deadline = time.monotonic_ns() + int(deadline_sec * 1e9)
        with cache.enable():
            while True:
                value = await cache.function(entity_id)
                now = time.monotonic_ns()
                if value != old:
                    return now
                if now > deadline:
                    return -1
                await asyncio.sleep(_POLL_SEC)


async def _serve(conn: Connection, redis_url: str) -> None:
    truth = Redis.from_url(redis_url)
    caches: dict[str, tuple[PeerCache, Callable[[], int]]] = {}
    try:
        for contender in CONTENDERS:
            if contender.package is None or installed(contender.package):
                caches[contender.name] = await build(contender.name, redis_url, truth)
        reader = _Reader(caches)
        conn.send(("ready", os.getpid()))
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command[0] == "stop":
                return
            try:
                if command[0] != "prime":
                    raise PathError(f"unknown command {command!r}")
                _, name, entity_id, deadline_sec = command
                old = await reader.prime(name, entity_id)
                conn.send(("primed", old))
                at = await reader.await_fresh(name, entity_id, old, deadline_sec)
                conn.send(("never",) if at < 0 else ("fresh", at))
            except Exception as exc:
                conn.send(("error", f"reader {os.getpid()}: {exc!r}"))
    finally:
        for cache, _ in caches.values():
            await cache.aclose()
        await truth.aclose()


def serve(conn: Connection, redis_url: str) -> None:
    """The reader process's entry point."""
    try:
        asyncio.run(_serve(conn, redis_url))
    except Exception as exc:
        conn.send(("error", f"reader {os.getpid()} failed: {exc!r}"))
