"""The :class:`GCache` object: decorator factory, invalidation, flush and lifecycle."""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from bus._clock import RedisClock, WallClock
from bus._portal import BackgroundLoop
from bus._retry import retry_async
from bus._subscriber import Subscriber
from bus._topic import check_future_buffer

from ._burst_log import BurstLogger
from ._bus_link import make_subscriber
from ._cached import Runner, wrap_async, wrap_sync
from ._codec import Codec
from ._config import GCacheConfig
from ._exceptions import InvalidationError
from ._keys import IdArg, KeySpec
from ._local import LocalCache
from ._metrics import Metrics
from ._remote import RemoteError, RemoteStore
from ._singleflight import AsyncFlights, SyncFlights
from ._sync_provider import SyncProvider

__all__ = ["GCache"]

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("gcache")


class _Enabled:
    """``with gcache.enable():`` — restores the previous state on exit, even on an exception."""

    __slots__ = ("_tokens", "_value", "_var")

    def __init__(self, var: contextvars.ContextVar[bool], value: bool) -> None:
        self._var = var
        self._value = value
        # A stack, so one object may be entered again while already inside it.
        self._tokens: list[contextvars.Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(self._var.set(self._value))

    def __exit__(self, *exc_info: object) -> None:
        self._var.reset(self._tokens.pop())


class GCache:
    """A two-layer read-through cache for functions.

    Create one per application (it owns an in-process LOCAL layer, a Redis connection pool per
    event loop, and a background thread for sync callers) and decorate functions with
    :meth:`cached`. Caching happens only inside :meth:`enable` blocks.
    """

    def __init__(self, config: GCacheConfig) -> None:
        if not isinstance(config, GCacheConfig):
            raise TypeError(f"GCache takes a GCacheConfig, got {type(config).__name__}")
        self.config = config
        self._enabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"gcache_enabled_{id(self):x}", default=False
        )
        self._local = LocalCache(
            max_entries=config.max_local_entries,
            max_bytes=config.max_local_bytes,
            timer=config.timer,
        )
        self._remote = RemoteStore(config) if config.has_redis else None
        self._codec = Codec.for_config(config)
        self._clock: RedisClock | WallClock = (
            self._remote.clock if self._remote is not None else WallClock()
        )
        self._metrics = Metrics(config.metrics_prefix, config.metrics_registry)
        self._log = BurstLogger(logger, interval=config.error_log_interval_sec, timer=config.timer)
        self._background = BackgroundLoop(f"gcache-{config.namespace}")
        # The provider's answer for sync callers (see _sync_provider).
        self._sync_config = SyncProvider(config.cache_config_provider, self._background).answer
        self._async_flights = AsyncFlights()
        self._sync_flights = SyncFlights()
        self._use_cases: set[str] = set()
        self._bus: Subscriber | None = None
        if self._remote is not None and config.bus is not None:
            self._bus = make_subscriber(config, self._remote, self._local)
        self._bus_task: Future[object] | None = None
        self._bus_lock = threading.Lock()

    @property
    def bus(self) -> Subscriber | None:
        """The invalidation-bus subscriber (``None`` without Redis or with ``bus=None``); its
        ``statistics()`` and ``is_fresh()`` show whether LOCAL hits of tracked entries are being
        served."""
        return self._bus

    # -- decorating -----------------------------------------------------------------------

    def cached(
        self,
        *,
        key_type: str,
        id_arg: IdArg,
        use_case: str | None = None,
        arg_adapters: Mapping[str, Callable[[Any], Any]] | None = None,
        ignore_args: Sequence[str] | None = None,
        track_for_invalidation: bool = False,
    ) -> Callable[[F], F]:
        """Cache a function (async or sync) by entity ``(key_type, id)`` and its other arguments.

        ``id_arg`` names the parameter holding the entity id, or is ``(name, extractor)`` to
        derive the id from that argument. ``use_case`` (default ``module.qualname``) names the
        function in metrics and in its keys; it must be unique per GCache. ``arg_adapters`` map
        a parameter to a function producing its key form; ``ignore_args`` leave parameters out of
        the key (a method's ``self``/``cls`` is left out automatically).
        ``track_for_invalidation`` makes :meth:`invalidate` of the entity reach this function's
        entries. Mistakes raise ``ValueError``/``TypeError`` here, at decoration time.
        """

        def decorate(func: F) -> F:
            if not callable(func):
                raise TypeError(f"@cached decorates functions, got {func!r}")
            name = use_case or _default_use_case(func)
            spec = KeySpec(
                func,
                key_type=key_type,
                id_arg=id_arg,
                use_case=name,
                arg_adapters=arg_adapters,
                ignore_args=ignore_args,
                tracked=track_for_invalidation,
            )
            if name in self._use_cases:
                raise ValueError(
                    f"use_case {name!r} is already registered on this GCache; "
                    "give each cached function its own use_case"
                )
            runner = Runner(self, spec)
            if inspect.iscoroutinefunction(func):
                wrapped = wrap_async(runner, func)
            elif inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
                raise TypeError(f"@cached cannot cache generator function {name!r}")
            else:
                wrapped = wrap_sync(runner, func)
            self._use_cases.add(name)
            return wrapped  # type: ignore[return-value]

        return decorate

    def enable(self, enabled: bool = True) -> _Enabled:
        """Context manager: caching is on (or, with ``False``, off) inside the block.

        The state is per task/thread (a context variable); blocks nest, and leaving one restores
        what was there before, also when the block raises."""
        return _Enabled(self._enabled, enabled)

    # -- invalidation ---------------------------------------------------------------------

    async def ainvalidate(self, key_type: str, id: Any, future_buffer_ms: int = 0) -> None:
        """Invalidate every tracked entry of entity ``(key_type, id)``, in every layer.

        Values computed up to ``future_buffer_ms`` after this call are refused too (closing the
        race with a read that started before the write). Raises :class:`InvalidationError` if
        Redis could not be reached after retries; this process's LOCAL layer is invalidated
        either way.
        """
        entity = _entity(key_type, id, future_buffer_ms)
        remote = self._remote
        if remote is None:
            self._invalidate_local(entity, self._clock.now_us() + future_buffer_ms * 1000)
            return
        try:
            watermark = await retry_async(
                lambda: remote.invalidate(entity, future_buffer_ms=future_buffer_ms),
                attempts=self.config.invalidation_attempts,
                budget=self.config.invalidation_budget_sec,
                retry_on=RemoteError,
            )
        except RemoteError as exc:
            self._invalidate_local(entity, self._best_effort_now(future_buffer_ms))
            raise InvalidationError(f"invalidation of {entity} did not reach Redis") from exc
        self._invalidate_local(entity, watermark)
        self._metrics.invalidation(key_type, "remote")

    def invalidate(self, key_type: str, id: Any, future_buffer_ms: int = 0) -> None:
        """Sync twin of :meth:`ainvalidate` (runs on the background loop)."""
        if self._remote is None:
            entity = _entity(key_type, id, future_buffer_ms)
            self._invalidate_local(entity, self._clock.now_us() + future_buffer_ms * 1000)
            return
        self._run_sync(lambda: self.ainvalidate(key_type, id, future_buffer_ms))

    async def aflushall(self) -> None:
        """Drop every entry of this namespace, in Redis and in this process's LOCAL layer.

        Never runs Redis ``FLUSHALL``/``FLUSHDB``: a namespace flush watermark refuses every
        later write of a value computed before now, then the namespace's value keys are deleted
        in small non-blocking batches; when this returns, none of them can be read."""
        remote = self._remote
        if remote is None:
            self._local.flush(self._clock.now_us())
            self._metrics.invalidation("*", "local")
            return
        try:
            watermark = await retry_async(
                remote.flush,
                attempts=self.config.invalidation_attempts,
                budget=self.config.invalidation_budget_sec,
                retry_on=RemoteError,
            )
        except RemoteError as exc:
            self._local.flush(self._best_effort_now(0))
            raise InvalidationError("flush did not reach Redis") from exc
        self._local.flush(watermark)
        self._metrics.invalidation("*", "remote")

    def flushall(self) -> None:
        """Sync twin of :meth:`aflushall`."""
        if self._remote is None:
            self._local.flush(self._clock.now_us())
            self._metrics.invalidation("*", "local")
            return
        self._run_sync(self.aflushall)

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close Redis connections and stop the background thread. The cache keeps working
        afterwards (resources are created again on demand); call this at shutdown."""
        if self._remote is not None:
            await self._remote.aclose()
        self.close()

    def close(self) -> None:
        """Sync twin of :meth:`aclose`; stops the bus subscriber and closes the background
        loop's connections."""
        if self._remote is not None and self._background.thread is not None:
            remote = self._remote
            try:
                self._background.call(lambda: remote.aclose(owned=True))
            except Exception as exc:  # closing must not fail a shutdown
                self._log.error("close", f"gcache close: {exc!r}", exc)
        self._background.stop()
        self._bus_task = None

    async def __aenter__(self) -> GCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> GCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _ensure_bus(self) -> None:
        """Start the subscriber on the background loop (first use, or after close)."""
        if self._bus is None or self._background.in_loop_thread():
            return
        with self._bus_lock:
            if self._bus_task is None:
                self._bus_task = self._background.start_task(self._bus.run)
                self._bus_task.add_done_callback(self._bus_ended)

    def _bus_ended(self, task: Future[object]) -> None:
        # run() only returns by cancellation (close); anything else is a configuration error
        # that leaves tracked LOCAL hits bypassed: say so loudly.
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "gcache bus subscriber stopped; LOCAL hits of tracked entries stay bypassed",
                exc_info=task.exception(),
            )

    def _invalidate_local(self, entity: tuple[str, str], watermark: int) -> None:
        self._local.invalidate(entity, watermark)
        self._metrics.invalidation(entity[0], "local")

    def _best_effort_now(self, future_buffer_ms: int) -> int:
        # Redis is unreachable: drop the local entries now; the watermark is an estimate
        # (0 if the clock never synced), used only to refuse local writes.
        if not self._clock.synced:
            return 0
        return self._clock.now_us() + future_buffer_ms * 1000

    def _run_sync(self, operation: Callable[[], Awaitable[None]]) -> None:
        if self._background.in_loop_thread():
            raise RuntimeError("sync gcache calls cannot run on gcache's own background loop")
        self._background.call(operation)


def _default_use_case(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{qualname}"


def _entity(key_type: str, id: Any, future_buffer_ms: int) -> tuple[str, str]:
    if not isinstance(key_type, str) or not key_type:
        raise ValueError(f"key_type must be a non-empty string, got {key_type!r}")
    check_future_buffer(future_buffer_ms)
    return key_type, str(id)
