"""The fault-injector role: owns the blast radius — the private redis-server and the proxy.

It starts a private :class:`~integration.redis_server.RedisServer` (unless the run was given
``--redis-url``) and the loopback :class:`~integration.proxy.Proxy` the instances connect through,
reports both to the coordinator, then, from the workload's start, carries out the fault
schedule (:mod:`integration.faults`) one fault after the other, logging each fault's actual
window ``[start, end]`` with what it did (clients killed, connections dropped, pids).

A fault never starts before the previous one ended plus :data:`~integration.faults.MIN_QUIET_S`,
so a slow fault (an instance that takes long to restart) shifts the rest instead of overlapping;
nor before the system is steady again: every instance's bus subscriber connected (its
``<name>-bus`` connection listed by ``CLIENT LIST``), waited for at most
:data:`STEADY_TIMEOUT_S`. Otherwise a fault could land while subscribers are still in their
reconnect backoff from the previous one, and hit nothing.
Blocking operations on the server (restart, CLIENT KILL) run in a worker thread, so the proxy
keeps relaying meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event as EventType
from typing import Any
from urllib.parse import urlparse

import redis

from .config import RunConfig
from .eventlog import EventLog, route_python_logging
from .faults import MIN_QUIET_S, PlannedFault
from .proxy import Proxy
from .redis_server import RedisServer

__all__ = ["STEADY_TIMEOUT_S", "InjectorSpec", "injector_main"]

_CRASH_RESTART_TIMEOUT_S = 120.0
STEADY_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class InjectorSpec:
    config: RunConfig
    plan: tuple[PlannedFault, ...]
    log_path: str


@dataclass(slots=True)
class _Shared:
    """What the coordinator shares with the injector."""

    t0: Synchronized[int]
    ready_pids: SynchronizedArray[int]
    """The pid of each slot's incarnation that reported ready (0 while none is)."""


