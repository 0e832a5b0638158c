"""``python -m bus``: publish invalidations and flushes, or watch the bus, from a shell.

::

    python -m bus invalidate --url redis://host:6379/0 --key-type user_id --id 42 [--id 43 ...]
                             [--future-buffer-ms 5000]
    python -m bus flush --url URL
    python -m bus tail --url URL [--count N] [--seconds S]

Every command takes ``--namespace`` (default ``gcache``) and ``--transport streams|pubsub``
(default ``streams``; it must match the subscribers').
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import anyio
from redis.asyncio import Redis, RedisCluster

from ._clock import RedisClock
from ._cluster import AnyRedis
from ._publisher import Publisher, PublishError
from ._subscriber import Subscriber
from ._wire import Event, FlushEvent

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bus", description="Publish to or watch the GCache invalidation bus."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis URL")
    common.add_argument(
        "--cluster", action="store_true", help="the URL names a node of a Redis Cluster"
    )
    common.add_argument("--namespace", default="gcache")
    common.add_argument("--transport", choices=("streams", "pubsub"), default="streams")
    commands = parser.add_subparsers(dest="command", required=True)

    invalidate = commands.add_parser(
        "invalidate", parents=[common], help="invalidate entities everywhere"
    )
    invalidate.add_argument("--key-type", required=True)
    invalidate.add_argument(
        "--id",
        required=True,
        action="append",
        dest="ids",
        help="entity id (repeat for a batch: one round trip, one event)",
    )
    invalidate.add_argument("--future-buffer-ms", type=int, default=0)

    commands.add_parser("flush", parents=[common], help="flush the namespace everywhere")

    tail = commands.add_parser("tail", parents=[common], help="print events as they arrive")
    tail.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    tail.add_argument("--seconds", type=float, default=0, help="stop after S seconds (0: never)")
    return parser  # fmt: skip


class _Printer:
    """Prints each event with its propagation lag; stops the tail after ``count`` events."""

    def __init__(self, out: TextIO, clock: RedisClock, count: int, done: anyio.Event) -> None:
        self._out, self._clock, self._count, self._done = out, clock, count, done
        self.seen = 0

    def _lag(self, sent_at: int) -> str:
        if not self._clock.synced:
            return "?"
        return f"{max(0, self._clock.now_us() - sent_at) / 1000:.2f}ms"

    def on_event(self, event: Event) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.sent_at / 1e6))
        if isinstance(event, FlushEvent):
            what = f"flush watermark={event.watermark}"
        else:
            what = "invalidate " + " ".join(f"{kt}={eid}" for kt, eid, _ in event.entities)
        print(f"{stamp} seq={event.seq} lag={self._lag(event.sent_at)} {what}", file=self._out)
        self._out.flush()
        self.seen += 1
        if self._count and self.seen >= self._count:
            self._done.set()

    def on_gap(self, reason: str, redis_time_us: int) -> None:
        print(f"-- gap: {reason} (events before this point may be missing)", file=self._out)
        self._out.flush()


def _client(url: str, cluster: bool) -> AnyRedis:
    if cluster:
        return RedisCluster.from_url(url, client_name="gcache-bus-tail")
    return Redis.from_url(url, client_name="gcache-bus-tail")


async def _tail(args: argparse.Namespace, out: TextIO) -> None:
    clock = RedisClock()
    done = anyio.Event()
    printer = _Printer(out, clock, args.count, done)
    subscriber = Subscriber(
        lambda: _client(args.url, args.cluster),
        printer,
        namespace=args.namespace,
        transport=args.transport,
        clock=clock,
        release_client=lambda client: client.aclose(),
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(subscriber.run)
        with anyio.move_on_after(args.seconds or None):
            await done.wait()
        tasks.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tail":
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail usually ends
            anyio.run(_tail, args, out)
        return 0
    publisher = Publisher.from_url(
        args.url, cluster=args.cluster, namespace=args.namespace, transport=args.transport
    )
    try:
        if args.command == "invalidate":
            entities = [(args.key_type, entity_id) for entity_id in args.ids]
            marks = publisher.invalidate_many(entities, future_buffer_ms=args.future_buffer_ms)
            for (key_type, entity_id), mark in zip(entities, marks, strict=True):
                print(f"invalidated {key_type}={entity_id} watermark={mark}", file=out)
        else:
            print(f"flushed {args.namespace} watermark={publisher.flushall()}", file=out)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        publisher.close()
    return 0
