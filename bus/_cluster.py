"""What differs when the client is a ``redis.asyncio.RedisCluster``.

Both kinds of client are accepted wherever a client is: ``AnyRedis``. Code that must behave
differently on a Cluster (split a cross-slot operation, address one node) asks
:func:`is_cluster` (or ``isinstance`` where the other branch needs the single-server type:
a TypeGuard narrows only its own branch); everything else is written once for both.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeGuard

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

__all__ = ["REDIS_ERRORS", "AnyRedis", "connection_kwargs", "ensure_initialized", "is_cluster"]

AnyRedis: TypeAlias = "Redis | RedisCluster"

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,  # not a RedisError: slot map incomplete, no reachable node, ...
    OSError,
    TimeoutError,
)
"""Every failure a Redis round trip may raise, on a single server or a Cluster."""


def is_cluster(client: AnyRedis) -> TypeGuard[RedisCluster]:
    """True for a Cluster client."""
    return isinstance(client, RedisCluster)


async def ensure_initialized(client: AnyRedis) -> None:
    """Load a Cluster client's slot map now, once (a no-op when loaded, and on a single server).

    redis-py loads it lazily on the first command; several *concurrent* first commands (EVALs
    in particular, which is what every gcache and bus operation is) then race and fail with an
    AttributeError from inside the client — not even a RedisError. So every path that may be
    first on a new client awaits this before it sends anything."""
    if is_cluster(client):
        await client.initialize()


def connection_kwargs(client: AnyRedis) -> dict[str, Any]:
    """The keyword arguments the client's connections are made with."""
    if isinstance(client, RedisCluster):  # both branches narrowed: not the TypeGuard
        return dict(client.get_connection_kwargs())
    return dict(client.connection_pool.connection_kwargs)
