"""Cache keys: two different calls never share a LOCAL or a REMOTE key; one call always maps to
the same key however its arguments are spelled."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import pickle
import re
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheKey, GCacheKeyConfig, KeyBuildError, RedisConfig
from gcache._keys import KeySpec, canonical, watermark_key
from tests.metric_values import metric
from tests.providers import BOTH, LOCAL_ONLY, constant

NAMESPACE = "gcache"
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def spec_for(
    func: Callable[..., Any], *, id_arg: Any = "uid", key_type: str = "user_id", **kwargs: Any
) -> KeySpec:
    return KeySpec(
        func,
        key_type=key_type,
        id_arg=id_arg,
        use_case=kwargs.pop("use_case", "UseCase"),
        arg_adapters=kwargs.pop("arg_adapters", None),
        ignore_args=kwargs.pop("ignore_args", None),
        tracked=kwargs.pop("tracked", False),
    )


def keys(spec: KeySpec, *args: Any, **kwargs: Any) -> tuple[tuple[Hashable, ...], str]:
    local = spec.local_key(args, kwargs)
    return local, spec.remote_key(NAMESPACE, local)


def identical(a: Any, b: Any) -> bool:
    """Same type and same value, recursively (so 1, True, 1.0 differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            identical(ka, kb) and identical(a[ka], b[kb])
            for ka, kb in zip(a, b, strict=True)  # insertion order: a conservative "same"
        )
    return repr(a) == repr(b)


def three(uid: Any, a: Any, b: Any = None) -> None: ...


THREE = spec_for(three)

# -- strategies ----------------------------------------------------------------------------

SPECIALS = ":=&{}#!%~ \t\n\r\x00/\\?'\"@+,;é漢😀\u200b\ufeff"
tricky_text = st.text(alphabet=st.sampled_from([*SPECIALS, "a", "b", "1"]), max_size=12)
long_text = st.text(alphabet=st.sampled_from(["a", ":", "%", "b"]), min_size=190, max_size=260)
look_alikes = st.sampled_from(
    [
        1, True, 1.0, "1", None, b"1", 0, False, 0.0, -0.0, "0", "", b"", "True", "None",
        "1.0", "b'1'", "!i1", "!b~1", "%21", "~", "#", "n", math.nan, math.inf, -1, "-1",
    ]
)  # fmt: skip
scalars = st.one_of(
    look_alikes,
    tricky_text,
    st.text(max_size=8),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
)
values = st.one_of(scalars, scalars, long_text)


# -- no collisions (property) --------------------------------------------------------------


def look_alikes_of(value: Any) -> list[Any]:
    """Values a naive key builder would spell like ``value``."""
    out: list[Any] = [str(value), repr(value), None, True, False, [value], (value,)]
    if isinstance(value, str):
        out += [value.encode("utf-8", "surrogatepass"), f"'{value}'"]
        with contextlib.suppress(ValueError):
            out.append(int(value))
        with contextlib.suppress(ValueError):
            out.append(float(value))
    if isinstance(value, (int, float)) and abs(value) < 1e300:
        out += [int(value), float(value), bool(value)]
    if isinstance(value, bytes):
        out += [value.decode("latin-1"), value.hex(), list(value)]
    return out


@PROPERTY
@given(data=st.data(), first=st.tuples(values, values, values))
def test_different_arguments_never_share_a_key(data: st.DataObject, first: tuple[Any, ...]) -> None:
    # The second call differs from the first in some positions, often by a look-alike value:
    # independent draws would almost never agree on the other positions.
    positions = data.draw(st.sets(st.sampled_from([0, 1, 2]), min_size=1), label="positions")
    second = list(first)
    for position in sorted(positions):
        second[position] = data.draw(
            st.one_of(st.sampled_from(look_alikes_of(first[position])), values),
            label=f"replacement {position}",
        )
    if identical(first, tuple(second)):
        return
    local_1, remote_1 = keys(THREE, *first)
    local_2, remote_2 = keys(THREE, *second)
    assert local_1 != local_2
    assert remote_1 != remote_2


SEPARATORS = ["", ":", "&", "=", "&b=", "&a=", "!", "~", "#", "{", "}", "%", "%3A", " ", "\x00"]


@PROPERTY
@given(
    uid=st.one_of(tricky_text, st.integers()),
    p=tricky_text,
    q=tricky_text,
    r=tricky_text,
    sep=st.sampled_from(SEPARATORS),
)
def test_moving_text_between_arguments_changes_the_key(
    uid: Any, p: str, q: str, r: str, sep: str
) -> None:
    """(p+sep+q, r) and (p, q+sep+r) join to the same text: a naive key would collide."""
    first = (uid, p + sep + q, r)
    second = (uid, p, q + sep + r)
    if first == second:
        return
    local_1, remote_1 = keys(THREE, *first)
    local_2, remote_2 = keys(THREE, *second)
    assert local_1 != local_2
    assert remote_1 != remote_2


