"""A private ``redis-server`` that also listens with TLS, for the TLS and ACL tests.

The server keeps its plain loopback port: that is the tests' administration door (the
``default`` user, used to create ACL users and read the ACL log), and it is how
:class:`integration.redis_server.RedisServer` knows the server is up. The code under test is only
ever given the TLS port (``rediss://`` URLs, or ``RedisConfig(ssl=True, port=tls_port)``).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import redis

from integration.redis_server import HOST, RedisServer
from tests.certificates import Certificates

__all__ = ["TlsRedis", "start_tls_redis"]

_ATTEMPTS = 3  # fresh TLS ports tried when another process takes the chosen one


@dataclass(frozen=True, slots=True)
class TlsRedis:
    """A running server with a TLS port; close it with :meth:`close`."""

    server: RedisServer
    tls_port: int
    certificates: Certificates

    def url(self, username: str | None = None, password: str | None = None) -> str:
        """``rediss://[user:password@]127.0.0.1:TLS_PORT/0``."""
        credentials = ""
        if username is not None:
            credentials = quote(username, safe="") + ":" + quote(password or "", safe="") + "@"
        return f"rediss://{credentials}{HOST}:{self.tls_port}/0"

    def admin(self) -> redis.Redis:
        """A client of the ``default`` user on the plain port; the caller closes it."""
        return self.server.client(decode_responses=True)

    def close(self) -> None:
        self.server.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_tls_redis(
    certificates: Certificates,
    *,
    auth_clients: Literal["yes", "no", "optional"] = "optional",
    extra_args: Sequence[str] = (),
) -> TlsRedis:
    """Start a server whose TLS port presents ``certificates.server_cert``.

    :param auth_clients: ``--tls-auth-clients``: ``yes`` demands a client certificate signed by
        the CA (mutual TLS), ``optional`` verifies one only if offered.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        tls_port = _free_port()
        # fmt: off
        args = [
            "--tls-port", str(tls_port),
            "--tls-cert-file", certificates.server_cert,
            "--tls-key-file", certificates.server_key,
            "--tls-ca-cert-file", certificates.ca_cert,
            "--tls-auth-clients", auth_clients,
            *extra_args,
        ]
        # fmt: on
        try:
            server = RedisServer.start(extra_args=args)
        except RuntimeError as exc:
            if "in use" in str(exc) and attempt < _ATTEMPTS:
                continue
            raise
        return TlsRedis(server=server, tls_port=tls_port, certificates=certificates)
    raise AssertionError("unreachable")  # pragma: no cover
