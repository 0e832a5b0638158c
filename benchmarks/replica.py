"""One other replica of the propagation benchmark, in a process of its own.

:mod:`benchmarks.propagation` spawns several (``multiprocessing`` "spawn": a fresh interpreter,
as a separate replica would be). Each follows the bus the way a real replica does — one
:class:`~gcache.GCache` per transport, each with its subscriber on the cache's background
thread — and, for the baseline, a plain redis-py asyncio pub/sub subscriber on a thread with an
event loop of its own. It answers commands on its pipe, one at a time::

    ("prime", transport, entity_id)  ->  ("primed",)  then, once LOCAL dropped it, ("gone", t)
    ("arm_raw", payload)             ->  ("armed",)   then, once it arrived,      ("received", t)
    ("stop",)                        ->  the process exits

where ``t`` is ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process on Linux,
so it compares with the publisher's). A failure answers ``("error", text)`` instead.

How "LOCAL stopped serving the old value" is observed, without polling (a busy loop would take
the CPU, and the GIL, from the very subscribers being timed): the tracked function returns a new
:class:`Snapshot` object per computation, and a LOCAL hit returns that very object (gcache does
not copy; a REMOTE hit unpickles a new one), so two calls returning the same object prove that
LOCAL holds it. The replica then drops its own references. The LOCAL entry is the last one left,
so CPython frees the object — and runs its ``weakref.finalize`` callback, which reads the clock —
at the instant the subscriber removes the entry, on the subscriber's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gcache import BusConfig, GCache, GCacheConfig, RedisConfig

from .checks import PathError
from .subjects import KEY_TYPE, local_and_remote

__all__ = [
    "RAW_CHANNEL",
    "TRANSPORTS",
    "Snapshot",
    "Transport",
    "bus_namespace",
    "serve",
    "tracked_cache",
]

Transport = Literal["streams", "pubsub"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("streams", "pubsub")
RAW_CHANNEL: Final = "bench-propagation-raw"
"""The channel of the baseline: plain ``PUBLISH``, plain pub/sub subscribers."""
USE_CASE: Final = "bench.propagation"

_START_TIMEOUT_SEC: Final = 30.0
_FRESH_TIMEOUT_SEC: Final = 10.0
_ARRIVAL_TIMEOUT_SEC: Final = 10.0
_PRIME_ATTEMPTS: Final = 5


def bus_namespace(transport: Transport) -> str:
    """The namespace (so the bus) of the caches following ``transport``."""
    return f"bench-propagation-{transport}"


@dataclass(eq=False)
class Snapshot:
    """A cached value whose identity tells where it came from (see the module docstring)."""

    entity_id: str
    pid: int


def tracked_cache(
    redis_url: str, transport: Transport, registry: CollectorRegistry
) -> tuple[GCache, Callable[[str], Snapshot]]:
    """A GCache with LOCAL and REMOTE on, following the bus over ``transport``, and its tracked
    (sync) function. The publishing process builds the same, and only invalidates."""
    cache = GCache(
        GCacheConfig(
            cache_config_provider=local_and_remote,
            redis_config=RedisConfig(url=redis_url),
            namespace=bus_namespace(transport),
            metrics_registry=registry,
            bus=BusConfig(transport=transport),
        )
    )

    @cache.cached(
        key_type=KEY_TYPE, id_arg="entity_id", use_case=USE_CASE, track_for_invalidation=True
    )
    def snapshot(entity_id: str) -> Snapshot:
        return Snapshot(entity_id, os.getpid())

    return cache, snapshot


class _Watch:
    """Set by the finalizer of the value LOCAL holds: when it was freed."""

    def __init__(self, gaps_before: int) -> None:
        self.gaps_before = gaps_before
        self.gone = threading.Event()
        self.at_ns = 0

    def stamp(self) -> None:
        self.at_ns = time.monotonic_ns()  # first: nothing of ours is charged to the latency
        self.gone.set()


class _RawListener:
    """The baseline subscriber: redis-py asyncio pub/sub on a thread with its own event loop, as
    gcache's subscriber runs on the cache's background loop."""

    def __init__(self, redis_url: str) -> None:
        self.received: queue.SimpleQueue[tuple[bytes, int]] = queue.SimpleQueue()
        self._url = redis_url
        self._subscribed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bench-raw-subscriber", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(_START_TIMEOUT_SEC):
            raise TimeoutError(f"the raw subscriber did not subscribe in {_START_TIMEOUT_SEC:g}s")
        if self._failure is not None:
            raise self._failure

    def _main(self) -> None:
        try:
            asyncio.run(self._listen())
        except asyncio.CancelledError:
            pass  # close()
        except BaseException as exc:
            self._failure = exc
            self._subscribed.set()

    async def _listen(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        client = Redis.from_url(self._url)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(RAW_CHANNEL)
            async for message in pubsub.listen():
                kind = message["type"]
                if kind == "message":
                    self.received.put((message["data"], time.monotonic_ns()))
                elif kind == "subscribe":
                    self._subscribed.set()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            await client.aclose()

    def close(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(_FRESH_TIMEOUT_SEC)


def _wait_fresh(cache: GCache) -> None:
    bus = cache.bus
    if bus is None:
        raise PathError("the cache has no bus subscriber")
    deadline = time.monotonic() + _FRESH_TIMEOUT_SEC
    while not bus.is_fresh():
        if time.monotonic() > deadline:
            raise PathError(f"bus not live after {_FRESH_TIMEOUT_SEC:g}s: {bus.statistics()!r}")
        time.sleep(0.001)


class _Replica:
    """Everything one replica process holds."""

    def __init__(self, redis_url: str) -> None:
        registry = CollectorRegistry()
        self._caches = {t: tracked_cache(redis_url, t, registry) for t in TRANSPORTS}
        self._raw = _RawListener(redis_url)
        # gcache starts a subscriber on first use; its start is a gap that empties LOCAL, so it
        # must be behind us before anything is primed.
        for cache, snapshot in self._caches.values():
            with cache.enable():
                snapshot("bus-starter")
        for cache, _ in self._caches.values():
            _wait_fresh(cache)

    def _held_in_local(self, transport: Transport, entity_id: str) -> Snapshot:
        cache, snapshot = self._caches[transport]
        for _ in range(_PRIME_ATTEMPTS):
            _wait_fresh(cache)
            with cache.enable():
                first = snapshot(entity_id)  # a miss, or a REMOTE hit: either way now in LOCAL
                if snapshot(entity_id) is first:  # the same object: it came from LOCAL
                    return first
        raise PathError(f"{transport}: {entity_id!r} was never served from LOCAL")

    def prime(self, transport: Transport, entity_id: str) -> _Watch:
        """Put ``entity_id``'s value in LOCAL and watch for the moment it leaves."""
        bus = self._caches[transport][0].bus
        assert bus is not None
        watch = _Watch(bus.statistics().gaps)
        weakref.finalize(self._held_in_local(transport, entity_id), watch.stamp)
        # No reference is kept here: LOCAL's entry is now the value's only one.
        return watch

    def await_gone(self, transport: Transport, watch: _Watch) -> int:
        if not watch.gone.wait(_ARRIVAL_TIMEOUT_SEC):
            raise PathError(f"{transport}: LOCAL still held the value {_ARRIVAL_TIMEOUT_SEC:g}s on")
        bus = self._caches[transport][0].bus
        assert bus is not None
        if bus.statistics().gaps != watch.gaps_before:
            raise PathError(f"{transport}: a bus gap emptied LOCAL, not the invalidation")
        return watch.at_ns

    def await_raw(self, payload: bytes) -> int:
        try:
            data, at_ns = self._raw.received.get(timeout=_ARRIVAL_TIMEOUT_SEC)
        except queue.Empty:
            raise PathError(f"raw: nothing arrived in {_ARRIVAL_TIMEOUT_SEC:g}s") from None
        if data != payload:
            raise PathError(f"raw: expected {payload!r}, got {data!r}")
        return at_ns

    def close(self) -> None:
        self._raw.close()
        for cache, _ in self._caches.values():
            cache.close()


def serve(conn: Connection, redis_url: str) -> None:
    """The replica process: set up, say ``("ready", pid)``, then answer commands until stop."""
    pid = os.getpid()
    try:
        replica = _Replica(redis_url)
    except Exception as exc:
        conn.send(("error", f"replica {pid} did not start: {exc!r}"))
        return
    try:
        conn.send(("ready", pid))
        while True:
            command = conn.recv()
            try:
                if command[0] == "stop":
                    return
                if command[0] == "prime":
                    transport, entity_id = command[1], command[2]
                    watch = replica.prime(transport, entity_id)
                    conn.send(("primed",))
                    conn.send(("gone", replica.await_gone(transport, watch)))
                elif command[0] == "arm_raw":
                    conn.send(("armed",))
                    conn.send(("received", replica.await_raw(command[1])))
                else:
                    raise PathError(f"unknown command {command!r}")
            except Exception as exc:
                conn.send(("error", f"replica {pid}: {exc}"))
    finally:
        replica.close()
