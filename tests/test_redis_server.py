"""Tests of integration.redis_server: the private redis-server processes the suite relies on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from integration import redis_server as redis_server_module
from integration.redis_server import (
    BINARY_ENV_VAR,
    RedisServer,
    WaitTimeoutError,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def fail_fast_client(server: RedisServer, **kwargs: Any) -> redis.Redis:
    """A client that neither retries nor reconnects behind the test's back."""
    kwargs.setdefault("socket_timeout", 2.0)
    kwargs.setdefault("socket_connect_timeout", 2.0)
    return server.client(retry=Retry(NoBackoff(), 0), **kwargs)


def client_ids(server: RedisServer) -> set[int]:
    with fail_fast_client(server) as admin:
        me = admin.client_id()
        return {int(c["id"]) for c in admin.client_list()} - {me}


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- start, properties, close --------------------------------------------------------------


def test_start_answers_ping_with_private_settings() -> None:
    with RedisServer.start() as server:
        assert server.is_running
        assert server.host == "127.0.0.1"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert os.path.isdir(server.directory)
        with server.client() as client:
            assert client.ping() is True
            assert client.set(b"k", b"v")
            assert client.get(b"k") == b"v"  # bytes: decode_responses is off
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            config_dir = client.config_get("dir")["dir"]
        assert os.path.realpath(config_dir) == os.path.realpath(server.directory)
        info = server.info("server")
        assert info["process_id"] == server.pid
        assert info["tcp_port"] == server.port
    assert not server.is_running
    assert not os.path.exists(server.directory)
    server.close()  # idempotent
    server.stop()
    server.kill()
    server.resume()


def test_two_servers_get_different_ports_and_separate_data(
    redis_url: str, redis_server: RedisServer, fresh_redis_server: RedisServer
) -> None:
    assert redis_server.port != fresh_redis_server.port
    assert redis_server.pid != fresh_redis_server.pid
    with redis_server.client() as shared, fresh_redis_server.client() as fresh:
        shared.set(b"only-here", b"1")
        assert fresh.get(b"only-here") is None


@pytest.mark.parametrize("round_", range(2))
def test_redis_url_gives_an_empty_shared_server(redis_url: str, round_: int) -> None:
    # Whichever round runs second fails unless the fixture flushed the first one's key.
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0
        client.set(b"left-behind", round_)


def test_explicit_port_is_used(fresh_redis_server: RedisServer) -> None:
    port = fresh_redis_server.port
    fresh_redis_server.close()
    with RedisServer.start(port=port) as server, server.client() as client:
        assert server.port == port
        assert client.ping() is True


def test_extra_args_are_applied() -> None:
    with (
        RedisServer.start(extra_args=["--maxmemory", "7mb", "--save", "60 1"]) as server,
        server.client() as client,
    ):
        assert client.config_get("maxmemory") == {"maxmemory": str(7 * 1024 * 1024)}
        assert client.config_get("save") == {"save": "60 1"}  # later arguments win


# -- faults ----------------------------------------------------------------------------------


