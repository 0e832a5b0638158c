"""What ``@gcache.cached(...)`` turns a function into.

One :class:`Runner` per decorated function holds every decision (key, config, ramp, validity,
what to store) and all I/O as async methods. The async wrapper awaits them on the caller's loop;
the sync wrapper runs the same coroutines on the background loop through the portal, and does
everything without I/O (LOCAL hit, config, key, pickling, the function itself) in the caller's
thread. The flow is therefore written once; the two wrappers only differ in how they wait.

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
from collections.abc import Awaitable, Callable, Hashable
from random import random
from typing import TYPE_CHECKING, Any

import anyio

from bus._retry import retry_async

from ._codec import DecodeError
from ._config import GCacheKeyConfig
from ._exceptions import KeyBuildError
from ._keys import BadCall, KeySpec
from ._local import MISS
from ._metrics import LOCAL_TIMING_SAMPLE
from ._remote import REDIS_ERRORS, RemoteError, kind_of
from ._scripts import WriteResult

if TYPE_CHECKING:
    from ._cache import GCache
    from ._metrics import FunctionMetrics

__all__ = ["Runner", "wrap_async", "wrap_sync"]

_perf = time.perf_counter
_NO_LAYERS = (0.0, 0.0)


class _Fill:
    """What the I/O before the function call found out."""

    __slots__ = (
        "computed_at",
        "io_spent",
        "keeps_local",
        "raw",
        "read_at",
        "remote_key",
        "watermark_key",
    )

    def __init__(
        self, remote_key: str | None, watermark_key: str | None, keeps_local: bool
    ) -> None:
        self.remote_key = remote_key
        self.watermark_key = watermark_key
        self.keeps_local = keeps_local  # a REMOTE hit will be stored in the LOCAL layer
        self.raw: bytes | None = None  # only valid values are ever stored (see RemoteStore.get)
        self.read_at: int | None = None  # cache time just before the REMOTE read (if keeps_local)
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
        # Tracked LOCAL hits are served only while the bus proves its staleness bound.
        bus = cache._bus
        self.gate = bus.is_fresh if (bus is not None and spec.tracked) else None
        self._ticks = itertools.count(1)  # next() is atomic under the GIL: no lost tick
        # GCacheConfig.config_reuse_sec: the provider's last answer and until when it holds
        # (one tuple, replaced whole, so threads never see half of an update).
        self.reuse_sec = cache.config.config_reuse_sec
        self.timer = cache.config.timer
        self.reused: tuple[float, Any] | None = None

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
        return local_ttl, remote_ttl

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

    def lookup_local(self, key: tuple[Hashable, ...], ttl: float) -> Any:
        metrics = self.metrics
        gate = self.gate
        if gate is not None and not gate():
            metrics.disabled("local", "bus_unsynced")
            return MISS
        # Time one lookup in LOCAL_TIMING_SAMPLE: the timer would cost more than the lookup.
        if next(self._ticks) % LOCAL_TIMING_SAMPLE:
            value = self.local.get(key, ttl)
        else:
            started = _perf()
            value = self.local.get(key, ttl)
            metrics.get_local.observe(_perf() - started)
        metrics.request_local()
        if value is MISS:
            metrics.miss_local()
        return value

    def new_fill(self, key: tuple[Hashable, ...], local_ttl: float, remote_ttl: float) -> _Fill:
        if self.cache._bus_task is None:
            self.cache._ensure_bus()
        keeps_local = bool(local_ttl)
        if not remote_ttl:
            return _Fill(None, None, keeps_local)
        value_key, wkey = self.spec.remote_keys(self.namespace, key)
        return _Fill(value_key, wkey if self.spec.tracked else None, keeps_local)

    def accept_remote(self, key: tuple[Hashable, ...], fill: _Fill) -> Any:
        """The REMOTE value if it decodes, else MISS (stale values are never stored: see
        ``RemoteStore.get``)."""
        raw = fill.raw
        if raw is None:
            return MISS
        metrics = self.metrics
        started = _perf()
        try:
            computed_at, value = self.codec.decode(raw, fill.remote_key)  # type: ignore[arg-type]
        except DecodeError as exc:
            self.failed("remote", exc.reason, exc)
            metrics.miss_remote()
            return MISS
        metrics.load.observe(_perf() - started)
        if fill.keeps_local:
            self.local.put(
                key,
                value,
                computed_at=computed_at,
                size=len(raw),
                entity=self._entity(key),
                verified_at=fill.read_at,
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

    async def before_call(self, fill: _Fill) -> None:
        """The clock sample when one is due, then the REMOTE lookup. (This is the REMOTE-hit
        path: everything a hit does not need waits for :meth:`stamp`, on a miss.)"""
        remote = self.remote
        assert remote is not None
        started = _perf()
        if remote.clock_due():
            try:
                await remote.sync_clock()
            except RemoteError as exc:
                self.failed("remote", exc.kind, exc)
        key = fill.remote_key
        if key is not None:
            metrics = self.metrics
            if fill.keeps_local and remote.clock.synced:
                fill.read_at = remote.clock.now_us()
            read_started = _perf()
            # A bare GET: nothing stale can be stored under a key, because invalidation deletes
            # an entity's value keys in the same step that raises its watermark, a flush deletes
            # the namespace's before it returns, and the write script refuses values computed
            # before either. It is awaited here rather than through a RemoteStore method: one
            # coroutine frame fewer on the REMOTE-hit path, which has microseconds to spare.
            try:
                fill.raw = raw = await remote.client().get(key)  # type: ignore[assignment]
            except REDIS_ERRORS as exc:
                self.failed("remote", kind_of(exc), exc)
                raw = None
            else:
                metrics.get_remote.observe(_perf() - read_started)
            metrics.request_remote()
            if raw is None:
                metrics.miss_remote()
        fill.io_spent = _perf() - started

    def stamp(self, fill: _Fill) -> None:
        """Take ``computed_at``: cache time just before the function runs (None, and nothing
        stored, while the Redis clock has never been sampled)."""
        remote = self.remote
        if remote is None:
            fill.computed_at = self.cache._clock.now_us()
        elif remote.clock.synced:
            fill.computed_at = remote.clock.now_us()

    async def write_remote(self, fill: _Fill, payload: bytes, computed_at: int, ttl: float) -> bool:
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
        config = self.cache.config
        with anyio.move_on_after(remaining) as deadline:
            try:
                result = await retry_async(
                    lambda: remote.put(
                        fill.remote_key,  # type: ignore[arg-type]
                        fill.watermark_key,
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

    async def fill_and_call(
        key: tuple[Hashable, ...],
        local_ttl: float,
        remote_ttl: float,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        fill = runner.new_fill(key, local_ttl, remote_ttl)
        value = MISS
        # The guard of _GUARD_LOST_CANCEL, inline: this is the REMOTE-hit path.
        task = asyncio.current_task() if _GUARD_LOST_CANCEL else None
        cancels = 0 if task is None else task.cancelling()  # type: ignore[attr-defined,unused-ignore]
        if remote is not None:
            try:
                await runner.before_call(fill)
                value = runner.accept_remote(key, fill)
            except Exception as exc:
                _internal_error(runner, exc)
                value = MISS
            if task is not None and task.cancelling() > cancels:  # type: ignore[attr-defined,unused-ignore]
                raise asyncio.CancelledError  # redis-py swallowed it
            if value is not MISS:
                return value
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
                if task is not None:
                    cancels = task.cancelling()  # type: ignore[attr-defined,unused-ignore]
                keep = fill.remote_key is None or await runner.write_remote(
                    fill, payload, computed_at, remote_ttl
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
        reused = runner.reused
        if reused is not None and timer() < reused[0]:
            config = reused[1]
        else:
            try:
                config = provider(gcache_key(key))
                if type(config) is types.CoroutineType or hasattr(config, "__await__"):
                    config = await config  # type: ignore[misc]
            except Exception as exc:
                runner.config_failed(exc)
                return await func(*args, **kwargs)
            if reuse_sec:
                runner.reused = (timer() + reuse_sec, config)
        local_ttl, remote_ttl = runner.layers(config)
        if local_ttl:
            value = runner.lookup_local(key, local_ttl)
            if value is not MISS:
                return value
        elif not remote_ttl:
            return await func(*args, **kwargs)
        flight = flights.start(key)
        if flight is None:  # another call is filling this key: wait for its result
            return await flights.run(key, fill_and_call, key, local_ttl, remote_ttl, args, kwargs)
        try:
            value = await fill_and_call(key, local_ttl, remote_ttl, args, kwargs)
        except BaseException as exc:
            flights.fail(key, flight, exc)
            raise
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
        try:
            if io and (fill.remote_key is not None or remote.clock_due()):  # type: ignore[union-attr]
                background.call(lambda: runner.before_call(fill))
            value = runner.accept_remote(key, fill)
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
                        lambda: runner.write_remote(fill, payload, computed_at, remote_ttl)
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
        reused = runner.reused
        if reused is not None and timer() < reused[0]:
            config = reused[1]
        else:
            try:
                config = cache._sync_config(gcache_key(key))
            except Exception as exc:
                runner.config_failed(exc)
                return func(*args, **kwargs)
            if reuse_sec:
                runner.reused = (timer() + reuse_sec, config)
        local_ttl, remote_ttl = runner.layers(config)
        if local_ttl:
            value = runner.lookup_local(key, local_ttl)
            if value is not MISS:
                return value
        elif not remote_ttl:
            return func(*args, **kwargs)
        return flights.run(key, lambda: fill_and_call(key, local_ttl, remote_ttl, args, kwargs))

    return cached_sync
