"""The cache's side of the invalidation bus: what an event does to the LOCAL layer.

One subscriber per :class:`GCache` (never per function), running on the cache's background
loop, started on first use. Events from any replica or any ``bus.Publisher`` remove the affected
LOCAL entries and raise the local watermarks (so a fallback that started earlier cannot store
its value afterwards); a gap flushes the LOCAL layer. Whether a tracked LOCAL hit may be served
is the subscriber's ``is_fresh()`` — see the proof in ``bus/_subscriber.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus._cluster import AnyRedis
from bus._metrics import BusMetrics
from bus._subscriber import Subscriber
from bus._wire import Event, FlushEvent

from ._local import LocalCache

if TYPE_CHECKING:
    from ._config import GCacheConfig
    from ._remote import RemoteStore

__all__ = ["LocalLayerHandler", "make_subscriber"]


class LocalLayerHandler:
    """Applies bus events to a LOCAL layer."""

    def __init__(self, local: LocalCache) -> None:
        self._local = local

    def on_event(self, event: Event) -> None:
        if isinstance(event, FlushEvent):
            self._local.flush(event.watermark)
            return
        invalidate = self._local.invalidate
        for key_type, entity_id, watermark in event.entities:
            invalidate((key_type, entity_id), watermark)

    def on_gap(self, reason: str, redis_time_us: int) -> None:
        # Events before redis_time_us may be lost: nothing verified before it can be trusted.
        self._local.reset(redis_time_us)


def make_subscriber(config: GCacheConfig, remote: RemoteStore, local: LocalCache) -> Subscriber:
    bus = config.bus
    assert bus is not None
    own_client = config.redis_client_factory is None

    async def release(client: AnyRedis) -> None:
        if own_client:  # a factory's client is its owner's to close
            await client.aclose()

    return Subscriber(
        remote.bus_client,
        LocalLayerHandler(local),
        namespace=config.namespace,
        transport=bus.transport,
        max_staleness_ms=bus.max_staleness_ms,
        metrics=BusMetrics(
            config.namespace, prefix=config.metrics_prefix, registry=config.metrics_registry
        ),
        clock=remote.clock,
        release_client=release,
    )
