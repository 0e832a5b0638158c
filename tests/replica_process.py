"""Replica processes for the multi-process bus tests (test_bus_multiprocess, test_bus_faults).

Each replica is a separate Python process (``multiprocessing`` "spawn" context) that owns one
:class:`gcache.GCache` with LOCAL and REMOTE on, the invalidation bus on, and a private metrics
registry. It caches one tracked async function::

    get(uid) -> (version, call)

which reads the *source of truth*, a plain key ``truth:<uid>`` in another private Redis server
(read with a plain redis-py client, never through gcache), and returns it with the replica's own
count of calls for that uid. The test process is the writer: it updates the truth and then
invalidates, through a replica's ``ainvalidate``, a bare ``bus.Publisher`` or the CLI.

The test drives each replica over a ``multiprocessing`` Pipe with small commands (see
:class:`Replica`): ``read`` (value, and whether the function, LOCAL or REMOTE served it),
``invalidate`` (the cache's ``ainvalidate``), ``flush``, ``stats`` (bus statistics, gap and
``bus_unsynced`` counters, LOCAL hits, function calls), ``gate`` (make the function wait for a
key), ``stall_bus`` (block the loop the subscriber runs on), a continuous
``start_reading``/``stop_reading`` loop for the staleness checker, and ``stop``. Each command runs
as its own task in the replica's event loop, so a read blocked in the function (a gated call)
does not stop the replica from answering ``stats``. :meth:`Replica.pause` freezes the whole
process (SIGSTOP).

``time.monotonic()`` is ``CLOCK_MONOTONIC``, system-wide on Linux, so instants recorded in
different processes are comparable: the checker (:func:`staleness_violations`) relies on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from integration.redis_server import RedisServer, wait_until

KEY_TYPE = "uid"
USE_CASE = "get"
STALENESS_MS = 200.0
WAIT = 30.0  # generous deadline for anything a replica is asked to do (busy 2-core machines)
START_TIMEOUT = 90.0  # spawning imports gcache, redis, prometheus... from scratch
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class ReplicaSpec:
    """How one replica process is configured (must be picklable: it crosses the spawn)."""

    name: str
    cache_url: str
    truth_url: str
    transport: str = "streams"
    max_staleness_ms: float = 200.0
    stream_maxlen: int = 100_000
    socket_timeout: float = 2.0
    """REMOTE command timeout: generous, so a busy machine does not turn a REMOTE hit into a
    fail-open call of the function; the Redis-pause test lowers it."""
    namespace: str = "gcache"
    client_name: str = "gcache"
    local_ttl: float = 600.0
    remote_ttl: float = 600.0


class Read(NamedTuple):
    """One cached call as a replica saw it.

    ``source`` is ``"function"`` when the function ran for this call, ``"local"`` when it was a
    LOCAL hit, ``"remote"`` otherwise (a REMOTE hit). ``call`` is the replica-local call number
    of the run that produced the value; ``start``/``end`` are ``time.monotonic()`` instants."""

    version: int
    call: int
    source: str
    start: float
    end: float


class ReplicaError(RuntimeError):
    """A command failed inside the replica; the message holds its traceback."""


# ------------------------------------------------------------------------------------------
# The test side


class Replica:
    """Handle on one running replica process."""

    def __init__(self, spec: ReplicaSpec, process: Any, conn: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.process = process
        self._conn = conn
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._ready: Future[Any] = Future()
        self._pending[0] = self._ready
        self._reader = threading.Thread(
            target=self._receive, name=f"replica-{spec.name}-rx", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        pid: int = self.process.pid
        return pid

    # -- plumbing -------------------------------------------------------------------------

    def _receive(self) -> None:
        try:
            while True:
                request_id, ok, payload = self._conn.recv()
                with self._lock:
                    future = self._pending.pop(request_id, None)
                if future is None:
                    continue
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(ReplicaError(f"replica {self.name}: {payload}"))
        except (EOFError, OSError):
            pass
        with self._lock:
            self._closed = True
            pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            if not future.done():
                future.set_exception(ReplicaError(f"replica {self.name} exited"))

    def submit(self, command: str, *args: Any) -> Future[Any]:
        """Send a command; its reply arrives in the returned future."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise ReplicaError(f"replica {self.name} exited")
            request_id = next(self._ids)
            self._pending[request_id] = future
            self._conn.send((request_id, command, args))
        return future

    def call(self, command: str, *args: Any, timeout: float = WAIT) -> Any:
        return self.submit(command, *args).result(timeout)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        self._ready.result(timeout)

    # -- commands -------------------------------------------------------------------------

    def read(self, uid: str = "1") -> Read:
        return Read(*self.call("read", uid))

    def read_async(self, uid: str = "1") -> Future[Any]:
        """Start a read without waiting; ``Read(*future.result())`` when it is done."""
        return self.submit("read", uid)

    def invalidate(self, uid: str = "1", future_buffer_ms: int = 0) -> float:
        """``await cache.ainvalidate(...)`` in the replica; returns the monotonic instant at which
        it returned (the acknowledgement time)."""
        ack: float = self.call("invalidate", uid, future_buffer_ms)
        return ack

    def flush(self) -> float:
        ack: float = self.call("flush")
        return ack

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.call("stats")
        return stats

    def gate(self, uid: str) -> None:
        """From now on the function for ``uid`` reads the truth and then waits until the key
        ``gate:<uid>`` exists in the truth server before it returns."""
        self.call("gate", uid)

    def stall_bus(self) -> None:
        """Block the cache's background event loop, where its bus subscriber runs, until
        :meth:`unstall_bus` (the replica's own loop keeps serving commands and reads)."""
        self.call("stall_bus")

    def unstall_bus(self) -> None:
        self.call("unstall_bus")

    def start_reading(self, uids: Sequence[str], interval: float = 0.004) -> None:
        """Read ``uids`` in a loop (round robin, ``interval`` seconds apart) until
        :meth:`stop_reading`, recording every read."""
        self.call("start_reading", list(uids), interval)

    def stop_reading(self) -> list[tuple[str, float, int, bool]]:
        """Stop the loop; returns ``(uid, start, version, function_ran)`` per read."""
        records: list[tuple[str, float, int, bool]] = self.call("stop_reading")
        return records

    def reading_count(self) -> int:
        """How many reads the loop has recorded so far."""
        count: int = self.call("reading_count")
        return count

    def last_read(self) -> tuple[str, float, int, bool] | None:
        """The loop's latest record, if any."""
        record: tuple[str, float, int, bool] | None = self.call("last_read")
        return record

    # -- process control ------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the whole replica process (SIGSTOP)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = WAIT) -> None:
        """Stop the replica (closing its cache) and reap the process; kill it if it hangs."""
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self.resume()
            with contextlib.suppress(Exception):
                self.call("stop", timeout=timeout)
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout)
        with contextlib.suppress(Exception):
            self._conn.close()


