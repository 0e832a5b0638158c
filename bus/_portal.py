"""A background event loop in a daemon thread, for sync callers and long-running bus tasks.

Sync cached functions do their Redis I/O here (``portal.call``), so a process with many threads
shares one loop and one connection pool instead of creating a loop per thread. The loop runs in
a daemon thread: an application that never closes its cache still exits.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

import anyio
from anyio.from_thread import BlockingPortal

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """A lazily started event loop thread with an anyio blocking portal."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` on the background loop and wait for its result (from any other thread)."""
        return self._get().call(func)

    def start_task(self, func: Callable[[], Awaitable[object]]) -> Future[object]:
        """Start ``func()`` as a task on the background loop without waiting for it; it is
        cancelled by :meth:`stop`."""
        return self._get().start_task_soon(func)

    def _get(self) -> BlockingPortal:
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._portal is None:
                self._start()
            assert self._portal is not None
            return self._portal

    def _start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._portal = portal
                ready.set()
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve)
            except BaseException as exc:  # pragma: no cover - reported to the starter
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=run, name=self._name, daemon=True)
        thread.start()
        ready.wait()
        if failure:
            raise RuntimeError("gcache background loop failed to start") from failure[0]
        self._thread = thread

    def stop(self) -> None:
        """Stop the loop and join its thread (a no-op when never started or called from it)."""
        with self._lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = None
        if portal is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("cannot stop the gcache background loop from inside it")
        portal.call(portal.stop, True)  # cancel what still runs there (the bus subscriber)
        thread.join()
