"""``GCacheConfig`` signing and serializer fields: bad values fail where they are written."""

from __future__ import annotations

from typing import Any

import pytest

from gcache import GCacheConfig
from gcache._codec import Codec
from gcache._signing import key_id
from tests.providers import BOTH, constant

GOOD = "a-key-of-16-bytes!"


def config(**fields: Any) -> GCacheConfig:
    return GCacheConfig(cache_config_provider=constant(BOTH), **fields)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"signing_key": b""}, ValueError, "at least 16 bytes"),
        ({"signing_key": ""}, ValueError, "at least 16 bytes"),
        ({"signing_key": b"short"}, ValueError, "at least 16 bytes"),
        ({"signing_key": 12345}, TypeError, "bytes or str"),
        ({"signing_key": [GOOD]}, TypeError, "bytes or str"),
        ({"signing_key": GOOD, "accepted_signing_keys": GOOD}, TypeError, "list or tuple"),
        ({"signing_key": GOOD, "accepted_signing_keys": b"x" * 20}, TypeError, "list or tuple"),
        ({"signing_key": GOOD, "accepted_signing_keys": [None]}, TypeError, r"\[0\]"),
        ({"signing_key": GOOD, "accepted_signing_keys": [GOOD, b""]}, ValueError, r"\[1\]"),
        ({"accepted_signing_keys": [GOOD]}, ValueError, "needs a signing_key"),
        ({"serializer": "yaml"}, ValueError, "'pickle' or 'json'"),
    ],
)
def test_bad_fields_are_refused(fields: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        config(**fields)


def test_keys_never_show_in_repr() -> None:
    text = repr(config(signing_key=GOOD, accepted_signing_keys=["another-16-byte-key"]))
    assert GOOD not in text and "another" not in text


def test_str_and_bytes_keys_are_the_same_key() -> None:
    as_str = Codec.for_config(config(signing_key=GOOD))
    as_bytes = Codec.for_config(config(signing_key=GOOD.encode()))
    raw = as_str.encode(b"\x80\x05N.", 1, "k")
    assert as_bytes.decode(raw, "k") == (1, None)
    assert raw[20:28] == key_id(GOOD.encode())


def test_defaults_are_unsigned_pickle() -> None:
    codec = Codec.for_config(config())
    assert not codec.signed and codec.serializer.name == "pickle"
    accepted = config(signing_key=GOOD, accepted_signing_keys=["another-16-byte-key"])
    assert accepted.accepted_signing_keys == ("another-16-byte-key",)  # a tuple: hashable, frozen
    assert Codec.for_config(accepted).signed
