"""The cache's side of the invalidation bus: what an event does to the LOCAL layer.

One subscriber per :class:`GCache` (never per function), running on the cache's background
loop, started on first use. Events from any replica or any ``bus.Publisher`` remove the affected
LOCAL entries and raise the local watermarks (so a fallback that started earlier cannot store
its value afterwards); a gap flushes the LOCAL layer. Whether a tracked LOCAL hit may be served
is the subscriber's ``is_fresh()`` — see the proof in ``bus/_subscriber.py`` — read on the hit
as a deadline (:func:`freshness_of`), against the clock reading the hit takes for its TTL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bus._cluster import AnyRedis
from bus._metrics import BusMetrics
from bus._subscriber import Subscriber
from bus._wire import Event, FlushEvent

from ._local import LocalCache

if TYPE_CHECKING:
    from ._config import GCacheConfig
    from ._remote import RemoteStore

__all__ = ["Freshness", "LocalLayerHandler", "freshness_of", "make_subscriber"]


class Freshness(Protocol):
    """Until when, on the cache's ``timer``, tracked LOCAL entries may be served."""

    @property
    def fresh_until(self) -> float: ...


class _OnInjectedTimer:
    """The bus's verdict for a cache whose ``timer`` is not ``time.monotonic`` (a test's fake
    clock), whose readings the subscriber's deadline cannot be compared with."""

    __slots__ = ("_subscriber",)

    def __init__(self, subscriber: Subscriber) -> None:
        self._subscriber = subscriber

    @property
    def fresh_until(self) -> float:
        return math.inf if self._subscriber.is_fresh() else -math.inf


def freshness_of(subscriber: Subscriber, timer: Callable[[], float]) -> Freshness:
    """What a tracked LOCAL hit compares its ``timer()`` reading with: the subscriber itself,
    whose ``fresh_until`` is on ``time.monotonic()``, when that is the cache's timer."""
    return subscriber if timer is time.monotonic else _OnInjectedTimer(subscriber)


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
