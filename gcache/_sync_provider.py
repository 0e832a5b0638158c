"""The config provider's answer for a sync caller: without an event loop whenever possible.

A sync cached function asks the provider on every call, from a thread that has no event loop,
and the provider is usually an ``async def`` that does no I/O: its coroutine finishes on its
first step. The obvious way to run it there, ``coroutine.send(None)``, hands the answer back
inside a ``StopIteration``, which costs more than the rest of the step (an exception object, a
traceback entry, the ``except`` match), on a path whose budget is two microseconds.

Instead each thread keeps a *driver*: a generator that takes a coroutine, runs it with
``yield from`` (where a finished coroutine's value arrives without any exception) and yields the
answer back. It is suspended between calls, ready for the next coroutine.

What the driver cannot do is wait: a provider that suspends on a future needs a loop. Bare
yields (``await asyncio.sleep(0)``) are stepped through; on a future, or on "no running event
loop", the coroutine is closed and the provider called again on gcache's background loop (its
code before that point runs twice, which is why providers should not do I/O). A provider that
raises is called once; its exception ends the driver, and the next call makes a new one.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from bus._portal import BackgroundLoop

__all__ = ["SyncProvider"]

Provider = Callable[[Any], Any]
_Coroutine = types.CoroutineType


class _Drivers(threading.local):
    """Each thread's idle driver (None until its first ``async def`` answer, and while a
    provider's exception has ended the last one)."""

    driver: types.GeneratorType[Any, Any, None] | None = None


@types.coroutine
def _driver() -> Generator[Any, Coroutine[Any, Any, Any], None]:
    answer = None
    while True:
        coroutine = yield answer
        answer = yield from coroutine


def _new_driver() -> types.GeneratorType[Any, Any, None]:
    driver: types.GeneratorType[Any, Any, None] = _driver()  # type: ignore[assignment]
    driver.send(None)  # to its first ``yield``: ready for a coroutine
    return driver


class SyncProvider:
    """``answer(key)``: what ``provider(key)`` returns, or what its coroutine returns."""

    def __init__(self, provider: Provider, background: BackgroundLoop) -> None:
        self._provider = provider
        self._background = background
        self._threads = _Drivers()

    def answer(self, key: Any) -> Any:
        result = self._provider(key)
        if type(result) is not _Coroutine:
            return result  # a plain ``def`` provider (Runner.layers checks what it returned)
        threads = self._threads
        driver = threads.driver
        if driver is None or driver.gi_running:  # first call in this thread, or re-entered
            driver = threads.driver = _new_driver()
        try:
            answer = driver.send(result)
            if driver.gi_yieldfrom is not None:  # the coroutine suspended: ``answer`` it yielded
                return self._suspended(key, driver, answer)
        except BaseException as exc:
            threads.driver = None  # the exception went through the driver and ended it
            if isinstance(exc, RuntimeError) and "no running event loop" in str(exc):
                return self._on_background(key)
            raise
        return answer

    def _suspended(
        self, key: Any, driver: types.GeneratorType[Any, Any, None], yielded: Any
    ) -> Any:
        """Step through bare yields; on anything else, start over on the background loop."""
        while yielded is None:
            yielded = driver.send(None)
            if driver.gi_yieldfrom is None:
                return yielded  # finished: this is the answer
        driver.close()  # suspended on a future of a loop we cannot wait for here
        self._threads.driver = None
        return self._on_background(key)

    def _on_background(self, key: Any) -> Any:
        if self._background.in_loop_thread():
            raise RuntimeError("async config provider suspended on gcache's background loop")
        provider = self._provider
        return self._background.call(lambda: provider(key))
