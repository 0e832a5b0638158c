"""How each peer library builds a cached function, used as its documentation tells a user to.

One builder per library (and mode), each returning a :class:`PeerCache`: the decorated async
function, how a writer invalidates one id *through that library* (on this instance), the scope
the calls must run in (``enable()`` for dialcache, nothing for the others), and how to close it.
The per-call, single-flight, memory and cross-process scenarios all build their peers here, so a
peer is configured the same way in every table.

The libraries are optional (the ``bench`` extra) and imported by name at run time: this module
imports without them, and mypy needs neither the packages nor their type information (their
decorators are applied as calls on ``Any``, which mypy --strict accepts).

What each is:

* aiocache 0.12 ``@cached(cache=Cache.MEMORY)``: an in-process dict per decorated function,
  expiry by ``loop.call_later`` timers; no size bound, no cross-process invalidation.
* cashews ``mem://``: an in-process LRU (bounded by entry count); no cross-process invalidation.
* cashews ``redis://``: every read is a Redis ``GET``; a ``delete`` anywhere is seen at once.
* cashews ``redis://...?client_side=true``: an in-process copy of what was read, invalidated by
  Redis 6 client-side caching (``CLIENT TRACKING ... BCAST``, a pub/sub connection per instance).
* dialcache: an async cache with a LOCAL LRU (bounded by entry count) and a REMOTE layer whose
  tracked reads ``MGET`` the value with its entity watermark; ``invalidate_remote`` raises the
  watermark in Redis. Its LOCAL layer is never told: a value that reached LOCAL is served until
  its TTL, so for fresh reads dialcache is run REMOTE-only (``dialcache_remote``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, cast

__all__ = [
    "INSTALL_HINT",
    "TTL_SEC",
    "Body",
    "PeerCache",
    "aiocache_memory",
    "cashews_cache",
    "dialcache_cache",
    "installed",
]

TTL_SEC: Final = 3600
"""Far longer than any run: nothing expires while it is measured."""
INSTALL_HINT: Final = "pip install -e '.[bench]'"
_DIALCACHE_READ_TIMEOUT_MS: Final = 2000

Body = Callable[[str], Awaitable[object]]
"""The function being cached: one id in, a value out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCache:
    """One peer's cached function and what goes with it."""

    function: Body
    invalidate: Callable[[str], Awaitable[object]]
    """Invalidate one id through the library's own API, as a writer on this instance would."""
    enable: Callable[[], AbstractContextManager[object]]
    """The scope the calls must run in (a no-op for libraries that cache unconditionally)."""
    aclose: Callable[[], Awaitable[object]]


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def _nothing() -> AbstractContextManager[object]:
    return contextlib.nullcontext()


async def _noop() -> None:
    return None


def aiocache_memory(body: Body) -> PeerCache:
    """aiocache's ``@cached`` with its memory backend, keyed by the id."""
    aiocache: Any = importlib.import_module("aiocache")
    decorated = aiocache.cached(
        ttl=TTL_SEC,
        cache=aiocache.Cache.MEMORY,
        key_builder=lambda function, user_id: f"bench:{user_id}",
    )(body)

    async def invalidate(user_id: str) -> object:
        return await decorated.cache.delete(f"bench:{user_id}")

    return PeerCache(
        function=cast("Body", decorated),
        invalidate=invalidate,
        enable=_nothing,
        aclose=decorated.cache.close,
    )


async def cashews_cache(body: Body, url: str, name: str, *, lock: bool = False) -> PeerCache:
    """cashews' ``@cache`` on a cache instance of its own (``url``: ``mem://...``,
    ``redis://...``, or ``redis://...?client_side=true``), keyed by the id; ``lock`` turns on
    its stampede lock."""
    cashews: Any = importlib.import_module("cashews")
    cache: Any = cashews.Cache(name=name)
    cache.setup(url)
    await cache.init()  # client_side: subscribes to the invalidations before the first read
    decorated = cache(ttl=TTL_SEC, key="bench:{user_id}", prefix=name, lock=lock)(body)

    async def invalidate(user_id: str) -> object:
        return await cache.delete(f"{name}:bench:{user_id}")

    return PeerCache(
        function=cast("Body", decorated), invalidate=invalidate, enable=_nothing, aclose=cache.close
    )


def dialcache_cache(
    body: Body,
    redis_url: str | None,
    *,
    namespace: str,
    local: bool,
    remote: bool,
    tracked: bool,
    max_entries: int = 10_000,
) -> PeerCache:
    """dialcache's ``cached`` with the layers asked for (REMOTE needs ``redis_url``)."""
    dialcache: Any = importlib.import_module("dialcache")
    client: Any = None
    adapter: Any = None
    if remote:
        if redis_url is None:
            raise ValueError("dialcache's REMOTE layer needs a Redis URL")
        redis_asyncio: Any = importlib.import_module("redis.asyncio")
        client = redis_asyncio.Redis.from_url(redis_url)
        adapter = importlib.import_module("dialcache.redis").RedisAdapter(client)
    policy = dialcache.Policy(
        ttl_sec={"local": TTL_SEC, "remote": TTL_SEC},
        ramp={"local": 100 if local else 0, "remote": 100 if remote else 0},
    )

    async def provider(key: object) -> object:
        return policy

    # dialcache gives a REMOTE read 50 ms by default, then runs the function: on a loaded
    # 2-core machine a hit can take that long, and the timed "hit" would become a miss.
    cache: Any = dialcache.DialCache(
        namespace=namespace,
        redis=adapter,
        policy_provider=provider,
        local_max_size=max_entries,
        read_timeout_ms=_DIALCACHE_READ_TIMEOUT_MS,
    )
    decorated = cache.cached(
        key_type="user_id", id_arg="user_id", use_case="bench", track_for_invalidation=tracked
    )(body)

    async def invalidate(user_id: str) -> object:
        return await cache.invalidate_remote("user_id", user_id)

    async def aclose() -> None:
        if client is not None:  # dialcache borrows the client: closing it is the caller's job
            await client.aclose()

    return PeerCache(
        function=cast("Body", decorated),
        invalidate=invalidate,
        enable=cast("Callable[[], AbstractContextManager[object]]", cache.enable),
        aclose=aclose if client is not None else _noop,
    )
