"""Run one harness role on its own: ``python -m integration.roles instance|writer ...``.

The harness' coordinator spawns the roles and drives them; this runs the same role code
(:func:`~integration.instance.instance_main`, :func:`~integration.writer.writer_main`) in a
spawned child against the Redis and the SQLite source of truth given on the command line, and
starts it as soon as it is ready — for ``docker-compose.yml``, where each replica is a
container. It runs until SIGTERM/SIGINT (or ``--duration`` seconds), then stops the role
cleanly. There is no checker here: the records go to ``--log-dir`` and the figures to each
instance's ``/metrics``.

Standalone, a writer invalidates through its :class:`bus.Publisher` only (it knows no
instance's command port) and every role creates the source of truth if it is missing
(``--entities`` rows; several containers may race to do it: one wins, atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from .config import RunConfig
from .instance import InstanceSpec, instance_main
from .truth import create_truth
from .writer import WriterSpec, writer_main

__all__ = ["build_parser", "ensure_truth", "main"]

_CTX = multiprocessing.get_context("spawn")
_POLL_S = 0.5
_STOP_TIMEOUT_S = 30.0


def ensure_truth(path: str, entities: int, payload_bytes: int) -> None:
    """Create the source of truth at ``path`` unless it exists (safe against a concurrent
    creator: the database is built aside, then hard-linked into place)."""
    if os.path.exists(path):
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".truth-", suffix=".db", dir=directory)
    os.close(fd)
    os.unlink(tmp)
    try:
        create_truth(tmp, entities, payload_bytes)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    parser = argparse.ArgumentParser(
        prog="python -m integration.roles",
        description="Run one role of the integration harness standalone, until stopped.",
    )
    roles = parser.add_subparsers(dest="role", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--redis-url", required=True, help="the Redis the role talks to")
    add("--db", required=True, help="the SQLite source of truth (created if missing)")
    add("--entities", type=int, default=d.entities, help="rows, when creating the truth")
    add("--zipf", type=float, default=d.zipf)
    add("--transport", choices=("streams", "pubsub"), default=d.transport)
    add("--max-staleness-ms", type=float, default=d.max_staleness_ms)
    add("--namespace", default=d.namespace)
    add("--seed", type=int, default=d.seed)
    add("--log-dir", default=None, help="where the record logs go (default: a temporary dir)")
    add("--duration", type=float, default=None, help="stop after this many seconds")

    instance = roles.add_parser("instance", parents=[common], help="a cache instance")
    add = instance.add_argument
    add("--slot", type=int, default=0, help="this instance's number (logs and metrics)")
    add("--metrics-host", default="127.0.0.1", help="address /metrics listens on")
    add("--metrics-port", type=int, default=9100)
    add("--control-port", type=int, default=0, help="command port (0: any free port)")
    add("--read-rate", type=float, default=d.read_rate, help="reads/s")
    add("--function-ms", type=float, default=d.function_ms)
    add("--cancel-probes", type=float, default=d.cancel_probes)
    add("--local-ttl", type=float, default=d.local_ttl)
    add("--remote-ttl", type=float, default=d.remote_ttl)

    writer = roles.add_parser("writer", parents=[common], help="a writer (truth + invalidation)")
    add = writer.add_argument
    add("--index", type=int, default=0, help="this writer's number")
    add("--write-rate", type=float, default=d.write_rate, help="writes/s of this writer")
    return parser


def _config(args: argparse.Namespace) -> RunConfig:
    fields: dict[str, Any] = {
        "entities": args.entities,
        "zipf": args.zipf,
        "transport": args.transport,
        "max_staleness_ms": args.max_staleness_ms,
        "namespace": args.namespace,
        "seed": args.seed,
        "faults": (),
        "redis_url": args.redis_url,
        "via_instance": 0.0,
    }
    if args.role == "instance":
        fields.update(
            read_rate=args.read_rate,
            function_ms=args.function_ms,
            cancel_probes=args.cancel_probes,
            local_ttl=args.local_ttl,
            remote_ttl=args.remote_ttl,
        )
    else:
        fields.update(write_rate=args.write_rate)
    return RunConfig(**fields)


def _run(name: str, target: Callable[..., None], spec: object, duration: float | None) -> int:
    """Run ``target(spec, status, go, stop)`` in a spawned child until a signal or the end of
    ``duration``; the child's exit status."""
    status, child_end = _CTX.Pipe(duplex=False)
    go, stop = _CTX.Event(), _CTX.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process = _CTX.Process(target=target, args=(spec, child_end, go, stop), name=name)
    process.start()
    child_end.close()
    go.set()  # no coordinator: start working as soon as ready
    deadline = None if duration is None else time.monotonic() + duration
    while process.is_alive():
        if deadline is not None and time.monotonic() >= deadline:
            stop.set()
        if stop.is_set():
            break
        with contextlib.suppress(EOFError, OSError):
            if status.poll(_POLL_S):
                message = status.recv()
                print(f"{name}: {message[0]} {message[1:]!r}"[:4000], flush=True)
    process.join(_STOP_TIMEOUT_S)
    if process.is_alive():
        print(f"{name}: did not stop in {_STOP_TIMEOUT_S:g} s; terminating", file=sys.stderr)
        process.terminate()
        process.join()
    code = process.exitcode
    return 0 if code == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = _config(args)
    log_dir = args.log_dir or tempfile.mkdtemp(prefix=f"gcache-{args.role}-")
    os.makedirs(log_dir, exist_ok=True)
    ensure_truth(args.db, config.entities, config.payload_bytes)
    spec: InstanceSpec | WriterSpec
    if args.role == "instance":
        spec = InstanceSpec(
            config=config,
            slot=args.slot,
            incarnation=1,
            db_path=args.db,
            redis_url=args.redis_url,
            metrics_port=args.metrics_port,
            control_port=args.control_port,
            authkey=os.urandom(16),
            log_path=os.path.join(log_dir, f"instance-{args.slot}-{os.getpid()}.log"),
            metrics_host=args.metrics_host,
        )
        target: Callable[..., None] = instance_main
    else:
        spec = WriterSpec(
            config=config,
            index=args.index,
            db_path=args.db,
            redis_url=args.redis_url,
            control_ports=(),
            authkey=os.urandom(16),
            log_path=os.path.join(log_dir, f"writer-{args.index}-{os.getpid()}.log"),
        )
        target = writer_main
    print(f"{args.role}: redis {args.redis_url}, truth {args.db}, logs {log_dir}", flush=True)
    return _run(f"{args.role}-{getattr(args, 'slot', getattr(args, 'index', 0))}", target, spec,
                args.duration)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
