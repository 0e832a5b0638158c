"""The coordinator: starts every role as its own OS process, supervises them, collects the logs.

::

    coordinator ──spawn──► injector   (private redis-server + proxy; the fault schedule)
                ──spawn──► instance x N  (GCache + tap + sampler + command port + /metrics)
                ──spawn──► writer x W    (SQLite updates, then invalidations)

All processes use the ``spawn`` start method (a fresh interpreter, as a separate replica would
be). Each child reports on a pipe of its own (``ready``, ``failed``, ...); two shared events
start and stop the workload, and a shared array tells the injector which pid serves each
instance slot. The coordinator restarts a crashed instance after a short delay, like an
orchestrator; the restarted process reuses its slot's ports. While the workload runs it scrapes
every instance's Prometheus endpoint once a second, and once more just before stopping.

The workload lasts ``duration`` seconds from the start signal, extended if needed so that every
fault of the schedule runs and is followed by the quiet tail.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TextIO

from .collect import INJECTOR_LOG, instance_log_name, load_logs, writer_log_name
from .config import RunConfig
from .faults import plan_faults, tail_seconds
from .injector import InjectorSpec, injector_main
from .instance import InstanceSpec, instance_main
from .model import InstanceLife, RunData, ScrapePoint
from .scrape import ScrapeError, scrape
from .truth import create_truth
from .writer import WriterSpec, writer_main

__all__ = ["HarnessError", "run_harness"]

_CTX = multiprocessing.get_context("spawn")
_START_TIMEOUT_S = 180.0  # spawning interpreters that import gcache, on two busy cores
_JOIN_TIMEOUT_S = 30.0
_SCRAPE_INTERVAL_S = 1.0
_POLL_S = 0.05
_MAX_RESTARTS_PER_SLOT = 20
_OVERRUN_S = 300.0
"""How far past ``duration`` a late fault schedule may push the run before it is abandoned."""


class HarnessError(RuntimeError):
    """The harness itself could not run (a role failed to start or died)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class _Child:
    """One child process and the read end of its status pipe."""

    name: str
    process: BaseProcess
    status: Connection | None
    ready: bool = False


@dataclass(slots=True)
class _Life:
    slot: int
    incarnation: int
    pid: int
    spawned_ns: int
    ready_ns: int | None = None
    exited_ns: int | None = None
    exitcode: int | None = None


@dataclass(slots=True)
class _Slot:
    """An instance slot: stable ports, successive process incarnations."""

    slot: int
    metrics_port: int
    control_port: int
    incarnation: int = 0
    child: _Child | None = None
    restart_at: float | None = None
    lives: list[_Life] = field(default_factory=list)


