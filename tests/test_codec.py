"""The stored value layout: round trips, and junk is refused rather than misread."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import math
import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gcache._codec import (
    HEADER_LEN,
    Codec,
    DecodeError,
    computed_at_of,
    decode,
    encode,
    serialize,
)
from gcache._serializers import JSON, PICKLE, Serializer
from gcache._signing import KEY_ID_LEN, SIGNATURE_LEN, Signer, key_id

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


# -- formats: serializer id, version, signing ----------------------------------------------

KEY = "gcache:v:GetUser:user_id=1"
K1 = b"k1-0123456789abcdef"
K2 = b"k2-0123456789abcdef"


class CountingLoads:
    """A deserializer that counts its calls: 'never deserialized' is then an assertion."""

    def __init__(self, loads: Callable[[bytes], Any]) -> None:
        self.loads = loads
        self.calls = 0

    def __call__(self, data: bytes) -> Any:
        self.calls += 1
        return self.loads(data)


def spied(serializer: Serializer, *keys: bytes) -> tuple[Codec, CountingLoads]:
    loads = CountingLoads(serializer.loads)
    spy = Serializer(serializer.name, serializer.id, serializer.dumps, loads)
    return Codec(spy, Signer(keys) if keys else None), loads


def codec(serializer: Serializer = PICKLE, *keys: bytes) -> Codec:
    return Codec(serializer, Signer(keys) if keys else None)


def stored(c: Codec, value: object, computed_at: int = 1234, key: str = KEY) -> bytes:
    return c.encode(c.serialize(value), computed_at, key)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children) | st.dictionaries(st.text(max_size=5), children),
    max_leaves=20,
)


@given(json_values, st.integers(0, 10**16 - 1), st.booleans())
def test_json_round_trip(value: object, computed_at: int, signed: bool) -> None:
    c = codec(JSON, *((K1,) if signed else ()))
    raw = stored(c, value, computed_at)
    assert raw[:4] == (b"GC\x02j" if signed else b"GC\x01j")
    assert c.decode(raw, KEY) == (computed_at, value)
    assert computed_at_of(raw) == computed_at


@given(values, st.integers(0, 10**16 - 1))
def test_signed_round_trip_keeps_the_timestamp_where_the_script_reads_it(
    value: object, computed_at: int
) -> None:
    c = codec(PICKLE, K1)
    raw = stored(c, value, computed_at)
    assert raw[:4] == b"GC\x02p"
    assert c.decode(raw, KEY) == (computed_at, value)
    assert raw[4:HEADER_LEN].decode().isdigit() and int(raw[4:HEADER_LEN]) == computed_at
    assert len(raw) == HEADER_LEN + SIGNATURE_LEN + len(PICKLE.dumps(value))


def test_unsigned_pickle_layout_is_unchanged() -> None:
    """Values written before formats existed are still read: a library upgrade is not a flush."""
    assert encode(b"payload", 42) == b"GC\x01p0000000000000042payload"
    assert codec().decode(b"GC\x01p0000000000000042" + pickle.dumps("v"), KEY) == (42, "v")


READERS = {
    "pickle": (PICKLE,),
    "json": (JSON,),
    "pickle signed": (PICKLE, K1),
    "json signed": (JSON, K1),
}


def _reason(writer: tuple[Any, ...], reader: tuple[Any, ...]) -> str:
    if len(reader) > 1 and len(writer) == 1:
        return "unsigned"
    return "format"


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("writer", sorted(READERS))
def test_a_reader_reads_only_its_own_format_and_never_deserializes_another(
    writer: str, reader: str
) -> None:
    raw = stored(codec(*READERS[writer]), {"a": [1, 2]})
    c, loads = spied(*READERS[reader])
    if writer == reader:
        assert c.decode(raw, KEY) == (1234, {"a": [1, 2]})
        assert loads.calls == 1
        return
    with pytest.raises(DecodeError) as caught:
        c.decode(raw, KEY)
    assert caught.value.reason == _reason(READERS[writer], READERS[reader])
    assert loads.calls == 0


@pytest.mark.parametrize("header", [b"GC\x03p", b"GC\x01x", b"GC\x00j", b"GC\x02?"])
def test_an_unknown_version_or_serializer_is_a_format_miss(header: bytes) -> None:
    for reader in READERS.values():
        c, loads = spied(*reader)
        with pytest.raises(DecodeError) as caught:
            c.decode(header + b"0" * 16 + pickle.dumps(1), KEY)
        assert caught.value.reason == "format"
        assert loads.calls == 0


def test_a_signed_value_is_bound_to_its_redis_key() -> None:
    raw = stored(codec(PICKLE, K1), "v", key="gcache:v:a")
    c, loads = spied(PICKLE, K1)
    for other in ("gcache:v:b", "gcache:v:a ", "", "gcache:v:"):
        with pytest.raises(DecodeError) as caught:
            c.decode(raw, other)
        assert caught.value.reason == "signature"
    assert loads.calls == 0
    assert c.decode(raw, "gcache:v:a") == (1234, "v")


def test_key_rotation() -> None:
    """The first key signs, every listed key verifies, a key dropped from the list does not."""
    old = stored(codec(PICKLE, K1), "old")
    new = stored(codec(PICKLE, K2, K1), "new")
    assert new[HEADER_LEN : HEADER_LEN + KEY_ID_LEN] == key_id(K2)
    assert codec(PICKLE, K2, K1).decode(old, KEY) == (1234, "old")
    assert codec(PICKLE, K1, K2).decode(new, KEY) == (1234, "new")  # step 1: K2 accepted first
    c, loads = spied(PICKLE, K2)
    with pytest.raises(DecodeError, match="not accepted") as caught:
        c.decode(old, KEY)
    assert caught.value.reason == "signature"
    assert loads.calls == 0


def test_a_forged_key_id_does_not_help() -> None:
    """Naming an accepted key's id is not enough: the tag is checked under that key."""
    raw = bytearray(stored(codec(PICKLE, K2), "v"))
    raw[HEADER_LEN : HEADER_LEN + KEY_ID_LEN] = key_id(K1)
    c, loads = spied(PICKLE, K1)
    with pytest.raises(DecodeError, match="does not match"):
        c.decode(bytes(raw), KEY)
    assert loads.calls == 0


