"""One namespace's bus: its names and settings, and the two publishing operations.

Both the standalone :class:`bus.Publisher` and gcache call these, so an invalidation made by a
cache and one made by a write service are the same bytes on the same stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from ._names import bus_key, flush_key, index_key, seq_key, watermark_key
from ._scripts import FLUSH, INVALIDATE

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
        self, client: Redis, entities: Sequence[tuple[str, str]], *, future_buffer_ms: int = 0
    ) -> list[int]:
        """Raise the watermark of every ``(key_type, id)`` to ``max(W, now + buffer)`` and announce
        them in one event, atomically, in one round trip. Returns the new watermarks."""
        check_future_buffer(future_buffer_ms)
        if not entities:
            return []
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

    async def flush(self, client: Redis, *, future_buffer_ms: int = 0) -> int:
        """Raise the namespace flush watermark to ``now + buffer``, announce it, then delete the
        namespace's cached values; returns the watermark.

        The watermark refuses every later write of a value computed before it, at once; the
        deletion (small ``SCAN``/``UNLINK`` batches, never ``FLUSHDB``) removes what is already
        stored, so that when this returns no value computed before the flush can be read. A
        failure in either raises."""
        check_future_buffer(future_buffer_ms)
        keys = [seq_key(self.namespace), self.bus_key, flush_key(self.namespace)]
        args = [self.transport, self.stream_maxlen, self.namespace, future_buffer_ms * 1000]
        mark = int(await FLUSH.run(client, keys, args))
        for pattern in (f"{self.namespace}:v:*", f"{self.namespace}:i:*"):
            cursor = 0
            while True:
                cursor, found = await client.scan(cursor=cursor, match=pattern, count=_SWEEP_BATCH)
                if found:
                    await client.unlink(*found)
                if cursor == 0:
                    break
        return mark
