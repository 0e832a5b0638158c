"""The byte layout of a value stored in Redis.

::

    offset  size  content
    0       2     b"GC"                 magic
    2       1     format version        0x01
    3       1     serializer id         b"p" = pickle
    4       16    computed_at           ASCII decimal microseconds of Redis time, zero-padded
    20      ...   payload               the serializer's bytes

``computed_at`` sits at a fixed offset in plain digits so the conditional-write script can read it
with ``GETRANGE key 4 19`` and refuse to replace a newer value with an older one, whatever the
version of the rest of the payload. Anything that does not parse is treated as a miss by readers
and as replaceable by writers.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["HEADER_LEN", "DecodeError", "decode", "encode", "serialize"]

MAGIC = b"GC"
VERSION = b"\x01"
PICKLE = b"p"
HEADER_LEN = 20
_PREFIX = MAGIC + VERSION + PICKLE


class DecodeError(ValueError):
    """Bytes under a cache key are not a value this version can read."""


def serialize(value: object) -> bytes:
    """The payload for ``value``; raises whatever pickle raises for an unpicklable value."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def encode(payload: bytes, computed_at: int) -> bytes:
    return b"%b%016d%b" % (_PREFIX, computed_at, payload)


def decode(raw: bytes) -> tuple[int, Any]:
    """``(computed_at, value)`` from stored bytes; :class:`DecodeError` when they are not ours."""
    if raw[:4] != _PREFIX:
        raise DecodeError(f"unknown value header {raw[:4]!r}")
    try:
        computed_at = int(raw[4:HEADER_LEN])
        value = pickle.loads(raw[HEADER_LEN:])
    except Exception as exc:
        raise DecodeError(f"corrupt value: {exc!r}") from exc
    return computed_at, value


def computed_at_of(raw: bytes) -> int:
    """Just the timestamp, without unpickling (raises DecodeError like :func:`decode`)."""
    if raw[:4] != _PREFIX:
        raise DecodeError(f"unknown value header {raw[:4]!r}")
    try:
        return int(raw[4:HEADER_LEN])
    except ValueError as exc:
        raise DecodeError(f"corrupt timestamp: {exc!r}") from exc
