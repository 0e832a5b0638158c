"""What ``@gcache.cached(...)`` turns a function into.

One :class:`Runner` per decorated function holds every decision (key, config, ramp, validity,
what to store) and all I/O as async methods. The sync wrapper runs those coroutines on the
background loop through the portal, and does everything without I/O (LOCAL hit, config, key,
pickling, the function itself) in the caller's thread. The async wrapper awaits the same methods
on the caller's loop, with one exception: the clock check and REMOTE read before the function
(``Runner.before_call`` for sync callers) are written inline in it, so that a REMOTE hit runs in
a single coroutine frame of gcache's (each frame is a measurable share of a hit's cost). What
happens with the answer is shared again (``Runner.accept_remote``). For the same reason both
wrappers do the LOCAL lookup and its counting inline.

Read path of one call::

    enabled? ─no─► function
    key, config, ramp ─► LOCAL hit? ─yes─► value   (tracked: only while the bus is fresh)
                          │ no
                          ▼  single-flight per key (one function call per process)
                    REMOTE hit? (a bare GET: invalidation and flush delete stale values)
                          │                  ─yes─► store LOCAL, value
                          │ no
                    computed_at = cache time now; value = function()
                    REMOTE write (conditional script); LOCAL store unless the script refused

Nothing below raises into the caller except the function's own exceptions: every cache failure
is counted, logged once per burst and bypassed (fail open). The function runs exactly once per
call whatever fails around it, and all of a call's Redis round trips share one time budget.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sys
import time
import types
from asyncio import get_running_loop
from collections.abc import Awaitable, Callable, Hashable
from random import random
from typing import TYPE_CHECKING, Any

import anyio

from bus._retry import retry_async

from ._bus_link import freshness_of
from ._codec import DecodeError
from ._config import GCacheKeyConfig
from ._exceptions import KeyBuildError
from ._keys import BadCall, KeySpec, watermark_key
from ._local import MISS
from ._metrics import TIMING_SAMPLE
from ._remote import REDIS_ERRORS, RemoteError, kind_of
from ._scripts import WriteResult
from ._singleflight import ABANDONED

if TYPE_CHECKING:
    from ._cache import GCache
    from ._metrics import FunctionMetrics

__all__ = ["Runner", "wrap_async", "wrap_sync"]

_perf = time.perf_counter
_NO_LAYERS = (0.0, 0.0)
_NO_CONFIG = object()
_Coroutine = types.CoroutineType


class _Fill:
    """What a call that missed carries from its REMOTE read to its REMOTE write (and, for sync
    callers, what the read on the background loop hands back to the caller's thread)."""

    __slots__ = (
        "computed_at",
        "io_spent",
        "keeps_local",
        "raw",
        "read_at",
        "read_seconds",
        "remote_key",
    )

    def __init__(self, remote_key: str | None, keeps_local: bool) -> None:
        self.remote_key = remote_key
        self.keeps_local = keeps_local  # a REMOTE hit will be stored in the LOCAL layer
        self.raw: bytes | None = None  # only valid values are ever stored (see RemoteStore.get)
        self.read_at: int | None = None  # cache time just before the REMOTE read (if keeps_local)
        self.read_seconds: float | None = None  # how long the REMOTE read took, if it answered
        self.io_spent = 0.0  # seconds of Redis I/O so far: a call's I/O shares one budget
        self.computed_at: int | None = None


class Runner:
    """Decisions and I/O for one decorated function; shared by the async and sync wrappers."""

    def __init__(self, cache: GCache, spec: KeySpec) -> None:
        self.cache = cache
        self.spec = spec
        self.metrics: FunctionMetrics = cache._metrics.bind(spec.use_case, spec.key_type)
        self.local = cache._local
        self.remote = cache._remote
        self.codec = cache._codec
        self.provider = cache.config.cache_config_provider
        self.namespace = cache.config.namespace
        self.value_key = spec.value_key_of(self.namespace)
        self.timer = cache.config.timer
        # Tracked LOCAL hits are served only while the bus proves its staleness bound: until
        # freshness.fresh_until, on timer.
        bus = cache._bus
        self.freshness = (
            freshness_of(bus, self.timer) if (bus is not None and spec.tracked) else None
        )
        # Which LOCAL lookups and REMOTE decodes are timed (one in TIMING_SAMPLE of each, the
        # first included). next() is atomic under the GIL: no lost tick.
        self.lookups = itertools.count()
        self._decodes = itertools.count()
        # GCacheConfig.config_reuse_sec: the provider's last answer and until when it holds
        # (one tuple, replaced whole, so threads never see half of an update).
        self.reuse_sec = cache.config.config_reuse_sec
        self.reused: tuple[float, Any] | None = None
        # The last config whose layers involve no draw, and those layers: providers usually
        # hand back the same frozen GCacheKeyConfig, and the wrappers then skip layers().
        self.settled: tuple[object, tuple[float, float]] = (_NO_CONFIG, _NO_LAYERS)

    # -- decisions (no I/O) ---------------------------------------------------------------

    def layers(self, config: GCacheKeyConfig | None) -> tuple[float, float]:
        """``(local_ttl, remote_ttl)`` for this call; 0 means the layer is not used."""
        if config is None:
            self.metrics.disabled("all", "missing_config")
            return _NO_LAYERS
        if not isinstance(config, GCacheKeyConfig):
            self.config_failed(TypeError(f"provider returned {type(config).__name__}"))
            return _NO_LAYERS
        local_ttl = config.local_ttl
        if local_ttl:
            ramp = config.local_ramp
            if ramp < 100 and (ramp <= 0 or random() * 100 >= ramp):
                self.metrics.disabled("local", "ramped_down")
                local_ttl = 0.0
        remote_ttl = config.remote_ttl if self.remote is not None else 0.0
        if remote_ttl:
            ramp = config.remote_ramp
            if ramp < 100 and (ramp <= 0 or random() * 100 >= ramp):
                self.metrics.disabled("remote", "ramped_down")
                remote_ttl = 0.0
        layers = local_ttl, remote_ttl
        if (not config.local_ttl or config.local_ramp >= 100) and (
            not config.remote_ttl or config.remote_ramp >= 100
        ):
            self.settled = (config, layers)  # no draw: the same config gives the same layers
        return layers

    def key_failed(self, exc: Exception) -> None:
        """``spec.local_key`` raised (the wrappers call it inline): the call runs uncached,
        counted unless it is a call the function itself will reject."""
        if isinstance(exc, BadCall):
            return  # a call the function rejects: let it raise its own error
        # No stable key form, or an adapter / id extractor failed.
        reason = "unkeyable_argument" if isinstance(exc, KeyBuildError) else "key_error"
        self.metrics.disabled("all", reason)
        self.cache._log.error(reason, f"gcache {self.spec.use_case}: no cache key: {exc}", exc)

    def config_failed(self, exc: Exception) -> None:
        self.metrics.disabled("all", "config_error")
        self.cache._log.error(
            "config_error", f"gcache {self.spec.use_case}: config provider raised {exc!r}", exc
        )

    def timed_local_get(self, key: tuple[Hashable, ...], ttl: float) -> Any:
        """``local.get``, timed: one lookup in ``TIMING_SAMPLE`` is."""
        started = _perf()
        value = self.local.get(key, ttl)
        self.metrics.get_local.observe(_perf() - started)
        return value

    def local_bypassed(self) -> Any:
        """A tracked entry's LOCAL lookup while the bus cannot vouch for it: a miss, counted
        as a bypass (not as a request)."""
        self.metrics.disabled("local", "bus_unsynced")
        return MISS

    def new_fill(self, key: tuple[Hashable, ...], local_ttl: float, remote_ttl: float) -> _Fill:
        """A sync call's fill (the async wrapper makes one only on a miss)."""
        self.ensure_bus()
        remote_key = self.value_key(key) if remote_ttl else None
        return _Fill(remote_key, bool(local_ttl))

    def ensure_bus(self) -> None:
        """Start the invalidation bus on the first call that may fill a key."""
        if self.cache._bus_task is None:
            self.cache._ensure_bus()

    def read_failed(self, exc: BaseException) -> None:
        """The REMOTE read raised a Redis error: counted as a request, an error and a miss."""
        self.failed("remote", kind_of(exc), exc)
        self.metrics.request_remote()
        self.metrics.miss_remote()

    def accept_remote(
        self,
        key: tuple[Hashable, ...],
        raw: bytes | None,
        remote_key: str,
        keeps_local: bool,
        read_at: int | None,
        read_seconds: float,
    ) -> Any:
        """Count a REMOTE read that answered ``raw`` in ``read_seconds``; return its value if it
        decodes, else MISS. Nothing stale is ever stored under a key (see ``before_call``)."""
        metrics = self.metrics
        metrics.get_remote.observe(read_seconds)
        metrics.request_remote()
        if raw is None:
            metrics.miss_remote()
            return MISS
        timed = not next(self._decodes) % TIMING_SAMPLE
        started = _perf() if timed else 0.0
        try:
            if not keeps_local:  # its computed_at would only matter to the LOCAL layer
                value = self.codec.decode_value(raw, remote_key)
            else:
                computed_at, value = self.codec.decode(raw, remote_key)
        except DecodeError as exc:
            self.failed("remote", exc.reason, exc)
            metrics.miss_remote()
            return MISS
        if timed:
            metrics.load.observe(_perf() - started)
        if keeps_local:
            self.local.put(
                key,
                value,
                computed_at=computed_at,
                size=len(raw),
                entity=self._entity(key),
                verified_at=read_at,
            )
        return value

    def prepare(self, value: Any) -> bytes | None:
        """Pickled ``value``, or None when it cannot or must not be cached (counted)."""
        metrics = self.metrics
        started = _perf()
        try:
            payload = self.codec.serialize(value)
        except Exception as exc:
            self.failed("remote", "unserializable", exc)
            return None
        metrics.dump.observe(_perf() - started)
        metrics.size.observe(len(payload))
        if len(payload) > self.cache.config.max_value_bytes:
            self.failed("remote", "too_large", None)
            return None
        return payload

    def store_local(
        self, key: tuple[Hashable, ...], value: Any, payload: bytes, computed_at: int
    ) -> None:
        self.local.put(
            key, value, computed_at=computed_at, size=len(payload), entity=self._entity(key)
        )

    def _entity(self, key: tuple[Hashable, ...]) -> tuple[str, str] | None:
        return (self.spec.key_type, key[1]) if self.spec.tracked else None  # type: ignore[return-value]

    def failed(self, layer: str, kind: str, exc: BaseException | None) -> None:
        self.metrics.error(layer, kind)
        self.cache._log.error(
            kind, f"gcache {self.spec.use_case}: {layer} {kind}: {exc!r}; serving uncached", exc
        )

    # -- I/O (coroutines: awaited directly, or through the portal by sync callers) ---------

    async def sync_clock(self) -> None:
        """Sample the Redis clock (due every ``clock_resample_sec``); failures are counted."""
        try:
            await self.remote.sync_clock()  # type: ignore[union-attr]
        except RemoteError as exc:
            self.failed("remote", exc.kind, exc)

    async def before_call(self, fill: _Fill) -> None:
        """A sync caller's I/O before the function, run on the background loop: the clock
        sample when one is due, then the REMOTE read, whose answer goes back in ``fill``. (The
        async wrapper does the same inline: see ``wrap_async``.)"""
        remote = self.remote
        assert remote is not None
        started = read_started = _perf()
        if remote.clock_due():
            await self.sync_clock()
            read_started = _perf()
        key = fill.remote_key
        if key is not None:
            if fill.keeps_local and remote.clock.synced:
                fill.read_at = remote.clock.now_us()
            try:
                fill.raw = await remote.client().get(key)  # type: ignore[assignment]
            except REDIS_ERRORS as exc:
                self.read_failed(exc)
            else:
                fill.read_seconds = _perf() - read_started
        fill.io_spent = _perf() - started

    def stamp(self, fill: _Fill) -> None:
        """Take ``computed_at``: cache time just before the function runs (None, and nothing
        stored, while the Redis clock has never been sampled)."""
        remote = self.remote
        if remote is None:
            fill.computed_at = self.cache._clock.now_us()
        elif remote.clock.synced:
            fill.computed_at = remote.clock.now_us()

    async def write_remote(
        self,
        key: tuple[Hashable, ...],
        fill: _Fill,
        payload: bytes,
        computed_at: int,
        ttl: float,
    ) -> bool:
        """Conditional REMOTE write; False when a watermark refused the value (it must not be
        kept in the LOCAL layer either). Redis failures count as True: fail open."""
        remote = self.remote
        assert remote is not None and fill.remote_key is not None
        # One budget for all of a call's Redis I/O (DESIGN §6: a slow Redis costs a caller at
        # most the timeout plus the function's own time): the write gets what the read left.
        remaining = remote.io_budget - fill.io_spent
        if remaining <= 0:
            self.metrics.disabled("remote", "redis_slow")
            return True
        encoded = self.codec.encode(payload, computed_at, fill.remote_key)
        spec = self.spec
        wkey = None
        if spec.tracked:
            wkey = watermark_key(self.namespace, spec.key_type, key[1])  # type: ignore[arg-type]
        config = self.cache.config
        with anyio.move_on_after(remaining) as deadline:
            try:
                result = await retry_async(
                    lambda: remote.put(
                        fill.remote_key,  # type: ignore[arg-type]
                        wkey,
                        encoded,
                        computed_at=computed_at,
                        ttl_ms=max(1, int(ttl * 1000)),
                    ),
                    attempts=config.remote_write_attempts,
                    budget=min(config.remote_write_budget_sec, remaining),
                    retry_on=RemoteError,
                )
            except RemoteError as exc:
                self.failed("remote", exc.kind, exc)
                return True
        if deadline.cancelled_caught:
            self.failed("remote", "timeout", None)
            return True
        if result == WriteResult.TOO_OLD:
            self.metrics.disabled("all", "fallback_too_slow")
            return False
        if result == WriteResult.STALE:
            self.metrics.disabled("all", "invalidated_during_call")
            return False
        return True

    def payload_for(self, fill: _Fill, value: Any) -> bytes | None:
        """The pickled value if it can be stored at all (a known computed_at, picklable, not
        too large), else None."""
        if fill.computed_at is None:
            self.metrics.disabled("all", "clock_unsynced")
            return None
        return self.prepare(value)


# With a socket timeout, redis-py writes through ``asyncio.wait_for``, which on Python < 3.12
# returns the result instead of raising when a cancellation lands as the write completes (CPython
# gh-86296). ``Task.cancelling()`` (3.11+) still counts the request, so the cache compares it
# before and after its I/O and raises the CancelledError that was swallowed: a call cancelled
# during its Redis I/O ends cancelled, as its caller expects. On 3.10 there is no counter to read
# (the guard does nothing); on 3.12+ nothing is swallowed (the guard is skipped).
_GUARD_LOST_CANCEL = (3, 11) <= sys.version_info < (3, 12)


def _internal_error(runner: Runner, exc: Exception) -> None:
    runner.failed("all", "internal", exc)


def wrap_async(runner: Runner, func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    cache = runner.cache
    enabled = cache._enabled
    provider = runner.provider
    flights = cache._async_flights
    metrics = runner.metrics
    gcache_key = runner.spec.gcache_key
    remote = runner.remote
    timer = runner.timer
    reuse_sec = runner.reuse_sec
    local_key = runner.spec.local_key
    freshness = runner.freshness
    lookups = runner.lookups
    local_get = runner.local.get
    entry_of = runner.local.entry_of
    touch = runner.local.touch
    request_local = metrics.request_local
    value_key = runner.value_key
    # Without a bus there is nothing to start: a call skips the check altogether.
    has_bus = cache._bus is not None

    async def call_and_store(
        key: tuple[Hashable, ...],
        local_ttl: float,
        remote_ttl: float,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        remote_key: str | None,
        io_spent: float,
        task: asyncio.Task[Any] | None,
    ) -> Any:
        """A miss: the function, then the REMOTE write and the LOCAL store."""
        fill = _Fill(remote_key, bool(local_ttl))
        fill.io_spent = io_spent
        runner.stamp(fill)
        started = _perf()
        token = flights.lead(key)  # a call back into this key from the function must not wait
        try:
            value = await func(*args, **kwargs)
        finally:
            flights.release(token)
        metrics.fallback.observe(_perf() - started)
        try:
            payload = runner.payload_for(fill, value)
            if payload is not None:
                computed_at: int = fill.computed_at  # type: ignore[assignment]
                cancels = 0 if task is None else task.cancelling()  # type: ignore[attr-defined,unused-ignore]
                keep = remote_key is None or await runner.write_remote(
                    key, fill, payload, computed_at, remote_ttl
                )
                if task is not None and task.cancelling() > cancels:  # type: ignore[attr-defined,unused-ignore]
                    raise asyncio.CancelledError  # redis-py swallowed it
                if keep and local_ttl:
                    runner.store_local(key, value, payload, computed_at)
        except Exception as exc:
            _internal_error(runner, exc)
        return value

    @functools.wraps(func)
    async def cached_async(*args: Any, **kwargs: Any) -> Any:
        if not enabled.get():
            metrics.disabled("all", "context")
            return await func(*args, **kwargs)
        try:
            key = local_key(args, kwargs)
        except Exception as exc:
            runner.key_failed(exc)
            return await func(*args, **kwargs)
        if reuse_sec and (reused := runner.reused) is not None and timer() < reused[0]:
            config = reused[1]
        else:
            try:
                config = provider(gcache_key(key))
                if type(config) is _Coroutine or hasattr(config, "__await__"):
                    config = await config  # type: ignore[misc]
            except Exception as exc:
                runner.config_failed(exc)
                return await func(*args, **kwargs)
            if reuse_sec:
                runner.reused = (timer() + reuse_sec, config)
        settled = runner.settled
        if config is settled[0]:
            local_ttl, remote_ttl = settled[1]
        else:
            local_ttl, remote_ttl = runner.layers(config)
        if local_ttl:
            # The LOCAL lookup, with LocalCache.get's hit written out: a frame is a measurable
            # share of a hit. Tracked entries are served only while the bus is fresh, judged on
            # the clock reading the TTL check takes; one lookup in TIMING_SAMPLE is timed
            # (through get).
            now = timer()
            if freshness is not None and now >= freshness.fresh_until:
                value = runner.local_bypassed()
            else:
                if next(lookups) % TIMING_SAMPLE:
                    entry = entry_of(key)
                    if entry is not None and now - entry.stored_at < local_ttl:
                        try:  # noqa: SIM105 - contextlib.suppress costs a call and a frame
                            touch(key)
                        except KeyError:  # removed by another thread since: still a valid read
                            pass
                        value = entry.value
                    else:
                        value = local_get(key, local_ttl)  # a miss; an expired entry is dropped
                else:
                    value = runner.timed_local_get(key, local_ttl)
                request_local()
                if value is not MISS:
                    return value
                metrics.miss_local()
        elif not remote_ttl:
            return await func(*args, **kwargs)

        # Single-flight: lead the filling of this key, or wait for the call that leads it.
        loop = get_running_loop()
        flight = flights.start(key, loop)
        while flight is None:
            if flights.reentered(key):
                break  # the leader's own function called back into the key: fill it directly
            result = await flights.join(key)
            if result is not ABANDONED:
                return result
            flight = flights.start(key, loop)  # the leader was cancelled: a waiter leads instead

        # Everything below is written inline, not in coroutines of its own: this is the
        # REMOTE-hit path, where each coroutine frame is a measurable share of the cost.
        try:
            if has_bus and cache._bus_task is None:
                runner.ensure_bus()
            # The guard of _GUARD_LOST_CANCEL.
            task = asyncio.current_task(loop) if _GUARD_LOST_CANCEL else None
            cancels = 0 if task is None else task.cancelling()  # type: ignore[attr-defined,unused-ignore]
            value = MISS
            remote_key = None
            io_spent = 0.0
            if remote is not None:
                # What Runner.before_call does for sync callers.
                started = read_started = _perf()
                try:
                    if remote.clock_due():
                        await runner.sync_clock()
                        read_started = _perf()
                    if remote_ttl:
                        remote_key = value_key(key)
                        read_at = (
                            remote.clock.now_us() if local_ttl and remote.clock.synced else None
                        )
                        # A bare GET: nothing stale can be stored under a key, because
                        # invalidation deletes an entity's value keys in the same step that
                        # raises its watermark, a flush deletes the namespace's before it
                        # returns, and the write script refuses values computed before either.
                        try:
                            raw: bytes | None = await remote.client_for(loop).get(remote_key)  # type: ignore[assignment]
                        except REDIS_ERRORS as exc:
                            runner.read_failed(exc)
                        else:
                            value = runner.accept_remote(
                                key,
                                raw,
                                remote_key,
                                bool(local_ttl),
                                read_at,
                                _perf() - read_started,
                            )
                except Exception as exc:
                    _internal_error(runner, exc)
                    value = MISS
                if task is not None and task.cancelling() > cancels:  # type: ignore[attr-defined,unused-ignore]
                    raise asyncio.CancelledError  # redis-py swallowed it
                if value is MISS:  # (a hit needs no account of its I/O time)
                    io_spent = _perf() - started
            if value is MISS:
                value = await call_and_store(
                    key, local_ttl, remote_ttl, args, kwargs, remote_key, io_spent, task
                )
        except BaseException as exc:
            if flight is not None:
                flights.fail(key, flight, exc)
            raise
        if flight is not None:
            flights.finish(key, flight, value)
        return value

    return cached_async


def wrap_sync(runner: Runner, func: Callable[..., Any]) -> Callable[..., Any]:
    cache = runner.cache
    enabled = cache._enabled
    flights = cache._sync_flights
    metrics = runner.metrics
    gcache_key = runner.spec.gcache_key
    background = cache._background
    remote = runner.remote
    timer = runner.timer
    reuse_sec = runner.reuse_sec
    local_key = runner.spec.local_key
    freshness = runner.freshness
    lookups = runner.lookups
    local_get = runner.local.get
    entry_of = runner.local.entry_of
    touch = runner.local.touch
    request_local = metrics.request_local

    def fill_and_call(
        key: tuple[Hashable, ...],
        local_ttl: float,
        remote_ttl: float,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        fill = runner.new_fill(key, local_ttl, remote_ttl)
        # A sync cached function called on the background loop's own thread cannot wait on that
        # loop; it runs without the REMOTE layer instead of deadlocking.
        io = remote is not None and not background.in_loop_thread()
        value = MISS
        try:
            if io and (fill.remote_key is not None or remote.clock_due()):  # type: ignore[union-attr]
                background.call(lambda: runner.before_call(fill))
                if fill.read_seconds is not None:
                    value = runner.accept_remote(
                        key,
                        fill.raw,
                        fill.remote_key,  # type: ignore[arg-type]
                        fill.keeps_local,
                        fill.read_at,
                        fill.read_seconds,
                    )
        except Exception as exc:
            _internal_error(runner, exc)
            value = MISS
        if value is not MISS:
            return value
        runner.stamp(fill)
        started = _perf()
        value = func(*args, **kwargs)
        metrics.fallback.observe(_perf() - started)
        try:
            payload = runner.payload_for(fill, value)
            if payload is not None:
                computed_at: int = fill.computed_at  # type: ignore[assignment]
                keep = fill.remote_key is None or not io
                if not keep:
                    keep = background.call(
                        lambda: runner.write_remote(key, fill, payload, computed_at, remote_ttl)
                    )
                if keep and local_ttl:
                    runner.store_local(key, value, payload, computed_at)
        except Exception as exc:
            _internal_error(runner, exc)
        return value

    @functools.wraps(func)
    def cached_sync(*args: Any, **kwargs: Any) -> Any:
        if not enabled.get():
            metrics.disabled("all", "context")
            return func(*args, **kwargs)
        try:
            key = local_key(args, kwargs)
        except Exception as exc:
            runner.key_failed(exc)
            return func(*args, **kwargs)
        if reuse_sec and (reused := runner.reused) is not None and timer() < reused[0]:
            config = reused[1]
        else:
            try:
                config = cache._sync_config(gcache_key(key))
            except Exception as exc:
                runner.config_failed(exc)
                return func(*args, **kwargs)
            if reuse_sec:
                runner.reused = (timer() + reuse_sec, config)
        settled = runner.settled
        if config is settled[0]:
            local_ttl, remote_ttl = settled[1]
        else:
            local_ttl, remote_ttl = runner.layers(config)
        if local_ttl:
            # The LOCAL lookup, with LocalCache.get's hit written out: a frame is a measurable
            # share of a hit. Tracked entries are served only while the bus is fresh, judged on
            # the clock reading the TTL check takes; one lookup in TIMING_SAMPLE is timed
            # (through get).
            now = timer()
            if freshness is not None and now >= freshness.fresh_until:
                value = runner.local_bypassed()
            else:
                if next(lookups) % TIMING_SAMPLE:
                    entry = entry_of(key)
                    if entry is not None and now - entry.stored_at < local_ttl:
                        try:  # noqa: SIM105 - contextlib.suppress costs a call and a frame
                            touch(key)
                        except KeyError:  # removed by another thread since: still a valid read
                            pass
                        value = entry.value
                    else:
                        value = local_get(key, local_ttl)  # a miss; an expired entry is dropped
                else:
                    value = runner.timed_local_get(key, local_ttl)
                request_local()
                if value is not MISS:
                    return value
                metrics.miss_local()
        elif not remote_ttl:
            return func(*args, **kwargs)
        # A partial, not a lambda: a lambda would make five of this function's locals cells,
        # allocated on every call, hits included.
        return flights.run(
            key, functools.partial(fill_and_call, key, local_ttl, remote_ttl, args, kwargs)
        )

    return cached_sync
