"""Private, throw-away ``redis-server`` processes for tests, benchmarks and the integration harness.

Nothing in gcache's test suite talks to a Redis server it did not start itself. This module
launches ``redis-server`` as a child process bound to ``127.0.0.1`` on a free port, in a fresh
temporary directory, with persistence switched off, and gives the caller the handles needed
to inject faults into it: kill it, freeze it (``SIGSTOP``), thaw it, restart it empty on the
same port, or cut individual client connections.

Typical use::

    with RedisServer.start() as server:
        client = server.client()
        try:
            client.set(b"k", b"v")
            server.kill_clients(name="gcache")  # drop the library's connections
            server.restart()  # same port, empty data set
        finally:
            client.close()

Which binary is started: the ``binary`` argument, else the ``GCACHE_REDIS_SERVER`` environment
variable, else ``redis-server`` from ``PATH``.

Servers must never outlive the Python process that started them: :meth:`RedisServer.close`
(also run by the context manager) is idempotent, and an :mod:`atexit` hook kills and reaps any
server this module started that is still alive when the interpreter exits. (Nothing can run
if the interpreter itself is killed with ``SIGKILL``; such orphans are left behind.)

:func:`wait_until` is the project's helper to wait for a condition with a deadline, instead of
sleeping for a fixed time and hoping.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["BINARY_ENV_VAR", "RedisServer", "WaitTimeoutError", "wait_until"]

BINARY_ENV_VAR = "GCACHE_REDIS_SERVER"
"""Environment variable naming the ``redis-server`` binary to use when none is passed."""

HOST = "127.0.0.1"

_T = TypeVar("_T")

# Deadlines are generous on purpose: the suite runs on small, busy CI machines, and a deadline
# only costs time when something is already broken.
_START_TIMEOUT = 10.0  # launch until PING answers
_STOP_STEP_TIMEOUT = 5.0  # each step of stop(): SHUTDOWN, then SIGTERM, then SIGKILL
_RESTART_PORT_TIMEOUT = 10.0  # how long restart() keeps trying to get its old port back
_PORT_ATTEMPTS = 5  # fresh ports tried by start() when another process steals the port
_POLL_INTERVAL = 0.01
_ADMIN_SOCKET_TIMEOUT = 2.0
_PROBE_TIMEOUT = 0.5  # per PING/INFO attempt while waiting for a server to start

_CLIENT_TYPES = frozenset({"normal", "master", "replica", "pubsub"})
_ADDRESS_IN_USE = "Address already in use"
_LOG_FILE = "redis.log"  # redis' own log (--logfile)
_OUTPUT_FILE = "redis.out"  # stdout/stderr of the process: config errors land here


class WaitTimeoutError(AssertionError, TimeoutError):
    """Raised by :func:`wait_until` when the condition did not become true in time.

    It is both an :class:`AssertionError` (so pytest reports it as a plain test failure) and a
    :class:`TimeoutError` (so non-test code can catch it as a timeout).
    """


def wait_until(
    predicate: Callable[[], _T],
    *,
    timeout: float,
    interval: float = _POLL_INTERVAL,
    message: str = "",
) -> _T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    The predicate is called at least once, and once more at (or after) the deadline, so a
    condition that becomes true while the caller is descheduled is not reported as a timeout.
    Exceptions raised by the predicate propagate unchanged.

    :param timeout: seconds before giving up.
    :param interval: seconds to sleep between two calls.
    :param message: what was being waited for; included in the error.
    :raises WaitTimeoutError: (an ``AssertionError`` and a ``TimeoutError``) on timeout.
    """
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0, got {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for: {what}")
        time.sleep(min(interval, remaining))


# --------------------------------------------------------------------------------------------
# Safety net: every process this module starts is registered here until it has been reaped,
# together with the pid of the Python process that started it (a forked child must not kill
# its parent's servers). Temporary directories are registered until removed.

_registry_lock = threading.Lock()
_live_processes: dict[subprocess.Popen[bytes], int] = {}
_live_dirs: dict[str, int] = {}


def _register(process: subprocess.Popen[bytes]) -> None:
    with _registry_lock:
        _live_processes[process] = os.getpid()


def _unregister(process: subprocess.Popen[bytes]) -> None:
    with _registry_lock:
        _live_processes.pop(process, None)


def _kill_leftovers() -> None:
    """``atexit`` hook: kill and reap every server still running, remove temporary dirs."""
    me = os.getpid()
    with _registry_lock:
        processes = [p for p, owner in _live_processes.items() if owner == me]
        dirs = [d for d, owner in _live_dirs.items() if owner == me]
        _live_processes.clear()
        _live_dirs.clear()
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_STOP_STEP_TIMEOUT)
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------------------------
# Launching


