"""Fuzzing (hypothesis): arbitrary argument values, arbitrary bytes under cache keys and arbitrary
config-provider outputs. The bus's share (arbitrary bytes and JSON on the stream and the channel)
is ``test_junk_is_counted_and_skipped`` in tests/test_bus_subscriber.py.

Each test runs a small budget in CI and :data:`tests.fuzzing.NIGHTLY_EXAMPLES` cases under
``HYPOTHESIS_PROFILE=nightly`` (see tests/fuzzing.py).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from gcache import CacheLayer, GCache, GCacheKey, GCacheKeyConfig, KeyBuildError
from gcache._codec import DecodeError, decode
from gcache._keys import KeySpec
from tests.fuzzing import CASES, fuzz_settings
from tests.providers import BOTH, REMOTE_ONLY, constant
from tests.remote_helpers import call_async, call_sync, disabled, value_keys

pytestmark = pytest.mark.fuzz

NAMESPACE = "gcache"


class Opaque:
    """No stable key form: its repr would embed a memory address."""


class Named:
    """Keyed by its repr."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Named({self.value!r})"


# -- arguments -----------------------------------------------------------------------------

SPECIALS = ":=&{}#!%~(),\\ \t\n\x00'\"é漢😀\u200b"
text = st.text(alphabet=st.sampled_from([*SPECIALS, "a", "1"]), max_size=6) | st.text(max_size=4)
look_alikes = st.sampled_from(
    [0, 1, -1, True, False, 0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, None, "", "0", "1",
     "True", "None", "nan", "!i1", "~", b"", b"1", "()", "!list()", "!n~"]
)  # fmt: skip
hashable_leaves = st.one_of(
    look_alikes,
    text,
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(),
    st.binary(max_size=4),
)
leaves = st.one_of(
    hashable_leaves,
    st.builds(Named, hashable_leaves),
    st.builds(Opaque).filter(lambda _: True),
)
hashables = st.recursive(hashable_leaves, lambda inner: st.tuples(inner, inner), max_leaves=3)
arguments = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children) | st.tuples(children, children),
        st.dictionaries(hashables, children, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.sets(hashable_leaves, max_size=2),
    ),
    max_leaves=8,
)