@PROPERTY
@given(uid=tricky_text, p=tricky_text, q=tricky_text, sep=st.sampled_from(SEPARATORS))
def test_moving_text_between_id_and_argument_changes_the_key(
    uid: str, p: str, q: str, sep: str
) -> None:
    first = (uid + sep + p, q, None)
    second = (uid, p + sep + q, None)
    if first == second:
        return
    assert keys(THREE, *first) != keys(THREE, *second)
    assert keys(THREE, *first)[1] != keys(THREE, *second)[1]


@PROPERTY
@given(args=st.tuples(values, values, values))
def test_positional_and_keyword_spellings_share_one_key(args: tuple[Any, Any, Any]) -> None:
    uid, a, b = args
    expected = keys(THREE, uid, a, b)
    assert keys(THREE, uid, a, b=b) == expected
    assert keys(THREE, uid, b=b, a=a) == expected
    assert keys(THREE, uid=uid, a=a, b=b) == expected
    assert keys(THREE, b=b, uid=uid, a=a) == expected


@PROPERTY
@given(uid=values, a=values)
def test_defaults_are_applied(uid: Any, a: Any) -> None:
    assert keys(THREE, uid, a) == keys(THREE, uid, a, None)
    assert keys(THREE, uid, a=a) == keys(THREE, uid, a, b=None)


@PROPERTY
@given(uid=values, a=values, b=values)
def test_remote_key_has_exactly_one_hash_tag_and_it_is_the_watermarks(
    uid: Any, a: Any, b: Any
) -> None:
    _, remote = keys(THREE, uid, a, b)
    assert remote.count("{") == 1
    assert remote.count("}") == 1
    tag = remote[remote.index("{") : remote.index("}") + 1]
    watermark = watermark_key(NAMESPACE, "user_id", str(uid))
    assert watermark.count("{") == 1
    assert watermark[watermark.index("{") : watermark.index("}") + 1] == tag
    assert remote.startswith(f"{NAMESPACE}:v:{tag}:")


# -- no collisions (examples) --------------------------------------------------------------

LOOK_ALIKES = [1, True, 1.0, "1", None, b"1", "None", "True", "b'1'", "1.0"]


@pytest.mark.parametrize("position", ["id", "arg"])
def test_look_alike_values_are_all_distinct(position: str) -> None:
    if position == "id":
        made = [keys(THREE, value, "x") for value in LOOK_ALIKES]
    else:
        made = [keys(THREE, "u", value) for value in LOOK_ALIKES]
    assert len({local for local, _ in made}) == len(LOOK_ALIKES)
    assert len({remote for _, remote in made}) == len(LOOK_ALIKES)


def test_separator_characters_do_not_shift_arguments() -> None:
    spec = spec_for(lambda uid, x, y: None)
    calls = [
        ("u", "a:b", "c"),
        ("u", "a", "b:c"),
        ("u", "a&y=b", "c"),
        ("u", "a", "b&y=c"),
        ("u", "a=b", "c"),
        ("u:a", "b", "c"),
        ("u", "", "a:b:c"),
        ("u", "a:b:c", ""),
        ("{u}", "a", "b"),
        ("u}:{x", "a", "b"),
    ]
    made = [keys(spec, *call) for call in calls]
    assert len({local for local, _ in made}) == len(calls)
    assert len({remote for _, remote in made}) == len(calls)


def test_flat_containers_of_different_types_are_distinct() -> None:
    containers: list[Any] = [
        [1],
        [True],
        [1.0],
        ["1"],
        [None],
        (1,),
        ("1",),
        {"a": 1},
        {"a": "1"},
        {"a": True},
        [],
        (),
        {},
        "[]",
        '["1"]',
    ]
    made = [keys(THREE, "u", c) for c in containers]
    assert len({local for local, _ in made}) == len(containers)
    assert len({remote for _, remote in made}) == len(containers)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({1: "a"}, {"1": "a"}),
        ({True: 1}, {"true": 1}),
        ([("b",)], [["b"]]),
        ([math.nan], [None]),
        ({"k": math.inf}, {"k": None}),
        # The empty string once spelled as nothing: [""] and [] were both "!list()" (found by
        # the nightly fuzz profile).
        ([], [""]),
        ([[], [""]], [[""], []]),
        (("",), ("", "")),
        ({}, {"": ""}),
    ],
    ids=[
        "int-vs-str-dict-key",
        "bool-vs-str-dict-key",
        "tuple-vs-list-inside",
        "nan",
        "inf",
        "empty-vs-empty-string",
        "empty-string-moves-between-lists",
        "one-vs-two-empty-strings",
        "empty-dict-vs-empty-strings",
    ],
)
def test_different_containers_do_not_collide(first: Any, second: Any) -> None:
    (local_1, remote_1), (local_2, remote_2) = keys(THREE, "u", first), keys(THREE, "u", second)
    assert local_1 != local_2
    assert remote_1 != remote_2  # the REMOTE spelling too, not only the LOCAL tuple


