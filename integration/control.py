"""The instances' command port: how writers make an instance call ``ainvalidate``.

Each instance listens on a fixed loopback port (the same across its restarts) with
:mod:`multiprocessing.connection` (authenticated, message framed). A request is a tuple; the
only ones are ``("invalidate", entity_id, future_buffer_ms)`` → ``("ok", start_ns, ack_ns)`` or
``("error", start_ns, text)``, and ``("hello",)`` → ``("ok", pid, incarnation)``.

A crashed or restarting instance simply refuses the connection; the client reports that as a
:class:`ControlError` and the writer falls back to its publisher.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

__all__ = ["ControlClient", "ControlError", "ControlServer"]

HOST = "127.0.0.1"
_BACKLOG = 32

Handler = Callable[[tuple[Any, ...]], tuple[Any, ...]]


class ControlError(RuntimeError):
    """The instance could not be reached, or did not answer in time."""


class ControlServer:
    """Serves requests on ``port`` in daemon threads (one per connection)."""

    def __init__(self, port: int, authkey: bytes, handler: Handler) -> None:
        self._listener = Listener((HOST, port), backlog=_BACKLOG, authkey=authkey)
        self._handler = handler
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="control-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except OSError:
                return  # closed
            except Exception:  # a failed handshake (bad authkey, dropped): keep serving
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with contextlib.closing(conn):
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    reply = self._handler(tuple(request))
                except Exception as exc:  # the handler reports its own errors; this is a bug
                    reply = ("error", 0, f"handler failed: {exc!r}")
                try:
                    conn.send(reply)
                except OSError:
                    return

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()


class ControlClient:
    """A reusable connection to one instance's command port (reconnects after a failure)."""

    def __init__(self, port: int, authkey: bytes, timeout: float) -> None:
        self._port = port
        self._authkey = authkey
        self._timeout = timeout
        self._conn: Connection | None = None

    def request(self, *message: Any) -> tuple[Any, ...]:
        try:
            if self._conn is None:
                self._conn = Client((HOST, self._port), authkey=self._authkey)
            self._conn.send(message)
            if not self._conn.poll(self._timeout):
                raise ControlError(f"no answer from port {self._port} in {self._timeout:g}s")
            reply = self._conn.recv()
        except ControlError:
            self.close()
            raise
        except (OSError, EOFError) as exc:
            self.close()
            raise ControlError(f"port {self._port}: {exc!r}") from exc
        return tuple(reply)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
