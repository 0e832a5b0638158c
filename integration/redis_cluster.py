"""A private Redis Cluster: ``redis-server --cluster-enabled yes`` processes joined by
``redis-cli --cluster create``, on free loopback ports.

Each node is a :class:`~integration.redis_server.RedisServer`, so a test can kill, pause and
restart one. A node keeps its ``nodes.conf`` in its own directory, so a restarted node comes
back (empty, as every private server here does) as the same cluster member with the same slots.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Sequence
from types import TracebackType

import redis

from .redis_server import HOST, RedisServer, wait_until

__all__ = ["RedisClusterServers"]

_READY_TIMEOUT = 60.0
_NODE_TIMEOUT_MS = 2000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _start_node(node_timeout_ms: int) -> RedisServer:
    """A cluster-enabled server. The cluster bus needs a second port (by default port + 10000,
    which may be out of range or taken): give it a free one, and retry if it was grabbed."""
    for attempt in range(5):
        args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-port", str(_free_port()),
        ]  # fmt: skip
        try:
            return RedisServer.start(extra_args=args)
        except RuntimeError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _cluster_ok(server: RedisServer) -> bool:
    try:
        with server.client(socket_timeout=2) as admin:
            info = admin.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


class RedisClusterServers:
    """A Redis Cluster of ``masters`` primaries (no replicas), every slot assigned.

    Create with :meth:`start`; :meth:`close` stops every node. ``url`` names one node: a cluster
    client discovers the others from it.
    """

    def __init__(self, nodes: Sequence[RedisServer]) -> None:
        self.nodes = list(nodes)

    @classmethod
    def start(
        cls, *, masters: int = 3, node_timeout_ms: int = _NODE_TIMEOUT_MS
    ) -> RedisClusterServers:
        """Start the nodes, create the cluster and return once every node says it is ok."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli not found: it creates the test cluster")
        nodes: list[RedisServer] = []
        try:
            for _ in range(masters):
                nodes.append(_start_node(node_timeout_ms))
            addresses = [f"{HOST}:{node.port}" for node in nodes]
            command = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0"]
            subprocess.run(
                [*command, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=_READY_TIMEOUT,
            )
            cluster = cls(nodes)
            cluster.wait_ok()
            return cluster
        except BaseException:
            for node in nodes:
                node.close()
            raise

    @property
    def url(self) -> str:
        """A startup node's URL (``redis://127.0.0.1:PORT/0``)."""
        return self.nodes[0].url

    def wait_ok(self, timeout: float = _READY_TIMEOUT) -> None:
        """Wait until every running node reports ``cluster_state:ok``."""
        for node in self.nodes:
            wait_until(
                lambda node=node: _cluster_ok(node),  # type: ignore[misc]
                timeout=timeout,
                message=f"cluster_state:ok on {node.url}",
            )

    def client(self) -> redis.RedisCluster:
        """A synchronous cluster client (for checks and clean-up in tests)."""
        return redis.RedisCluster(host=HOST, port=self.nodes[0].port)

    def flushall(self) -> None:
        """Empty every node (``FLUSHALL`` on each: these servers are ours alone)."""
        for node in self.nodes:
            with node.client() as admin:
                admin.flushall()

    def close(self) -> None:
        """Stop every node and remove their directories. Idempotent."""
        for node in self.nodes:
            node.resume()
            node.close()

    def __enter__(self) -> RedisClusterServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
