"""Turning the roles' record logs into the :class:`~integration.model.RunData` model.

File names in the run directory (see :mod:`integration.coordinator`):

* ``instance-<slot>-<incarnation>.log``: ``read``, ``fresh``, ``tap``, ``tap_gap``,
  ``tap_flush``, ``life``, ``end`` records;
* ``writer-<index>.log``: ``write`` records;
* ``injector.log``: ``fault`` and ``proxy`` records.
"""

from __future__ import annotations

import os
import re

from .eventlog import read_log
from .model import (
    CancelProbe,
    FaultWindow,
    FreshChange,
    ReadRecord,
    RunData,
    TapArrival,
    WriteRecord,
)

__all__ = ["instance_log_name", "load_logs", "writer_log_name"]

_INSTANCE = re.compile(r"^instance-(\d+)-(\d+)\.log$")
_WRITER = re.compile(r"^writer-(\d+)\.log$")
INJECTOR_LOG = "injector.log"


def instance_log_name(slot: int, incarnation: int) -> str:
    return f"instance-{slot}-{incarnation}.log"


def writer_log_name(index: int) -> str:
    return f"writer-{index}.log"


def _load_instance(path: str, slot: int, incarnation: int, data: RunData) -> None:
    for record in read_log(path):
        kind = record[0]
        if kind == "read":
            _, start, end, entity, version, source, error = record
            data.reads.append(
                ReadRecord(slot, incarnation, entity, start, end, version, source, error)
            )
        elif kind == "cancel_probe":
            data.cancel_probes.append(CancelProbe(slot, incarnation, record[1], record[2]))
        elif kind == "fresh":
            data.fresh.append(FreshChange(slot, incarnation, record[1], bool(record[2])))
        elif kind == "tap":
            _, arrival, seq, key_type, entity_id, watermark, sent_at = record
            data.taps.append(
                TapArrival(
                    slot, incarnation, arrival, seq, key_type, str(entity_id), watermark, sent_at
                )
            )


def _load_writer(path: str, index: int, data: RunData) -> None:
    for record in read_log(path):
        if record[0] != "write":
            continue
        _, entity, version, begin, commit, start, ack, via, attempts, failures = record
        data.writes.append(
            WriteRecord(
                writer=index,
                entity=entity,
                version=version,
                begin_ns=begin,
                commit_ns=commit,
                invalidate_ns=start,
                ack_ns=ack,
                via=via,
                attempts=attempts,
                failures=tuple(failures),
            )
        )


def _load_injector(path: str, data: RunData) -> None:
    for record in read_log(path):
        if record[0] == "fault":
            _, index, kind, start, end, planned_at, detail = record
            data.faults.append(FaultWindow(index, kind, start, end, planned_at, dict(detail)))
        elif record[0] == "proxy":
            _, accepted, refused, dropped, nbytes = record
            data.proxy = {
                "accepted": accepted,
                "refused": refused,
                "dropped": dropped,
                "bytes": nbytes,
            }


def load_logs(directory: str, data: RunData) -> None:
    """Add every record found in ``directory`` to ``data`` (reads sorted by start time)."""
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if match := _INSTANCE.match(name):
            _load_instance(path, int(match[1]), int(match[2]), data)
        elif match := _WRITER.match(name):
            _load_writer(path, int(match[1]), data)
        elif name == INJECTOR_LOG:
            _load_injector(path, data)
    data.reads.sort(key=lambda r: r.start_ns)
    data.writes.sort(key=lambda w: w.commit_ns)
    data.taps.sort(key=lambda t: t.arrival_ns)
    data.fresh.sort(key=lambda f: (f.slot, f.incarnation, f.at_ns))
    data.faults.sort(key=lambda f: f.start_ns)
