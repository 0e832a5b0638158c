"""The subscriber: follows a namespace's bus and proves how fresh its view is.

States and transitions (one subscriber per process)::

    state        enters when                              leaves when
    ───────────  ───────────────────────────────────────  ──────────────────────────────────────
    STOPPED      created, or run() ended                  run() starts            → CONNECTING
    CONNECTING   run() starts, or a session failed        position established    → CATCHING_UP
                 (jittered exponential backoff between       (gap reported first when one is
                 attempts, forever)                          possible: first start, restart of
                                                             Redis, every pub/sub subscribe)
    CATCHING_UP  connected, reading what was missed       a read proves it is current → LIVE
    LIVE         every event older than the last proof    error or timeout         → CONNECTING
                 has been applied                         run() cancelled          → STOPPED

A *gap* is any moment at which events may have been missed: the stream was trimmed past our
position or Redis restarted (the sequence number jumps or goes back, or the server's run id
changed), pub/sub (re)subscribed, or the subscriber just started. The handler's ``on_gap`` gets a
Redis time read *after* the gap, and must drop everything it derived from events before it —
the cache flushes its LOCAL layer and refuses values computed before that time.

The staleness proof. ``fresh_until`` is a deadline on ``time.monotonic()``; ``is_fresh()`` is
true before it. It is renewed only by a *proof*: a request sent at local time ``t`` whose reply
shows that everything published before ``t`` has been applied. Then every event older than
``t`` is applied, so until ``t + max_staleness`` every event older than ``max_staleness`` is
applied: the deadline is ``t + max_staleness``.

* Streams: an ``XREAD`` from our last id, sent at ``t``, returns every entry appended before the
  server ran it (after ``t``), up to COUNT. A reply with fewer than COUNT entries therefore
  proves ``t`` once its entries are applied. On an idle stream the blocking read answers only
  on Redis' cron tick, so every ``block_ms`` (a quarter of the bound) a second connection asks
  for the newest entry: sent at ``t``, an answer no newer than what we applied proves ``t``.
* Pub/sub: a ``PING`` sent at ``t`` on the subscribed connection is answered after every message
  published before it reached the server, in order; its ``PONG`` proves ``t``.

On a Redis Cluster the same proofs hold on one node: the stream (and the channel's announcing
script) lives in the namespace's slot, so every read, every drain and the subscribed connection
go to the primary of that slot — the node where events are appended or published. After a
failover or a slot migration the session fails (MOVED, connection lost), the client refreshes its
slot map, and the next session sees another run id: a gap, so the LOCAL layer is flushed, because
a replica promoted without some of the last events would never show them.

Nothing else renews the deadline: a disconnect, a paused Redis or a stalled event loop simply
let it pass, and the cache then bypasses LOCAL hits of tracked entries until a new proof.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from redis.asyncio.client import PubSub
from tenacity import AsyncRetrying, retry_if_exception_type, wait_random_exponential

from ._clock import RedisClock
from ._cluster import (
    REDIS_ERRORS,
    AnyRedis,
    connection_kwargs,
    ensure_initialized,
    is_cluster,
)
from ._lost_cancel import cancel_requests, raise_if_cancel_lost
from ._metrics import BusMetrics
from ._names import bus_key, seq_key
from ._scripts import DRAIN, POSITION, SERVER_TIME
from ._topic import Transport
from ._wire import Event, FlushEvent, UnknownEvent, WireError, decode

__all__ = ["EventHandler", "Subscriber", "SubscriberState", "SubscriberStats"]

_RETRYABLE = REDIS_ERRORS

_WAKE_COUNT = 2
"""COUNT of the blocking XREAD. One entry back (fewer than COUNT) proves the read saw the end of
the stream; two mean there may be more, fetched in bulk by DRAIN."""


class SubscriberState(enum.Enum):
    """Where the subscriber is in the table of the module docstring."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CATCHING_UP = "catching_up"
    LIVE = "live"


class EventHandler(Protocol):
    """What a subscriber calls; both run on the subscriber's event loop and must not block."""

    def on_event(self, event: Event) -> None:
        """Apply one event of the subscriber's namespace."""

    def on_gap(self, reason: str, redis_time_us: int) -> None:
        """Events before ``redis_time_us`` may have been missed: drop what depends on them."""


@dataclass(frozen=True)
class SubscriberStats:
    """A snapshot of :meth:`Subscriber.statistics`."""

    state: SubscriberState
    events: int
    gaps: int
    reconnects: int
    malformed: int
    last_id: str | None
    last_seq: int | None
    fresh: bool