@given(st.data())
def test_every_single_byte_change_to_a_signed_value_is_refused_before_deserializing(
    data: st.DataObject,
) -> None:
    raw = bytearray(stored(codec(PICKLE, K1), {"user": "1", "n": list(range(5))}))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    c, loads = spied(PICKLE, K1)
    with pytest.raises(DecodeError) as caught:
        c.decode(bytes(raw), KEY)
    assert caught.value.reason != "decode" or at < 2  # only a broken magic is "not ours"
    assert loads.calls == 0


@given(st.integers(0, 200))
def test_truncated_signed_values_are_refused_before_deserializing(cut: int) -> None:
    raw = stored(codec(JSON, K1), {"a": list(range(20))})
    if cut >= len(raw):
        return
    c, loads = spied(JSON, K1)
    with pytest.raises(DecodeError):
        c.decode(raw[:cut], KEY)
    assert loads.calls == 0


@given(
    st.sampled_from([b"", b"GC", b"GC\x02p", b"GC\x01p", b"GC\x02p0000000000001234"]), st.binary()
)
def test_junk_never_reaches_the_deserializer_in_signed_mode(prefix: bytes, junk: bytes) -> None:
    c, loads = spied(PICKLE, K1)
    with pytest.raises(DecodeError):
        c.decode(prefix + junk, KEY)
    assert loads.calls == 0


@dataclasses.dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 1, 1),
        _Point(1),
        {1, 2},
        {1: "non-str key"},
        object(),
        2**64,
        b"bytes",
    ],
    ids=lambda v: type(v).__name__,
)
def test_json_refuses_what_it_cannot_give_back(value: object) -> None:
    with pytest.raises(TypeError):
        JSON.dumps(value)