# -- hashing of long components ------------------------------------------------------------


def test_long_arguments_are_hashed_short_and_distinct() -> None:
    long_1 = "a" * 500
    long_2 = "a" * 499 + "b"
    _, remote_1 = keys(THREE, "u", long_1)
    _, remote_2 = keys(THREE, "u", long_2)
    for remote in (remote_1, remote_2):
        last = remote.rsplit(":", 1)[1]
        assert re.fullmatch(r"#[0-9a-f]{32}", last), remote
        assert len(remote) < 120
    assert remote_1 != remote_2


def test_long_ids_are_hashed_inside_the_tag() -> None:
    _, remote_1 = keys(THREE, "i" * 400, "x")
    _, remote_2 = keys(THREE, "i" * 399 + "j", "x")
    for remote in (remote_1, remote_2):
        tag = remote[remote.index("{") : remote.index("}") + 1]
        assert re.fullmatch(r"\{user_id=#[0-9a-f]{32}\}", tag), remote
        assert len(remote) < 150
    assert remote_1 != remote_2


def test_short_argument_is_not_confused_with_a_hash() -> None:
    long_value = "z" * 500
    _, hashed = keys(THREE, "u", long_value)
    digest = hashed.rsplit(":", 1)[1]
    # A short argument spelling the same text as the hash is percent-encoded, not equal.
    _, short = keys(THREE, "u", digest)
    assert short != hashed


# -- layout --------------------------------------------------------------------------------


def test_remote_key_layout_and_hash_tag() -> None:
    spec = spec_for(lambda uid, page: None, use_case="Get User")
    local, remote = keys(spec, "42", 3)
    assert local[:3] == ("Get User", "42", None)
    assert remote.startswith("gcache:v:{user_id=42}:Get%20User:")
    assert "{user_id=42}" in remote
    assert watermark_key("gcache", "user_id", "42") == "gcache:w:{user_id=42}"


def test_non_string_id_names_the_same_entity_but_a_different_key() -> None:
    local_int, remote_int = keys(THREE, 42, "x")
    local_str, remote_str = keys(THREE, "42", "x")
    assert local_int[1] == local_str[1] == "42"  # entity ("user_id", "42") for invalidation
    assert local_int != local_str
    assert remote_int != remote_str
    assert "{user_id=42}" in remote_int and "{user_id=42}" in remote_str


def test_var_keyword_order_does_not_matter() -> None:
    spec = spec_for(lambda uid, **options: None)
    assert keys(spec, "u", a=1, b=2) == keys(spec, "u", b=2, a=1)
    assert keys(spec, "u", a=1, b=2) != keys(spec, "u", a=2, b=1)


def test_var_positional_is_part_of_the_key() -> None:
    spec = spec_for(lambda uid, *rest: None)
    assert keys(spec, "u", 1, 2) == keys(spec, "u", 1, 2)
    assert keys(spec, "u", 1, 2) != keys(spec, "u", 2, 1)
    assert keys(spec, "u", 1, 2) != keys(spec, "u", (1, 2))


def test_keyword_only_parameters() -> None:
    spec = spec_for(lambda uid, *, page=1, size=10: None)
    assert keys(spec, "u") == keys(spec, "u", page=1, size=10) == keys(spec, uid="u", size=10)
    assert keys(spec, "u", page=2) != keys(spec, "u")


# -- unkeyable arguments -------------------------------------------------------------------


class Opaque:
    """Default object repr: it embeds a memory address."""


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Named({self.name!r})"


def test_default_object_repr_raises_key_build_error() -> None:
    with pytest.raises(KeyBuildError):
        canonical(Opaque())
    with pytest.raises(KeyBuildError):
        canonical(object())
    with pytest.raises(KeyBuildError):
        THREE.local_key(("u", Opaque()), {})
    with pytest.raises(KeyBuildError):
        THREE.local_key((Opaque(), "x"), {})  # as the id, too