def start_replicas(specs: Iterable[ReplicaSpec]) -> list[Replica]:
    """Spawn one process per spec (all at once) and wait until each is ready: its cache made,
    its bus subscriber started and fresh."""
    context = multiprocessing.get_context("spawn")
    replicas: list[Replica] = []
    try:
        for spec in specs:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main, args=(child, spec), name=f"replica-{spec.name}", daemon=True
            )
            process.start()
            child.close()
            replicas.append(Replica(spec, process, parent))
        for replica in replicas:
            replica.wait_ready()
    except BaseException:
        for replica in replicas:
            replica.stop(timeout=5)
        raise
    return replicas


@dataclass
class Fleet:
    """Replicas started by one test, stopped at teardown (see the ``replicas`` fixture)."""

    started: list[Replica] = field(default_factory=list)

    def start(self, names: Sequence[str], **options: Any) -> list[Replica]:
        specs = [ReplicaSpec(name=name, **options) for name in names]
        replicas = start_replicas(specs)
        self.started.extend(replicas)
        return replicas

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()


# ------------------------------------------------------------------------------------------
# Conditions the tests wait on (each polls with reads or stats, under a deadline)


def start_fleet(
    replicas: Fleet,
    server: RedisServer,
    truth_url: str,
    names: tuple[str, ...] = ("a", "b", "c"),
    **options: Any,
) -> list[Replica]:
    """Replicas caching on ``server`` and reading the truth at ``truth_url``; the staleness
    bound defaults to :data:`STALENESS_MS` (small, so the tests run quickly)."""
    options.setdefault("max_staleness_ms", STALENESS_MS)
    return replicas.start(list(names), cache_url=server.url, truth_url=truth_url, **options)