class _Injector:
    def __init__(self, spec: InjectorSpec, status: Connection, shared: _Shared) -> None:
        self.spec = spec
        self.config = spec.config
        self.status = status
        self.shared = shared
        self.log = EventLog(spec.log_path)
        self.server: RedisServer | None = None
        self.proxy: Proxy | None = None

    async def _start(self) -> None:
        if self.config.redis_url is None:
            self.server = await asyncio.to_thread(RedisServer.start)
            host, port, url = self.server.host, self.server.port, self.server.url
        else:
            parsed = urlparse(self.config.redis_url)
            host, port, url = parsed.hostname or "127.0.0.1", parsed.port or 6379, parsed.geturl()
        self.proxy = Proxy(host, port)
        await self.proxy.start()
        pid = self.server.pid if self.server is not None else 0
        self.status.send(("ready", url, self.proxy.url, pid))

    # -- faults ---------------------------------------------------------------------------

    async def _kill_clients(self, name: str | None) -> dict[str, Any]:
        server = self.server
        if server is None:
            # Someone else's Redis: only ever our own connections, by name.
            killed = await asyncio.to_thread(self._kill_named_external, name)
        else:
            killed = await asyncio.to_thread(server.kill_clients, name=name)
        return {"killed": killed, "name": name or "*"}

    def _admin(self) -> redis.Redis:
        if self.server is not None:
            return self.server.client(socket_timeout=2.0, socket_connect_timeout=2.0)
        assert self.config.redis_url is not None
        return redis.Redis.from_url(self.config.redis_url, socket_timeout=2.0)

    def _bus_connections(self) -> int:
        """How many instance bus subscribers are connected (0 if Redis does not answer)."""
        name = f"{self.config.client_name}-bus"
        try:
            with contextlib.closing(self._admin()) as client:
                return sum(1 for c in client.client_list() if c.get("name") == name)
        except redis.RedisError:
            return 0

    async def _steady(self) -> float:
        """Wait until every instance's bus subscriber is connected; returns seconds waited."""
        started = time.monotonic()
        while await asyncio.to_thread(self._bus_connections) < self.config.instances:
            if time.monotonic() - started > STEADY_TIMEOUT_S:
                break
            await asyncio.sleep(0.05)
        return round(time.monotonic() - started, 3)

    def _kill_named_external(self, name: str | None) -> int:
        assert self.config.redis_url is not None
        client = redis.Redis.from_url(self.config.redis_url, socket_timeout=2.0)
        try:
            prefix = self.config.client_name
            killed = 0
            for info in client.client_list():
                client_name = str(info.get("name", ""))
                if (name is not None and client_name == name) or (
                    name is None and client_name.startswith(prefix)
                ):
                    killed += int(client.client_kill_filter(_id=str(info["id"])))
            return killed
        finally:
            client.close()

    async def _pause(self, hold: float) -> dict[str, Any]:
        server = self.server
        assert server is not None
        server.pause()
        try:
            await asyncio.sleep(hold)
        finally:
            server.resume()
        return {"held_s": hold, "redis_pid": server.pid}

    async def _restart(self, hold: float) -> dict[str, Any]:
        server = self.server
        assert server is not None
        old = server.pid
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(hold)
        await asyncio.to_thread(server.restart)
        self.status.send(("redis_pid", server.pid))
        return {"down_s": hold, "old_pid": old, "new_pid": server.pid}

    async def _crash(self, slot: int) -> dict[str, Any]:
        pids = self.shared.ready_pids
        old = int(pids[slot])
        if old == 0:
            return {"slot": slot, "skipped": "instance not ready"}
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + _CRASH_RESTART_TIMEOUT_S
        while int(pids[slot]) in (0, old):
            if time.monotonic() > deadline:
                return {"slot": slot, "old_pid": old, "new_pid": None, "error": "no restart"}
            await asyncio.sleep(0.02)
        return {"slot": slot, "old_pid": old, "new_pid": int(pids[slot])}

    async def _latency(self, hold: float) -> dict[str, Any]:
        proxy = self.proxy
        assert proxy is not None
        proxy.latency_s = self.config.latency_ms / 1000
        try:
            await asyncio.sleep(hold)
        finally:
            proxy.latency_s = 0.0
        return {"latency_ms": self.config.latency_ms, "held_s": hold}

    async def _drop(self) -> dict[str, Any]:
        proxy = self.proxy
        assert proxy is not None
        return {"dropped": proxy.drop_all()}

    async def _inject(self, fault: PlannedFault) -> dict[str, Any]:
        kind = fault.kind
        if kind == "bus-kill":
            return await self._kill_clients(f"{self.config.client_name}-bus")
        if kind == "clients-kill":
            return await self._kill_clients(None)
        if kind == "pause":
            return await self._pause(fault.hold_s)
        if kind == "restart":
            return await self._restart(fault.hold_s)
        if kind == "crash":
            return await self._crash(fault.target)
        if kind == "latency":
            return await self._latency(fault.hold_s)
        if kind == "drop":
            return await self._drop()
        raise ValueError(f"unknown fault {kind!r}")

    async def _run_schedule(self, stop: EventType) -> None:
        t0 = int(self.shared.t0.value)
        earliest = 0
        for index, fault in enumerate(self.spec.plan):
            at = max(t0 + int(fault.at_s * 1e9), earliest)
            while time.monotonic_ns() < at:
                if stop.is_set():
                    return
                await asyncio.sleep(min(0.05, (at - time.monotonic_ns()) / 1e9))
            waited = await self._steady()
            if stop.is_set():
                return
            start = time.monotonic_ns()
            try:
                detail = await self._inject(fault)
            except Exception as exc:
                detail = {"error": repr(exc)}
            end = time.monotonic_ns()
            detail["proxy_connections"] = self.proxy.connections if self.proxy else 0
            detail["waited_for_steady_s"] = waited
            self.log.write("fault", index, fault.kind, start, end, fault.at_s, detail)
            self.log.flush()
            earliest = end + int(MIN_QUIET_S * 1e9)
        self.status.send(("schedule_done", time.monotonic_ns()))

    async def run(self, go: EventType, stop: EventType, teardown: EventType) -> None:
        """Inject until ``stop``; keep Redis and the proxy up until ``teardown`` (set once the
        other roles have exited, so none of them sees Redis vanish while shutting down)."""
        try:
            await self._start()
            while not go.is_set():
                if stop.is_set():
                    return
                await asyncio.sleep(0.02)
            schedule = asyncio.create_task(self._run_schedule(stop))
            while not stop.is_set():
                if schedule.done():
                    schedule.result()
                await asyncio.sleep(0.05)
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
            while True:  # polling a multiprocessing Event: it cannot be awaited
                if teardown.is_set():
                    break
                await asyncio.sleep(0.05)
        finally:
            if self.proxy is not None:
                stats = self.proxy.stats
                self.log.write("proxy", stats.accepted, stats.refused, stats.dropped, stats.bytes)
                await self.proxy.close()
            self.log.close()
            if self.server is not None:
                self.server.resume()
                await asyncio.to_thread(self.server.close)


def injector_main(
    spec: InjectorSpec,
    status: Connection,
    go: EventType,
    stop: EventType,
    teardown: EventType,
    t0: Synchronized[int],
    ready_pids: SynchronizedArray[int],
) -> None:
    """Process entry point (``multiprocessing`` spawn target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    route_python_logging(spec.log_path + ".txt")
    try:
        asyncio.run(_Injector(spec, status, _Shared(t0, ready_pids)).run(go, stop, teardown))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            status.send(("failed", 0, "".join(traceback.format_exception(exc))))
        raise SystemExit(1) from None
    finally:
        with contextlib.suppress(Exception):
            status.close()
