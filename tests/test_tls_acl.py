"""TLS and ACL against real servers: a redis-server with a throw-away CA and server certificate,
and the least-privileged ACL user the README gives, through which the whole library runs.

The grant is read from README.md ("TLS and ACL"), so the documented grant is the tested one.
The proof has two halves: Redis refuses nothing (the ACL log stays empty: a refused command
would otherwise only show as a failed-open cache call), and every granted command was used (the
grant holds nothing the library does not need).

Closing a cache cancels its bus subscriber mid-read; redis-py then drops that connection without
waiting, and a TLS close (which waits for the server's close_notify) may still be in flight when
the background loop ends. Those sockets are left to the garbage collector, which warns. The
warning is collected right after each test here and ignored: the server side of such a
connection is simply dropped, as with a killed client.
"""

from __future__ import annotations

import asyncio
import gc
import io
import re
import shlex
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from bus import Publisher
from bus._cli import main as bus_cli
from gcache import BusConfig, GCache, RedisConfig
from integration.redis_server import wait_until
from tests.certificates import Certificates, make_certificates
from tests.metric_values import metric
from tests.providers import BOTH, constant
from tests.remote_helpers import Calls, cached_user, call_async, call_sync, errors, settle_bus
from tests.tls_redis import TlsRedis, start_tls_redis

README = Path(__file__).resolve().parent.parent / "README.md"
USER, PASSWORD = "gcache", "secret"
TIMEOUT = 30.0

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <(socket\.socket|function _SelectorTransport\.__del__)"
    ":pytest.PytestUnraisableExceptionWarning"
)


def readme_section() -> str:
    text = README.read_text()
    start = text.index("\n## TLS and ACL\n")
    return text[start : text.index("\n## ", start + 1)]


def readme_grant() -> list[str]:
    """The ``ACL SETUSER ...`` arguments of the README's bash block, shell-split."""
    [block] = re.findall(r"```bash\n(.*?)```", readme_section(), re.DOTALL)
    words = shlex.split(block.replace("\\\n", " "))
    return words[words.index("ACL") :]


def granted_commands(grant: list[str]) -> set[str]:
    """``+get`` -> ``get``; ``+client|setname`` -> ``client|setname``; ``+info|server`` (an
    allowed first argument, not a subcommand) -> ``info``, as ``INFO commandstats`` names them."""
    names = set()
    for word in grant:
        if word.startswith("+") and not word.startswith("+@"):
            name = word[1:].lower()
            names.add("info" if name.startswith("info|") else name)
    return names


def used_commands(admin: redis.Redis) -> set[str]:
    """Commands the server ran since the last ``CONFIG RESETSTAT`` (Lua's included)."""
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_") for name, row in stats.items() if row["calls"] > 0}


