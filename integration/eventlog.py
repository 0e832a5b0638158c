"""Per-process record logs: what every role saw, for the checker to judge after the run.

Each process incarnation appends JSON lines (``[kind, field, ...]``, encoded with orjson) to a
file of its own in the run directory. The file is flushed every :data:`FLUSH_INTERVAL_S`, so a
``SIGKILL`` (the ``crash`` fault) loses at most that much of the tail; a torn last line is
skipped when reading. Nothing is sent over pipes while the workload runs: logging costs one
``dumps`` and one buffered write per record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

__all__ = ["FLUSH_INTERVAL_S", "EventLog", "read_log", "route_python_logging"]

FLUSH_INTERVAL_S = 0.1


class EventLog:
    """An append-only record log (not thread-safe: one writer thread per log)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "ab", buffering=1 << 16)  # noqa: SIM115 - kept open
        self._last_flush = time.monotonic()

    def write(self, kind: str, *fields: Any) -> None:
        self._file.write(orjson.dumps([kind, *fields]) + b"\n")

    def flush_due(self) -> None:
        """Flush if the last flush is older than :data:`FLUSH_INTERVAL_S`."""
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


def read_log(path: str) -> Iterator[list[Any]]:
    """Every complete record of ``path``, in order (a torn last line is skipped)."""
    with open(path, "rb") as file:
        for line in file:
            if not line.endswith(b"\n"):
                return  # cut by a SIGKILL in the middle of a write
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, list) and record and isinstance(record[0], str):
                yield record


def route_python_logging(path: str) -> None:
    """Send this process's Python logging (gcache's burst logger, redis-py, asyncio) to
    ``path`` instead of the terminal, which belongs to the coordinator's report."""
    import logging

    logging.basicConfig(
        filename=path,
        level=logging.WARNING,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        force=True,
    )
