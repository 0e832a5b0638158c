"""Payload integrity against a real Redis: signed and unsigned modes, key rotation, serializer
changes in a rolling deploy, and bytes planted under a cache key by someone who can write to
Redis but does not hold the signing key. Such bytes are a miss, counted, rewritten — and never
unpickled: the planted pickles here would write a marker file if they were.
"""

from __future__ import annotations

import datetime
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcache import GCache
from gcache._codec import HEADER_LEN, Codec
from gcache._serializers import PICKLE
from gcache._signing import SIGNATURE_LEN, Signer
from tests.providers import REMOTE_ONLY, constant
from tests.remote_helpers import (
    Calls,
    cached_user,
    call_async,
    call_sync,
    errors,
    patient,
    redis_time_us,
    value_keys,
)

K1 = b"first-key-0123456789"
K2 = b"second-key-0123456789"
OTHER = b"attacker-key-0123456789"
NS = "gcache"


def _mark(path: str) -> str:
    """What the planted pickles call when unpickled: proof that they were."""
    Path(path).write_text("unpickled")
    return "pwned"


class _Planted:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_mark, (self.path,))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "unpickled"


@pytest.fixture
def replica(make_cache: Callable[..., GCache], redis_url: str) -> Callable[..., GCache]:
    """A REMOTE-only cache on the shared test server (every call goes to Redis)."""

    def make(**fields: Any) -> GCache:
        return make_cache(provider=constant(REMOTE_ONLY), **patient(redis_url), **fields)

    return make


def only_key(client: redis.Redis) -> bytes:
    (key,) = value_keys(client, NS)
    return key


def evil(marker: Path) -> bytes:
    return pickle.dumps(_Planted(marker))


def stored_user(
    cache: GCache, calls: Calls, client: redis.Redis
) -> tuple[Callable[..., Any], bytes]:
    """A sync cached ``get_user`` that has stored user 1 once, and the Redis key it used."""
    get = cached_user(cache, calls, sync=True)
    call_sync(cache, get, "1")
    return get, only_key(client)


# -- signed mode, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_signed_values_are_shared_between_replicas_holding_the_key(
    replica: Callable[..., GCache], client: redis.Redis, registry: Any, sync: bool
) -> None:
    a, b = replica(signing_key=K1), replica(signing_key=K1)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=sync, tag="a")
    get_b = cached_user(b, calls_b, sync=sync, tag="b")
    call = call_sync if sync else call_async

    assert call(a, get_a, "1") == {"id": "1", "run": 1, "by": "a"}
    assert client.get(only_key(client))[:4] == b"GC\x02p"  # type: ignore[index]
    assert call(b, get_b, "1") == {"id": "1", "run": 1, "by": "a"}
    assert calls_b.count == 0
    assert errors(registry) == 0


def _unsigned(marker: Path, key: str) -> bytes:
    return Codec(PICKLE).encode(evil(marker), 1, key)


def _garbage_tag(marker: Path, key: str) -> bytes:
    signed = Codec(PICKLE, Signer([K1])).encode(evil(marker), 1, key)
    return signed[: HEADER_LEN + 8] + b"\x00" * 32 + signed[HEADER_LEN + SIGNATURE_LEN :]


def _unknown_key(marker: Path, key: str) -> bytes:
    return Codec(PICKLE, Signer([OTHER])).encode(evil(marker), 1, key)


def _copied_from_another_key(marker: Path, key: str) -> bytes:
    # A value validly signed with the cache's own key, for a different Redis key.
    return Codec(PICKLE, Signer([K1])).encode(evil(marker), 1, key + "-elsewhere")


def _payload_swapped(marker: Path, key: str) -> bytes:
    signed = Codec(PICKLE, Signer([K1])).encode(pickle.dumps("harmless"), 1, key)
    return signed[: HEADER_LEN + SIGNATURE_LEN] + evil(marker)


def _timestamp_moved(marker: Path, key: str) -> bytes:
    signed = Codec(PICKLE, Signer([K1])).encode(evil(marker), 1, key)
    return signed[:4] + b"%016d" % 2 + signed[HEADER_LEN:]


