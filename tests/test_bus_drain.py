"""The DRAIN batch format: ``<id> <length>\\n<payload>`` per entry, parsed back exactly, whatever
bytes a payload holds (junk on the stream must be counted as malformed, never misparsed)."""

from __future__ import annotations

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus._scripts import DRAIN
from bus._subscriber import _drained

ids = st.tuples(st.integers(0, 2**48), st.integers(0, 2**16)).map(lambda t: b"%d-%d" % t)
payloads = st.binary(max_size=64) | st.sampled_from([b"", b" ", b"\n", b"1 2\n3", b"\n\n 9\n"])


@given(st.lists(st.tuples(ids, payloads), max_size=20))
def test_batches_parse_back_exactly(entries: list[tuple[bytes, bytes]]) -> None:
    batch = b"".join(
        b"%b %d\n%b" % (entry_id, len(payload), payload) for entry_id, payload in entries
    )
    assert _drained(batch) == entries


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(payloads, min_size=1, max_size=10))
def test_the_script_and_the_parser_agree(redis_url: str, values: list[bytes]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete("drain:s")
        added = [client.xadd("drain:s", {"d": value}) for value in values]
        client.xadd("drain:s", {"other": b"x"})  # an entry without d: an empty payload
        batch = client.eval(DRAIN.source, 1, "drain:s", "0-0", 100)
        parsed = _drained(batch)
        assert [entry_id for entry_id, _ in parsed[:-1]] == added
        assert [payload for _, payload in parsed] == [*values, b""]
        after_first = _drained(client.eval(DRAIN.source, 1, "drain:s", added[0], 100))
        assert len(after_first) == len(values)  # exclusive of the id given
    finally:
        client.close()
