"""Redis key and channel names shared by publishers, subscribers and the cache.

Every component is percent-encoded (``quote`` with no safe characters), so ``:``, ``=``, ``{``
and ``}`` inside a key type or id can never be read as separators. The ``{key_type=id}`` part is
a Redis Cluster hash tag: an entity's cached values and its watermark share one slot.

::

    {ns}:v:{key_type=id}:.. cached values (gcache)
    {ns}:w:{key_type=id}    entity watermark W(e)       string, microseconds of Redis time
    {ns}:i:{key_type=id}    entity index                set of the entity's tracked value keys
    {ns}:flush              namespace flush watermark F string, no expiry
    {ns}:bus                invalidation stream (Streams) or channel (pub/sub)
    {ns}:bus:seq            last sequence number published on the bus
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote as _quote

__all__ = [
    "MAX_COMPONENT",
    "bus_key",
    "entity_tag",
    "escape",
    "flush_key",
    "index_key",
    "seq_key",
    "shorten",
    "watermark_key",
]

MAX_COMPONENT = 200
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-~]*")


def escape(text: str) -> str:
    """``quote(text, safe="")``, without its cost for the common already-safe text."""
    if _UNRESERVED.fullmatch(text):
        return text
    return _quote(text, safe="")


def shorten(text: str) -> str:
    """``text``, or ``#`` and a 128-bit BLAKE2b digest of it when longer than MAX_COMPONENT."""
    if len(text) <= MAX_COMPONENT:
        return text
    return "#" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def entity_tag(key_type: str, entity_id: str) -> str:
    """The ``{key_type=id}`` hash tag that names an entity in every Redis key."""
    return "{" + escape(key_type) + "=" + shorten(escape(entity_id)) + "}"


def watermark_key(namespace: str, key_type: str, entity_id: str) -> str:
    return f"{namespace}:w:{entity_tag(key_type, entity_id)}"


def index_key(namespace: str, key_type: str, entity_id: str) -> str:
    """The set of an entity's tracked value keys: invalidation deletes them with W(e)."""
    return f"{namespace}:i:{entity_tag(key_type, entity_id)}"


def flush_key(namespace: str) -> str:
    return f"{namespace}:flush"


def bus_key(namespace: str) -> str:
    """The stream key, or the pub/sub channel name."""
    return f"{namespace}:bus"


def seq_key(namespace: str) -> str:
    return f"{namespace}:bus:seq"