def test_custom_repr_is_keyable() -> None:
    assert keys(THREE, "u", Named("a")) == keys(THREE, "u", Named("a"))
    assert keys(THREE, "u", Named("a")) != keys(THREE, "u", Named("b"))
    assert keys(THREE, "u", Named("a")) != keys(THREE, "u", "Named('a')")


def test_unkeyable_argument_through_the_api_runs_uncached(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    calls: list[str] = []

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Unkeyable")
    def get(uid: str, thing: Any) -> str:
        calls.append(uid)
        return "v:" + uid

    @cache.cached(key_type="user_id", id_arg="uid", use_case="UnkeyableAsync")
    async def aget(uid: str, thing: Any) -> str:
        calls.append(uid)
        return "a:" + uid

    with cache.enable():
        assert get("u", Opaque()) == "v:u"
        assert get("u", Opaque()) == "v:u"
        assert asyncio.run(aget("w", Opaque())) == "a:w"
    assert calls == ["u", "u", "w"]
    for use_case, count in (("Unkeyable", 2), ("UnkeyableAsync", 1)):
        assert (
            metric(
                registry,
                "gcache_disabled_counter_total",
                use_case=use_case,
                reason="unkeyable_argument",
                layer="all",
            )
            == count
        )


def test_adapter_raising_type_error_is_counted(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))

    @cache.cached(
        key_type="user_id",
        id_arg="uid",
        use_case="BadAdapter",
        arg_adapters={"page": lambda p: p + 1},  # TypeError for a str page
    )
    def get(uid: str, page: Any) -> str:
        return f"{uid}:{page}"

    with cache.enable():
        assert get("u", "2") == "u:2"
    skipped = metric(registry, "gcache_disabled_counter_total", use_case="BadAdapter")
    errors = metric(registry, "gcache_error_counter_total", use_case="BadAdapter")
    assert skipped + errors == 1


# -- adapters, extractors, ignored arguments -----------------------------------------------


class User:
    def __init__(self, id: int, name: str) -> None:
        self.id = id
        self.name = name


class Filters:
    def __init__(self, *terms: str) -> None:
        self.terms = terms

    def to_cache_key(self) -> str:
        return ",".join(sorted(self.terms))


def test_id_extractor_and_adapters_are_applied() -> None:
    def search(user: User, filters: Filters, page: int, session: object) -> None: ...

    spec = spec_for(
        search,
        id_arg=("user", lambda u: u.id),
        arg_adapters={"filters": lambda f: f.to_cache_key(), "page": str},
        ignore_args=["session"],
    )
    base = keys(spec, User(7, "ann"), Filters("b", "a"), 1, Opaque())
    # Another User object with the same id, equivalent filters, another session: same key.
    assert keys(spec, User(7, "bob"), Filters("a", "b"), 1, Opaque()) == base
    assert keys(spec, User(8, "ann"), Filters("a", "b"), 1, Opaque()) != base
    assert keys(spec, User(7, "ann"), Filters("a", "c"), 1, Opaque()) != base
    # The adapter's output is what is keyed: page 1 and page "1" both adapt to "1".
    assert keys(spec, User(7, "ann"), Filters("a", "b"), "1", Opaque()) == base
    local, remote = base
    assert local[1] == "7"
    assert "{user_id=7}" in remote
    assert "session" not in remote
    assert spec.arg_names == ("filters", "page")


def test_ignored_arguments_are_excluded_through_the_api(make_cache: Callable[..., GCache]) -> None:
    seen: list[GCacheKey] = []

    async def provider(key: GCacheKey) -> GCacheKeyConfig:
        seen.append(key)
        return LOCAL_ONLY

    cache = make_cache(provider=provider)
    calls: list[int] = []

    @cache.cached(
        key_type="user_id",
        id_arg=("user", lambda u: u.id),
        arg_adapters={"filters": lambda f: f.to_cache_key()},
        ignore_args=["db_session", "logger"],
    )
    def search(user: User, filters: Filters, db_session: Any, logger: Any) -> list[str]:
        calls.append(user.id)
        return [f"{user.id}:{t}" for t in sorted(filters.terms)]

    with cache.enable():
        assert search(User(1, "a"), Filters("x"), Opaque(), Opaque()) == ["1:x"]
        assert search(User(1, "b"), Filters("x"), Opaque(), None) == ["1:x"]
        assert search(User(2, "a"), Filters("x"), Opaque(), None) == ["2:x"]
    assert calls == [1, 2]
    assert [name for name, _ in seen[0].args] == ["filters"]


