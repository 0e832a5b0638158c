"""The source of truth: a SQLite database in WAL mode, one row per entity.

::

    entity(id INTEGER PRIMARY KEY, version INTEGER, payload TEXT)

Writers bump ``version`` by one in a transaction; instances read a row in the cached function.
WAL mode lets every reader see the last committed version without waiting for a writer. Rows
are returned as :class:`EntityRow`, the value the cache stores (pickled in Redis, the object
itself in the LOCAL layer).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

__all__ = ["Bump", "EntityRow", "TruthReader", "TruthWriter", "create_truth"]

_BUSY_TIMEOUT_S = 10.0


@dataclass(slots=True, eq=False)
class EntityRow:
    """One row as an instance read it.

    ``seen`` is the harness' marker, not data: the read loop sets it on every object it has been
    handed. The LOCAL layer returns the very object it holds (no copy), while a REMOTE hit
    unpickles a new one (pickled before the marker was set), so a call that did not run the
    function and returns an already-marked object was a LOCAL hit.
    """

    entity_id: int
    version: int
    payload: str
    seen: bool = False


def _payload(entity_id: int, version: int, size: int) -> str:
    head = f"entity {entity_id} version {version} "
    return (head * (size // len(head) + 1))[:size]


def create_truth(path: str, entities: int, payload_bytes: int) -> None:
    """Create the database with ``entities`` rows at version 1, in WAL mode."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE entity (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
            "payload TEXT NOT NULL)"
        )
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO entity (id, version, payload) VALUES (?, 1, ?)",
            ((i, _payload(i, 1, payload_bytes)) for i in range(1, entities + 1)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


class TruthReader:
    """Reads rows (autocommit: every SELECT sees the latest committed version)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
        self._conn.execute("PRAGMA query_only=ON")

    def read(self, entity_id: int) -> EntityRow:
        row = self._conn.execute(
            "SELECT version, payload FROM entity WHERE id = ?", (entity_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no entity {entity_id}")
        return EntityRow(entity_id, int(row[0]), str(row[1]))

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True, slots=True)
class Bump:
    """What one write did: the new version and when the transaction began and committed."""

    version: int
    begin_ns: int
    commit_ns: int


class TruthWriter:
    """Bumps a row's version in its own transaction."""

    def __init__(self, path: str, payload_bytes: int) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
        self._payload_bytes = payload_bytes

    def bump(self, entity_id: int) -> Bump:
        """``version = version + 1`` for ``entity_id``, committed before this returns.

        ``begin_ns`` is taken before ``BEGIN``: no reader can see the new version earlier.
        ``commit_ns`` after ``COMMIT`` returned: every reader starting later sees it."""
        conn = self._conn
        begin_ns = time.monotonic_ns()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute(
                "UPDATE entity SET version = version + 1 WHERE id = ? RETURNING version",
                (entity_id,),
            ).fetchone()
            conn.execute(
                "UPDATE entity SET payload = ? WHERE id = ?",
                (_payload(entity_id, int(version), self._payload_bytes), entity_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Bump(int(version), begin_ns, time.monotonic_ns())

    def close(self) -> None:
        self._conn.close()