def until_local(replica: Replica, uid: str = "1", version: int | None = None) -> Read:
    """Read until a read is a LOCAL hit (of ``version``, if given): caching works there."""

    def hit() -> Read | None:
        read = replica.read(uid)
        if read.source == "local" and (version is None or read.version == version):
            return read
        return None

    return wait_until(hit, timeout=WAIT, message=f"a LOCAL hit of {uid!r} on {replica.name}")


def until_version(replica: Replica, version: int, uid: str = "1") -> Read:
    """Read until ``version`` is served; returns that first read (older versions before it are
    allowed: they are LOCAL hits within the staleness bound)."""

    def served() -> Read | None:
        read = replica.read(uid)
        assert read.version <= version, f"{replica.name} served a version from the future"
        return read if read.version == version else None

    return wait_until(served, timeout=WAIT, message=f"{replica.name} to serve version {version}")


def until_stats(replica: Replica, condition: Any, what: str) -> dict[str, Any]:
    """Poll ``replica.stats()`` until ``condition(stats)``; returns those stats."""

    def met() -> dict[str, Any] | None:
        stats = replica.stats()
        return stats if condition(stats) else None

    return wait_until(met, timeout=WAIT, message=f"{replica.name}: {what}")


def total_calls(replicas: Iterable[Replica], uid: str = "1") -> int:
    """How many times the function ran for ``uid``, over all the replicas."""
    return sum(int(r.stats()["calls"].get(uid, 0)) for r in replicas)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bus ARGS`` in a subprocess, from the repository root; must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "bus", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"python -m bus {' '.join(args)} failed: {result.stderr}"
    return result


class Writer:
    """The writer of the staleness checker: bumps ``truth:<uid>`` one version at a time and, after
    each bump, invalidates through the next of ``invalidators`` (callables returning the instant
    at which the invalidation returned), recording ``(version, ack)`` in :attr:`acks`.

    Between two updates every replica's read loop records ``reads_between`` more reads, so every
    version is read (and cached) before the next one: the pace follows the replicas, whatever the
    machine's load. :meth:`start` runs it in a thread until :meth:`stop`."""

    def __init__(
        self,
        truth: Any,
        invalidators: Sequence[Any],
        replicas: Sequence[Replica],
        *,
        uid: str = "1",
        first_version: int = 2,
        reads_between: int = 5,
    ) -> None:
        self.truth = truth
        self.invalidators = list(invalidators)
        self.replicas = list(replicas)
        self.uid = uid
        self.version = first_version
        self.reads_between = reads_between
        self.acks: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def step(self) -> None:
        version = self.version
        self.version += 1
        self.truth.set(f"truth:{self.uid}", version)
        invalidate = self.invalidators[len(self.acks) % len(self.invalidators)]
        self.acks.append((version, invalidate()))
        counts = {r.name: r.reading_count() for r in self.replicas}
        wait_until(
            lambda: (
                self._stop.is_set()
                or all(
                    r.reading_count() >= counts[r.name] + self.reads_between for r in self.replicas
                )
            ),
            timeout=WAIT,
            message="every replica to read between two updates",
        )

    def run(self, updates: int) -> None:
        for _ in range(updates):
            self.step()

    def start(self) -> None:
        def loop() -> None:
            try:
                while not self._stop.is_set():
                    self.step()
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=loop, name="writer", daemon=True)
        self._thread.start()

    def wait_acks(self, count: int) -> None:
        """Until at least ``count`` invalidations have been acknowledged."""
        wait_until(
            lambda: self._check() or len(self.acks) >= count,
            timeout=WAIT,
            message=f"{count} acknowledged invalidations",
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT)
            assert not self._thread.is_alive(), "the writer did not stop"
        self._check()

    def _check(self) -> bool:
        if self._error is not None:
            raise self._error
        return False


