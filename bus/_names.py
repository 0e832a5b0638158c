"""Redis key and channel names shared by publishers, subscribers and the cache.

Every component is percent-encoded (``quote`` with no safe characters), so ``:``, ``=``, ``{``
and ``}`` inside a key type or id can never be read as separators. The ``{key_type=id}`` part is
a Redis Cluster hash tag: an entity's cached values, its watermark and its index share one slot,
so the write script can check and write them atomically.

Every key starts with ``ns:`` (an ACL pattern ``~ns:*`` covers a namespace). The namespace-level
keys carry the namespace as their hash tag, ``{ns}``: the flush watermark, the bus and its
sequence counter live in one known slot, so the scripts that touch them together stay atomic on a
Cluster. The same layout is used on a single server, where hash tags mean nothing::

    ns:v:{key_type=id}:..   cached values (gcache)
    ns:w:{key_type=id}      entity watermark W(e)       string, microseconds of Redis time
    ns:i:{key_type=id}      entity index                set of the entity's tracked value keys
    ns:flush:{ns}           namespace flush watermark F string, no expiry
    ns:flush:slot:{tag}     Cluster only: F's copy for the slot of ``tag`` (see bus._slots)
    ns:bus:{ns}             invalidation stream (Streams) or channel (pub/sub)
    ns:bus:seq:{ns}         last sequence number published on the bus
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote as _quote

__all__ = [
    "MAX_COMPONENT",
    "as_is",
    "bus_key",
    "component",
    "entity_tag",
    "escape",
    "flush_copy_key",
    "flush_key",
    "index_key",
    "namespace_tag",
    "seq_key",
    "shorten",
    "watermark_key",
]

MAX_COMPONENT = 200
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-~]*")
_PLAIN = re.compile(rf"[A-Za-z0-9_.\-~]{{0,{MAX_COMPONENT}}}")

as_is = _PLAIN.fullmatch
"""Truthy for text that :func:`escape` and :func:`shorten` both leave unchanged (safe characters
only, at most MAX_COMPONENT of them): one C call where the two functions would be two calls."""


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


def component(text: str) -> str:
    """``text`` as one component of a key: escaped, then shortened if long."""
    return text if as_is(text) else shorten(escape(text))


def entity_tag(key_type: str, entity_id: str) -> str:
    """The ``{key_type=id}`` hash tag that names an entity in every Redis key."""
    return "{" + escape(key_type) + "=" + component(entity_id) + "}"


def watermark_key(namespace: str, key_type: str, entity_id: str) -> str:
    return f"{namespace}:w:{entity_tag(key_type, entity_id)}"


def index_key(namespace: str, key_type: str, entity_id: str) -> str:
    """The set of an entity's tracked value keys: invalidation deletes them with W(e)."""
    return f"{namespace}:i:{entity_tag(key_type, entity_id)}"


def namespace_tag(namespace: str) -> str:
    """The ``{ns}`` hash tag of the namespace-level keys: they share one slot."""
    return "{" + escape(namespace) + "}"


def flush_key(namespace: str) -> str:
    """The namespace flush watermark F (authoritative copy, in the namespace's slot)."""
    return f"{namespace}:flush:{namespace_tag(namespace)}"


def flush_copy_key(namespace: str, slot_tag: str) -> str:
    """Cluster only: the copy of F that write scripts in the slot of ``slot_tag`` read."""
    return f"{namespace}:flush:slot:{{{slot_tag}}}"


def bus_key(namespace: str) -> str:
    """The stream key, or the pub/sub channel name."""
    return f"{namespace}:bus:{namespace_tag(namespace)}"


def seq_key(namespace: str) -> str:
    return f"{namespace}:bus:seq:{namespace_tag(namespace)}"
