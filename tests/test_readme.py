"""Every Python example in README.md runs as written, in order, as a reader would run them.

The examples name hosts that do not exist here ("redis.example.com", "redis:6379") and a
password ("secret"): they run against a private redis-server started with that password, the
host names pointed at it. Names the examples take for granted (``db``, ``User``,
``fetch_token_from_vault``...) are given small stand-ins. Checks after some blocks make sure the
example did what the text around it says.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis

from gcache import GCache
from integration.redis_server import RedisServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


class FakeDB:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    async def fetch_user(self, user_id: str) -> dict[str, str]:
        self._count("fetch_user")
        return {"id": user_id}

    async def update_user(self, user_id: str, data: dict[str, Any]) -> None:
        self._count("update_user")

    def query(self, *args: Any) -> dict[str, str]:
        self._count("query")
        return {"settings": "on"}


class User:
    def __init__(self, id: str) -> None:
        self.id = id


class SearchFilters:
    def to_cache_key(self) -> str:
        return "recent"


def blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


@pytest.fixture
def secret_server() -> Iterator[RedisServer]:
    with RedisServer.start(extra_args=["--requirepass", "secret"]) as server:
        yield server


def test_readme_has_the_seed_examples() -> None:
    text = README.read_text()
    for needle in (
        "async def config_provider(key: GCacheKey) -> GCacheKeyConfig:",
        'id_arg=("user", lambda u: u.id)',
        "def get_org_settings(org_id: str) -> dict:",
        "redis_client_factory=make_redis_factory()",
        "future_buffer_ms=5000",
        "await gcache.aflushall()",
        'metrics_prefix="myapp_"',
    ):
        assert needle in text
    assert len(blocks()) >= 14


def test_every_python_block_runs(secret_server: RedisServer) -> None:
    port = secret_server.port
    db = FakeDB()
    namespace: dict[str, Any] = {
        "__name__": "readme",
        "db": db,
        "User": User,
        "SearchFilters": SearchFilters,
        "Session": object,
        "Logger": object,
        "Post": dict,
        "fetch_token_from_vault": lambda: "secret",
    }
    client = secret_server.client(password="secret")

    async def check_after(source: str) -> None:
        if "async def handle_request" in source:
            first = await namespace["handle_request"]("u1")
            second = await namespace["handle_request"]("u1")
            assert first == second == {"id": "u1"}
            assert db.calls["fetch_user"] == 1  # the second call was a cache hit
        if "def get_org_settings" in source:
            with namespace["gcache"].enable():
                namespace["get_org_settings"]("o1")
                namespace["get_org_settings"]("o1")
            assert db.calls["query"] == 1
        if 'gcache.invalidate(key_type="user_id", id="12345")' in source:
            assert client.exists("gcache:w:{user_id=12345}")
        if "await gcache.aflushall()" in source:
            assert client.exists("gcache:flush:{gcache}")
        if "publisher.invalidate_many" in source:
            assert client.exists("gcache:w:{org_id=7}")
            assert client.xlen("gcache:bus:{gcache}") >= 3

    async def run_all() -> None:
        for index, source in enumerate(blocks()):
            if "rediss://" in source:
                continue  # needs a TLS server: tests/test_tls_acl.py runs it
            runnable = (
                source.replace('"redis.example.com"', '"127.0.0.1"')
                .replace("port=6379", f"port={port}")
                .replace("@redis:6379", f"@127.0.0.1:{port}")
                .replace("@redis.example.com:6379", f"@127.0.0.1:{port}")
            )
            code = compile(
                runnable, f"README.md python block {index}", "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )  # fmt: skip
            result = eval(code, namespace)
            if asyncio.iscoroutine(result):
                await result
            await check_after(source)
        # The examples create several caches, and the factory's client for this loop (which a
        # GCache does not close: the factory's owner does).
        for obj in gc.get_objects():
            if isinstance(obj, GCache):
                await obj.aclose()
        for obj in gc.get_objects():
            if isinstance(obj, AsyncRedis):
                await obj.aclose()

    try:
        asyncio.run(run_all())
    finally:
        client.close()