def same(a: Any, b: Any) -> bool:
    """The documented key identity: same types all the way down, floats by ``repr`` (so
    ``-0.0`` is not ``0.0`` and NaN is NaN), dicts and sets regardless of order."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return repr(a) == repr(b)
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if kind is dict:
        return len(a) == len(b) and all(
            any(same(ka, kb) and same(va, vb) for kb, vb in b.items()) for ka, va in a.items()
        )
    if kind is set or kind is frozenset:
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if kind is Named:
        return same(a.value, b.value)
    if kind is Opaque:
        return a is b
    return bool(a == b)


def unkeyable(value: Any) -> bool:
    if isinstance(value, Opaque):
        return True
    if isinstance(value, Named):
        return unkeyable(value.value)
    if isinstance(value, dict):
        return any(unkeyable(k) or unkeyable(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(unkeyable(item) for item in value)
    return False


def variant(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """``value`` itself, a look-alike of it, or a copy with one part changed: the near misses a
    key builder could confuse (independent draws would almost never come close)."""
    kind = type(value)
    choices: list[Any] = [value, data.draw(look_alikes), str(value), repr(value)]
    if kind is list:
        choices += [tuple(value), list(reversed(value))]
    if kind is tuple:
        choices += [list(value)]
    if kind is dict:
        choices += [dict(reversed(list(value.items()))), list(value.items())]
    if kind is float and math.isfinite(value):
        choices += [-value, int(value)]
    if kind is int and not isinstance(value, bool):
        choices += [float(value) if abs(value) < 2**53 else str(value), -value]
    if kind is bytes:
        choices += [value.decode("latin-1"), list(value)]
    if kind in (list, tuple) and value and depth < 3:
        at = data.draw(st.integers(0, len(value) - 1))
        changed = list(value)
        changed[at] = variant(data, changed[at], depth + 1)
        choices.append(kind(changed))
    if kind is dict and value and depth < 3:
        key = data.draw(st.sampled_from(list(value)))
        choices.append({**value, key: variant(data, value[key], depth + 1)})
    return data.draw(st.sampled_from(choices))


def three(uid: Any, a: Any, b: Any = None) -> None: ...


SPEC = KeySpec(
    three,
    key_type="user_id",
    id_arg="uid",
    use_case="Fuzz",
    arg_adapters=None,
    ignore_args=None,
    tracked=False,
)


def keys(call: tuple[Any, ...]) -> tuple[tuple[Hashable, ...], str]:
    local = SPEC.local_key(call, {})
    return local, SPEC.remote_key(NAMESPACE, local)


@fuzz_settings(ci_examples=300)
@given(data=st.data(), first=st.tuples(text, arguments, arguments))
def test_keys_never_collide_and_never_crash(data: st.DataObject, first: tuple[Any, ...]) -> None:
    CASES["keys"] += 1
    second = (first[0], *(variant(data, value) for value in first[1:]))
    results = []
    for call in (first, second):
        if unkeyable(call):
            with pytest.raises(KeyBuildError):
                keys(call)
            results.append(None)
        else:
            results.append(keys(call))
    if None in results:
        return
    (local_1, remote_1), (local_2, remote_2) = results  # type: ignore[misc]
    hash(local_1)
    assert isinstance(remote_1, str) and remote_1.startswith(f"{NAMESPACE}:v:{{user_id=")
    if same(first, second):
        assert (local_1, remote_1) == (local_2, remote_2)
        assert keys(first) == (local_1, remote_1)  # stable
    else:
        assert local_1 != local_2
        assert remote_1 != remote_2


# -- bytes under a cache key ---------------------------------------------------------------

HEADER = b"GC" + b"\x01\x01"  # see gcache._codec


def encoded_values() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, bytes behind a valid-looking header, and cut or patched real values."""
    real = b"GC\x01\x010000001700000000\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94."
    return st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=48).map(lambda tail: HEADER + tail),
        st.tuples(st.text("0123456789 -+x", max_size=16), st.binary(max_size=24)).map(
            lambda parts: HEADER + parts[0].encode() + parts[1]
        ),
        st.integers(0, len(real)).map(lambda n: real[:n]),
        st.tuples(st.integers(0, len(real) - 1), st.binary(min_size=1, max_size=3)).map(
            lambda patch: real[: patch[0]] + patch[1] + real[patch[0] + len(patch[1]) :]
        ),
    )


def served_alternatives(junk: bytes) -> list[Any]:
    """What the stored bytes legitimately decode to, if anything (the codec has no checksum: a
    patched pickle that still loads is a value)."""
    try:
        return [decode(junk)[1]]
    except DecodeError:
        return []


def test_arbitrary_bytes_under_a_cache_key_never_raise(
    redis_url: str, client: redis.Redis, make_cache: Callable[..., GCache]
) -> None:
    cache = make_cache(url=redis_url, provider=constant(REMOTE_ONLY))

    @cache.cached(key_type="user_id", id_arg="uid", use_case="FuzzBytes")
    def get_user(uid: str) -> dict[str, str]:
        return {"id": uid}

    @cache.cached(key_type="user_id", id_arg="uid", use_case="FuzzBytesAsync")
    async def aget_user(uid: str) -> dict[str, str]:
        return {"id": uid}

    call_sync(cache, get_user, "1")
    call_async(cache, aget_user, "1")
    stored = value_keys(client, NAMESPACE)
    assert len(stored) == 2, stored
    runner = asyncio.Runner()

    async def on_runner() -> dict[str, str]:
        with cache.enable():
            return await aget_user("1")

    @fuzz_settings(ci_examples=100)
    @given(junk=encoded_values(), key=st.sampled_from(stored))
    def check(junk: bytes, key: bytes) -> None:
        CASES["bytes_under_keys"] += 1
        client.set(key, junk)
        sync = b"FuzzBytes:" in key
        result = call_sync(cache, get_user, "1") if sync else runner.run(on_runner())
        assert result == {"id": "1"} or result in served_alternatives(junk)

    try:
        check()
    finally:
        runner.run(cache.aclose())
        runner.close()


