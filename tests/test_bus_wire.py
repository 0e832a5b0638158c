"""The bus wire format (``bus._wire``): sans-IO, so no Redis here.

Round trips of every event the encoder can produce, a golden corpus of the exact bytes the
publishing Lua scripts build, forward compatibility (unknown fields, newer versions and types)
and the promise that no input whatsoever makes ``decode`` raise anything but ``WireError``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import FlushEvent, InvalidateEvent, UnknownEvent, WireError, decode, encode
from bus._wire import MAX_EVENT_BYTES, VERSION

# -- strategies ------------------------------------------------------------------------------

# Text orjson can encode (no lone surrogates), with the JSON-special characters weighted in.
_SPECIAL = st.sampled_from(['"', "\\", "/", "\n", "\r", "\t", "\x00", "\x1f", "\u2028", "{", "}"])
_TEXT = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), _SPECIAL), max_size=40
)
_U64 = st.integers(min_value=0, max_value=2**64 - 1)
_TIME = st.integers(min_value=0, max_value=2**53)  # microseconds of Redis time, as Lua writes them

_ENTITY = st.tuples(_TEXT.filter(bool), _TEXT, _U64)

INVALIDATES = st.builds(
    InvalidateEvent,
    namespace=_TEXT,
    seq=_U64,
    sent_at=_TIME,
    entities=st.lists(_ENTITY, max_size=20).map(tuple),
)
FLUSHES = st.builds(FlushEvent, namespace=_TEXT, seq=_U64, sent_at=_TIME, watermark=_U64)
EVENTS = st.one_of(INVALIDATES, FLUSHES)

# Any JSON value orjson can both parse and produce.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_TEXT, children, max_size=5)
    ),
    max_leaves=20,
)

KNOWN_FIELDS = {"v", "t", "ns", "s", "ts", "e", "w"}


def _body(event: InvalidateEvent | FlushEvent) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(encode(event))
    return body


def _decode_or_wire_error(data: bytes | str) -> None:
    """Decode ``data``; the only acceptable exception is WireError (UnknownEvent included)."""
    try:
        event = decode(data)
    except WireError:
        return
    assert isinstance(event, (InvalidateEvent, FlushEvent))


# -- round trips -----------------------------------------------------------------------------


@given(EVENTS)
def test_encode_decode_round_trip(event: InvalidateEvent | FlushEvent) -> None:
    data = encode(event)
    assert isinstance(data, bytes)
    decoded = decode(data)
    assert decoded == event
    assert type(decoded) is type(event)
    # str input (e.g. a client with decode_responses=True) decodes the same.
    assert decode(data.decode()) == event


@given(INVALIDATES)
def test_invalidate_wire_shape(event: InvalidateEvent) -> None:
    """The documented v1 shape: short keys, entities as [key_type, id, watermark] lists."""
    body = _body(event)
    assert body == {
        "v": VERSION,
        "t": "inv",
        "ns": event.namespace,
        "s": event.seq,
        "ts": event.sent_at,
        "e": [list(entity) for entity in event.entities],
    }


@given(FLUSHES)
def test_flush_wire_shape(event: FlushEvent) -> None:
    assert _body(event) == {
        "v": VERSION,
        "t": "flush",
        "ns": event.namespace,
        "s": event.seq,
        "ts": event.sent_at,
        "w": event.watermark,
    }


def test_round_trip_of_a_large_batch_with_awkward_ids() -> None:
    ids = ['"quoted"', "back\\slash", "new\nline", "a/b", "ünïcødé", "🚀", "", "x" * 5000]
    ids += [str(i) for i in range(5000)]
    event = InvalidateEvent("gcache", 9, 1, tuple(("user_id", i, n) for n, i in enumerate(ids)))
    assert decode(encode(event)) == event


# -- golden corpus: literal bytes as the publishing Lua scripts write them ------------------

GOLDEN = [
    (
        b'{"v":1,"t":"inv","ns":"gcache","s":1,"ts":1,"e":[["user_id","42",5]]}',
        InvalidateEvent("gcache", 1, 1, (("user_id", "42", 5),)),
    ),
    (
        b'{"v":1,"t":"inv","ns":"gcache","s":42,"ts":1732000000123456,'
        b'"e":[["user_id","12345",1732000005123456],["org_id","7",1732000000123456]]}',
        InvalidateEvent(
            "gcache",
            42,
            1732000000123456,
            (("user_id", "12345", 1732000005123456), ("org_id", "7", 1732000000123456)),
        ),
    ),
    (
        b'{"v":1,"t":"flush","ns":"gcache","s":43,"ts":1732000000200000,"w":1732000000200000}',
        FlushEvent("gcache", 43, 1732000000200000, 1732000000200000),
    ),
    # Lua cjson escapes "/" as "\/" and control characters as \u00XX; UTF-8 stays raw.
    (
        b'{"v":1,"t":"inv","ns":"my\\/ns","s":3,"ts":10,'
        b'"e":[["path","a\\/b\\\\c\\"d\\n\\u0000",11],["name","\xc3\xa9\xf0\x9f\x9a\x80",12]]}',
        InvalidateEvent("my/ns", 3, 10, (("path", 'a/b\\c"d\n\x00', 11), ("name", "é🚀", 12))),
    ),
    # An empty batch is a valid (if useless) event.
    (b'{"v":1,"t":"inv","ns":"gcache","s":5,"ts":6,"e":[]}', InvalidateEvent("gcache", 5, 6, ())),
    # Key order and whitespace do not matter.
    (
        b' { "w" : 9 , "ts" : 8 , "s" : 7 , "ns" : "n" , "t" : "flush" , "v" : 1 } \n',
        FlushEvent("n", 7, 8, 9),
    ),
]


@pytest.mark.parametrize(("data", "expected"), GOLDEN)
def test_golden_corpus(data: bytes, expected: InvalidateEvent | FlushEvent) -> None:
    assert decode(data) == expected
    assert decode(encode(expected)) == expected


def test_encoding_is_compact_and_stable() -> None:
    """What another language must produce by hand: compact JSON, these keys, this order."""
    event = InvalidateEvent("gcache", 1, 2, (("user_id", "42", 3),))
    assert encode(event) == b'{"v":1,"ns":"gcache","s":1,"ts":2,"t":"inv","e":[["user_id","42",3]]}'
    assert encode(FlushEvent("gcache", 4, 5, 6)) == (
        b'{"v":1,"ns":"gcache","s":4,"ts":5,"t":"flush","w":6}'
    )


# -- forward compatibility -------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS, st.dictionaries(_TEXT.filter(lambda k: k not in KNOWN_FIELDS), JSON_VALUES))
def test_unknown_fields_are_ignored(event: InvalidateEvent | FlushEvent, extra: dict) -> None:
    body = {**extra, **_body(event)}
    assert decode(orjson.dumps(body)) == event


@given(
    EVENTS,
    st.integers(min_value=VERSION + 1, max_value=2**63 - 1),
    st.one_of(st.sampled_from(["inv", "flush", "new-kind"]), JSON_VALUES),
)
def test_newer_version_is_unknown_event(
    event: InvalidateEvent | FlushEvent, version: int, kind: Any
) -> None:
    body = _body(event)
    body["v"] = version
    body["t"] = kind
    with pytest.raises(UnknownEvent):
        decode(orjson.dumps(body))


@pytest.mark.parametrize("kind", ["invalidate", "ping", "INV", ""])
def test_unknown_type_of_known_version_is_unknown_event(kind: str) -> None:
    data = orjson.dumps({"v": 1, "t": kind, "ns": "gcache", "s": 1, "ts": 1})
    with pytest.raises(UnknownEvent):
        decode(data)


def test_unknown_event_is_a_wire_error() -> None:
    """Subscribers catch WireError; an UnknownEvent must be caught by that too."""
    assert issubclass(UnknownEvent, WireError)
    assert issubclass(WireError, ValueError)


# -- junk ------------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(data: bytes) -> None:
    _decode_or_wire_error(data)


@given(st.text(max_size=100))
def test_random_text_raises_only_wire_error(data: str) -> None:
    """Lone surrogates included: str input must not leak a UnicodeError or the like."""
    _decode_or_wire_error(data)


@given(JSON_VALUES)
def test_random_json_values_raise_only_wire_error(value: Any) -> None:
    _decode_or_wire_error(orjson.dumps(value))


@given(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))
def test_json_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(WireError):
        decode(orjson.dumps(value))


@given(EVENTS, st.data())
def test_truncated_events_are_refused(event: InvalidateEvent | FlushEvent, data: Any) -> None:
    encoded = encode(event)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(WireError):
        decode(encoded[:cut])


def test_every_prefix_of_a_golden_event_is_refused() -> None:
    for golden, _ in GOLDEN[:4]:
        for cut in range(len(golden.rstrip())):
            with pytest.raises(WireError):
                decode(golden[:cut])


# Values that are never valid for each field (bools included where ints are expected).
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_NOT_TEXT = st.one_of(
    st.none(), st.booleans(), _INT64, st.floats(allow_nan=False), st.lists(JSON_SCALARS)
)
_NOT_TIME = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=-1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
    st.lists(JSON_SCALARS, max_size=3),
    st.dictionaries(_TEXT, JSON_SCALARS, max_size=3),
)
_NOT_LIST = st.one_of(
    st.none(), st.booleans(), _INT64, _TEXT, st.dictionaries(_TEXT, st.none(), max_size=3)
)


@given(FLUSHES, st.sampled_from(["s", "ts", "w"]), _NOT_TIME)
def test_flush_with_bad_number_is_refused(event: FlushEvent, field: str, value: Any) -> None:
    body = _body(event)
    body[field] = value
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@given(EVENTS, _NOT_TEXT)
def test_bad_namespace_is_refused(event: InvalidateEvent | FlushEvent, value: Any) -> None:
    body = _body(event)
    body["ns"] = value
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@given(EVENTS, st.sampled_from(["ns", "s", "ts"]))
def test_missing_field_is_refused(event: InvalidateEvent | FlushEvent, field: str) -> None:
    body = _body(event)
    del body[field]
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@pytest.mark.parametrize("field", ["e", "w"])
def test_missing_payload_field_is_refused(field: str) -> None:
    event = InvalidateEvent("g", 1, 1, ()) if field == "e" else FlushEvent("g", 1, 1, 1)
    body = _body(event)
    del body[field]
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@given(INVALIDATES, _NOT_TIME)
def test_invalidate_with_bad_number_is_refused(event: InvalidateEvent, value: Any) -> None:
    body = _body(event)
    body["s"] = value
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@given(INVALIDATES, _NOT_LIST)
def test_entities_not_a_list_is_refused(event: InvalidateEvent, value: Any) -> None:
    body = _body(event)
    body["e"] = value
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


_BAD_ENTITIES = st.one_of(
    # wrong arity
    st.lists(JSON_SCALARS, max_size=6).filter(lambda x: len(x) != 3),
    # not a list at all
    JSON_SCALARS,
    st.dictionaries(_TEXT, JSON_SCALARS, max_size=3),
    # right arity, one bad member
    st.tuples(_NOT_TEXT, _TEXT, _U64).map(list),
    st.tuples(_TEXT, _NOT_TEXT, _U64).map(list),
    st.tuples(_TEXT, _TEXT, _NOT_TIME).map(list),
)


@given(INVALIDATES, _BAD_ENTITIES, st.data())
def test_bad_entity_is_refused(event: InvalidateEvent, bad: Any, data: Any) -> None:
    body = _body(event)
    entities = body["e"]
    entities.insert(data.draw(st.integers(min_value=0, max_value=len(entities))), bad)
    with pytest.raises(WireError):
        decode(orjson.dumps(body))


@pytest.mark.parametrize(
    "data",
    [
        b'{"v":1,"t":"flush","ns":"g","s":-1,"ts":1,"w":1}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":-5,"w":1}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":-1}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u","1",-1]]}',
        b'{"v":1,"t":"flush","ns":"g","s":true,"ts":1,"w":1}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":false,"w":1}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":true}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u","1",true]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u",1,1]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[[1,"1",1]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u","1",1.5]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u","1"]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[["u","1",1,1]]}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":{"u":"1"}}',
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":"u=1"}',
        b'{"v":1,"t":"inv","ns":null,"s":1,"ts":1,"e":[]}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":18446744073709551616}',  # > u64
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":1e3}',
        b'{"v":0,"t":"flush","ns":"g","s":1,"ts":1,"w":1}',
        b'{"v":-1,"t":"flush","ns":"g","s":1,"ts":1,"w":1}',
        b'{"v":"1","t":"flush","ns":"g","s":1,"ts":1,"w":1}',
        b'{"t":"flush","ns":"g","s":1,"ts":1,"w":1}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":NaN}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":1',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":1}}',
        b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":1} x',
        b"\xef\xbb\xbf{}",
        b'{"v":1,"t":"flush","ns":"\xff","s":1,"ts":1,"w":1}',
        b"[" * 5000 + b"]" * 5000,
        b'{"v":1,"t":"inv","ns":"g","s":1,"ts":1,"e":[' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b"",
        b"   ",
        b"null",
        b"[]",
        b'"event"',
        b"42",
    ],
)
def test_malformed_corpus_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


@pytest.mark.parametrize("version", [b"true", b"1.0"])
def test_version_must_be_the_integer_one(version: bytes) -> None:
    data = b'{"v":' + version + b',"t":"flush","ns":"g","s":1,"ts":1,"w":1}'
    with pytest.raises(WireError):
        decode(data)


# -- size limit ------------------------------------------------------------------------------


def _padded_flush(size: int) -> bytes:
    """A valid flush event of exactly ``size`` bytes (an unknown field pads it)."""
    head = b'{"v":1,"t":"flush","ns":"g","s":1,"ts":1,"w":1,"pad":"'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_payload_at_the_limit_is_accepted() -> None:
    data = _padded_flush(MAX_EVENT_BYTES)
    assert len(data) == MAX_EVENT_BYTES
    assert decode(data) == FlushEvent("g", 1, 1, 1)


def test_oversized_payload_is_refused() -> None:
    data = _padded_flush(MAX_EVENT_BYTES + 1)
    with pytest.raises(WireError, match="exceeds"):
        decode(data)


def test_oversized_junk_is_refused_before_parsing() -> None:
    with pytest.raises(WireError, match="exceeds"):
        decode(b"\xff" * (MAX_EVENT_BYTES + 10))


# -- the event classes themselves -----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: FlushEvent("g", -1, 1, 1),
        lambda: FlushEvent("g", 1, 1, True),
        lambda: FlushEvent(None, 1, 1, 1),  # type: ignore[arg-type]
        lambda: InvalidateEvent("g", 1, 1, (("u", "1"),)),  # type: ignore[arg-type]
        lambda: InvalidateEvent("g", 1, 1, (("u", 1, 1),)),  # type: ignore[arg-type]
        lambda: InvalidateEvent("g", 1, 1, (["u", "1", 1],)),  # type: ignore[arg-type]
        lambda: InvalidateEvent("g", 1.0, 1, ()),  # type: ignore[arg-type]
    ],
)
def test_invalid_events_cannot_be_built(make: Any) -> None:
    with pytest.raises(WireError):
        make()


def test_events_are_frozen_and_hashable() -> None:
    event = InvalidateEvent("g", 1, 2, (("u", "1", 3),))
    with pytest.raises(AttributeError):
        event.seq = 5  # type: ignore[misc]
    assert hash(event) == hash(decode(encode(event)))


@given(EVENTS)
def test_equal_events_encode_identically(event: InvalidateEvent | FlushEvent) -> None:
    assert encode(decode(encode(event))) == encode(event)