def wait_reads_after(replicas: Iterable[Replica], instant: float) -> None:
    """Until every replica's read loop has recorded a read that started after ``instant``."""
    for replica in replicas:
        wait_until(
            lambda r=replica: (last := r.last_read()) is not None and last[1] > instant,
            timeout=WAIT,
            message=f"{replica.name} to read after {instant}",
        )


# ------------------------------------------------------------------------------------------
# The staleness checker (DESIGN §3.1 + §3.3, README "The guarantee")


@dataclass(frozen=True)
class Violation:
    replica: str
    uid: str
    read_start: float
    version_read: int
    version_acked: int
    ack: float

    def __str__(self) -> str:
        late = (self.read_start - self.ack) * 1000
        return (
            f"{self.replica} read {self.uid!r} at ack+{late:.0f}ms and got version "
            f"{self.version_read} < {self.version_acked}"
        )


def staleness_violations(
    reads: dict[str, list[tuple[str, float, int, bool]]],
    acks: dict[str, list[tuple[int, float]]],
    bound_s: float,
) -> list[Violation]:
    """Reads that started more than ``bound_s`` after the acknowledgement of an invalidation of
    version ``v`` of their uid and still returned a version older than ``v``.

    ``reads``: replica name -> ``(uid, start, version, function_ran)``; ``acks``: uid ->
    ``(version, ack_time)`` meaning "truth was set to ``version``, then an invalidation of the
    uid returned at ``ack_time``"."""
    violations: list[Violation] = []
    for uid, uid_acks in acks.items():
        ordered = sorted(uid_acks, key=lambda a: a[1])
        for replica, records in reads.items():
            for read_uid, start, version, _ in records:
                if read_uid != uid:
                    continue
                for acked_version, ack in ordered:
                    if ack + bound_s >= start:
                        break
                    if version < acked_version:
                        violations.append(
                            Violation(replica, uid, start, version, acked_version, ack)
                        )
                        break
    return violations


def checked_reads(
    reads: dict[str, list[tuple[str, float, int, bool]]],
    acks: dict[str, list[tuple[int, float]]],
    bound_s: float,
) -> int:
    """How many reads the checker constrained (started after some ack + bound): a test must see
    this above zero, or it checked nothing."""
    count = 0
    for uid, uid_acks in acks.items():
        first = min((ack for _, ack in uid_acks), default=None)
        if first is None:
            continue
        for records in reads.values():
            count += sum(1 for r in records if r[0] == uid and r[1] > first + bound_s)
    return count


# ------------------------------------------------------------------------------------------
# The replica side (runs in the spawned process)


