"""The bus wire format: events as frozen dataclasses, encoded as one small JSON object.

No I/O and no Redis here (h11-style): :func:`encode` turns an event into bytes, :func:`decode`
turns bytes back into an event or raises :class:`WireError`. The publishing scripts build the
same JSON server-side (see ``_scripts``), because the watermark is only known there.

Version 1 (every time is microseconds of Redis ``TIME``)::

    {"v": 1, "t": "inv",   "ns": "gcache", "s": 42, "ts": 1732...,
     "e": [["user_id", "12345", 1732...], ...]}      entities and their new watermarks
    {"v": 1, "t": "flush", "ns": "gcache", "s": 43, "ts": 1732..., "w": 1732...}

``s`` is a per-namespace sequence number, incremented by every publish in the same atomic step
as the watermark; a subscriber that sees it jump (or go back, after Redis lost its data) knows it
missed events. Decoders ignore fields they do not know and refuse versions they do not know
(:class:`UnknownEvent`), so a newer publisher never crashes an older subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "VERSION",
    "Event",
    "FlushEvent",
    "InvalidateEvent",
    "UnknownEvent",
    "WireError",
    "decode",
    "encode",
]

VERSION = 1
MAX_EVENT_BYTES = 16 * 1024 * 1024
"""Larger payloads are refused before parsing (a batch of ~100k entities fits)."""


class WireError(ValueError):
    """Bytes that are not a valid event (counted and skipped by subscribers)."""


class UnknownEvent(WireError):
    """A well-formed event of a version or type this code does not know (newer publisher)."""


# The checks run for every field of every event a subscriber applies: each tries the exact type
# orjson produces first (one identity test), and only then the general rule.


def _check_time(name: str, value: object) -> int:
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise WireError(f"{name} must be a string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class InvalidateEvent:
    """Entities whose watermarks were raised: ``entities`` holds ``(key_type, id, watermark)``."""

    namespace: str
    seq: int
    sent_at: int
    entities: tuple[tuple[str, str, int], ...]

    def __post_init__(self) -> None:
        _check_text("namespace", self.namespace)
        _check_time("seq", self.seq)
        _check_time("sent_at", self.sent_at)
        for entity in self.entities:
            if not isinstance(entity, tuple) or len(entity) != 3:
                raise WireError(f"entity must be (key_type, id, watermark), got {entity!r}")
            key_type, entity_id, watermark = entity
            if type(key_type) is not str or type(entity_id) is not str:
                _check_text("key_type", key_type)
                _check_text("id", entity_id)
            if type(watermark) is not int or watermark < 0:
                _check_time("watermark", watermark)


@dataclass(frozen=True, slots=True)
class FlushEvent:
    """The namespace's flush watermark was raised to ``watermark``."""

    namespace: str
    seq: int
    sent_at: int
    watermark: int

    def __post_init__(self) -> None:
        _check_text("namespace", self.namespace)
        _check_time("seq", self.seq)
        _check_time("sent_at", self.sent_at)
        _check_time("watermark", self.watermark)


Event = InvalidateEvent | FlushEvent


def encode(event: Event) -> bytes:
    """The wire bytes of ``event``."""
    body: dict[str, Any] = {
        "v": VERSION,
        "ns": event.namespace,
        "s": event.seq,
        "ts": event.sent_at,
    }
    if isinstance(event, InvalidateEvent):
        body["t"] = "inv"
        body["e"] = [list(entity) for entity in event.entities]
    else:
        body["t"] = "flush"
        body["w"] = event.watermark
    return orjson.dumps(body)


def decode(data: bytes | str) -> Event:
    """Parse one event; :class:`WireError` (or :class:`UnknownEvent`) if it is not one."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_EVENT_BYTES:
        raise WireError(f"event of {len(data)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise WireError(f"event must be a JSON object, got {type(body).__name__}")
    version = body.get("v")
    if type(version) is not int or version != VERSION:  # true and 1.0 are not version 1
        if type(version) is int and version > VERSION:
            raise UnknownEvent(f"event version {version} is newer than {VERSION}")
        raise WireError(f"bad event version {version!r}")
    kind = body.get("t")
    try:
        if kind == "inv":
            raw = body.get("e")
            if not isinstance(raw, list):
                raise WireError("'e' must be a list")
            return InvalidateEvent(
                body.get("ns"),  # type: ignore[arg-type]  # validated in __post_init__
                body.get("s"),  # type: ignore[arg-type]
                body.get("ts"),  # type: ignore[arg-type]
                tuple(tuple(item) if isinstance(item, list) else item for item in raw),
            )
        if kind == "flush":
            return FlushEvent(
                body.get("ns"),  # type: ignore[arg-type]
                body.get("s"),  # type: ignore[arg-type]
                body.get("ts"),  # type: ignore[arg-type]
                body.get("w"),  # type: ignore[arg-type]
            )
    except TypeError as exc:  # wrong arity inside an entity list, for instance
        raise WireError(str(exc)) from exc
    raise UnknownEvent(f"unknown event type {kind!r}")