class _PortInUseError(RuntimeError):
    """redis-server exited because its port was taken (internal: triggers a retry)."""


def _resolve_binary(binary: str | None) -> str:
    candidate = binary or os.environ.get(BINARY_ENV_VAR) or shutil.which("redis-server")
    if not candidate:
        raise RuntimeError(
            "redis-server not found: pass binary=..., set the "
            f"{BINARY_ENV_VAR} environment variable, or put redis-server on PATH"
        )
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        raise RuntimeError(f"redis-server binary {candidate!r} is not an executable file")
    return candidate


def _free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _password_of(extra_args: Sequence[str]) -> str | None:
    """The ``--requirepass`` value among the server's arguments, if any."""
    args = list(extra_args)
    if "--requirepass" in args and args.index("--requirepass") + 1 < len(args):
        return args[args.index("--requirepass") + 1]
    return None


@contextlib.contextmanager
def _probe_client(
    port: int, timeout: float, extra_args: Sequence[str] = ()
) -> Iterator[redis.Redis]:
    """A client that fails fast (no retries, short timeouts), closed on exit."""
    client = redis.Redis(
        host=HOST,
        port=port,
        password=_password_of(extra_args),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield client
    finally:
        client.close()


def _reap(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to exit; True if it has."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    _unregister(process)
    return True


def _kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()  # SIGKILL also works on a SIGSTOPped process
    if not _reap(process, _STOP_STEP_TIMEOUT):
        raise RuntimeError(f"redis-server pid {process.pid} survived SIGKILL")


def _launch(
    binary: str, port: int, extra_args: Sequence[str], directory: str, timeout: float
) -> subprocess.Popen[bytes]:
    """Start redis-server on ``port`` and wait until *this* process answers PING.

    :raises _PortInUseError: the port was taken by someone else.
    :raises RuntimeError: any other failure to start; the message includes redis' output.
    """
    log_path = os.path.join(directory, _LOG_FILE)
    out_path = os.path.join(directory, _OUTPUT_FILE)
    # The files are shared by successive launches in the same directory (restart()); only
    # what this launch writes is relevant to diagnose it.
    log_offset, out_offset = _file_size(log_path), _file_size(out_path)
    # fmt: off
    argv = [
        binary,
        "--port", str(port),
        "--bind", HOST,
        "--dir", directory,
        "--logfile", _LOG_FILE,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        *extra_args,
    ]
    # fmt: on
    with open(out_path, "ab") as out:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
                # Keep terminal signals (Ctrl-C, Ctrl-Z) for the test runner alone.
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeError(f"cannot execute {binary!r}: {exc}") from exc
    _register(process)

    def output() -> str:
        return _read_from(out_path, out_offset) + _read_from(log_path, log_offset)

    try:
        deadline = time.monotonic() + timeout
        # A probe timeout only costs one more poll; keep it short so a process that has
        # exited (e.g. lost the port to a silent listener) is noticed quickly.
        with _probe_client(port, min(_PROBE_TIMEOUT, timeout), extra_args) as probe:
            while True:
                if process.poll() is not None:
                    text = output()
                    _reap(process, 0)
                    if _ADDRESS_IN_USE in text:
                        raise _PortInUseError(f"port {port} is in use")
                    raise RuntimeError(
                        f"redis-server exited with status {process.returncode} while "
                        f"starting on port {port}; its output:\n{text.strip()}"
                    )
                try:
                    # Another redis-server may own the port; only our own process counts.
                    if probe.info("server").get("process_id") == process.pid:
                        return process
                except redis.RedisError:
                    pass
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"redis-server pid {process.pid} did not answer on port {port} "
                        f"within {timeout:g}s; its output:\n{output().strip()}"
                    )
                time.sleep(_POLL_INTERVAL)
    except BaseException:
        _kill_and_reap(process)
        raise


# --------------------------------------------------------------------------------------------


class RedisServer:
    """A private ``redis-server`` child process. Create one with :meth:`start`.

    Methods are safe to call from several threads. After :meth:`close`, the object can still
    be inspected but not restarted.
    """

    def __init__(
        self,
        *,
        binary: str,
        port: int,
        extra_args: Sequence[str],
        directory: str,
        process: subprocess.Popen[bytes],
    ) -> None:
        """Wrap an already-running server; use :meth:`start` rather than calling this."""
        self._binary = binary
        self._port = port
        self._extra_args = tuple(extra_args)
        self._directory = directory
        self._process = process
        self._closed = False
        self._lock = threading.RLock()

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        timeout: float = _START_TIMEOUT,
    ) -> RedisServer:
        """Launch a new server and return once it answers commands.

        :param port: TCP port to listen on; by default a free loopback port. If another
            process grabs the chosen port before redis binds it, a new port is tried (a few
            times). An explicit ``port`` that is in use is an error.
        :param extra_args: more ``redis-server`` command-line arguments, e.g.
            ``["--maxmemory", "10mb"]``; they come last and so override the defaults.
        :param binary: the ``redis-server`` executable (see the module docstring).
        :param timeout: seconds to wait, per attempt, for the server to answer PING.
        :raises RuntimeError: no binary found, or the server did not start.
        """
        executable = _resolve_binary(binary)
        extra = tuple(extra_args)
        directory = tempfile.mkdtemp(prefix="gcache-redis-")
        with _registry_lock:
            _live_dirs[directory] = os.getpid()
        try:
            attempts = 1 if port is not None else _PORT_ATTEMPTS
            for attempt in range(1, attempts + 1):
                chosen = port if port is not None else _free_port()
                try:
                    process = _launch(executable, chosen, extra, directory, timeout)
                except _PortInUseError:
                    if attempt == attempts:
                        raise RuntimeError(
                            f"redis-server could not bind a port: {chosen} was in use "
                            f"(attempt {attempt} of {attempts})"
                        ) from None
                    continue
                return cls(
                    binary=executable,
                    port=chosen,
                    extra_args=extra,
                    directory=directory,
                    process=process,
                )
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            _remove_dir(directory)
            raise

    # -- properties ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on (always ``127.0.0.1``)."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port; it stays the same across :meth:`restart`."""
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self._port}/0"

    @property
    def pid(self) -> int:
        """Process id of the current (or last) redis-server process; changes on restart."""
        return self._process.pid

    @property
    def is_running(self) -> bool:
        """Whether the process exists (a paused process counts as running)."""
        return self._process.poll() is None

    @property
    def directory(self) -> str:
        """The server's temporary working directory (removed by :meth:`close`)."""
        return self._directory

    @property
    def log_path(self) -> str:
        """Path of redis' log file, handy when debugging a failing test."""
        return os.path.join(self._directory, _LOG_FILE)

    # -- clients ------------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new synchronous client for this server; the caller must close it.

        Keyword arguments are passed to :class:`redis.Redis` (e.g. ``socket_timeout``,
        ``client_name``, ``retry``); ``decode_responses`` defaults to False.
        """
        kwargs.setdefault("decode_responses", False)
        kwargs.setdefault("password", _password_of(self._extra_args))
        return redis.Redis(host=HOST, port=self._port, **kwargs)

    def info(self, section: str | None = None) -> dict[str, Any]:
        """Return ``INFO [section]`` as a dict (values parsed by redis-py)."""
        with _probe_client(self._port, _ADMIN_SOCKET_TIMEOUT, self._extra_args) as admin:
            return admin.info(section)

    def kill_clients(
        self,
        *,
        client_type: str | None = None,
        name: str | None = None,
        skip_me: bool = True,
    ) -> int:
        """Close client connections on the server side and return how many were closed.

        With no filter, every client is killed. Filters combine (logical AND).

        :param client_type: only clients of this type: ``normal``, ``pubsub``, ``replica``
            or ``master``.
        :param name: only clients whose name (``CLIENT SETNAME``) is exactly this.
        :param skip_me: spare the connection this method itself uses. With ``False`` it is
            killed too (last) if it matches, and counted.
        """
        if client_type is not None and client_type not in _CLIENT_TYPES:
            raise ValueError(
                f"client_type must be one of {sorted(_CLIENT_TYPES)}, got {client_type!r}"
            )
        with _probe_client(self._port, _ADMIN_SOCKET_TIMEOUT, self._extra_args) as admin:
            my_id = admin.client_id()
            clients = admin.client_list(_type=client_type)
            ids = [int(c["id"]) for c in clients if name is None or c.get("name") == name]
            victims = [i for i in ids if i != my_id]
            kill_self = my_id in ids and not skip_me
            killed = 0
            for client_id in victims:
                # One at a time: each reply says whether that client still existed.
                killed += admin.client_kill_filter(_id=str(client_id))
            if kill_self:
                # The ID filter implies SKIPME yes unless told otherwise. Redis sends the
                # reply before it closes the connection.
                try:
                    killed += admin.client_kill_filter(_id=str(my_id), skipme=False)
                except redis.ConnectionError:
                    killed += 1
            return killed

    # -- faults and life cycle ------------------------------------------------------------------

    def kill(self) -> None:
        """Kill the server with ``SIGKILL`` and reap it. No-op if it is not running."""
        with self._lock:
            _kill_and_reap(self._process)

    def stop(self) -> None:
        """Stop the server gracefully and reap it. No-op if it is not running.

        Sends ``SHUTDOWN NOSAVE``; if the process has not exited within a deadline, sends
        ``SIGTERM``, then ``SIGKILL``. A paused server is resumed first.
        """
        with self._lock:
            process = self._process
            if process.poll() is not None:
                _reap(process, 0)
                return
            process.send_signal(signal.SIGCONT)  # a stopped process cannot act on anything
            try:
                with _probe_client(self._port, _ADMIN_SOCKET_TIMEOUT, self._extra_args) as admin:
                    admin.shutdown(nosave=True)  # swallows the expected ConnectionError
                shutdown_sent = True
            except redis.RedisError:
                shutdown_sent = False  # refused or unreachable: go straight to SIGTERM
            if shutdown_sent and _reap(process, _STOP_STEP_TIMEOUT):
                return
            process.terminate()
            if _reap(process, _STOP_STEP_TIMEOUT):
                return
            _kill_and_reap(process)

    def pause(self) -> None:
        """Freeze the server with ``SIGSTOP``: connections stay open but nothing is answered.

        Always pair with :meth:`resume` (``close``/``stop`` also resume it).

        :raises RuntimeError: the server is not running.
        """
        with self._lock:
            if self._process.poll() is not None:
                raise RuntimeError("cannot pause: redis-server is not running")
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a server frozen by :meth:`pause` (``SIGCONT``). Always safe to call."""
        with self._lock:
            self._process.send_signal(signal.SIGCONT)  # no-op once the process has exited

    def restart(self, *, graceful: bool = True) -> None:
        """Replace the server by a new, empty process on the same port with the same arguments.

        The current process, if still running, is stopped (:meth:`stop`) or, with
        ``graceful=False``, killed. Returns once the new process answers. If the port is
        briefly unavailable, binding is retried until a deadline.

        :raises RuntimeError: the server was closed, or the new process did not start.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot restart a closed RedisServer")
            if graceful:
                self.stop()
            else:
                self.kill()
            deadline = time.monotonic() + _RESTART_PORT_TIMEOUT
            while True:
                try:
                    self._process = _launch(
                        self._binary, self._port, self._extra_args, self._directory, _START_TIMEOUT
                    )
                    return
                except _PortInUseError:
                    if time.monotonic() >= deadline:
                        raise RuntimeError(
                            f"cannot restart redis-server: port {self._port} still in use "
                            f"after {_RESTART_PORT_TIMEOUT:g}s"
                        ) from None
                    time.sleep(0.05)

    def close(self) -> None:
        """Stop the server and remove its temporary directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                self.stop()
            finally:
                _remove_dir(self._directory)
                self._closed = True

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<RedisServer {self.url} pid={self.pid} {state}>"


def _remove_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    with _registry_lock:
        _live_dirs.pop(directory, None)
