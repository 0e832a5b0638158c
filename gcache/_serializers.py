"""How a cached value becomes bytes for Redis: pickle (any picklable value) or JSON (orjson).

Each serializer has a one-byte id written into every stored value's header (see ``_codec``), so a
reader never hands bytes made by one serializer to the other: a replica configured for JSON never
unpickles, whatever it finds in Redis.

The pickle serializer stores a ``dict`` or ``list`` as JSON text instead when that is provably
the same value: when the JSON, read back, pickles to exactly the bytes the value itself pickles
to. Then reading the JSON gives what unpickling would have given — same types (no tuple turned
list, no enum turned int, no subclass lost), same floats to the bit, same sharing of objects —
and orjson reads a typical record in about 60% of the instructions that ``pickle.loads`` takes.
Anything else (a value JSON would change, or one whose JSON is longer than its pickle) is
pickled. A reader tells the two apart by the payload's first byte: a pickle (protocol 2 and
later, as written here) starts with the PROTO opcode ``0x80``, which no JSON text starts with.
The JSON is always an object or an array, so every truncation of it is invalid JSON, as every
truncation of a pickle is an invalid pickle: a damaged value is refused, never misread.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = ["JSON", "PICKLE", "SERIALIZERS", "Serializer", "SerializerName"]

SerializerName = Literal["pickle", "json"]


@dataclass(frozen=True, slots=True)
class Serializer:
    """A pair of pure functions and the id byte that names them in the value header."""

    name: SerializerName
    id: bytes
    dumps: Callable[[Any], bytes]
    """Raises for a value it cannot serialize; the cache then returns it uncached (counted)."""
    loads: Callable[[bytes], Any]


# Strict JSON: dataclasses, datetimes and str/int subclasses are refused (TypeError) instead of
# being turned into dicts and strings, so what is cached is only what JSON can give back.
# Tuples still come back as lists (README: "Security").
_JSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _json_dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_JSON_OPTIONS)


def _pickle(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_dumps(value: Any) -> bytes:
    """The value's pickle, or its JSON when that reads back as exactly the same value."""
    pickled = _pickle(value)
    if type(value) is dict or type(value) is list:
        try:
            text = orjson.dumps(value, option=_JSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: not JSON-safe
            return pickled
        if len(text) <= len(pickled) and _pickle(orjson.loads(text)) == pickled:
            return text
    return pickled


def _pickle_loads(payload: bytes) -> Any:
    if payload[0] == _PROTO:  # (an empty payload raises IndexError: corrupt, as it should)
        return pickle.loads(payload)
    return orjson.loads(payload)


_PROTO = pickle.PROTO[0]

PICKLE = Serializer("pickle", b"p", _pickle_dumps, _pickle_loads)
JSON = Serializer("json", b"j", _json_dumps, orjson.loads)
SERIALIZERS: dict[str, Serializer] = {s.name: s for s in (PICKLE, JSON)}
