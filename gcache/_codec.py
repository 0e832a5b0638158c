"""The byte layout of a value stored in Redis, and the checks a reader makes before trusting it.

::

    offset  size  content
    0       2     b"GC"                 magic
    2       1     format version        0x01 unsigned, 0x02 signed
    3       1     serializer id         b"p" = pickle, b"j" = JSON (orjson)
    4       16    computed_at           ASCII decimal microseconds of Redis time, zero-padded
    20      8     key id                (signed only) which signing key made the tag
    28      32    HMAC-SHA256 tag       (signed only) over bytes 0..19, the Redis key and payload
    20|60   ...   payload               the serializer's bytes (for pickle, the exact JSON of a
                                        record when there is one: see ``_serializers``)

``computed_at`` sits at a fixed offset in plain digits so the conditional-write script can read it
with ``GETRANGE key 0 19`` and refuse to replace a newer value with an older one, whatever the
version of the rest of the payload. Anything that does not parse is treated as a miss by readers
and as replaceable by writers.

A :class:`Codec` reads exactly the format it writes: its own serializer id, and signed values if
and only if it signs. Anything else is a :class:`DecodeError` whose ``reason`` says why — the
label it is counted under — and the payload is never deserialized: an entry written by a replica
with another serializer (a rolling deploy) is a miss, then overwritten by this replica's value;
an unsigned, mis-signed or unknown-key entry in signed mode never reaches ``pickle.loads``.

The tag covers the header (so ``computed_at`` cannot be moved forward to pin a value) and the
Redis key, length-prefixed (so a validly signed value copied under another key is refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._serializers import PICKLE, SERIALIZERS, Serializer
from ._signing import SIGNATURE_LEN, Signer, signing_keys

if TYPE_CHECKING:
    from ._config import GCacheConfig

__all__ = [
    "HEADER_LEN",
    "Codec",
    "DecodeError",
    "computed_at_of",
    "decode",
    "encode",
    "serialize",
]

MAGIC = b"GC"
UNSIGNED = b"\x01"
SIGNED = b"\x02"
HEADER_LEN = 20
_SIGNED_BODY = HEADER_LEN + SIGNATURE_LEN
_KNOWN_SERIALIZERS = frozenset(s.id for s in SERIALIZERS.values())


class DecodeError(ValueError):
    """Bytes under a cache key are not a value this codec may read.

    ``reason`` is the ``gcache_error_counter`` label: ``decode`` (not a gcache value, truncated
    or corrupt), ``format`` (another serializer or format version), ``unsigned`` (signing is on
    and the value carries no signature) or ``signature`` (wrong tag, or a key no longer
    accepted).
    """

    def __init__(self, message: str, reason: str = "decode") -> None:
        super().__init__(message)
        self.reason = reason


class Codec:
    """Serializes, frames and (optionally) signs values; checks and reads them back.

    ``encode``/``decode`` take the Redis key the value is stored under: a signed value is bound
    to it. Unsigned codecs ignore it.
    """

    __slots__ = (
        "_loads",
        "_prefix",
        "_signer",
        "decode",
        "decode_value",
        "serialize",
        "serializer",
    )

    def __init__(self, serializer: Serializer = PICKLE, signer: Signer | None = None) -> None:
        self.serializer = serializer
        self.serialize = serializer.dumps  # raises for a value it cannot handle
        self._loads = serializer.loads
        self._signer = signer
        self._prefix = MAGIC + (SIGNED if signer is not None else UNSIGNED) + serializer.id
        self.decode = self._decode_plain if signer is None else self._decode_signed
        """``(computed_at, value)`` from ``(raw, key)``, or :class:`DecodeError`."""
        self.decode_value = self._value_plain if signer is None else self._value_signed
        """Just the value (the same checks, the timestamp not parsed), or :class:`DecodeError`."""

    @classmethod
    def for_config(cls, config: GCacheConfig) -> Codec:
        keys = signing_keys(config.signing_key, config.accepted_signing_keys)
        return cls(SERIALIZERS[config.serializer], Signer(keys) if keys else None)

    @property
    def signed(self) -> bool:
        return self._signer is not None

    def encode(self, payload: bytes, computed_at: int, key: str) -> bytes:
        """The bytes to store under ``key``."""
        header = b"%b%016d" % (self._prefix, computed_at)
        if self._signer is None:
            return header + payload
        return header + self._signer.sign(_message(header, key, payload)) + payload

    def _decode_plain(self, raw: bytes, key: str) -> tuple[int, Any]:
        if raw[:4] != self._prefix:
            raise self._refusal(raw)
        try:
            computed_at = int(raw[4:HEADER_LEN])
            value = self._loads(raw[HEADER_LEN:])
        except Exception as exc:
            raise DecodeError(f"corrupt value: {exc!r}") from exc
        return computed_at, value

    def _value_plain(self, raw: bytes, key: str) -> Any:
        if raw[:4] != self._prefix:
            raise self._refusal(raw)
        try:
            return self._loads(raw[HEADER_LEN:])
        except Exception as exc:
            raise DecodeError(f"corrupt value: {exc!r}") from exc

    def _value_signed(self, raw: bytes, key: str) -> Any:
        return self._decode_signed(raw, key)[1]

    def _decode_signed(self, raw: bytes, key: str) -> tuple[int, Any]:
        if raw[:4] != self._prefix:
            raise self._refusal(raw)
        payload = raw[_SIGNED_BODY:]
        why = self._signer.verify(  # type: ignore[union-attr]
            raw[HEADER_LEN:_SIGNED_BODY], _message(raw[:HEADER_LEN], key, payload)
        )
        if why is not None:
            raise DecodeError(f"refused, not deserialized: {why}", "signature")
        # Only now, with the bytes proven to come from a holder of an accepted key for this
        # very key, does anything parse them.
        try:
            computed_at = int(raw[4:HEADER_LEN])
            value = self._loads(payload)
        except Exception as exc:
            raise DecodeError(f"corrupt value: {exc!r}") from exc
        return computed_at, value

    def _refusal(self, raw: bytes) -> DecodeError:
        """Why a value whose first four bytes are not this codec's prefix is refused."""
        if raw[:2] != MAGIC or len(raw) < 4:
            return DecodeError(f"unknown value header {raw[:4]!r}")
        version, serializer = raw[2:3], raw[3:4]
        if version not in (UNSIGNED, SIGNED) or serializer not in _KNOWN_SERIALIZERS:
            return DecodeError(f"unknown format {raw[2:4]!r}", "format")
        if self._signer is not None and version == UNSIGNED:
            return DecodeError("refused, not deserialized: the value is not signed", "unsigned")
        if version != self._prefix[2:3]:
            return DecodeError("a signed value, and signing is off", "format")
        return DecodeError(
            f"written with serializer {serializer!r}, this cache uses {self._prefix[3:4]!r}",
            "format",
        )


