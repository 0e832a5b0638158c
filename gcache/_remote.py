"""The REMOTE layer: the Redis round trips the cache makes, and the errors they can raise
(:data:`REDIS_ERRORS`, translated into :class:`RemoteError`, which the callers turn into
fail-open behaviour). The one exception is the REMOTE read itself, a bare GET that the runner
awaits on :meth:`RemoteStore.client` directly (see ``Runner.before_call``).

An asyncio Redis client belongs to the event loop that first used it, so clients are kept per
loop: async callers use their own loop's client (no thread hop on a REMOTE hit) and sync callers
go through the single background loop of :mod:`gcache._portal`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bus._clock import RedisClock
from bus._cluster import REDIS_ERRORS, AnyRedis, is_cluster
from bus._flush_copies import create_flush_copies, flush_copy_for
from bus._names import flush_key
from bus._scripts import Script
from bus._topic import Topic

from ._config import DEFAULT_SOCKET_TIMEOUT, BusConfig, GCacheConfig, RedisConfig
from ._exceptions import GCacheError
from ._scripts import CLOCK, WRITE

__all__ = ["REDIS_ERRORS", "RemoteError", "RemoteStore", "kind_of"]

T = TypeVar("T")


def kind_of(cause: BaseException) -> str:
    """The ``error`` label of a Redis failure: ``timeout`` or ``redis``."""
    return "timeout" if isinstance(cause, TimeoutError) else "redis"


class RemoteError(GCacheError):
    """A Redis operation failed (connection, timeout, server error). Internal: cached calls fail
    open on it; invalidations retry and then raise :class:`InvalidationError`."""

    def __init__(self, operation: str, cause: BaseException) -> None:
        super().__init__(f"redis {operation} failed: {cause!r}")
        self.operation = operation
        self.kind = kind_of(cause)


def _connect(redis_config: RedisConfig, **overrides: Any) -> AnyRedis:
    """A client for ``redis_config``: ``Redis``, or ``RedisCluster`` when ``cluster`` is set."""
    # Retries are ours (tenacity, bounded, only where safe); redis-py's own would stretch a
    # cache read far past the configured timeout. On a Cluster, zero retries still follows
    # MOVED/ASK redirections (a slot map refresh, no sleep) but gives up at once on a dead node
    # or CLUSTERDOWN, so a read fails open within the socket timeouts.
    kwargs = redis_config.client_kwargs() | {"retry": Retry(NoBackoff(), 0)} | overrides
    if redis_config.cluster:
        if redis_config.url is not None:
            return RedisCluster.from_url(redis_config.url, **kwargs)
        return RedisCluster(**kwargs)
    if redis_config.url is not None:
        client: Redis = Redis.from_url(redis_config.url, **kwargs)
        return client
    return Redis(**kwargs)


def _client_from(config: GCacheConfig) -> AnyRedis:
    if config.redis_client_factory is not None:
        return config.redis_client_factory()
    assert config.redis_config is not None
    return _connect(config.redis_config)


def _no_loop() -> None:
    return None


class RemoteStore:
    """Redis operations of one namespace. Every method raises :class:`RemoteError` on failure."""

    def __init__(self, config: GCacheConfig) -> None:
        self._config = config
        self.namespace = config.namespace
        self.flush_key = flush_key(config.namespace)
        bus = config.bus or BusConfig()
        self.topic = Topic(
            namespace=config.namespace,
            transport=bus.transport,
            stream_maxlen=bus.stream_maxlen,
            watermark_ttl_sec=config.watermark_ttl_sec,
        )
        self.clock = RedisClock()
        self._owns_clients = config.redis_client_factory is None
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AnyRedis] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: Callable[[], asyncio.AbstractEventLoop | None] = _no_loop
        self._last_client: AnyRedis | None = None
        self._max_age_us = int(config.watermark_ttl_sec * 1_000_000)
        self._namespace_ready = False
        # What Redis may add to one cached call, all its round trips together (DESIGN §6).
        self.io_budget = (
            config.redis_config.socket_timeout
            if config.redis_config is not None
            else DEFAULT_SOCKET_TIMEOUT
        )

    # -- clients --------------------------------------------------------------------------

    def client(self) -> AnyRedis:
        """The client of the running event loop, created on first use."""
        return self.client_for(asyncio.get_running_loop())

    def client_for(self, loop: asyncio.AbstractEventLoop) -> AnyRedis:
        """:meth:`client`, for a caller that has the running loop at hand already."""
        # Nearly every call comes from the loop of the call before: skip the weak-dict lookup
        # (which builds a weakref each time) when it does.
        if self._last_loop() is loop:
            return self._last_client  # type: ignore[return-value]
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _client_from(self._config)
        self._last_loop, self._last_client = weakref.ref(loop), client
        return client

    def bus_client(self) -> AnyRedis:
        """A client for the bus subscriber: its own connection pool (a blocking XREAD must not
        hold one of the cache's connections), named ``<client_name>-bus``; a factory's client
        when a factory is configured."""
        config = self._config
        if config.redis_client_factory is not None:
            return config.redis_client_factory()
        redis_config = config.redis_config
        assert redis_config is not None
        return _connect(
            redis_config,
            client_name=f"{redis_config.client_name}-bus",
            socket_timeout=None,  # the subscriber bounds every read itself
        )

    async def aclose(self, *, owned: bool = False) -> None:
        """Close the running loop's client if gcache created it or ``owned`` says the loop is
        gcache's own (a factory's client for that loop can serve nobody else)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if self._last_loop() is loop:
            self._last_loop, self._last_client = _no_loop, None
        if client is not None and (owned or self._owns_clients):
            await client.aclose()

    async def _call(self, operation: str, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except REDIS_ERRORS as exc:
            raise RemoteError(operation, exc) from exc

    async def _script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        return await self._call(script.name, script.run(self.client(), keys, args))

    # -- operations -----------------------------------------------------------------------

    def clock_due(self) -> bool:
        """True when :meth:`sync_clock` should run: the clock needs a sample, or this store
        has not yet made sure the namespace has a flush watermark (another component, such as
        the bus subscriber, may have synced the shared clock first)."""
        # clock.due(), inline: this is asked on every REMOTE read.
        return not self._namespace_ready or time.monotonic_ns() > self.clock.resample_at_ns

    async def sync_clock(self) -> None:
        """Take a ``TIME`` sample (creating the namespace's flush watermark if absent)."""
        if not self.clock_due():
            return
        t0 = time.monotonic_ns()
        seconds, micros, created = await self._script(CLOCK, [self.flush_key], [])
        t1 = time.monotonic_ns()
        now = int(seconds) * 1_000_000 + int(micros)
        self.clock.observe(t0, now, t1)
        client = self.client()
        if created and is_cluster(client):
            # This process made the namespace: it gives every slot its copy of F.
            await self._call("flush_copies", create_flush_copies(client, self.namespace, now - 1))
        self._namespace_ready = True

    def _keys(self, key: str, watermark_key: str | None) -> list[str]:
        # On a Cluster the script may read only keys of the value's slot: F's copy for it.
        flush = flush_copy_for(self.namespace, key) if is_cluster(self.client()) else self.flush_key
        if watermark_key is None:
            return [key, flush]
        # The entity's index shares the watermark's hash tag: "ns:w:{...}" -> "ns:i:{...}".
        index = f"{self.namespace}:i:{watermark_key[len(self.namespace) + 3 :]}"
        return [key, flush, watermark_key, index]

    async def put(
        self,
        key: str,
        watermark_key: str | None,
        encoded: bytes,
        *,
        computed_at: int,
        ttl_ms: int,
    ) -> int:
        """Conditional write (see :data:`gcache._scripts.WRITE`); returns a ``WriteResult``."""
        keys = self._keys(key, watermark_key)
        result = await self._script(WRITE, keys, [computed_at, ttl_ms, encoded, self._max_age_us])
        return int(result)

    async def invalidate(self, entity: tuple[str, str], *, future_buffer_ms: int) -> int:
        """Raise the entity's watermark to at least ``now + buffer`` and announce it on the bus;
        returns the watermark."""
        marks = await self._call(
            "invalidate",
            self.topic.invalidate(self.client(), [entity], future_buffer_ms=future_buffer_ms),
        )
        return marks[0]

    async def flush(self) -> int:
        """Raise the namespace flush watermark to now, announce it and delete the namespace's
        values (see ``bus.Topic.flush``); returns the watermark."""
        return await self._call("flush", self.topic.flush(self.client()))