class _SessionEnded(Exception):
    """A session that had gone LIVE failed: reconnect with the backoff reset."""


class Subscriber:
    """Follows one namespace's bus on one Redis and feeds a handler.

    ``client_factory`` returns a ``redis.asyncio.Redis`` or ``RedisCluster``; it is called again
    after a failed session. Run with ``await subscriber.run()`` (returns only when cancelled) in
    a task.
    """

    def __init__(
        self,
        client_factory: Callable[[], AnyRedis],
        handler: EventHandler,
        *,
        namespace: str = "gcache",
        transport: Transport = "streams",
        max_staleness_ms: float = 500.0,
        metrics: BusMetrics | None = None,
        clock: RedisClock | None = None,
        read_count: int = 1000,
        max_backoff: float = 2.0,
        release_client: Callable[[AnyRedis], Awaitable[None]] | None = None,
    ) -> None:
        if transport not in ("streams", "pubsub"):
            raise ValueError(f"transport must be 'streams' or 'pubsub', got {transport!r}")
        self._factory = client_factory
        self._handler = handler
        self.namespace = namespace
        self.transport = transport
        self._key = bus_key(namespace)
        self._seq_key = seq_key(namespace)
        self._staleness_ns = int(max_staleness_ms * 1e6)
        self._block_ms = max(5, int(max_staleness_ms / 4))
        # A read that has not answered by then means a dead or paused server.
        self._read_timeout = self._block_ms / 1000 + max(max_staleness_ms / 1000, 1.0)
        self._metrics = metrics
        self._clock = clock
        self._count = read_count
        self._max_backoff = max_backoff
        self._release = release_client
        self.state = SubscriberState.STOPPED
        self.fresh_until = 0.0
        """The ``time.monotonic()`` instant until which :meth:`is_fresh` holds. The cache reads it
        directly on a LOCAL hit, against the clock reading it takes for the entry's TTL anyway."""
        self._last_id: bytes | None = None
        self._last_seq: int | None = None
        self._run_id: str | None = None
        self._events = self._gaps = self._reconnects = self._malformed = 0
        self._newest_sent_at = 0
        self._sessions = 0

    # -- what the cache reads -------------------------------------------------------------

    def is_fresh(self) -> bool:
        """True while every event older than ``max_staleness_ms`` is known to be applied."""
        return time.monotonic() < self.fresh_until

    def statistics(self) -> SubscriberStats:
        return SubscriberStats(
            state=self.state,
            events=self._events,
            gaps=self._gaps,
            reconnects=self._reconnects,
            malformed=self._malformed,
            last_id=None if self._last_id is None else self._last_id.decode(),
            last_seq=self._last_seq,
            fresh=self.is_fresh(),
        )

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the bus until cancelled, reconnecting with jittered backoff forever."""
        baseline = cancel_requests()
        try:
            while True:
                retrying = AsyncRetrying(
                    wait=wait_random_exponential(multiplier=0.05, max=self._max_backoff),
                    retry=retry_if_exception_type(_RETRYABLE),
                )
                try:
                    async for attempt in retrying:
                        with attempt:
                            # A cancellation redis-py turned into a connection error must end
                            # the loop, not start another session.
                            raise_if_cancel_lost(baseline)
                            await self._session()
                except _SessionEnded:
                    continue  # had been live: reconnect at once, backoff from scratch
        finally:
            self.state = SubscriberState.STOPPED
            self.fresh_until = 0.0

    async def _session(self) -> None:
        self.state = SubscriberState.CONNECTING
        if self._sessions:
            self._reconnects += 1
            if self._metrics is not None:
                self._metrics.reconnects.inc()
        self._sessions += 1
        client = self._factory()
        if connection_kwargs(client).get("decode_responses"):
            raise TypeError(
                "the bus subscriber needs a client with decode_responses=False "
                "(it reads stream fields and PONG replies as bytes)"
            )
        try:
            await ensure_initialized(client)
            if self.transport == "streams":
                await self._follow_stream(client)
            else:
                await self._follow_channel(client)
        except _RETRYABLE as exc:
            if self.state is SubscriberState.LIVE:
                raise _SessionEnded(repr(exc)) from exc
            raise
        finally:
            self.state = SubscriberState.CONNECTING
            if self._release is not None:
                with anyio.CancelScope(shield=True):
                    await self._release(client)

    async def _server_time(self, client: AnyRedis) -> int:
        t0 = time.monotonic_ns()
        # TIME of the node holding the bus: on a Cluster, the clock that stamps the events.
        seconds, micros = await SERVER_TIME.run(client, [self._key], [])
        now = int(seconds) * 1_000_000 + int(micros)
        if self._clock is not None:
            self._clock.observe(t0, now, time.monotonic_ns())
        return now

    async def _gap(self, client: AnyRedis, reason: str) -> None:
        self._gaps += 1
        if self._metrics is not None:
            self._metrics.gap(reason)
        self._handler.on_gap(reason, await self._server_time(client))

    async def _check_server(self, client: AnyRedis) -> bool:
        """True if this is another server than last time (restarted: its stream position and
        sequence mean nothing now)."""
        if is_cluster(client):
            node = client.get_node_from_key(self._key)
            info = await client.info("server", target_nodes=node)
        else:
            info = await client.info("server")
        run_id = str(info.get("run_id", ""))
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        if restarted:
            self._last_id = None
            self._last_seq = None
        return restarted

    async def _follow_stream(self, client: AnyRedis) -> None:
        with anyio.fail_after(self._read_timeout):
            restarted = await self._check_server(client)
            if self._last_id is None:
                # First start (or a new server): begin at the current end, taking the position
                # and the sequence counter in one transaction so the next event must be seq+1.
                # Whatever the handler holds from before is not covered, hence the gap.
                newest, seq = await POSITION.run(client, [self._key, self._seq_key], [""])
                self._last_id = newest or b"0-0"
                self._last_seq = int(seq)
                await self._gap(client, "server_restarted" if restarted else "start")
            else:
                # Resuming, but events after our position may be gone (trimmed, XTRIM, DEL) and
                # no later event may ever show the jump: say it now.
                lost = await self._lost_since(client, self._last_id)
                if lost is not None:
                    self._last_seq = None
                    await self._gap(client, lost)
        self.state = SubscriberState.CATCHING_UP
        prober = asyncio.get_running_loop().create_task(self._prove_idle(client))
        try:
            await self._read_stream(client)
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    async def _read_stream(self, client: AnyRedis) -> None:
        position: bytes = self._last_id  # type: ignore[assignment]  # set by _follow_stream
        while True:
            sent = time.monotonic_ns()
            with anyio.fail_after(self._read_timeout):
                # A wake-up: what follows its entries comes in bulk (DRAIN), whose replies are
                # cheaper to parse than XREAD's.
                reply: Any = await client.xread(
                    {self._key: position}, count=_WAKE_COUNT, block=self._block_ms
                )
            # RESP2 reply: [[stream, [(id, {field: value})]]], or None when BLOCK ran out.
            if reply:
                entries = reply[0][1]
                for entry_id, fields in entries:
                    await self._apply(client, fields.get(b"d"))
                    self._last_id = position = entry_id
                # Fewer than COUNT: the read saw the end of the stream, after `sent` (the usual
                # single event, then, costs one round trip). Else there may be more.
                more = len(entries) == _WAKE_COUNT
                while more:
                    with anyio.fail_after(self._read_timeout):
                        batch = await DRAIN.run(client, [self._key], [position, self._count])
                    drained = _drained(batch)
                    for entry_id, payload in drained:
                        await self._apply(client, payload)
                        self._last_id = position = entry_id
                    # Fewer than COUNT: the drain ran after `sent` and saw the end.
                    more = len(drained) == self._count
                self._observe_lag()
            self._renew(sent)

    async def _prove_idle(self, client: AnyRedis) -> None:
        """Renew the proof while the stream is idle.

        Redis ends a ``BLOCK`` that ran out only on its cron tick (every 100 ms at the default
        ``hz``), so an idle blocking read answers up to a tick late: too late for a bound of a
        few hundred milliseconds. Every ``block_ms`` this asks, on another connection of the
        pool, for the newest entry: if it is one we have applied, everything sent before the
        question has been applied. Errors are the blocking reader's business; this just waits
        for the next turn."""
        interval = self._block_ms / 1000
        baseline = cancel_requests()
        while True:
            await anyio.sleep(interval)
            applied = self._last_id
            sent = time.monotonic_ns()
            try:
                with anyio.fail_after(self._read_timeout):
                    newest: Any = await client.xrevrange(self._key, count=1)
            except _RETRYABLE:
                # Unless it was the cancellation that ends this task, swallowed by redis-py:
                # the session waits for this task to end before it can end itself.
                raise_if_cancel_lost(baseline)
                continue
            if self.state is SubscriberState.CONNECTING or applied is None:
                continue
            newest_id = newest[0][0] if newest else b"0-0"
            if _stream_id(newest_id) <= _stream_id(applied):
                self._renew(sent)

    def _renew(self, sent_ns: int) -> None:
        """Everything published before ``sent_ns`` is applied (see the module docstring)."""
        # int / float: the same double time.monotonic() makes of these nanoseconds.
        deadline = (sent_ns + self._staleness_ns) / 1e9
        if deadline > self.fresh_until:
            self.fresh_until = deadline
        self.state = SubscriberState.LIVE

    async def _lost_since(self, client: AnyRedis, last_id: bytes) -> str | None:
        """The gap reason if events were published after ``last_id`` that the stream no longer
        holds, else None."""
        if self._last_seq is None:
            return None  # no baseline: the sequence check on the next event decides
        following, seq = await POSITION.run(client, [self._key, self._seq_key], [last_id])
        published = int(seq)
        if published < self._last_seq:
            return "sequence_reset"  # the counter went back: the bus was reset under us
        # With an entry after our position, the sequence check on applying it finds any jump.
        if not following and published > self._last_seq:
            return "missed_events"
        return None

    async def _follow_channel(self, client: AnyRedis) -> None:
        if is_cluster(client):
            # The announcing scripts PUBLISH on the primary of the bus's slot; the PING proof
            # needs the subscription on that same node.
            pubsub: PubSub = client.pubsub(node=client.get_node_from_key(self._key))
        else:
            pubsub = client.pubsub()
        try:
            with anyio.fail_after(self._read_timeout):
                await pubsub.subscribe(self._key)
                while True:  # the subscribe confirmation comes first
                    message = await pubsub.get_message(timeout=self._read_timeout)
                    if message is not None and message["type"] == "subscribe":
                        break
                # Messages published before the subscription took effect are lost to us.
                self._last_seq = None
                await self._gap(client, "subscribed")
            self.state = SubscriberState.CATCHING_UP
            interval_ns = self._block_ms * 1_000_000
            pings: collections.deque[int] = collections.deque()
            next_ping = 0
            while True:
                now = time.monotonic_ns()
                if now >= next_ping:
                    pings.append(now)
                    await pubsub.ping()
                    next_ping = now + interval_ns
                if pings and now - pings[0] > self._read_timeout * 1e9:
                    raise TimeoutError("no PONG from the server: treating it as gone")
                message = await pubsub.get_message(timeout=self._block_ms / 1000)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message":
                    await self._apply(client, message["data"])
                    self._observe_lag()
                elif kind == "pong" and pings:
                    self._renew(pings.popleft())
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    async def _apply(self, client: AnyRedis, data: Any) -> None:
        try:
            if not isinstance(data, (bytes, str)):
                raise WireError(f"payload of type {type(data).__name__}")
            event = decode(data)
        except WireError as exc:
            self._malformed += 1
            if self._metrics is not None:
                self._metrics.malformed("unknown" if isinstance(exc, UnknownEvent) else "malformed")
            return
        if event.namespace != self.namespace:
            self._malformed += 1
            if self._metrics is not None:
                self._metrics.malformed("other_namespace")
            return
        last = self._last_seq
        if last is not None and event.seq != last + 1:
            # Trimmed past us (jump) or the sequence restarted (Redis lost its data).
            await self._gap(client, "missed_events" if event.seq > last else "sequence_reset")
        self._last_seq = event.seq
        self._handler.on_event(event)
        self._events += 1
        if self._metrics is not None:
            if isinstance(event, FlushEvent):
                self._metrics.flush_events.inc()
            else:
                self._metrics.invalidate_events.inc()
        self._newest_sent_at = event.sent_at

    def _observe_lag(self) -> None:
        """Propagation lag of the newest event of a batch (once per read, not per event: the
        histogram would otherwise cost as much as applying the event)."""
        clock, metrics = self._clock, self._metrics
        if self._newest_sent_at and metrics is not None and clock is not None and clock.synced:
            metrics.lag.observe(max(0, clock.now_us() - self._newest_sent_at) / 1e6)
        self._newest_sent_at = 0


def _stream_id(raw: bytes) -> tuple[int, int]:
    milliseconds, _, sequence = raw.partition(b"-")
    return int(milliseconds), int(sequence or 0)


def _drained(batch: bytes) -> list[tuple[bytes, bytes]]:
    """Split a DRAIN reply (``<id> <length>\\n<payload>`` repeated) into ``(id, payload)``."""
    entries = []
    at = 0
    end = len(batch)
    while at < end:
        space = batch.index(b" ", at)
        newline = batch.index(b"\n", space)
        start = newline + 1
        stop = start + int(batch[space + 1 : newline])
        entries.append((batch[at:space], batch[start:stop]))
        at = stop
    return entries
