"""Private Redis servers for the test suite.

Tests never use a Redis server they did not start: these fixtures launch ``redis-server``
processes on free loopback ports (see :mod:`integration.redis_server`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheConfig, RedisConfig
from integration.redis_cluster import RedisClusterServers
from integration.redis_server import RedisServer
from tests.backends import Backend
from tests.fuzzing import CASES, load_profile
from tests.providers import BOTH, constant

PROFILE = load_profile()  # hypothesis: "ci" unless HYPOTHESIS_PROFILE says otherwise
NIGHTLY_TIMEOUT_SEC = 3 * 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Outside the ``ci`` profile a fuzz test runs for minutes: lift the per-test timeout."""
    if PROFILE != "ci":
        for item in items:
            if item.get_closest_marker("fuzz") is not None:
                item.add_marker(pytest.mark.timeout(NIGHTLY_TIMEOUT_SEC))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many fuzz cases ran (tests/fuzzing.py), when any did."""
    if CASES:
        per_test = ", ".join(f"{name} {count}" for name, count in sorted(CASES.items()))
        terminalreporter.write_line(
            f"fuzz cases ({PROFILE} profile): {sum(CASES.values())} ({per_test})"
        )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private server shared by the whole session. Do not kill or pause it in a test:
    use ``fresh_redis_server`` for that."""
    with RedisServer.start() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the shared private server, emptied (``FLUSHALL``) before the test runs.

    If an earlier test killed the shared server by mistake, it is restarted (same port, so
    the URL does not change); if it left it paused, it is resumed.
    """
    redis_server.resume()
    if not redis_server.is_running:
        redis_server.restart()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """One private 3-master Redis Cluster shared by the whole session (started on first use).
    Do not kill or pause its nodes in a test: start a cluster of your own for that."""
    with RedisClusterServers.start() as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    """URL of a node of the shared private Cluster, every node emptied before the test runs."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(params=["single", "cluster"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Runs the test twice: against the shared private server and the shared private Cluster
    (both emptied first)."""
    if request.param == "cluster":
        return Backend(url=request.getfixturevalue("cluster_url"), cluster=True)
    return Backend(url=request.getfixturevalue("redis_url"), cluster=False)


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A brand-new private server for this test alone, free to be killed, paused or
    restarted. It is resumed and closed at teardown whatever the test did to it."""
    server = RedisServer.start()
    try:
        yield server
    finally:
        try:
            server.resume()
        finally:
            server.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    """A private Prometheus registry, so each test reads only its own metrics."""
    return CollectorRegistry()


@pytest.fixture
def make_cache(registry: CollectorRegistry) -> Iterator[Callable[..., GCache]]:
    """Factory for GCache instances with a private registry; every one is closed at teardown.

    ``make_cache(url=None, provider=None, **config_fields)``: ``url`` turns on the REMOTE layer
    (``RedisConfig(url=url)``), ``provider`` defaults to LOCAL+REMOTE always on.
    """
    caches: list[GCache] = []

    def make(
        url: str | None = None,
        provider: Callable[..., Any] | None = None,
        **fields: Any,
    ) -> GCache:
        fields.setdefault("metrics_registry", registry)
        if url is not None:
            fields.setdefault("redis_config", RedisConfig(url=url))
        cache = GCache(GCacheConfig(cache_config_provider=provider or constant(BOTH), **fields))
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


@pytest.fixture
def replicas() -> Iterator[Any]:
    """Starts replica processes (``tests.replica_process``) for the multi-process bus tests:
    ``replicas.start(["a", "b"], cache_url=..., truth_url=..., **spec_fields)``. Every one is
    resumed (if a test froze it), stopped and reaped at teardown."""
    from tests.replica_process import Fleet

    fleet = Fleet()
    try:
        yield fleet
    finally:
        fleet.stop_all()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client of the shared private server, for checks (bytes replies)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def truth(redis_url: str) -> Iterator[redis.Redis]:
    """The multi-process tests' source of truth: plain keys in the shared private server (never
    the cache's server, which those tests fault)."""
    client = redis.Redis.from_url(redis_url)
    client.set("truth:1", 1)
    yield client
    client.close()
