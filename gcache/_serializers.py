"""How a cached value becomes bytes for Redis: pickle (any picklable value) or JSON (orjson).

Each serializer has a one-byte id written into every stored value's header (see ``_codec``), so a
reader never hands bytes made by one serializer to the other: a replica configured for JSON never
unpickles, whatever it finds in Redis.
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


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


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


PICKLE = Serializer("pickle", b"p", _pickle_dumps, pickle.loads)
JSON = Serializer("json", b"j", _json_dumps, orjson.loads)
SERIALIZERS: dict[str, Serializer] = {s.name: s for s in (PICKLE, JSON)}
