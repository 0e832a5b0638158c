"""One namespace's bus: its names and settings, and the two publishing operations.

Both the standalone :class:`bus.Publisher` and gcache call these, so an invalidation made by a
cache and one made by a write service are the same bytes on the same stream.

With a ``RedisCluster`` client the operations are split by slot (see ``bus._scripts``): an
invalidation raises the watermarks with one script per slot of the entities, then announces
them with one script in the namespace's slot; a flush raises F and announces it, then raises
F's copy in every slot (``bus._flush_copies``), then deletes the values on every primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis, RedisCluster

from ._cluster import AnyRedis, is_cluster
from ._flush_copies import raise_flush_copies
from ._names import bus_key, flush_key, index_key, seq_key, watermark_key
from ._scripts import ANNOUNCE, FLUSH, INVALIDATE, RAISE
from ._slots import slot_of

__all__ = [
    "DEFAULT_STREAM_MAXLEN",
    "DEFAULT_WATERMARK_TTL_SEC",
    "MAX_FUTURE_BUFFER_MS",
    "Topic",
    "Transport",
    "check_future_buffer",
]

Transport = Literal["streams", "pubsub"]
DEFAULT_STREAM_MAXLEN = 100_000
"""Stream entries kept (approximately: ``XADD MAXLEN ~``). A subscriber further behind than this
sees a gap and flushes its LOCAL layer."""
DEFAULT_WATERMARK_TTL_SEC = 3600.0
_SWEEP_BATCH = 500
MAX_FUTURE_BUFFER_MS = 7 * 24 * 3600 * 1000
"""A week. Larger buffers are refused before anything is written: they would overflow the
script's arithmetic (exact below 2**53 us) and Redis' expiry range."""


def check_future_buffer(future_buffer_ms: object) -> int:
    """``future_buffer_ms`` if it is an int in 0..MAX_FUTURE_BUFFER_MS (else TypeError or
    ValueError)."""
    if isinstance(future_buffer_ms, bool) or not isinstance(future_buffer_ms, int):
        raise TypeError(f"future_buffer_ms must be an int, got {future_buffer_ms!r}")
    if not 0 <= future_buffer_ms <= MAX_FUTURE_BUFFER_MS:
        raise ValueError(
            f"future_buffer_ms must be in 0..{MAX_FUTURE_BUFFER_MS} (a week), "
            f"got {future_buffer_ms}"
        )
    return future_buffer_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Topic:
    """Where and how a namespace's invalidations are published."""

    namespace: str = "gcache"
    transport: Transport = "streams"
    stream_maxlen: int = DEFAULT_STREAM_MAXLEN
    watermark_ttl_sec: float = DEFAULT_WATERMARK_TTL_SEC

    def __post_init__(self) -> None:
        if self.transport not in ("streams", "pubsub"):
            raise ValueError(f"transport must be 'streams' or 'pubsub', got {self.transport!r}")
        if self.stream_maxlen < 1:
            raise ValueError(f"stream_maxlen must be >= 1, got {self.stream_maxlen}")
        if not self.watermark_ttl_sec > 0:
            raise ValueError(f"watermark_ttl_sec must be > 0, got {self.watermark_ttl_sec}")

    @property
    def bus_key(self) -> str:
        return bus_key(self.namespace)

    async def invalidate(
        self, client: AnyRedis, entities: Sequence[tuple[str, str]], *, future_buffer_ms: int = 0
    ) -> list[int]:
        """Raise the watermark of every ``(key_type, id)`` to ``max(W, now + buffer)`` and announce
        them in one event, atomically, in one round trip. Returns the new watermarks.

        On a Cluster: first every watermark (one script per slot, concurrently), then the
        event; it returns once both are done, and raises if either failed (a retry is safe)."""
        check_future_buffer(future_buffer_ms)
        if not entities:
            return []
        if is_cluster(client):
            return await self._invalidate_cluster(client, entities, future_buffer_ms)
        keys = [seq_key(self.namespace), self.bus_key]
        args: list[str | int] = [
            self.transport,
            self.stream_maxlen,
            self.namespace,
            int(self.watermark_ttl_sec * 1000),
        ]
        for key_type, entity_id in entities:
            keys.append(watermark_key(self.namespace, key_type, entity_id))
            keys.append(index_key(self.namespace, key_type, entity_id))
            args += (key_type, entity_id, future_buffer_ms * 1000)
        marks = await INVALIDATE.run(client, keys, args)
        return [int(mark) for mark in marks]

    async def _invalidate_cluster(
        self, client: RedisCluster, entities: Sequence[tuple[str, str]], future_buffer_ms: int
    ) -> list[int]:
        by_slot: dict[int, list[int]] = {}
        for at, (key_type, entity_id) in enumerate(entities):
            slot = slot_of(watermark_key(self.namespace, key_type, entity_id))
            by_slot.setdefault(slot, []).append(at)
        ttl_ms = int(self.watermark_ttl_sec * 1000)

        async def raise_slot(positions: list[int]) -> list[int]:
            keys: list[str] = []
            args: list[int] = [ttl_ms]
            for at in positions:
                key_type, entity_id = entities[at]
                keys.append(watermark_key(self.namespace, key_type, entity_id))
                keys.append(index_key(self.namespace, key_type, entity_id))
                args.append(future_buffer_ms * 1000)
            return [int(mark) for mark in await RAISE.run(client, keys, args)]

        groups = list(by_slot.values())
        raised = await asyncio.gather(*(raise_slot(positions) for positions in groups))
        marks = [0] * len(entities)
        for positions, group_marks in zip(groups, raised, strict=True):
            for at, mark in zip(positions, group_marks, strict=True):
                marks[at] = mark
        args: list[str | int] = [self.transport, self.stream_maxlen, self.namespace]
        for (key_type, entity_id), mark in zip(entities, marks, strict=True):
            args += (key_type, entity_id, mark)
        await ANNOUNCE.run(client, [seq_key(self.namespace), self.bus_key], args)
        return marks

    async def flush(self, client: AnyRedis, *, future_buffer_ms: int = 0) -> int:
        """Raise the namespace flush watermark to ``now + buffer``, announce it, then delete the
        namespace's cached values; returns the watermark.

        The watermark refuses every later write of a value computed before it, at once; the
        deletion (small ``SCAN``/``UNLINK`` batches, never ``FLUSHDB``) removes what is already
        stored, so that when this returns no value computed before the flush can be read. A
        failure in either raises."""
        check_future_buffer(future_buffer_ms)
        keys = [seq_key(self.namespace), self.bus_key, flush_key(self.namespace)]
        args = [self.transport, self.stream_maxlen, self.namespace, future_buffer_ms * 1000]
        mark = int(await FLUSH.run(client, keys, args))  # (the first command: see Script.run)
        if is_cluster(client):
            await raise_flush_copies(client, self.namespace, mark)
        for pattern in (f"{self.namespace}:v:*", f"{self.namespace}:i:*"):
            if isinstance(client, RedisCluster):  # narrows the else branch too
                await _sweep_cluster(client, pattern)
            else:
                await _sweep_server(client, pattern)
        return mark


async def _sweep_server(client: Redis, pattern: str) -> None:
    """UNLINK every key matching ``pattern``, one ``SCAN`` batch at a time."""
    cursor = 0
    while True:
        cursor, found = await client.scan(cursor=cursor, match=pattern, count=_SWEEP_BATCH)
        if found:
            await client.unlink(*found)
        if cursor == 0:
            break


async def _sweep_cluster(client: RedisCluster, pattern: str) -> None:
    """UNLINK every key matching ``pattern`` on every primary (SCAN per node)."""
    batch: list[str | bytes] = []
    async for key in client.scan_iter(match=pattern, count=_SWEEP_BATCH):
        batch.append(key)
        if len(batch) >= _SWEEP_BATCH:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)