def _message(header: bytes, key: str, payload: bytes) -> bytes:
    """What the tag covers; the key is length-prefixed so key and payload cannot trade bytes."""
    key_bytes = key.encode("utf-8", "surrogatepass")
    return b"".join((header, len(key_bytes).to_bytes(4, "big"), key_bytes, payload))


_DEFAULT = Codec()


def serialize(value: object) -> bytes:
    """The default (pickle) payload for ``value``; raises what pickle raises."""
    return _DEFAULT.serialize(value)


def encode(payload: bytes, computed_at: int, key: str = "") -> bytes:
    """The default (pickle, unsigned) stored form of ``payload``."""
    return _DEFAULT.encode(payload, computed_at, key)


def decode(raw: bytes, key: str = "") -> tuple[int, Any]:
    """``(computed_at, value)`` from bytes in the default (pickle, unsigned) format."""
    return _DEFAULT.decode(raw, key)


def computed_at_of(raw: bytes) -> int:
    """Just the timestamp, as the write script reads it (any version, nothing deserialized);
    :class:`DecodeError` when the bytes are not a gcache value."""
    if raw[:2] != MAGIC:
        raise DecodeError(f"unknown value header {raw[:4]!r}")
    try:
        return int(raw[4:HEADER_LEN])
    except ValueError as exc:
        raise DecodeError(f"corrupt timestamp: {exc!r}") from exc
