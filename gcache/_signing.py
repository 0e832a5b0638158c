"""HMAC-SHA256 signing of stored values, with key rotation.

One key signs; it and any number of accepted keys verify. Every signature names its key by a
key id, an 8-byte HMAC of a fixed label under the key (it reveals nothing about the key, and lets
a reader pick the one key to check instead of trying each), so a value signed with a key that is
no longer accepted is refused without computing anything.

Verification compares tags with :func:`hmac.compare_digest` (constant time), and the codec does it
before handing a single payload byte to a deserializer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["KEY_ID_LEN", "MIN_KEY_BYTES", "SIGNATURE_LEN", "TAG_LEN", "Signer", "signing_keys"]

MIN_KEY_BYTES = 16
"""Shorter keys are refused: an HMAC key should be random bytes, at least 128 bits of them."""
KEY_ID_LEN = 8
TAG_LEN = 32  # SHA-256
SIGNATURE_LEN = KEY_ID_LEN + TAG_LEN
_KEY_ID_LABEL = b"gcache signing key id"


def _as_key(key: object, what: str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key)
    else:
        raise TypeError(f"{what} must be bytes or str, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{what} must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return key


def signing_keys(signing_key: object, accepted: object) -> tuple[bytes, ...]:
    """The keys as bytes, the signing key first; raises TypeError/ValueError for bad ones.

    ``()`` when signing is off. Used by ``GCacheConfig`` to validate its fields when it is built.
    """
    if isinstance(accepted, (str, bytes, bytearray, memoryview)) or not isinstance(
        accepted, Sequence
    ):
        raise TypeError("accepted_signing_keys must be a list or tuple of keys")
    if signing_key is None:
        if accepted:
            raise ValueError("accepted_signing_keys needs a signing_key (the one that signs)")
        return ()
    keys = [_as_key(signing_key, "signing_key")]
    for n, key in enumerate(accepted):
        key = _as_key(key, f"accepted_signing_keys[{n}]")
        if key not in keys:
            keys.append(key)
    if len({key_id(key) for key in keys}) != len(keys):
        raise ValueError("two signing keys share a key id; use another key")  # ~2**-64 odds
    return tuple(keys)


def key_id(key: bytes) -> bytes:
    return hmac.digest(key, _KEY_ID_LABEL, "sha256")[:KEY_ID_LEN]


class Signer:
    """Signs with the first key; verifies with any of them."""

    __slots__ = ("_key_id", "_mac", "_macs")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        # Keyed HMAC states, copied per message: cheaper than keying a new HMAC each time.
        self._macs: dict[bytes, hmac.HMAC] = {
            key_id(key): hmac.new(key, digestmod=hashlib.sha256) for key in keys
        }
        self._key_id = key_id(keys[0])
        self._mac = self._macs[self._key_id]

    def sign(self, message: bytes) -> bytes:
        """``key id + tag`` (:data:`SIGNATURE_LEN` bytes)."""
        mac = self._mac.copy()
        mac.update(message)
        return self._key_id + mac.digest()

    def verify(self, signature: bytes, message: bytes) -> str | None:
        """None when ``signature`` is a valid signature of ``message`` by an accepted key, else
        why not (for the log line)."""
        if len(signature) != SIGNATURE_LEN:
            return "truncated signature"
        keyed = self._macs.get(signature[:KEY_ID_LEN])
        if keyed is None:
            return "signed with a key that is not accepted"
        mac = keyed.copy()
        mac.update(message)
        if not hmac.compare_digest(signature[KEY_ID_LEN:], mac.digest()):
            return "signature does not match"
        return None
