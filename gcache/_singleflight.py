"""Single-flight: concurrent misses of one key in one process run the function once.

The first caller of a key (the leader) computes; callers arriving while it runs wait and get
the same result or the same exception. If the leader is cancelled, its waiters are not: the
flight is abandoned and one of them becomes the next leader.

Async flights live per event loop (a future can only be awaited on its own loop); sync flights
use a threading.Event. A caller that re-enters a flight it is leading (recursion on the same key,
directly or through tasks it started) does not wait for itself: it computes directly. For
threads that is the owner thread; for tasks a context variable holding the keys being led, which
child tasks inherit.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = ["AsyncFlights", "SyncFlights"]


class _Abandoned(Exception):
    """The leader was cancelled; waiters retry."""


class AsyncFlights:
    """Single-flight for coroutines on one or more asyncio loops."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}
        self._leading: contextvars.ContextVar[frozenset[Hashable]] = contextvars.ContextVar(
            f"gcache_flights_{id(self):x}", default=frozenset()
        )

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            loop = asyncio.get_running_loop()
            future = self._flights.get(key)
            if future is None or future.get_loop() is not loop:
                break
            if key in self._leading.get():
                return await compute()  # re-entered our own flight: waiting would deadlock
            try:
                return await asyncio.shield(future)
            except _Abandoned:
                continue
        future = loop.create_future()
        self._flights[key] = future
        token = self._leading.set(self._leading.get() | {key})
        try:
            result = await compute()
        except BaseException as exc:
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                future.set_exception(_Abandoned())
            else:
                future.set_exception(exc)
            future.exception()  # mark retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            return result
        finally:
            self._leading.reset(token)
            if self._flights.get(key) is future:
                del self._flights[key]


class _SyncFlight:
    __slots__ = ("done", "error", "owner", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.owner = threading.get_ident()
        self.result: Any = None
        self.error: BaseException | None = None


class SyncFlights:
    """Single-flight across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _SyncFlight] = {}

    def run(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        while True:
            with self._lock:
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _SyncFlight()
                    break
            if flight.owner == threading.get_ident():
                return compute()  # re-entered our own flight: waiting would deadlock
            flight.done.wait()
            if isinstance(flight.error, _Abandoned):
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            flight.result = compute()
        except BaseException as exc:
            flight.error = exc if isinstance(exc, Exception) else _Abandoned()
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.result
