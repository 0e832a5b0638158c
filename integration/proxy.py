"""A small loopback TCP proxy between the instances and Redis, for network faults.

Every accepted connection gets its own upstream connection to Redis; bytes are relayed both
ways unchanged. On command the proxy

* delays every chunk by :attr:`Proxy.latency_s` in each direction (order kept: a chunk is never
  written before one read earlier on the same side), and
* drops every connection it carries (:meth:`Proxy.drop_all`: both sockets aborted, as a broken
  network path would leave them).

When either side closes, the other is closed too, so a ``CLIENT KILL`` on the server or a dead
redis-server reaches the instance as a closed connection, as it would without the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["Proxy", "ProxyStats"]

HOST = "127.0.0.1"
_CHUNK = 1 << 16
_EPSILON_S = 1e-6


@dataclass(slots=True)
class ProxyStats:
    """Counters of a proxy's life."""

    accepted: int = 0
    refused: int = 0
    """Connections closed at once because Redis did not accept the upstream connection."""
    dropped: int = 0
    """Connections closed by :meth:`Proxy.drop_all`."""
    bytes: int = 0


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class Proxy:
    """Relays ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.latency_s = 0.0
        self.stats = ProxyStats()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen (on a free port unless ``port`` is given); returns the port."""
        self._server = await asyncio.start_server(self._accept, HOST, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def connections(self) -> int:
        return len(self._links)

    def drop_all(self) -> int:
        """Abort every relayed connection; returns how many there were."""
        links = list(self._links)
        for link in links:
            link.abort()
        self.stats.dropped += len(links)
        return len(links)

    async def close(self) -> None:
        """Stop listening, drop every connection and let their relays finish."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        for _ in range(100):  # each relay ends once its sockets are aborted
            if not self._links:
                break
            await asyncio.sleep(0.01)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self.stats.refused += 1
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._relay(reader, up_writer, link), self._relay(up_reader, writer, link)
            )
        finally:
            self._links.discard(link)
            link.abort()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Copy ``reader`` to ``writer`` until either side ends, then close both."""
        loop = asyncio.get_running_loop()
        last_due = 0.0

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                self.stats.bytes += len(data)
                now = loop.time()
                due = now + self.latency_s
                if due <= now and last_due <= now:
                    writer.write(data)
                    await writer.drain()
                else:
                    # Strictly increasing due times keep the order when the latency changes.
                    due = max(due, last_due + _EPSILON_S)
                    last_due = due
                    loop.call_at(due, send, data)
        except (ConnectionError, OSError):
            pass
        finally:
            link.abort()
