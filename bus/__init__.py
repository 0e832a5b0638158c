"""The GCache invalidation bus: keeps every replica's LOCAL cache layer coherent.

Usable without gcache: writers publish invalidations with :class:`Publisher`; caches (or any
process) follow them with :class:`Subscriber`. See the README's "The invalidation bus" section
for the guarantee, the wire format and the CLI (``python -m bus``).
"""

from ._clock import RedisClock as RedisClock
from ._metrics import BusMetrics as BusMetrics
from ._publisher import Publisher as Publisher
from ._publisher import PublishError as PublishError
from ._subscriber import EventHandler as EventHandler
from ._subscriber import Subscriber as Subscriber
from ._subscriber import SubscriberState as SubscriberState
from ._subscriber import SubscriberStats as SubscriberStats
from ._topic import Topic as Topic
from ._wire import Event as Event
from ._wire import FlushEvent as FlushEvent
from ._wire import InvalidateEvent as InvalidateEvent
from ._wire import UnknownEvent as UnknownEvent
from ._wire import WireError as WireError
from ._wire import decode as decode
from ._wire import encode as encode

__all__ = [
    "BusMetrics",
    "Event",
    "EventHandler",
    "FlushEvent",
    "InvalidateEvent",
    "PublishError",
    "Publisher",
    "RedisClock",
    "Subscriber",
    "SubscriberState",
    "SubscriberStats",
    "Topic",
    "UnknownEvent",
    "WireError",
    "decode",
    "encode",
]