def test_json_gives_tuples_back_as_lists() -> None:
    c = codec(JSON)
    assert c.decode(stored(c, {"t": (1, 2)}), KEY)[1] == {"t": [1, 2]}


# -- the pickle serializer's exact JSON ------------------------------------------------------


class _Colour(enum.IntEnum):
    RED = 1


class _Name(str, enum.Enum):
    ADA = "ada"


_SHARED = [1, 2]

# Each value JSON would give back changed (a type, a float's bits, a subclass, shared objects):
# the pickle serializer must pickle it, not store its JSON.
CHANGED_BY_JSON = {
    "tuple inside": {"point": (1, 2)},
    "int enum": {"colour": _Colour.RED},
    "str enum": [_Name.ADA],
    "counter": collections.Counter(a=1),
    "ordered dict": collections.OrderedDict(a=1),
    "dict subclass inside": [collections.defaultdict(int, a=1)],
    "nan": {"x": math.nan},
    "infinity": [math.inf],
    "big int": [2**64],
    "int keys": {1: "one"},
    "bytes inside": {"b": b"\x00"},
    "set inside": [{1, 2}],
    "datetime inside": {"at": datetime.datetime(2024, 1, 1)},
    "dataclass inside": [_Point(1)],
    "one list twice": {"a": _SHARED, "b": _SHARED},
    "str subclass key": {_Name.ADA: 1},
}


@pytest.mark.parametrize("value", CHANGED_BY_JSON.values(), ids=CHANGED_BY_JSON.keys())
def test_pickle_serializer_pickles_what_json_would_change(value: object) -> None:
    payload = PICKLE.dumps(value)
    assert payload[:1] == b"\x80"  # a pickle
    back = codec().decode(stored(codec(), value), KEY)[1]
    assert pickle.dumps(back) == pickle.dumps(value)  # same types, bits and sharing


def test_pickle_serializer_stores_a_plain_record_as_json_and_reads_it_back_identical() -> None:
    record = {
        "id": "user-42",
        "roles": ["admin", "editor"],
        "settings": {"theme": "dark", "beta": True, "quota": None},
        "score": -0.0,
        "created_at": 1_700_000_000,
    }
    payload = PICKLE.dumps(record)
    assert payload == orjson.dumps(record)  # stored as its JSON text
    back = PICKLE.loads(payload)
    assert pickle.dumps(back) == pickle.dumps(record)
    assert math.copysign(1.0, back["score"]) == -1.0  # -0.0 kept to the bit


def test_pickle_serializer_keeps_the_pickle_when_json_is_longer() -> None:
    # Pickle spells a repeated dict key once; JSON repeats it in every record.
    rows = [{"a_rather_long_column_name": i} for i in range(50)]
    assert len(orjson.dumps(rows)) > len(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    assert PICKLE.dumps(rows)[:1] == b"\x80"
    assert PICKLE.loads(PICKLE.dumps(rows)) == rows


anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=4)
    | st.sampled_from([_Colour.RED, _Name.ADA]),
    lambda children: (
        st.lists(children)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), children)
    ),
    max_leaves=12,
)


@given(anything)
def test_pickle_serializer_reads_back_exactly_what_unpickling_would(value: object) -> None:
    back = PICKLE.loads(PICKLE.dumps(value))
    assert pickle.dumps(back) == pickle.dumps(pickle.loads(pickle.dumps(value)))


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4), st.integers(0, 400))
def test_every_truncation_of_a_json_payload_is_refused(value: dict[str, Any], cut: int) -> None:
    raw = stored(codec(), value)
    assume(raw[HEADER_LEN : HEADER_LEN + 1] == b"{")  # stored as JSON
    if cut >= len(raw):
        return
    with pytest.raises(DecodeError):
        codec().decode(raw[:cut], KEY)
