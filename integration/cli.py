"""``python -m integration``: run the harness, print the report, exit 1 on a violated invariant.

Exit status: 0 when every invariant and sanity verdict holds, 1 when one does not, 2 when the
harness itself could not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .analysis import analyze
from .config import RunConfig, parse_faults
from .coordinator import HarnessError, run_harness
from .html_report import write_html
from .report import render, write_json

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    parser = argparse.ArgumentParser(
        prog="python -m integration",
        description="Run N gcache instances, writers and a fault injector against a private "
        "redis-server and judge every read against the version history.",
    )
    add = parser.add_argument
    add("--instances", type=int, default=d.instances, help="cache instance processes")
    add("--writers", type=int, default=d.writers, help="writer processes")
    add("--entities", type=int, default=d.entities, help="rows in the source of truth")
    add("--zipf", type=float, default=d.zipf, help="Zipf exponent of entity choice")
    add("--read-rate", type=float, default=d.read_rate, help="reads/s of each instance")
    add("--write-rate", type=float, default=d.write_rate, help="writes/s, all writers together")
    add(
        "--read-ratio",
        type=float,
        default=None,
        help="share of reads among all operations; sets --write-rate from the read rates",
    )
    add(
        "--via-instance",
        type=float,
        default=d.via_instance,
        help="share of invalidations sent through an instance's ainvalidate",
    )
    add("--duration", type=float, default=d.duration, help="seconds of workload")
    add("--warmup", type=float, default=d.warmup, help="seconds left out of hit rates")
    add("--future-buffer-ms", type=int, default=d.future_buffer_ms)
    add("--transport", choices=("streams", "pubsub"), default=d.transport)
    add("--max-staleness-ms", type=float, default=d.max_staleness_ms)
    add("--seed", type=int, default=d.seed)
    add(
        "--faults",
        default="all",
        help="none, all, or a comma-separated list of: bus-kill, clients-kill, pause, "
        "restart, crash, latency, drop",
    )
    add("--redis-url", default=None, help="use this Redis instead of a private redis-server")
    add(
        "--function-ms",
        type=float,
        default=d.function_ms,
        help="time the cached function takes after its SELECT (opens the read/write race)",
    )
    add(
        "--cancel-probes",
        type=float,
        default=d.cancel_probes,
        help="cancellation probes per second per instance (0: off)",
    )
    add("--local-ttl", type=float, default=d.local_ttl)
    add("--remote-ttl", type=float, default=d.remote_ttl)
    add("--latency-ms", type=float, default=d.latency_ms, help="proxy delay per chunk, each way")
    add("--latency-s", type=float, default=d.latency_s, help="how long the latency fault lasts")
    add("--pause-s", type=float, default=None, help="how long Redis stays stopped")
    add("--json", dest="json_path", default=None, metavar="PATH", help="write the report here")
    add(
        "--html",
        dest="html_path",
        default=None,
        metavar="PATH",
        help="write a self-contained HTML report (tables and charts) here",
    )
    add("--work-dir", default=None, help="keep the SQLite file and the role logs here")
    add("--keep-logs", action="store_true", help="keep the temporary run directory")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    write_rate = args.write_rate
    if args.read_ratio is not None:
        if not 0 < args.read_ratio < 1:
            raise ValueError("--read-ratio must be between 0 and 1 (exclusive)")
        reads = args.instances * args.read_rate
        write_rate = reads * (1 - args.read_ratio) / args.read_ratio
    return RunConfig(
        instances=args.instances,
        writers=args.writers,
        entities=args.entities,
        zipf=args.zipf,
        read_rate=args.read_rate,
        write_rate=write_rate,
        via_instance=args.via_instance,
        duration=args.duration,
        warmup=args.warmup,
        future_buffer_ms=args.future_buffer_ms,
        transport=args.transport,
        max_staleness_ms=args.max_staleness_ms,
        seed=args.seed,
        faults=parse_faults(args.faults),
        redis_url=args.redis_url,
        function_ms=args.function_ms,
        cancel_probes=args.cancel_probes,
        local_ttl=args.local_ttl,
        remote_ttl=args.remote_ttl,
        latency_ms=args.latency_ms,
        latency_s=args.latency_s,
        pause_s=args.pause_s,
        work_dir=args.work_dir,
        keep_logs=args.keep_logs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        data = run_harness(config)
    except HarnessError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    report = analyze(data)
    print(render(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"\nJSON report: {args.json_path}")
    if args.html_path:
        write_html(report, args.html_path)
        print(f"\nHTML report: {args.html_path}")
    return 0 if report.passed else 1