PLANTED = {
    "unsigned": (_unsigned, "unsigned"),
    "garbage_tag": (_garbage_tag, "signature"),
    "unknown_key": (_unknown_key, "signature"),
    "copied_from_another_key": (_copied_from_another_key, "signature"),
    "payload_swapped": (_payload_swapped, "signature"),
    "timestamp_moved": (_timestamp_moved, "signature"),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_planted_values_are_a_counted_miss_and_never_unpickled(
    replica: Callable[..., GCache],
    client: redis.Redis,
    registry: Any,
    marker: Path,
    kind: str,
) -> None:
    cache = replica(signing_key=K1)
    calls = Calls()
    get, key = stored_user(cache, calls, client)
    plant, reason = PLANTED[kind]
    client.set(key, plant(marker, key.decode()))

    assert call_sync(cache, get, "1") == {"id": "1", "run": 2, "by": ""}
    assert not marker.exists()
    assert errors(registry, error=reason) == 1
    assert errors(registry) == 1

    # Never errors twice: the planted bytes were replaced by a signed value, which is served.
    assert client.get(key)[:4] == b"GC\x02p"  # type: ignore[index]
    assert call_sync(cache, get, "1") == {"id": "1", "run": 2, "by": ""}
    assert errors(registry) == 1


def test_without_signing_a_planted_pickle_is_unpickled(
    replica: Callable[..., GCache], client: redis.Redis, marker: Path
) -> None:
    """The positive control, and what the README's Security section warns about: with pickle
    and no signing_key, whoever can write to Redis runs code in every replica."""
    cache = replica()
    calls = Calls()
    get, key = stored_user(cache, calls, client)
    client.set(key, _unsigned(marker, key.decode()))
    assert call_sync(cache, get, "1") == "pwned"
    assert marker.read_text() == "unpickled"


def test_json_without_signing_never_unpickles(
    replica: Callable[..., GCache], client: redis.Redis, registry: Any, marker: Path
) -> None:
    cache = replica(serializer="json")
    calls = Calls()
    get, key = stored_user(cache, calls, client)
    client.set(key, _unsigned(marker, key.decode()))
    assert call_sync(cache, get, "1") == {"id": "1", "run": 2, "by": ""}
    assert not marker.exists()
    assert errors(registry, error="format") == 1


# -- rotation and mode changes --------------------------------------------------------------


def test_key_rotation(replica: Callable[..., GCache], client: redis.Redis, registry: Any) -> None:
    """Step 1 replicas (K1 signs, K2 accepted) and step 2 replicas (K2 signs, K1 accepted) read
    each other's values; once K1 is dropped (step 3), K1-signed values are misses."""
    step1 = replica(signing_key=K1, accepted_signing_keys=[K2])
    step2 = replica(signing_key=K2, accepted_signing_keys=[K1])
    step3 = replica(signing_key=K2)
    c1, c2, c3 = Calls(), Calls(), Calls()
    get1 = cached_user(step1, c1, sync=True, tag="1")
    get2 = cached_user(step2, c2, sync=True, tag="2")
    get3 = cached_user(step3, c3, sync=True, tag="3")

    assert call_sync(step1, get1, "a")["by"] == "1"
    assert call_sync(step2, get2, "a")["by"] == "1"  # K1-signed, K1 accepted: served
    assert call_sync(step2, get2, "b")["by"] == "2"
    assert call_sync(step1, get1, "b")["by"] == "2"  # K2-signed, K2 accepted: served
    assert call_sync(step3, get3, "b")["by"] == "2"
    assert (c1.count, c2.count, c3.count) == (1, 1, 0)
    assert errors(registry) == 0

    assert call_sync(step3, get3, "a")["by"] == "3"  # K1 is no longer accepted
    assert errors(registry, error="signature") == 1
    assert call_sync(step2, get2, "a")["by"] == "3"  # rewritten with K2


@pytest.mark.parametrize(
    ("writer", "reader", "reason"),
    [
        ({"serializer": "pickle"}, {"serializer": "json"}, "format"),
        ({"serializer": "json"}, {"serializer": "pickle"}, "format"),
        ({}, {"signing_key": K1}, "unsigned"),
        ({"signing_key": K1}, {}, "format"),
        ({"serializer": "json", "signing_key": K1}, {"signing_key": K1}, "format"),
    ],
    ids=["pickle-to-json", "json-to-pickle", "signing-on", "signing-off", "json-to-pickle-signed"],
)
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_format_change_is_one_miss_then_served(
    replica: Callable[..., GCache],
    registry: Any,
    writer: dict[str, Any],
    reader: dict[str, Any],
    reason: str,
    sync: bool,
) -> None:
    """A rolling deploy that changes the serializer or turns signing on or off: a replica of
    the new version reads an old entry as a miss (counted), overwrites it, and is then served."""
    old, new = replica(**writer), replica(**reader)
    calls_old, calls_new = Calls(), Calls()
    get_old = cached_user(old, calls_old, sync=sync, tag="old")
    get_new = cached_user(new, calls_new, sync=sync, tag="new")
    call = call_sync if sync else call_async

    call(old, get_old, "1")
    assert call(new, get_new, "1") == {"id": "1", "run": 1, "by": "new"}
    assert errors(registry, error=reason) == 1
    assert call(new, get_new, "1") == {"id": "1", "run": 1, "by": "new"}
    assert calls_new.count == 1
    assert errors(registry) == 1


# -- the JSON serializer --------------------------------------------------------------------


def test_json_values_are_cached_and_others_fail_open_once_per_call(
    replica: Callable[..., GCache], client: redis.Redis, registry: Any
) -> None:
    a, b = replica(serializer="json"), replica(serializer="json")
    runs = Calls()

    def make(cache: GCache) -> Callable[..., Any]:
        @cache.cached(key_type="user_id", id_arg="user_id", use_case="Profile")
        def profile(user_id: str, when: bool = False) -> Any:
            runs.bump()
            if when:
                return {"at": datetime.datetime(2024, 1, 1)}
            return {"id": user_id, "tags": ("x", "y")}

        return profile

    profile_a, profile_b = make(a), make(b)
    assert call_sync(a, profile_a, "1") == {"id": "1", "tags": ("x", "y")}
    assert client.get(only_key(client))[:4] == b"GC\x01j"  # type: ignore[index]
    assert call_sync(b, profile_b, "1") == {"id": "1", "tags": ["x", "y"]}  # JSON: a list
    assert runs.count == 1

    for n in (1, 2):
        with a.enable():
            assert profile_a("2", when=True) == {"at": datetime.datetime(2024, 1, 1)}
        assert runs.count == 1 + n
        assert errors(registry, error="unserializable") == n
    assert len(value_keys(client, NS)) == 1  # not cached


# -- arbitrary bytes ------------------------------------------------------------------------


def _planted_bytes(marker: Path) -> st.SearchStrategy[bytes]:
    bomb = evil(marker)
    digits = st.integers(0, 10**16 - 1).map(lambda n: b"%016d" % n)
    prefix = st.sampled_from([b"GC\x01p", b"GC\x02p", b"GC\x01j", b"GC\x02j", b"GC\x03p", b"GC"])
    return st.one_of(
        st.binary(max_size=200),
        st.tuples(prefix, st.binary(max_size=80)).map(b"".join),
        st.tuples(prefix, digits, st.binary(max_size=SIGNATURE_LEN + 4), st.just(bomb)).map(
            b"".join
        ),
        # Exactly where a signed value's payload starts.
        st.tuples(prefix, digits, st.binary(min_size=SIGNATURE_LEN, max_size=SIGNATURE_LEN)).map(
            lambda parts: b"".join(parts) + bomb
        ),
        st.tuples(prefix, digits, st.just(bomb)).map(b"".join),
    )


def test_arbitrary_bytes_under_a_key_in_signed_mode(
    replica: Callable[..., GCache], client: redis.Redis, registry: Any, marker: Path
) -> None:
    """Whatever sits under the key: the caller gets the function's result, nothing raises,
    nothing is unpickled, and every such read is counted."""
    cache = replica(signing_key=K1)
    calls = Calls()
    get, key = stored_user(cache, calls, client)
    valid = client.get(key)
    assert valid is not None

    truncated = st.integers(0, len(valid) - 1).map(lambda n: valid[:n])

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(st.one_of(_planted_bytes(marker), truncated))
    def check(planted: bytes) -> None:
        before_calls, before_errors = calls.count, errors(registry)
        client.set(key, planted)
        assert call_sync(cache, get, "1") == {"id": "1", "run": before_calls + 1, "by": ""}
        assert errors(registry) == before_errors + 1
        assert not marker.exists()

    check()
    assert redis_time_us(client) > 0  # the server survived it all