def test_kill_makes_ping_fail(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    pid = server.pid
    with fail_fast_client(server) as client:
        assert client.ping() is True
        server.kill()
        assert not server.is_running
        assert not pid_exists(pid)  # reaped, not a zombie
        with pytest.raises(redis.ConnectionError):
            client.ping()
    server.kill()  # no-op on a dead server


def test_stop_is_graceful(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    server.stop()
    assert not server.is_running
    log = Path(server.log_path).read_text()
    assert "User requested shutdown" in log  # SHUTDOWN NOSAVE, not a signal
    with pytest.raises(redis.ConnectionError), fail_fast_client(server) as client:
        client.ping()


def test_stop_a_paused_server(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.pause()
    fresh_redis_server.stop()
    assert not fresh_redis_server.is_running


def test_pause_makes_clients_time_out_and_resume_brings_answers_back(
    fresh_redis_server: RedisServer,
) -> None:
    server = fresh_redis_server
    with fail_fast_client(server, socket_timeout=0.2) as client:
        assert client.ping() is True
        server.pause()
        assert server.is_running
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.resume()
        assert client.ping() is True
        assert client.set(b"after-resume", b"1")


def test_pause_a_dead_server_is_an_error(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.kill()
    with pytest.raises(RuntimeError, match="not running"):
        fresh_redis_server.pause()
    fresh_redis_server.resume()  # always safe


@pytest.mark.parametrize("before", ["nothing", "kill", "pause", "ungraceful"])
def test_restart_comes_back_empty_on_the_same_port(
    fresh_redis_server: RedisServer, before: str
) -> None:
    server = fresh_redis_server
    port, old_pid = server.port, server.pid
    with server.client() as client:
        client.set(b"before-restart", b"1")
    if before == "kill":
        server.kill()
    elif before == "pause":
        server.pause()
    server.restart(graceful=before != "ungraceful")
    assert server.is_running
    assert server.port == port
    assert server.pid != old_pid
    assert not pid_exists(old_pid)
    assert server.info("server")["process_id"] == server.pid
    with redis.Redis.from_url(server.url) as client:
        assert client.get(b"before-restart") is None
        assert client.dbsize() == 0


def test_restart_keeps_extra_args() -> None:
    with RedisServer.start(extra_args=["--maxmemory", "3mb"]) as server:
        server.restart()
        assert server.info("memory")["maxmemory"] == 3 * 1024 * 1024


def test_restart_after_close_is_an_error(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.close()
    with pytest.raises(RuntimeError, match="closed"):
        fresh_redis_server.restart()


def test_restart_with_live_client_connections(fresh_redis_server: RedisServer) -> None:
    # Clients connected at kill time leave the server's side of their sockets in TIME_WAIT;
    # the new process must still get the port.
    server = fresh_redis_server
    clients = [server.client() for _ in range(5)]
    try:
        for c in clients:
            c.ping()
        server.restart(graceful=False)
        for c in clients:  # default clients reconnect transparently
            assert c.ping() is True
    finally:
        for c in clients:
            c.close()


# -- kill_clients ----------------------------------------------------------------------------


def test_kill_clients_by_name(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    with (
        server.client(client_name="victim") as victim,
        server.client(client_name="bystander") as bystander,
    ):
        victim_id = victim.client_id()
        bystander_id = bystander.client_id()
        assert {victim_id, bystander_id} <= client_ids(server)

        assert server.kill_clients(name="victim") == 1

        remaining = client_ids(server)
        assert victim_id not in remaining
        assert bystander_id in remaining
        assert bystander.client_id() == bystander_id  # same connection, untouched
        # The victim's connection is gone: its client reconnects (redis-py retries by
        # default), with a new connection id.
        new_victim_id = victim.client_id()
        assert new_victim_id != victim_id
        assert server.kill_clients(name="nobody") == 0


def test_kill_clients_by_type_and_all(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    with server.client() as normal, server.client() as subscriber_client:
        normal_id = normal.client_id()
        pubsub = subscriber_client.pubsub()
        try:
            pubsub.subscribe("channel")
            assert wait_until(
                lambda: pubsub.get_message(timeout=0.1), timeout=5, message="subscribed"
            )["type"] in ("subscribe", b"subscribe")

            assert server.kill_clients(client_type="pubsub") == 1
            assert normal.client_id() == normal_id  # normal client untouched
        finally:
            pubsub.close()

        # No filter: everything except the caller's own connection.
        others = len(client_ids(server))
        assert others >= 1
        assert server.kill_clients() == others
        assert client_ids(server) == set()
        # skip_me=False also kills (and counts) the connection kill_clients itself uses.
        assert server.kill_clients(skip_me=False) == 1


def test_kill_clients_rejects_unknown_type(fresh_redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="client_type"):
        fresh_redis_server.kill_clients(client_type="slave-ish")


# -- start failures ------------------------------------------------------------------------------


def test_start_retries_with_a_new_port_when_the_port_is_taken(
    fresh_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The "race": the port chosen first is taken by another redis-server, which answers PING.
    # start() must notice its own process failed to bind, not mistake the other one for it.
    taken = fresh_redis_server.port
    real_free_port = redis_server_module._free_port
    ports: Iterator[int] = iter([taken])
    monkeypatch.setattr(redis_server_module, "_free_port", lambda: next(ports, real_free_port()))
    with RedisServer.start() as server:
        assert server.port != taken
        assert server.info("server")["process_id"] == server.pid
    assert fresh_redis_server.info("server")["process_id"] == fresh_redis_server.pid


def test_start_gives_up_when_every_port_is_taken(
    fresh_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_server_module, "_free_port", lambda: fresh_redis_server.port)
    with pytest.raises(RuntimeError, match="in use"):
        RedisServer.start()


def test_start_on_a_taken_explicit_port_fails() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(RuntimeError, match="in use"):
            RedisServer.start(port=listener.getsockname()[1])


def test_start_failure_reports_redis_output() -> None:
    with pytest.raises(RuntimeError, match="no-such-directive"):
        RedisServer.start(extra_args=["--no-such-directive", "1"])


def test_binary_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BINARY_ENV_VAR, "/nonexistent/redis-server")
    with pytest.raises(RuntimeError, match="/nonexistent/redis-server"):
        RedisServer.start()


def test_binary_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.environ.get(BINARY_ENV_VAR) or _which_redis_server()
    monkeypatch.setenv(BINARY_ENV_VAR, "/nonexistent/redis-server")
    with RedisServer.start(binary=real) as server, server.client() as client:
        assert client.ping() is True


def test_no_binary_found_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BINARY_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="redis-server not found"):
        RedisServer.start()


def _which_redis_server() -> str:
    import shutil

    found = shutil.which("redis-server")
    assert found is not None
    return found


# -- safety net --------------------------------------------------------------------------------


def test_servers_left_running_are_killed_at_interpreter_exit() -> None:
    script = textwrap.dedent(
        """
        from integration.redis_server import RedisServer
        server = RedisServer.start()
        print(server.pid, server.directory, flush=True)
        # no close(): the atexit hook must clean up
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid_text, directory = result.stdout.split()
    pid = int(pid_text)
    try:
        assert not pid_exists(pid)
        assert not os.path.exists(directory)
    finally:
        if pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


# -- wait_until ----------------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", "ready", "later"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.001) == "ready"


def test_wait_until_raises_on_timeout_with_the_message() -> None:
    calls = 0

    def never() -> bool:
        nonlocal calls
        calls += 1
        return False

    with pytest.raises(WaitTimeoutError, match="the moon to turn blue") as excinfo:
        wait_until(never, timeout=0.05, interval=0.01, message="the moon to turn blue")
    assert isinstance(excinfo.value, AssertionError)
    assert isinstance(excinfo.value, TimeoutError)
    assert calls >= 2  # polled, and checked again at the deadline


def test_wait_until_with_zero_timeout_checks_once() -> None:
    assert wait_until(lambda: 42, timeout=0) == 42
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, timeout=0)


def test_wait_until_propagates_predicate_errors() -> None:
    def boom() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        wait_until(boom, timeout=1)
