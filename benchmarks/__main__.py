"""``python -m benchmarks [--quick] [--json PATH]``: run, print the table, optionally save JSON.

Exits 0 whether or not the targets are met (see :mod:`benchmarks.targets`); a non-zero status
means the benchmark itself could not run (no redis-server, a scenario that took the wrong path).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from integration.redis_server import RedisServer

from .machine import describe_machine
from .plan import FULL, QUICK
from .profiling import profile_scenario, scenario_names
from .report import render, to_json, write_json
from .runner import run
from .targets import evaluate


def _progress(message: str) -> None:
    # stderr, so stdout holds nothing but the report.
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Per-call cost of gcache's hot paths."
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds and calls: a smoke run, noisier figures"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure here")
    parser.add_argument(
        "--profile",
        metavar="SCENARIO",
        help="instead of timing everything, run one round of SCENARIO under cProfile and print "
        "where its time goes ('--profile list' names the scenarios)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    if args.profile is not None:
        with RedisServer.start() as server:
            if args.profile == "list":
                print("\n".join(asyncio.run(scenario_names(server.url))))
            else:
                print(asyncio.run(profile_scenario(args.profile, plan, server.url)))
        return 0

    # A private server on a free loopback port, never a Redis someone else runs.
    with RedisServer.start() as server:
        _progress(f"private redis-server on {server.url}")
        machine = describe_machine(str(server.info("server")["redis_version"]))
        result = asyncio.run(run(plan, server.url, _progress))

    targets = evaluate(result)
    print(render(result, targets, machine))
    if args.json is not None:
        write_json(args.json, to_json(result, targets, machine))
        _progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
