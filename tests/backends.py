"""The two Redis deployments a test can be parametrised over: one server, or a Cluster.

A test that takes the ``backend`` fixture runs twice, against the session's private server and
against its private 3-master Cluster, through the same API: the URL, the ``RedisConfig`` and
client factories for each, and a synchronous client for checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio import RedisCluster as AsyncRedisCluster

from gcache import RedisConfig

__all__ = ["Backend"]


@dataclass(frozen=True)
class Backend:
    """Where a parametrised test's Redis is: ``url`` of the server or of one Cluster node."""

    url: str
    cluster: bool

    @property
    def id(self) -> str:
        return "cluster" if self.cluster else "single"

    def redis_config(self, **fields: object) -> RedisConfig:
        """``RedisConfig`` for this backend. On a Cluster the timeouts default to 5 s: a new
        client's first call loads the slot map and the command table, and the first call in a
        new namespace creates F's copies (``bus._flush_copies``), all inside that call's I/O
        budget; at the default 0.5 s a busy machine may run it out — the call then fails open,
        by design, and the test's counts change."""
        if self.cluster:
            fields.setdefault("socket_timeout", 5.0)
            fields.setdefault("socket_connect_timeout", 5.0)
        return RedisConfig(url=self.url, cluster=self.cluster, **fields)  # type: ignore[arg-type]

    def async_factory(self, **kwargs: object) -> Callable[[], AsyncRedis | AsyncRedisCluster]:
        """A factory of asyncio clients (one per call), for publishers and subscribers."""
        url = self.url
        if self.cluster:
            return lambda: AsyncRedisCluster.from_url(url, **kwargs)
        return lambda: AsyncRedis.from_url(url, **kwargs)

    def client(self) -> redis.Redis | redis.RedisCluster:
        """A synchronous client for checks; the caller closes it."""
        if self.cluster:
            return redis.RedisCluster.from_url(self.url)
        return redis.Redis.from_url(self.url)