# -- config-provider outputs ---------------------------------------------------------------

layer_maps = st.dictionaries(st.sampled_from(list(CacheLayer)), st.nothing(), max_size=0)
ttls = st.one_of(
    st.floats(min_value=0, max_value=1e308),
    st.integers(min_value=0, max_value=10**40),
    st.sampled_from([0, 1e-9, 0.0004, 0.001, 2**53, 1e20]),
)
ramps = st.one_of(st.floats(min_value=0, max_value=100), st.sampled_from([0, 1e-9, 99.999, 100]))
configs = st.builds(
    GCacheKeyConfig,
    ttl_sec=st.dictionaries(st.sampled_from(list(CacheLayer)), ttls, max_size=2),
    ramp=st.dictionaries(st.sampled_from(list(CacheLayer)), ramps, max_size=2),
)
wrong_types = st.one_of(
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["ttl_sec", "ramp", "local"]), st.integers(), max_size=2),
    st.sampled_from([CacheLayer.LOCAL, BOTH.ttl_sec, GCacheKeyConfig, object()]),
)
errors = st.sampled_from(
    [ValueError, TypeError, KeyError, RuntimeError, ZeroDivisionError, TimeoutError,
     AttributeError, RecursionError, OSError, AssertionError, NotImplementedError]
)  # fmt: skip
outcomes = st.one_of(
    st.tuples(st.just("return"), st.one_of(st.none(), configs, configs, wrong_types)),
    st.tuples(st.just("raise"), errors),
)


def test_arbitrary_config_provider_outputs_never_raise(
    redis_url: str, make_cache: Callable[..., GCache]
) -> None:
    behaviour: dict[str, Any] = {}

    def decide() -> Any:
        kind, what = behaviour["outcome"]
        if kind == "raise":
            raise what("provider failure")
        return what

    async def async_provider(key: GCacheKey) -> Any:
        return decide()

    def sync_provider(key: GCacheKey) -> Any:
        return decide()

    def provider(key: GCacheKey) -> Any:
        return async_provider(key) if behaviour["async"] else sync_provider(key)

    cache = make_cache(url=redis_url, provider=provider)
    registry = cache.config.metrics_registry

    @cache.cached(key_type="user_id", id_arg="uid", use_case="FuzzConfig")
    def get_user(uid: str, n: int) -> str:
        return f"user {uid} {n}"

    @cache.cached(key_type="user_id", id_arg="uid", use_case="FuzzConfigAsync")
    async def aget_user(uid: str, n: int) -> str:
        return f"user {uid} {n}"

    runner = asyncio.Runner()

    async def on_runner(uid: str, n: int) -> str:
        with cache.enable():
            return await aget_user(uid, n)

    @fuzz_settings(ci_examples=150)
    @given(
        outcome=outcomes,
        async_provider=st.booleans(),
        async_function=st.booleans(),
        uid=st.sampled_from(["1", "2"]),
        n=st.integers(0, 3),
    )
    def check(
        outcome: tuple[str, Any], async_provider: bool, async_function: bool, uid: str, n: int
    ) -> None:
        CASES["config_provider"] += 1
        behaviour.update({"outcome": outcome, "async": async_provider})
        before = disabled(registry, reason="config_error")
        if async_function:
            result = runner.run(on_runner(uid, n))
        else:
            result = call_sync(cache, get_user, uid, n)
        assert result == f"user {uid} {n}"
        kind, what = outcome
        misbehaved = kind == "raise" or not (what is None or isinstance(what, GCacheKeyConfig))
        assert disabled(registry, reason="config_error") == before + misbehaved

    try:
        check()
    finally:
        runner.run(cache.aclose())
        runner.close()