@pytest.fixture(autouse=True)
def collect_cut_tls_connections() -> Iterator[None]:
    """Torn down after ``make_cache`` (set up before it): see the module docstring."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[TlsRedis]:
    server = start_tls_redis(certificates)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def admin(tls_server: TlsRedis) -> Iterator[redis.Redis]:
    """The ``default`` user on the plain port: creates the README's user, empties the data, the
    ACL log and the command statistics."""
    client = tls_server.admin()
    client.flushall()
    client.execute_command("ACL", "DELUSER", USER)
    client.execute_command(*readme_grant())
    client.execute_command("ACL", "LOG", "RESET")
    client.config_resetstat()
    yield client
    client.close()


def tls_config(server: TlsRedis, **fields: Any) -> RedisConfig:
    return RedisConfig(
        url=server.url(USER, PASSWORD),
        ssl_ca_certs=server.certificates.ca_cert,
        socket_timeout=10,  # a slow call on a busy machine must not fail open and skew counts
        socket_connect_timeout=10,
        **fields,
    )


def exercise_cache(make_cache: Callable[..., GCache], server: TlsRedis, transport: str) -> None:
    """Two caches on one bus: REMOTE sharing, invalidation and flush reaching the other's LOCAL
    layer, sync and async callers. Every step is checked, so a refused command cannot pass as a
    quietly failed-open call."""
    a_registry, b_registry = CollectorRegistry(), CollectorRegistry()
    fields: dict[str, Any] = {
        "redis_config": tls_config(server),
        "bus": BusConfig(transport=transport),  # type: ignore[arg-type]
        "remote_write_budget_sec": 30,
    }
    a = make_cache(provider=constant(BOTH), metrics_registry=a_registry, **fields)
    b = make_cache(provider=constant(BOTH), metrics_registry=b_registry, **fields)
    calls_a, calls_b = Calls(), Calls()
    get_a = cached_user(a, calls_a, sync=True, tag="a")
    get_b = cached_user(b, calls_b, sync=True, tag="b")
    aget_b = cached_user(b, calls_b, tag="b", use_case="GetUserAsync")

    first = call_sync(a, get_a, "1")
    assert call_sync(b, get_b, "1") == first  # a REMOTE hit: B shares A's value
    assert calls_b.count == 0
    assert call_async(b, aget_b, "2") == {"id": "2", "run": 1, "by": "b"}
    settle_bus(b)

    def local_hits() -> float:
        requests = metric(b_registry, "gcache_request_counter_total", layer="local")
        return requests - metric(b_registry, "gcache_miss_counter_total", layer="local")

    users = iter(range(1_000_000))

    def b_serves_one_from_local() -> tuple[str, Any] | None:
        user = f"{transport}-{next(users)}"
        call_sync(b, get_b, user)
        hits = local_hits()
        value = call_sync(b, get_b, user)
        return (user, value) if local_hits() > hits else None

    user, old = wait_until(b_serves_one_from_local, timeout=TIMEOUT, message="a LOCAL hit on B")
    a.invalidate(key_type="user_id", id=user)
    wait_until(
        lambda: call_sync(b, get_b, user) != old,
        timeout=TIMEOUT,
        message="B to drop, from its LOCAL layer, the entity A invalidated",
    )
    events = "gcache_bus_events_total"
    assert metric(b_registry, events, type="invalidate") >= 1

    user, old = wait_until(b_serves_one_from_local, timeout=TIMEOUT, message="a LOCAL hit on B")
    a.flushall()
    wait_until(
        lambda: call_sync(b, get_b, user) != old,
        timeout=TIMEOUT,
        message="B to drop, from its LOCAL layer, what A flushed",
    )
    assert metric(b_registry, events, type="flush") >= 1
    assert errors(a_registry) == errors(b_registry) == 0


def exercise_burst(admin: redis.Redis, make_cache: Callable[..., GCache], server: TlsRedis) -> None:
    """Invalidations sent at once reach a streams subscriber faster than it reads them one by
    one, and it catches up in bulk (the DRAIN script, whose XRANGE the grant must allow). An
    event that arrives alone never needs it."""
    registry = CollectorRegistry()
    cache = make_cache(
        provider=constant(BOTH),
        metrics_registry=registry,
        redis_config=tls_config(server),
        bus=BusConfig(transport="streams"),
    )
    call_sync(cache, cached_user(cache, Calls(), sync=True), "warm-up")  # starts the bus
    settle_bus(cache)
    url = f"{server.url(USER, PASSWORD)}?ssl_ca_certs={server.certificates.ca_cert}"
    sent = 0

    async def burst() -> None:
        async with Publisher.from_url(url) as publisher:
            await asyncio.gather(*(publisher.ainvalidate("user_id", str(i)) for i in range(20)))

    def caught_up_in_bulk() -> bool:
        nonlocal sent
        asyncio.run(burst())
        sent += 20
        wait_until(
            lambda: metric(registry, "gcache_bus_events_total", type="invalidate") >= sent,
            timeout=TIMEOUT,
            message=f"the subscriber to apply {sent} invalidations",
        )
        return "xrange" in used_commands(admin)

    wait_until(caught_up_in_bulk, timeout=TIMEOUT, message="a subscriber catching up in bulk")
    assert errors(registry) == 0


def exercise_cli(server: TlsRedis) -> None:
    """``python -m bus`` (in-process): tail sees an invalidation and a flush made by the CLI."""
    url = f"{server.url(USER, PASSWORD)}?ssl_ca_certs={server.certificates.ca_cert}"
    tailed = io.StringIO()
    tail = threading.Thread(
        target=bus_cli, args=(["tail", "--url", url, "--count", "2", "--seconds", "60"], tailed)
    )
    tail.start()
    try:
        wait_until(lambda: "-- gap: start" in tailed.getvalue(), timeout=TIMEOUT)
        out = io.StringIO()
        assert bus_cli(["invalidate", "--url", url, "--key-type", "user_id", "--id", "9"], out) == 0
        assert out.getvalue().startswith("invalidated user_id=9 watermark=")
        assert bus_cli(["flush", "--url", url], out) == 0
    finally:
        tail.join(timeout=TIMEOUT)
    assert not tail.is_alive()
    lines = tailed.getvalue().splitlines()
    assert lines[1].endswith("invalidate user_id=9"), lines
    assert " flush watermark=" in lines[2], lines


def test_the_library_needs_no_more_than_the_readme_grant(
    admin: redis.Redis, tls_server: TlsRedis, make_cache: Callable[..., GCache]
) -> None:
    try:
        for transport in ("streams", "pubsub"):
            exercise_cache(make_cache, tls_server, transport)
        exercise_burst(admin, make_cache, tls_server)
        exercise_cli(tls_server)
    except AssertionError as exc:
        refused = [(entry["reason"], entry["object"]) for entry in admin.acl_log()]
        raise AssertionError(f"{exc}\nrefused by the ACL (reason, object): {refused}") from exc

    assert admin.acl_log() == []  # Redis refused nothing
    unused = granted_commands(readme_grant()) - used_commands(admin)
    assert not unused, f"granted but never used: {sorted(unused)}"


def remote_roundtrip(make_cache: Callable[..., GCache], config: RedisConfig) -> CollectorRegistry:
    """One cache writes a value, another reads it back from REMOTE; returns the reader's
    registry (its error counter says whether Redis was reachable)."""
    registries = CollectorRegistry(), CollectorRegistry()
    writer, reader = (
        make_cache(redis_config=config, metrics_registry=registry, remote_write_budget_sec=30)
        for registry in registries
    )
    calls = Calls()
    first = call_sync(writer, cached_user(writer, calls, sync=True, tag="w"), "1")
    second = call_sync(reader, cached_user(reader, calls, sync=True, tag="r"), "1")
    if errors(registries[1]) == 0:
        assert second == first  # served from REMOTE
        assert calls.count == 1
    return registries[1]


def test_mutual_tls_with_the_host_form(
    certificates: Certificates, make_cache: Callable[..., GCache]
) -> None:
    server = start_tls_redis(certificates, auth_clients="yes")
    try:
        config = RedisConfig(
            host="127.0.0.1",
            port=server.tls_port,
            ssl=True,
            ssl_ca_certs=certificates.ca_cert,
            ssl_certfile=certificates.client_cert,
            ssl_keyfile=certificates.client_key,
            socket_timeout=10,
            socket_connect_timeout=10,
        )
        registry = remote_roundtrip(make_cache, config)
        assert errors(registry) == 0
        # The bus subscriber's connections present the certificate too.
        cache = make_cache(redis_config=config)
        call_sync(cache, cached_user(cache, Calls(), sync=True), "1")
        settle_bus(cache)
    finally:
        server.close()


def test_a_server_without_the_client_certificate_is_refused_and_the_cache_fails_open(
    certificates: Certificates, make_cache: Callable[..., GCache]
) -> None:
    server = start_tls_redis(certificates, auth_clients="yes")
    try:
        config = RedisConfig(
            host="127.0.0.1", port=server.tls_port, ssl=True, ssl_ca_certs=certificates.ca_cert
        )
        assert errors(remote_roundtrip(make_cache, config)) > 0
    finally:
        server.close()


def test_the_server_certificate_is_verified(
    tls_server: TlsRedis, make_cache: Callable[..., GCache]
) -> None:
    # Without the test CA, the server's certificate cannot verify: nothing reaches Redis.
    config = RedisConfig(url=tls_server.url(), socket_timeout=10, socket_connect_timeout=10)
    assert errors(remote_roundtrip(make_cache, config)) > 0


def test_the_readme_tls_example_runs(admin: redis.Redis, tls_server: TlsRedis) -> None:
    [source] = re.findall(r"```python\n(.*?)```", readme_section(), re.DOTALL)
    runnable = source.replace("redis.example.com:6380", f"127.0.0.1:{tls_server.tls_port}")
    runnable = runnable.replace("/etc/gcache/redis-ca.pem", tls_server.certificates.ca_cert)

    async def config_provider(key: Any) -> Any:
        return BOTH

    namespace: dict[str, Any] = {"config_provider": config_provider}
    exec(compile(runnable, "README.md TLS and ACL example", "exec"), namespace)
    cache: GCache = namespace["gcache"]
    try:
        calls = Calls()
        get_user = cached_user(cache, calls, sync=True)
        assert call_sync(cache, get_user, "1") == call_sync(cache, get_user, "1")
        assert admin.keys("gcache:v:*")  # written through TLS, as the README's user
        assert admin.acl_log() == []
    finally:
        cache.close()
