"""The cache-instance role: one OS process = one replica of a service using gcache.

Each instance owns a :class:`gcache.GCache` with LOCAL and REMOTE on and the invalidation bus on,
its own Prometheus registry served over HTTP, and reaches Redis through the harness' proxy. It
caches one tracked function that reads the source of truth::

    @cache.cached(key_type="entity", id_arg="entity_id", track_for_invalidation=True,
                  use_case="ReadEntity")
    async def read_entity(entity_id: int) -> EntityRow      # SELECT, then --function-ms

Its read loop calls it at a paced rate on Zipf-distributed ids and logs every read: start and
end (monotonic ns), entity, version and source (function ran / LOCAL hit / REMOTE hit — see
:class:`~integration.truth.EntityRow` for how a LOCAL hit is told from a REMOTE one) or the
exception that escaped. Alongside run

* a freshness sampler: ``cache.bus.is_fresh()`` every 10 ms, changes logged;
* a *tap*: a second :class:`bus.Subscriber` in the same process, on a connection of its own
  through the proxy, logging each event's arrival time (propagation latency);
* a command port (:mod:`integration.control`) on which writers ask for ``ainvalidate``;
* a cancellation probe: now and then a cached call of a second function (``CancelProbe``,
  always a miss) is started as a task and cancelled a few milliseconds later; if the task then
  finishes normally, the cancellation was lost inside the call (logged: a task that cannot be
  cancelled hangs shutdowns and defeats request timeouts).

The read loop stops cooperatively (it checks a flag between reads) rather than by cancellation,
so the instance shuts down cleanly whatever the probe finds.

Lifecycle: build, warm up (first call starts the bus), wait until the bus is fresh, report
``ready`` to the coordinator, wait for the start signal, run until the stop signal, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import random
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bus import Event, FlushEvent, Subscriber
from gcache import (
    BusConfig,
    CacheLayer,
    GCache,
    GCacheConfig,
    GCacheKey,
    GCacheKeyConfig,
    RedisConfig,
)

from .config import RunConfig
from .control import ControlServer
from .eventlog import EventLog, route_python_logging
from .scrape import INSTANCE_INFO, PROBE_USE_CASE
from .truth import EntityRow, TruthReader
from .zipf import ZipfSampler

__all__ = ["KEY_TYPE", "USE_CASE", "InstanceSpec", "instance_main"]

KEY_TYPE = "entity"
USE_CASE = "ReadEntity"
_SAMPLE_INTERVAL_S = 0.01
_READY_TIMEOUT_S = 60.0
_INVALIDATE_TIMEOUT_S = 15.0
_MAX_LAG_NS = 1_000_000_000
_PROBE_CANCEL_MAX_S = 0.003
_PROBE_SETTLE_S = 2.0
_READER_STOP_TIMEOUT_S = 10.0
"""A read loop further behind its schedule than this skips ahead instead of bursting."""


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What one instance process needs (picklable: it crosses the spawn)."""

    config: RunConfig
    slot: int
    incarnation: int
    db_path: str
    redis_url: str
    """Where the cache connects: the proxy's URL."""
    metrics_port: int
    control_port: int
    authkey: bytes
    log_path: str
    metrics_host: str = "127.0.0.1"
    """Where ``/metrics`` listens (``0.0.0.0`` in a container, for Prometheus)."""


