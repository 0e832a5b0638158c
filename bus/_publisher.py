"""Publishing invalidations without a cache: for write services, workers and shells.

``Publisher`` raises watermarks and announces them on the bus exactly as a cache's
``ainvalidate`` does (the same scripts), with bounded retries; a final failure raises
:class:`PublishError`, because a silently lost invalidation is stale data somewhere.

The async methods run on the caller's event loop with a client for that loop; the sync twins
run the same coroutines on a background loop (an anyio portal in a daemon thread).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster

from ._cluster import REDIS_ERRORS, AnyRedis
from ._metrics import BusMetrics
from ._portal import BackgroundLoop
from ._retry import retry_async
from ._topic import (
    DEFAULT_STREAM_MAXLEN,
    DEFAULT_WATERMARK_TTL_SEC,
    Topic,
    Transport,
    check_future_buffer,
)

__all__ = ["PublishError", "Publisher"]

T = TypeVar("T")
_RETRYABLE = REDIS_ERRORS


class PublishError(Exception):
    """An invalidation or flush did not reach Redis after every retry."""


class Publisher:
    """Publishes invalidations and flushes for one namespace.

    Build it with :meth:`from_url` (it then owns a client per event loop and closes them) or
    from an existing ``redis.asyncio.Redis`` (used as is, on the loop it belongs to; the sync
    methods then need a client not yet bound to another loop — prefer ``from_url`` for them).
    A ``redis.asyncio.RedisCluster`` (or a factory returning one) publishes to a Redis Cluster.
    """

    def __init__(
        self,
        client: AnyRedis | Callable[[], AnyRedis],
        *,
        namespace: str = "gcache",
        transport: Transport = "streams",
        stream_maxlen: int = DEFAULT_STREAM_MAXLEN,
        watermark_ttl_sec: float = DEFAULT_WATERMARK_TTL_SEC,
        attempts: int = 5,
        budget_sec: float = 3.0,
        metrics: BusMetrics | None = None,
    ) -> None:
        self.topic = Topic(
            namespace=namespace,
            transport=transport,
            stream_maxlen=stream_maxlen,
            watermark_ttl_sec=watermark_ttl_sec,
        )
        if isinstance(client, (Redis, RedisCluster)):
            given = client
            self._factory: Callable[[], AnyRedis] = lambda: given
            self._owns = False
        else:
            self._factory = client
            self._owns = True
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AnyRedis] = (
            weakref.WeakKeyDictionary()
        )
        self._attempts = attempts
        self._budget = budget_sec
        self._metrics = metrics
        self._background = BackgroundLoop(f"gcache-bus-publisher-{namespace}")

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, **options: Any) -> Publisher:
        """A publisher with its own connections to ``url`` (``redis://`` or ``rediss://``);
        ``cluster=True`` for a Redis Cluster (``url`` names any of its nodes)."""
        if cluster:
            return cls(
                lambda: RedisCluster.from_url(url, client_name="gcache-publisher"), **options
            )
        return cls(lambda: Redis.from_url(url, client_name="gcache-publisher"), **options)

    # -- async ----------------------------------------------------------------------------

    async def ainvalidate(self, key_type: str, id: Any, future_buffer_ms: int = 0) -> int:
        """Invalidate entity ``(key_type, id)`` everywhere; returns its new watermark."""
        marks = await self.ainvalidate_many([(key_type, id)], future_buffer_ms=future_buffer_ms)
        return marks[0]

    async def ainvalidate_many(
        self, entities: Iterable[tuple[str, Any]], future_buffer_ms: int = 0
    ) -> list[int]:
        """Invalidate many entities in one round trip and one bus event; returns watermarks."""
        batch = [(_text("key_type", key_type), str(entity_id)) for key_type, entity_id in entities]
        check_future_buffer(future_buffer_ms)
        marks = await self._run(
            lambda client: self.topic.invalidate(client, batch, future_buffer_ms=future_buffer_ms)
        )
        if self._metrics is not None and batch:
            self._metrics.published("invalidate", len(batch))
        return marks

    async def aflushall(self) -> int:
        """Flush the namespace everywhere (a watermark, never Redis FLUSHALL); returns it."""
        mark = await self._run(self.topic.flush)
        if self._metrics is not None:
            self._metrics.published("flush")
        return mark

    async def aclose(self) -> None:
        """Close this loop's client (if owned) and the background loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None and self._owns:
            await client.aclose()
        self.close()

    # -- sync twins -----------------------------------------------------------------------

    def invalidate(self, key_type: str, id: Any, future_buffer_ms: int = 0) -> int:
        return self._background.call(lambda: self.ainvalidate(key_type, id, future_buffer_ms))

    def invalidate_many(
        self, entities: Iterable[tuple[str, Any]], future_buffer_ms: int = 0
    ) -> list[int]:
        batch = list(entities)
        return self._background.call(lambda: self.ainvalidate_many(batch, future_buffer_ms))

    def flushall(self) -> int:
        return self._background.call(self.aflushall)

    def close(self) -> None:
        """Close the background loop's client (if owned) and stop the loop."""
        if self._background.thread is not None:
            self._background.call(self._close_current)
        self._background.stop()

    async def _close_current(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None and self._owns:
            await client.aclose()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ------------------------------------------------------------------------

    def _client(self) -> AnyRedis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._factory()
        return client

    async def _run(self, operation: Callable[[AnyRedis], Awaitable[T]]) -> T:
        try:
            return await retry_async(
                lambda: operation(self._client()),
                attempts=self._attempts,
                budget=self._budget,
                retry_on=_RETRYABLE,
            )
        except _RETRYABLE as exc:
            raise PublishError(f"publishing to {self.topic.bus_key} failed: {exc!r}") from exc


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value