class _Scraper:
    """Scrapes every ready instance once per interval, in a thread of the coordinator."""

    def __init__(self, slots: list[_Slot], ready: Callable[[int], bool]) -> None:
        self._slots = slots
        self._ready = ready
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.points: list[ScrapePoint] = []
        self._thread = threading.Thread(target=self._loop, name="scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def scrape_all(self) -> None:
        for slot in self._slots:
            if not self._ready(slot.slot):
                continue
            try:
                info, values = scrape(slot.metrics_port)
            except ScrapeError:
                continue  # crashed or restarting: the previous scrape stands
            if not info:
                continue
            point = ScrapePoint(slot.slot, int(info["incarnation"]), time.monotonic_ns(), values)
            with self._lock:
                self.points.append(point)

    def _loop(self) -> None:
        while not self._stop.wait(_SCRAPE_INTERVAL_S):
            self.scrape_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class _Run:
    def __init__(self, config: RunConfig, directory: str, progress: TextIO) -> None:
        self.config = config
        self.dir = directory
        self.progress = progress
        self.db_path = os.path.join(directory, "truth.sqlite")
        self.authkey = os.urandom(16)
        self.go = _CTX.Event()
        self.stop = _CTX.Event()
        self.teardown = _CTX.Event()
        self.t0 = _CTX.Value("q", 0)
        self.ready_pids = _CTX.Array("q", config.instances)
        self.children: list[_Child] = []
        self.slots = [_Slot(slot, _free_port(), _free_port()) for slot in range(config.instances)]
        self.writers: list[_Child] = []
        self.injector: _Child | None = None
        self.redis_url = ""
        self.proxy_url = ""
        self.redis_pid = 0
        self.schedule_done_ns: int | None = None
        self.problems: list[str] = []
        self.stopping = False
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[integration {elapsed:5.1f}s] {text}", file=self.progress, flush=True)

    # -- spawning -------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> _Child:
        reader, writer = _CTX.Pipe(duplex=False)
        process = _CTX.Process(target=target, args=(*args[:1], writer, *args[1:]), name=name)
        process.start()
        writer.close()
        child = _Child(name, process, reader)
        self.children.append(child)
        return child

    def _spawn_instance(self, slot: _Slot) -> None:
        slot.incarnation += 1
        spec = InstanceSpec(
            config=self.config,
            slot=slot.slot,
            incarnation=slot.incarnation,
            db_path=self.db_path,
            redis_url=self.proxy_url,
            metrics_port=slot.metrics_port,
            control_port=slot.control_port,
            authkey=self.authkey,
            log_path=os.path.join(self.dir, instance_log_name(slot.slot, slot.incarnation)),
        )
        child = self._spawn(
            f"instance-{slot.slot}.{slot.incarnation}", instance_main, spec, self.go, self.stop
        )
        slot.child = child
        slot.restart_at = None
        assert child.process.pid is not None
        slot.lives.append(
            _Life(slot.slot, slot.incarnation, child.process.pid, time.monotonic_ns())
        )

    # -- messages -------------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Handle every status message that arrives within ``timeout`` seconds."""
        readers: dict[Connection, _Child] = {
            c.status: c for c in self.children if c.status is not None
        }
        if not readers:
            time.sleep(timeout)
            return
        for ready in wait(list(readers), timeout):
            assert isinstance(ready, Connection)
            child = readers[ready]
            try:
                message: tuple[Any, ...] = ready.recv()
            except (EOFError, OSError):
                child.status = None
                continue
            self._handle(child, message)

    def _handle(self, child: _Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "failed":
            self.problems.append(f"{child.name} failed:\n{message[-1]}")
            return
        if child is self.injector:
            if kind == "ready":
                _, self.redis_url, self.proxy_url, self.redis_pid = message
            elif kind == "redis_pid":
                self.redis_pid = int(message[1])
            elif kind == "schedule_done":
                self.schedule_done_ns = int(message[1])
            return
        if child.name.startswith("instance-") and kind == "ready":
            _, slot_index, incarnation, pid, ready_ns = message
            slot = self.slots[slot_index]
            for life in slot.lives:
                if life.incarnation == incarnation:
                    life.ready_ns = ready_ns
            self.ready_pids[slot_index] = pid
        elif child.name.startswith("writer-") and kind == "ready":
            child.ready = True

    def _wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not condition():
            if self.problems:
                raise HarnessError("; ".join(self.problems))
            if time.monotonic() > deadline:
                raise HarnessError(f"timed out waiting for {what}")
            self._pump(_POLL_S)

    # -- supervision ----------------------------------------------------------------------

    def _supervise(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            child = slot.child
            if child is not None and not child.process.is_alive():
                life = slot.lives[-1]
                life.exited_ns = time.monotonic_ns()
                life.exitcode = child.process.exitcode
                self.ready_pids[slot.slot] = 0
                slot.child = None
                if len(slot.lives) > _MAX_RESTARTS_PER_SLOT:
                    self.problems.append(f"instance slot {slot.slot} keeps dying")
                    continue
                slot.restart_at = now + self.config.crash_restart_delay_s
                self.say(
                    f"instance {slot.slot} (pid {life.pid}) exited with {life.exitcode}; "
                    f"restarting in {self.config.crash_restart_delay_s:g}s"
                )
            elif child is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn_instance(slot)
        for writer in self.writers:
            if not writer.process.is_alive():
                self.problems.append(f"{writer.name} exited with {writer.process.exitcode}")
        if self.injector is not None and not self.injector.process.is_alive():
            self.problems.append(f"injector exited with {self.injector.process.exitcode}")

    def _workload_over(self) -> bool:
        config = self.config
        now = time.monotonic_ns()
        t0 = int(self.t0.value)
        if now < t0 + int(config.duration * 1e9):
            return False
        if now > t0 + int((config.duration + _OVERRUN_S) * 1e9):
            self.problems.append("the fault schedule did not finish in time")
            return True
        if not plan_faults(config):
            return True
        done = self.schedule_done_ns
        return done is not None and now >= done + int(tail_seconds(config) * 1e9)

    # -- the run --------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        create_truth(self.db_path, config.entities, config.payload_bytes)
        plan = plan_faults(config)
        self.say(
            "faults planned: "
            + (", ".join(f"{f.kind}@{f.at_s:g}s" for f in plan) if plan else "none")
        )
        if config.skipped_faults():
            self.say(f"skipped with an external Redis: {', '.join(config.skipped_faults())}")
        self.injector = self._spawn(
            "injector",
            injector_main,
            InjectorSpec(config, plan, os.path.join(self.dir, INJECTOR_LOG)),
            self.go,
            self.stop,
            self.teardown,
            self.t0,
            self.ready_pids,
        )
        self._wait_for(lambda: bool(self.proxy_url), "the injector (redis-server and proxy)")
        self.say(f"redis {self.redis_url}, instances connect through the proxy {self.proxy_url}")
        for slot in self.slots:
            self._spawn_instance(slot)
        ports = tuple(s.control_port for s in self.slots)
        for index in range(config.writers):
            spec = WriterSpec(
                config=config,
                index=index,
                db_path=self.db_path,
                redis_url=self.redis_url,
                control_ports=ports,
                authkey=self.authkey,
                log_path=os.path.join(self.dir, writer_log_name(index)),
            )
            self.writers.append(
                self._spawn(f"writer-{index}", writer_main, spec, self.go, self.stop)
            )
        # Writers start alongside the instances (both wait for the start signal).
        self._wait_for(
            lambda: all(self.ready_pids[s.slot] for s in self.slots),
            f"{config.instances} instances to be ready",
        )
        self._wait_for(
            lambda: all(w.ready for w in self.writers),
            f"{config.writers} writers to be ready",
        )
        self.say(f"instances ready: {config.instances}; writers ready: {config.writers}")

    def run_workload(self) -> tuple[int, int, list[ScrapePoint]]:
        self.t0.value = t0 = time.monotonic_ns()
        self.go.set()
        self.say(f"workload started: {self.config.duration:g}s")
        scraper = _Scraper(self.slots, lambda slot: bool(self.ready_pids[slot]))
        scraper.start()
        try:
            while not self._workload_over():
                self._pump(_POLL_S)
                self._supervise()
                if self.problems:
                    raise HarnessError("; ".join(self.problems))
        finally:
            scraper.stop()
        scraper.scrape_all()  # the last figures, just before the workload stops
        end = time.monotonic_ns()
        self.say(f"workload over after {(end - t0) / 1e9:.1f}s; stopping")
        return t0, end, scraper.points

    def shutdown(self) -> None:
        self.stopping = True
        self.stop.set()
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        ordered = [c for c in self.children if c is not self.injector]
        if self.injector is not None:
            ordered.append(self.injector)  # last: Redis must outlive the others' shutdown
        for child in ordered:
            if child is self.injector:
                self.teardown.set()
            child.process.join(max(0.1, deadline - time.monotonic()))
            if child.process.is_alive():
                problem = f"{child.name} did not stop within {_JOIN_TIMEOUT_S:g}s"
                if child.name.startswith("instance-"):
                    slot_no, incarnation = child.name.removeprefix("instance-").split(".")
                    log = os.path.join(self.dir, instance_log_name(int(slot_no), int(incarnation)))
                    problem += f" (its threads: {log}.stacks, its tasks: {log}.tasks)"
                self.problems.append(problem)
                self.say(f"{child.name} did not stop: stacks dumped (SIGUSR1), killed")
                if child.process.pid is not None and child.name.startswith("instance-"):
                    with contextlib.suppress(OSError):
                        os.kill(child.process.pid, signal.SIGUSR1)  # threads' stacks
                        os.kill(child.process.pid, signal.SIGUSR2)  # asyncio tasks' stacks
                    time.sleep(0.5)
                child.process.kill()
                child.process.join(5)
        for child in self.children:
            if child.status is not None:
                child.status.close()
                child.status = None
        for slot in self.slots:
            for life in slot.lives:
                if life.exited_ns is None:
                    life.exited_ns = time.monotonic_ns()
                    current = slot.child
                    life.exitcode = current.process.exitcode if current is not None else None
        self._reap_orphan_redis()

    def _reap_orphan_redis(self) -> None:
        """If the injector died without stopping its redis-server, stop it here."""
        pid = self.redis_pid
        if not pid or self.config.redis_url is not None:
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                is_redis = b"redis-server" in f.read()
        except OSError:
            return
        if is_redis:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)

    def lives(self) -> list[InstanceLife]:
        return [
            InstanceLife(
                life.slot,
                life.incarnation,
                life.pid,
                life.spawned_ns,
                life.ready_ns,
                life.exited_ns,
                life.exitcode,
            )
            for slot in self.slots
            for life in slot.lives
        ]


def run_harness(config: RunConfig, progress: TextIO = sys.stderr) -> RunData:
    """Run the whole harness once and return what every role recorded.

    :raises HarnessError: when the harness itself failed (not when an invariant was violated:
        that is the report's business).
    """
    directory = config.work_dir or tempfile.mkdtemp(prefix="gcache-integration-")
    os.makedirs(directory, exist_ok=True)
    run = _Run(config, directory, progress)
    try:
        run.start()
        t0, end, points = run.run_workload()
    except HarnessError as exc:
        run.say(f"harness failure; logs kept in {directory}")
        raise HarnessError(f"{exc} (logs in {directory})") from None
    finally:
        run.shutdown()
    try:
        data = RunData(
            config=config,
            t0_ns=t0,
            end_ns=end,
            redis_url=run.redis_url,
            proxy_url=run.proxy_url,
            planned_faults=len(plan_faults(config)),
            lives=run.lives(),
            scrapes=points,
            problems=list(run.problems),
        )
        load_logs(directory, data)
        keep = config.keep_logs or config.work_dir is not None or bool(run.problems)
        run.say(f"logs in {directory}" if keep else "logs loaded")
        return data
    finally:
        if not (config.keep_logs or config.work_dir is not None or run.problems):
            shutil.rmtree(directory, ignore_errors=True)
