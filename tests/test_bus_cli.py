"""``python -m bus``: the shell entry point, run as a real subprocess from the repository root."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from bus import Publisher
from bus._names import bus_key, flush_key, watermark_key
from integration.redis_server import RedisServer

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0  # a subprocess that hangs this long is a failure, not slowness


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A loopback URL where nothing listens: a private server's port, after killing it."""
    server = RedisServer.start()
    try:
        url = server.url
        server.kill()
    finally:
        server.close()
    return url


def _watermarks_printed(stdout: str) -> dict[str, int]:
    """``invalidated user_id=42 watermark=123`` lines as {"user_id=42": 123}."""
    marks = {}
    for line in stdout.splitlines():
        words = line.split()
        assert words[0] == "invalidated", line
        assert words[2].startswith("watermark="), line
        marks[words[1]] = int(words[2].removeprefix("watermark="))
    return marks


def test_invalidate(redis_url: str, client: redis.Redis) -> None:
    seconds, micros = client.time()
    before = int(seconds) * 1_000_000 + int(micros)
    result = run_cli(
        "invalidate", "--url", redis_url, "--key-type", "user_id",
        "--id", "42", "--id", "43", "--future-buffer-ms", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = _watermarks_printed(result.stdout)
    assert set(printed) == {"user_id=42", "user_id=43"}
    for entity_id in ("42", "43"):
        stored = int(client.get(watermark_key("gcache", "user_id", entity_id)))
        assert stored == printed[f"user_id={entity_id}"]
        assert stored >= before + 10_000
    # One batch: one stream entry carrying both entities.
    [(_, fields)] = client.xrange(bus_key("gcache"))
    assert b'"42"' in fields[b"d"] and b'"43"' in fields[b"d"]


def test_flush(redis_url: str, client: redis.Redis) -> None:
    client.set(b"unrelated", b"stays")
    result = run_cli("flush", "--url", redis_url)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("flushed gcache watermark=")
    printed = int(result.stdout.split("watermark=")[1])
    assert int(client.get(flush_key("gcache"))) == printed
    assert client.get(b"unrelated") == b"stays"


def test_namespace_option_isolates(redis_url: str, client: redis.Redis) -> None:
    inv = run_cli(
        "invalidate", "--url", redis_url, "--namespace", "other", "--key-type", "k", "--id", "1"
    )
    flush = run_cli("flush", "--url", redis_url, "--namespace", "other")
    assert inv.returncode == flush.returncode == 0, inv.stderr + flush.stderr
    assert client.get(watermark_key("other", "k", "1")) is not None
    assert client.get(flush_key("other")) is not None
    assert client.exists(watermark_key("gcache", "k", "1"), flush_key("gcache")) == 0
    assert client.exists(bus_key("gcache")) == 0
    assert client.xlen(bus_key("other")) == 2


def test_pubsub_transport_creates_no_stream(redis_url: str, client: redis.Redis) -> None:
    result = run_cli(
        "invalidate", "--url", redis_url, "--transport", "pubsub", "--key-type", "k", "--id", "1"
    )
    assert result.returncode == 0, result.stderr
    assert client.get(watermark_key("gcache", "k", "1")) is not None
    assert client.exists(bus_key("gcache")) == 0


class LineReader:
    """Reads a subprocess' stdout on a thread, so the test can wait for lines with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)  # EOF

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def next_line(self, timeout: float = TIMEOUT) -> str | None:
        deadline = time.monotonic() + timeout
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout:g}s") from None


def test_tail_prints_events_and_stops_after_count(redis_url: str) -> None:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "bus", "tail", "--url", redis_url,
            "--namespace", "tailed", "--count", "2", "--seconds", "30",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    try:
        reader = LineReader(process)
        first = reader.next_line()
        assert first is not None and first.startswith("-- gap: start"), first
        with Publisher.from_url(redis_url, namespace="tailed") as publisher:
            publisher.invalidate_many([("user_id", "42"), ("org_id", "7")])
            mark = publisher.flushall()
        inv, flush = reader.next_line(), reader.next_line()
        assert process.wait(timeout=TIMEOUT) == 0
        assert reader.next_line() is None  # nothing after the two events
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read() if process.stderr else ""
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert inv is not None and flush is not None
    assert " seq=1 " in inv
    assert inv.endswith("invalidate user_id=42 org_id=7")
    assert " seq=2 " in flush
    assert flush.endswith(f"flush watermark={mark}")
    assert stderr == ""


def test_tail_stops_after_seconds(redis_url: str) -> None:
    result = run_cli("tail", "--url", redis_url, "--seconds", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("-- gap: start")
    assert result.stderr == ""


@pytest.mark.parametrize(
    "command",
    [
        ["invalidate", "--key-type", "user_id", "--id", "42"],
        ["flush"],
    ],
)
def test_unreachable_redis_exits_1_with_an_error(dead_url: str, command: list[str]) -> None:
    result = run_cli(*command, "--url", dead_url)
    assert result.returncode == 1
    assert result.stderr.startswith("error:")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["invalidate", "--url", "redis://127.0.0.1:1/0", "--id", "42"],  # no --key-type
        ["invalidate", "--url", "redis://127.0.0.1:1/0", "--key-type", "user_id"],  # no --id
        ["flush", "--transport", "kafka"],
        ["compact"],
        [],
    ],
)
def test_bad_command_lines_exit_2(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
