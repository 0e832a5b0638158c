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
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["ABANDONED", "AsyncFlights", "SyncFlights"]


class _Outcome:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Any = _Outcome()
"""What :meth:`AsyncFlights.join` returns when the flight's leader was cancelled."""


class _Abandoned(Exception):
    """Set on a flight's future when its leader was cancelled: :meth:`AsyncFlights.join`
    turns it into :data:`ABANDONED`."""


class AsyncFlights:
    """Single-flight for coroutines on one or more asyncio loops.

    A flight is led per ``(loop, key)``: a future can only be awaited on its own loop. The
    leader registers nothing but its loop; the future its waiters share is made by the first
    waiter, so a flight nobody joins (nearly all of them: a REMOTE hit is one) allocates no
    future and sets no result.

    Re-entry is only possible from the user's function (everything else a flight does is the
    cache's own I/O), so the leader marks the key as "being led" only around that function:
    ``token = flights.lead(key)`` ... ``flights.release(token)``. The REMOTE-hit path, which
    never calls the function, pays nothing for it.
    """

    def __init__(self) -> None:
        self._leaders: dict[Hashable, asyncio.AbstractEventLoop] = {}
        """The loop whose flight of a key is under way (the latest, when several are)."""
        self._waiting: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Future[Any]] = {}
        """The future of a flight that has waiters."""
        self._leading: contextvars.ContextVar[frozenset[Hashable]] = contextvars.ContextVar(
            f"gcache_flights_{id(self):x}", default=frozenset()
        )

    def start(
        self, key: Hashable, loop: asyncio.AbstractEventLoop
    ) -> asyncio.AbstractEventLoop | None:
        """Lead a flight of ``key`` on ``loop``, the running loop (the caller has it at hand
        already): returns the token (the loop) to end it with :meth:`finish` or :meth:`fail`;
        or None when one is already under way here, which the caller joins (:meth:`join`)
        unless it is that flight's own leader (:meth:`reentered`).

        No method of the protocol is a coroutine but :meth:`join`: the common case, a flight
        nobody joins, adds no coroutine frame to the caller's."""
        if self._leaders.get(key) is loop:
            return None
        self._leaders[key] = loop
        return loop

    def finish(self, key: Hashable, loop: asyncio.AbstractEventLoop, result: Any) -> None:
        """End a flight: its waiters get ``result``."""
        if self._leaders.get(key) is loop:
            del self._leaders[key]
        if self._waiting:
            future = self._waiting.pop((loop, key), None)
            if future is not None:
                future.set_result(result)

    def fail(self, key: Hashable, loop: asyncio.AbstractEventLoop, error: BaseException) -> None:
        """End a flight that raised: waiters get the same exception, or, when the leader was
        cancelled (or the process is exiting), retry with one of them as the new leader."""
        if self._leaders.get(key) is loop:
            del self._leaders[key]
        future = self._waiting.pop((loop, key), None)
        if future is None:
            return
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
            future.set_exception(_Abandoned())
        else:
            future.set_exception(error)
        future.exception()  # mark retrieved: its waiters may all have been cancelled

    def reentered(self, key: Hashable) -> bool:
        """Whether the flight of ``key`` under way is led by this very task (or by one that
        started it): its function called back into the key, and waiting would deadlock."""
        return key in self._leading.get()

    async def join(self, key: Hashable) -> Any:
        """Wait for the flight of ``key`` under way on this loop (:meth:`start` returned None):
        its result, or its exception raised here; or :data:`ABANDONED` when its leader was
        cancelled, and the caller should :meth:`start` again (one of the waiters leads next)."""
        loop = asyncio.get_running_loop()
        future = self._waiting.get((loop, key))
        if future is None:
            future = self._waiting[(loop, key)] = loop.create_future()
        try:
            return await asyncio.shield(future)
        except _Abandoned:
            return ABANDONED

    def lead(self, key: Hashable) -> contextvars.Token[frozenset[Hashable]]:
        """Mark ``key`` as led by this task (and the tasks it starts) until :meth:`release`."""
        return self._leading.set(self._leading.get() | {key})

    def release(self, token: contextvars.Token[frozenset[Hashable]]) -> None:
        self._leading.reset(token)


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