@pytest.mark.parametrize("keyed", [False, True], ids=["id-only", "with-arguments"])
def test_the_providers_key_is_a_plain_gcache_key_to_every_use(keyed: bool) -> None:
    """gcache builds the provider's key from a class private to the function (its shared fields
    are class attributes); to the provider it must behave as ``GCacheKey(...)`` does."""

    def by_id(uid: str) -> None: ...

    def with_args(uid: str, page: int, mode: str = "a|b") -> None: ...

    spec = spec_for(with_args if keyed else by_id, tracked=True)
    call: tuple[Any, ...] = ("42", 3) if keyed else ("42",)
    key = spec.gcache_key(spec.local_key(call, {}))
    args = (("page", "!i3"), ("mode", "a%7Cb")) if keyed else ()
    plain = GCacheKey("user_id", "42", "UseCase", True, args)

    assert isinstance(key, GCacheKey)
    assert (key.key_type, key.id, key.use_case, key.invalidation_tracking) == (
        "user_id",
        "42",
        "UseCase",
        True,
    )
    assert key.args == args
    assert key == plain and hash(key) == hash(plain) and repr(key) == repr(plain)
    for copied in (copy.copy(key), copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert type(copied) is GCacheKey and copied == plain
    # The shared fields cannot be changed through one call's key (they are the function's).
    for field in ("key_type", "use_case", "invalidation_tracking"):
        with pytest.raises(AttributeError):
            setattr(key, field, "other")
    assert spec.gcache_key(spec.local_key(call, {})).key_type == "user_id"


# -- end to end ----------------------------------------------------------------------------


def test_separators_end_to_end_local(make_cache: Callable[..., GCache]) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))

    @cache.cached(key_type="user_id", id_arg="uid")
    def join(uid: str, x: str, y: str) -> str:
        return f"{x}|{y}"

    with cache.enable():
        assert join("u", "a:b", "c") == "a:b|c"
        assert join("u", "a", "b:c") == "a|b:c"
        assert join("u", "a:b", "c") == "a:b|c"
        assert join("u", "a", "b:c") == "a|b:c"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


def test_separators_end_to_end_through_redis(
    make_cache: Callable[..., GCache], redis_url: str, redis_client: redis.Redis
) -> None:
    patient = {
        "redis_config": RedisConfig(url=redis_url, socket_timeout=10, socket_connect_timeout=10),
        "remote_write_budget_sec": 30,
    }
    writer = make_cache(provider=constant(BOTH), **patient)
    reader = make_cache(provider=constant(BOTH), **patient)
    calls: list[tuple[str, str]] = []

    def make(cache: GCache, tag: str) -> Callable[..., str]:
        @cache.cached(key_type="user_id", id_arg="uid", use_case="Join")
        def join(uid: str, x: Any, y: Any) -> str:
            calls.append((x, y))
            return f"{tag}:{x!r}|{y!r}"

        return join  # type: ignore[no-any-return]

    write, read = make(writer, "w"), make(reader, "r")
    pairs: list[tuple[Any, Any]] = [
        ("a:b", "c"),
        ("a", "b:c"),
        ("a&y=b", "c"),
        (1, "1"),
        ("1", 1),
        (True, None),
        (1.0, b"1"),
    ]
    with writer.enable():
        written = [write("u", x, y) for x, y in pairs]
    assert len(redis_client.keys("gcache:v:*")) == len(pairs)
    with reader.enable():  # an empty LOCAL layer: every value comes from Redis
        assert [read("u", x, y) for x, y in pairs] == written
    assert calls == pairs


def _by_id(uid: Any, flag: bool = False) -> None:
    """A function keyed by its id alone (``flag`` is ignored)."""


_ID_ONLY = spec_for(_by_id, ignore_args=["flag"])


@PROPERTY
@given(
    st.one_of(st.text(), st.integers(), st.booleans(), st.floats(allow_nan=False)),
    st.sampled_from(["positional", "keyword", "with flag", "flag by keyword"]),
)
def test_the_id_only_shortcut_builds_the_general_key(uid: Any, shape: str) -> None:
    # A function keyed by its id alone gets a shortcut local_key (KeySpec._id_only_key); every
    # call must map to the key the general path (KeySpec._key) builds for it.
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    args, kwargs = {
        "positional": ((uid,), {}),
        "keyword": ((), {"uid": uid}),
        "with flag": ((uid, True), {}),
        "flag by keyword": ((uid,), {"flag": True}),
    }[shape]
    assert _ID_ONLY.local_key is not _ID_ONLY._key  # the shortcut is in use
    assert identical(_ID_ONLY.local_key(args, kwargs), _ID_ONLY._key(args, kwargs))