def worker_main(conn: Any, spec: ReplicaSpec) -> None:
    """Entry point of a replica process."""
    # The test runner's Ctrl-C reaches the whole process group; let the parent decide.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_Worker(conn, spec).serve())
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _metric(registry: Any, name: str, **labels: str) -> float:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _by_label(registry: Any, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out


class _Worker:
    def __init__(self, conn: Any, spec: ReplicaSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.calls: dict[str, int] = {}
        self.gated: set[str] = set()
        self.reading: asyncio.Task[None] | None = None
        self.records: list[tuple[str, float, int, bool]] = []
        self.release = threading.Event()  # ends a "stall_bus"

    def _build(self) -> None:
        from prometheus_client import CollectorRegistry
        from redis.asyncio import Redis

        from gcache import (
            BusConfig,
            CacheLayer,
            GCache,
            GCacheConfig,
            GCacheKey,
            GCacheKeyConfig,
            RedisConfig,
        )

        spec = self.spec
        key_config = GCacheKeyConfig(
            ttl_sec={CacheLayer.LOCAL: spec.local_ttl, CacheLayer.REMOTE: spec.remote_ttl},
            ramp={CacheLayer.LOCAL: 100, CacheLayer.REMOTE: 100},
        )

        async def provider(key: GCacheKey) -> GCacheKeyConfig:
            return key_config

        self.registry = CollectorRegistry()
        self.cache = GCache(
            GCacheConfig(
                cache_config_provider=provider,
                redis_config=RedisConfig(
                    url=spec.cache_url,
                    socket_timeout=spec.socket_timeout,
                    client_name=spec.client_name,
                ),
                bus=BusConfig(
                    transport=spec.transport,  # type: ignore[arg-type]
                    max_staleness_ms=spec.max_staleness_ms,
                    stream_maxlen=spec.stream_maxlen,
                ),
                namespace=spec.namespace,
                metrics_registry=self.registry,
            )
        )
        self.truth = Redis.from_url(spec.truth_url, client_name=f"truth-reader-{spec.name}")
        calls = self.calls
        gated = self.gated
        truth = self.truth

        @self.cache.cached(
            key_type=KEY_TYPE, id_arg="uid", use_case=USE_CASE, track_for_invalidation=True
        )
        async def get(uid: str) -> tuple[int, int]:
            raw = await truth.get(f"truth:{uid}")
            version = int(raw or 0)
            calls[uid] = call = calls.get(uid, 0) + 1  # after the read: "the truth was read"
            if uid in gated:
                while not await truth.exists(f"gate:{uid}"):  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.01)
            return version, call

        self.get = get

    def _calls(self) -> int:
        return sum(self.calls.values())

    def _local_hits(self) -> float:
        labels = {"use_case": USE_CASE, "layer": "local"}
        requests = _metric(self.registry, "gcache_request_counter_total", **labels)
        misses = _metric(self.registry, "gcache_miss_counter_total", **labels)
        return requests - misses

    async def _read(self, uid: str) -> tuple[int, int, str, float, float]:
        before_calls = self.calls.get(uid, 0)
        before_hits = self._local_hits()
        start = time.monotonic()
        with self.cache.enable():
            version, call = await self.get(uid)
        end = time.monotonic()
        if self.calls.get(uid, 0) > before_calls:
            source = "function"
        elif self._local_hits() > before_hits:
            source = "local"
        else:
            source = "remote"
        return version, call, source, start, end

    async def _read_loop(self, uids: list[str], interval: float) -> None:
        for uid in itertools.cycle(uids):
            before = self.calls.get(uid, 0)
            start = time.monotonic()
            with self.cache.enable():
                version, _ = await self.get(uid)
            self.records.append((uid, start, version, self.calls.get(uid, 0) > before))
            await asyncio.sleep(interval)

    def _stats(self) -> dict[str, Any]:
        bus = self.cache.bus
        assert bus is not None
        s = bus.statistics()
        registry = self.registry
        return {
            "name": self.spec.name,
            "pid": os.getpid(),
            "state": s.state.value,
            "fresh": s.fresh,
            "events": s.events,
            "gaps": s.gaps,
            "reconnects": s.reconnects,
            "malformed": s.malformed,
            "last_id": s.last_id,
            "last_seq": s.last_seq,
            "gap_reasons": _by_label(registry, "gcache_bus_gaps_total", "reason"),
            "reconnects_metric": _metric(registry, "gcache_bus_reconnects_total"),
            "bus_unsynced": _metric(
                registry, "gcache_disabled_counter_total", reason="bus_unsynced"
            ),
            "disabled": _by_label(registry, "gcache_disabled_counter_total", "reason"),
            "local_hits": self._local_hits(),
            "calls": dict(self.calls),
            "errors": _by_label(registry, "gcache_error_counter_total", "error"),
        }

    async def _handle(self, command: str, args: tuple[Any, ...]) -> Any:
        if command == "read":
            return await self._read(*args)
        if command == "invalidate":
            uid, buffer_ms = args
            await self.cache.ainvalidate(KEY_TYPE, uid, future_buffer_ms=buffer_ms)
            return time.monotonic()
        if command == "flush":
            await self.cache.aflushall()
            return time.monotonic()
        if command == "stats":
            return self._stats()
        if command == "gate":
            self.gated.add(args[0])
            return None
        if command == "start_reading":
            uids, interval = args
            if self.reading is not None:
                raise RuntimeError("already reading")
            self.records = []
            self.reading = asyncio.create_task(self._read_loop(uids, interval))
            return None
        if command in ("reading_count", "last_read"):
            if self.reading is not None and self.reading.done():
                self.reading.result()  # surface a crash of the loop
            if command == "reading_count":
                return len(self.records)
            return self.records[-1] if self.records else None
        if command == "stop_reading":
            task, self.reading = self.reading, None
            if task is None:
                raise RuntimeError("not reading")
            if task.done():
                task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            records, self.records = self.records, []
            return records
        if command == "stall_bus":
            # Block the cache's background event loop (where the bus subscriber runs) until
            # "unstall_bus": a stalled subscriber, while this loop keeps serving reads.
            started = threading.Event()
            release = self.release = threading.Event()

            async def stall() -> None:
                started.set()
                release.wait(WAIT)  # blocking on purpose: the whole loop stands still

            self.cache._background.start_task(stall)
            if not await asyncio.get_running_loop().run_in_executor(None, started.wait, WAIT):
                raise TimeoutError("the background loop never ran the stall")
            return None
        if command == "unstall_bus":
            self.release.set()
            return None
        raise ValueError(f"unknown command {command!r}")

    async def _run_command(self, request_id: int, command: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self._handle(command, args)
        except BaseException as exc:  # reported to the test, which fails with the traceback
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.conn.send((request_id, False, "".join(traceback.format_exception(exc))))
            return
        self.conn.send((request_id, True, result))

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._build()
            # Start the bus (it starts on a cache's first call) and wait until it is live, so
            # that its start-up gap (which flushes LOCAL) cannot land in the middle of a test.
            with self.cache.enable():
                await self.get("warm-up")
            bus = self.cache.bus
            assert bus is not None
            deadline = time.monotonic() + WAIT
            while not bus.is_fresh():
                if time.monotonic() > deadline:
                    raise TimeoutError("bus subscriber never became fresh")
                await asyncio.sleep(0.01)
        except BaseException as exc:
            self.conn.send((0, False, "".join(traceback.format_exception(exc))))
            return
        self.conn.send((0, True, os.getpid()))
        tasks: set[asyncio.Task[None]] = set()
        command, request_id = None, 0
        while True:
            try:
                request_id, command, args = await loop.run_in_executor(None, self.conn.recv)
            except (EOFError, OSError):
                break  # the test process is gone
            if command == "stop":
                break
            task = asyncio.create_task(self._run_command(request_id, command, args))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        self.release.set()
        for task in list(tasks):
            task.cancel()
        if self.reading is not None:
            self.reading.cancel()
        with contextlib.suppress(Exception):
            await self.cache.aclose()
        with contextlib.suppress(Exception):
            await self.truth.aclose()
        if command == "stop":
            self.conn.send((request_id, True, None))
