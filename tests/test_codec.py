"""The stored value layout: round trips, and junk is refused rather than misread."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gcache._codec import HEADER_LEN, DecodeError, computed_at_of, decode, encode, serialize

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(values, st.integers(0, 10**16 - 1))
def test_round_trip(value: object, computed_at: int) -> None:
    raw = encode(serialize(value), computed_at)
    assert decode(raw) == (computed_at, value)
    assert computed_at_of(raw) == computed_at
    # The script reads the timestamp as GETRANGE 4..19: fixed offset, plain digits.
    assert raw[4:HEADER_LEN].decode().isdigit() and int(raw[4:HEADER_LEN]) == computed_at


@given(st.binary(max_size=64))
def test_junk_is_refused(junk: bytes) -> None:
    if junk[:4] == b"GC\x01p":
        junk = b"X" + junk
    with pytest.raises(DecodeError):
        decode(junk)


@given(st.integers(0, 200))
def test_truncated_values_are_refused(cut: int) -> None:
    raw = encode(serialize({"a": list(range(20))}), 1234)
    if cut >= len(raw):
        return
    with pytest.raises(DecodeError):
        decode(raw[:cut])


def test_a_corrupt_payload_is_a_decode_error_not_anything_else() -> None:
    raw = encode(b"\x80\x05not pickle", 1)
    with pytest.raises(DecodeError):
        decode(raw)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        serialize(lambda: None)