class _Tap:
    """The tap subscriber's handler: logs when each event arrived in this process."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def on_event(self, event: Event) -> None:
        now = time.monotonic_ns()
        if isinstance(event, FlushEvent):
            self._log.write("tap_flush", now, event.seq, event.watermark, event.sent_at)
            return
        for key_type, entity_id, watermark in event.entities:
            self._log.write("tap", now, event.seq, key_type, entity_id, watermark, event.sent_at)

    def on_gap(self, reason: str, redis_time_us: int) -> None:
        self._log.write("tap_gap", time.monotonic_ns(), reason)


def _bus_client(url: str, name: str) -> Redis:
    """A client like gcache's own bus client: no redis-py retries, no socket timeout (the
    subscriber bounds every read itself)."""
    client: Redis = Redis.from_url(
        url, client_name=name, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1.0
    )
    return client


class _Instance:
    def __init__(self, spec: InstanceSpec, status: Connection, go: EventType, stop: EventType):
        self.spec = spec
        self.config = spec.config
        self.status = status
        self.go = go
        self.stop = stop
        self.log = EventLog(spec.log_path)
        self.calls = 0
        self.stopping = False
        self.probes = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        seed = f"instance-{self.config.seed}-{spec.slot}-{spec.incarnation}"
        self.sampler = ZipfSampler(self.config.entities, self.config.zipf, random.Random(seed))
        self.registry = CollectorRegistry()
        self.truth = TruthReader(spec.db_path)
        self.cache = self._build_cache()
        self.read_entity = self._decorate()
        self.probe_entity = self._decorate_probe()

    def _build_cache(self) -> GCache:
        config = self.config
        key_config = GCacheKeyConfig(
            ttl_sec={CacheLayer.LOCAL: config.local_ttl, CacheLayer.REMOTE: config.remote_ttl},
            ramp={CacheLayer.LOCAL: 100, CacheLayer.REMOTE: 100},
        )

        def provider(key: GCacheKey) -> GCacheKeyConfig:
            return key_config

        return GCache(
            GCacheConfig(
                cache_config_provider=provider,
                redis_config=RedisConfig(
                    url=self.spec.redis_url,
                    client_name=config.client_name,
                    socket_timeout=config.socket_timeout,
                    socket_connect_timeout=config.socket_timeout,
                ),
                bus=BusConfig(transport=config.transport, max_staleness_ms=config.max_staleness_ms),
                namespace=config.namespace,
                metrics_registry=self.registry,
            )
        )

    def _decorate(self) -> Any:
        truth = self.truth
        delay = self.config.function_ms / 1000

        @self.cache.cached(
            key_type=KEY_TYPE,
            id_arg="entity_id",
            track_for_invalidation=True,
            use_case=USE_CASE,
        )
        async def read_entity(entity_id: int) -> EntityRow:
            self.calls += 1
            row = truth.read(entity_id)
            if delay:
                await asyncio.sleep(delay)  # the rest of a slow query: the race window
            return row

        return read_entity

    def _decorate_probe(self) -> Any:
        @self.cache.cached(key_type="probe", id_arg="probe_id", use_case=PROBE_USE_CASE)
        async def probe_entity(probe_id: str) -> int:
            await asyncio.sleep(0.001)
            return len(probe_id)

        return probe_entity

    # -- roles inside the process ---------------------------------------------------------

    async def _read_once(self, entity: int) -> None:
        calls = self.calls
        start = time.monotonic_ns()
        try:
            with self.cache.enable():
                row: EntityRow = await self.read_entity(entity_id=entity)
        except Exception as exc:  # what the brief calls an error surfaced to a caller
            self.log.write("read", start, time.monotonic_ns(), entity, -1, "error", repr(exc))
            return
        end = time.monotonic_ns()
        if self.calls != calls:
            source = "function"
        elif row.seen:
            source = "local"
        else:
            source = "remote"
        row.seen = True
        self.log.write("read", start, end, entity, row.version, source, None)

    async def _read_loop(self) -> None:
        interval_ns = int(1e9 / self.config.read_rate)
        due = time.monotonic_ns()
        while not self.stopping:
            now = time.monotonic_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            elif now - due > _MAX_LAG_NS:
                due = now
            due += interval_ns
            await self._read_once(self.sampler.sample())

    async def _probe_once(self, rng: random.Random) -> None:
        self.probes += 1
        key = f"{self.spec.slot}.{self.spec.incarnation}.{self.probes}"

        async def call() -> None:
            with self.cache.enable():
                await self.probe_entity(probe_id=key)

        task = asyncio.create_task(call())
        await asyncio.sleep(rng.uniform(0, _PROBE_CANCEL_MAX_S))
        if not task.cancel():
            return  # finished before the cancel: nothing to judge
        done, _ = await asyncio.wait([task], timeout=_PROBE_SETTLE_S)
        if task.cancelled():
            outcome = "honored"
        elif not done:
            outcome = "lost"  # still running: it will finish on its own
        elif task.exception() is not None:
            outcome = f"raised {task.exception()!r}"[:200]
        else:
            outcome = "lost"
        self.log.write("cancel_probe", time.monotonic_ns(), outcome)

    async def _cancel_probes(self) -> None:
        rate = self.config.cancel_probes
        rng = random.Random(f"probe-{self.config.seed}-{self.spec.slot}-{self.spec.incarnation}")
        while True:
            await asyncio.sleep(rng.expovariate(rate))
            await self._probe_once(rng)

    async def _sample_freshness(self) -> None:
        bus = self.cache.bus
        assert bus is not None
        last: bool | None = None
        while True:
            fresh = bus.is_fresh()
            if fresh is not last:
                self.log.write("fresh", time.monotonic_ns(), fresh)
                last = fresh
            self.log.flush_due()
            await asyncio.sleep(_SAMPLE_INTERVAL_S)

    async def _invalidate(self, entity_id: int, future_buffer_ms: int) -> tuple[Any, ...]:
        start = time.monotonic_ns()
        try:
            await self.cache.ainvalidate(KEY_TYPE, entity_id, future_buffer_ms=future_buffer_ms)
        except Exception as exc:
            return ("error", start, repr(exc))
        return ("ok", start, time.monotonic_ns())

    def _on_command(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        """Runs in a control-server thread; the work runs on the instance's event loop."""
        if request[0] == "hello":
            return ("ok", os.getpid(), self.spec.incarnation)
        if request[0] == "invalidate":
            loop = self.loop
            assert loop is not None
            _, entity_id, future_buffer_ms = request
            future = asyncio.run_coroutine_threadsafe(
                self._invalidate(int(entity_id), int(future_buffer_ms)), loop
            )
            try:
                return future.result(_INVALIDATE_TIMEOUT_S)
            except Exception as exc:
                future.cancel()
                return ("error", 0, f"invalidate did not finish: {exc!r}")
        return ("error", 0, f"unknown request {request[0]!r}")

    async def _wait(self, event: EventType) -> None:
        while True:  # a multiprocessing Event cannot be awaited; polling it is cheap
            if event.is_set():
                return
            await asyncio.sleep(0.02)

    async def _warm_up(self) -> None:
        """Start the bus (it starts on the first cached call) and wait until it is fresh, so its
        start-up gap cannot flush the LOCAL layer in the middle of the workload."""
        bus = self.cache.bus
        assert bus is not None
        with self.cache.enable():
            await self.read_entity(entity_id=1)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not bus.is_fresh():
            if time.monotonic() > deadline:
                raise TimeoutError("the bus subscriber never became fresh")
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        spec = self.spec
        # The coordinator's SIGUSR1 dumps the threads (faulthandler); SIGUSR2 the tasks, whose
        # awaits the threads' stacks do not show.
        self.loop.add_signal_handler(signal.SIGUSR2, _dump_tasks, spec.log_path + ".tasks")
        Gauge(
            INSTANCE_INFO,
            "Which harness instance this process is.",
            ("slot", "incarnation", "pid"),
            registry=self.registry,
        ).labels(str(spec.slot), str(spec.incarnation), str(os.getpid())).set(1)
        server, _ = start_http_server(
            spec.metrics_port, addr=spec.metrics_host, registry=self.registry
        )
        control = ControlServer(spec.control_port, spec.authkey, self._on_command)
        tap = Subscriber(
            lambda: _bus_client(spec.redis_url, f"{self.config.client_name}-tap"),
            _Tap(self.log),
            namespace=self.config.namespace,
            transport=self.config.transport,
            max_staleness_ms=self.config.max_staleness_ms,
            release_client=lambda client: client.aclose(),
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._warm_up()
            tasks.append(asyncio.create_task(tap.run(), name="tap"))
            control.start()
            ready = time.monotonic_ns()
            self.log.write("life", spec.slot, spec.incarnation, os.getpid(), ready)
            self.log.flush()
            self.status.send(("ready", spec.slot, spec.incarnation, os.getpid(), ready))
            await self._wait(self.go)
            tasks.append(asyncio.create_task(self._sample_freshness(), name="sampler"))
            if self.config.cancel_probes:
                tasks.append(asyncio.create_task(self._cancel_probes(), name="probes"))
            reader = asyncio.create_task(self._read_loop(), name="reader")
            stopped = asyncio.create_task(self._wait(self.stop))
            done, _ = await asyncio.wait(
                [stopped, reader, *tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopped:
                    task.result()  # these loops never end by themselves: it crashed
                    raise RuntimeError(f"task {task.get_name()} ended by itself")
            self.stopping = True  # the read loop ends after its current read
            await asyncio.wait([reader], timeout=_READER_STOP_TIMEOUT_S)
            if not reader.done():
                self.log.write("reader_stuck", time.monotonic_ns())
        finally:
            self.stopping = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, _READER_STOP_TIMEOUT_S)
            self.log.write("end", time.monotonic_ns())
            self.log.close()
            control.close()
            server.shutdown()
            with contextlib.suppress(Exception):
                await self.cache.aclose()
            self.truth.close()


def _dump_tasks(path: str) -> None:
    with open(path, "a") as out:
        for task in asyncio.all_tasks():
            print(f"--- {task!r}", file=out)
            task.print_stack(file=out)


def instance_main(spec: InstanceSpec, status: Connection, go: EventType, stop: EventType) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    route_python_logging(spec.log_path + ".txt")
    with open(spec.log_path + ".stacks", "w") as stacks:
        # The coordinator sends SIGUSR1 before killing an instance that did not stop.
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
        _run_instance(spec, status, go, stop)


def _run_instance(spec: InstanceSpec, status: Connection, go: EventType, stop: EventType) -> None:
    try:
        asyncio.run(_Instance(spec, status, go, stop).run())
    except BaseException as exc:
        with contextlib.suppress(Exception):
            status.send(("failed", spec.slot, "".join(traceback.format_exception(exc))))
        raise SystemExit(1) from None
    finally:
        with contextlib.suppress(Exception):
            status.close()
