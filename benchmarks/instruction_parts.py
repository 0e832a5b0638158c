"""``python -m benchmarks.instruction_parts``: where a hit's instructions go, part by part.

:mod:`benchmarks.instructions` counts whole calls. This counts the steps of two of them, each
called alone in a loop under callgrind (n and 2n calls, the difference per call, as there), with
the cost of the loop itself (an empty step) taken off:

* the tracked REMOTE hit, with Redis replaced by a coroutine that returns the stored bytes at
  once, so that what is left is gcache's own work around the GET;
* the sync LOCAL hit in a plain thread, with the benchmark's ``async def`` provider, and the
  same hit with a plain ``def`` provider.

The steps are gcache's private functions, called the way the wrappers call them, on the
benchmark's own subjects (:mod:`benchmarks.subjects`). They do not add up exactly to the whole:
a step called alone pays a call of its own, and the wrapper's body between steps is in no step.
What they give is the proportions, which is what choosing the next optimisation needs.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from typing import Any, Final

from prometheus_client import CollectorRegistry

from gcache import GCache, GCacheConfig, GCacheKey, GCacheKeyConfig
from gcache._cached import _GUARD_LOST_CANCEL, Runner
from gcache._metrics import TIMING_SAMPLE

from .checks import expect_path, local_hits, remote_hits
from .instructions import counting_main
from .subjects import ENTITY_ID, LOCAL_AND_REMOTE, Subjects, remote_only

__all__ = ["main"]

REMOTE_PARTS: Final = {
    "empty": "an empty step (the loop's own cost, taken off every other row)",
    "hit": "the whole tracked REMOTE hit, Redis replaced by a ready coroutine",
    "ready_get": "awaiting that ready coroutine (what stands in for the GET)",
    "argument_key": "the key of the arguments (spec.local_key)",
    "provider_key": "the provider's view of the call (spec.gcache_key)",
    "provider_answer": "calling and awaiting the async def provider",
    "single_flight": "the running loop; leading and finishing the key's flight",
    "cancel_guard": "the 3.11 lost-cancel guard (current task, cancelling() twice)",
    "clock_and_client": "the clock check and the loop's client (loop at hand)",
    "value_key": "the REMOTE value key (runner.value_key)",
    "decode": "header check and deserializing the value (codec.decode_value)",
    "accept": "accepting the read: metrics, decode (runner.accept_remote)",
}
SYNC_PARTS: Final = {
    "sync_empty": "an empty step (the loop's own cost, taken off every other row)",
    "sync_hit": "the whole sync LOCAL hit, async def provider",
    "sync_hit_def_provider": "the whole sync LOCAL hit, plain def provider",
    "sync_argument_key": "the key of the arguments (spec.local_key)",
    "sync_provider_key": "the provider's view of the call (spec.gcache_key)",
    "sync_provider_answer": "the async def provider's answer in a thread without a loop",
    "sync_lookup": "the LOCAL lookup with its counters (written out in the wrappers)",
    "sync_local_get": "the same lookup as a call of local.get, without the counters",
}
_WARMUP: Final = 300
_ARGS: Final = (ENTITY_ID,)
_NO_KWARGS: Final[dict[str, Any]] = {}


def _runner(cached_function: Callable[..., Any]) -> Runner:
    """The Runner a ``@cached`` wrapper closes over."""
    runner = inspect.getclosurevars(cached_function).nonlocals["runner"]
    assert isinstance(runner, Runner)
    return runner


async def _remote_steps(url: str) -> tuple[dict[str, Callable[[], Awaitable[object]]], Subjects]:
    subjects = Subjects(url, CollectorRegistry(), bus=False)
    hit = subjects.tracked_remote_hit
    runner = _runner(hit)
    spec, remote = runner.spec, runner.remote
    assert remote is not None
    with subjects.remote_cache.enable():
        await hit(ENTITY_ID)  # a miss: the value is now in Redis
    key = spec.local_key(_ARGS, _NO_KWARGS)
    provider_key = spec.gcache_key(key)
    value_key = runner.value_key(key)
    found = await remote.client().get(value_key)
    assert isinstance(found, bytes), "the priming call stored no value"
    raw: bytes = found

    class _Ready:
        async def get(self, name: str) -> bytes:
            return raw

    ready = _Ready()
    remote.client_for = lambda loop: ready  # type: ignore[method-assign,assignment,return-value]
    flights = subjects.remote_cache._async_flights
    loop = asyncio.get_running_loop()  # the wrapper's, taken once per call (in single_flight)

    async def empty() -> None:
        pass

    async def whole_hit() -> None:
        await hit(ENTITY_ID)

    async def ready_get() -> None:
        await ready.get(value_key)

    async def argument_key() -> None:
        spec.local_key(_ARGS, _NO_KWARGS)

    async def provider_view() -> None:
        spec.gcache_key(key)

    async def provider_answer() -> None:
        await remote_only(provider_key)

    async def single_flight() -> None:
        loop = asyncio.get_running_loop()
        flights.finish(key, flights.start(key, loop), None)  # type: ignore[arg-type]

    async def cancel_guard() -> None:
        # What the wrapper does on 3.11 only (nothing elsewhere: see gcache._cached).
        task = asyncio.current_task(loop) if _GUARD_LOST_CANCEL else None
        if task is not None:
            task.cancelling()  # type: ignore[attr-defined,unused-ignore]
            task.cancelling()  # type: ignore[attr-defined,unused-ignore]

    async def clock_and_client() -> None:
        remote.clock_due()
        remote.client_for(loop)

    async def remote_value_key() -> None:
        runner.value_key(key)

    async def decode() -> None:
        runner.codec.decode_value(raw, value_key)

    async def accept() -> None:
        runner.accept_remote(key, raw, value_key, False, None, 0.0001)

    steps = (
        empty,
        whole_hit,
        ready_get,
        argument_key,
        provider_view,
        provider_answer,
        single_flight,
        cancel_guard,
        clock_and_client,
        remote_value_key,
        decode,
        accept,
    )
    return dict(zip(REMOTE_PARTS, steps, strict=True)), subjects


def _plain_provider(key: GCacheKey) -> GCacheKeyConfig:
    return LOCAL_AND_REMOTE


def _sync_steps(url: str) -> tuple[dict[str, Callable[[], object]], GCache, Subjects]:
    subjects = Subjects(url, CollectorRegistry(), bus=False)
    plain = GCache(GCacheConfig(cache_config_provider=_plain_provider))

    @plain.cached(key_type="user_id", id_arg="user_id", use_case="parts.def_provider")
    def def_provider_hit(user_id: str) -> object:
        return subjects.sync_hit.__wrapped__(user_id)  # type: ignore[attr-defined]

    hit = subjects.sync_hit
    runner = _runner(hit)
    spec, local = runner.spec, runner.local
    key = spec.local_key(_ARGS, _NO_KWARGS)
    provider_key = spec.gcache_key(key)
    provider = subjects.hit_cache._sync_config

    def whole_hit() -> None:
        hit(ENTITY_ID)

    def whole_def_provider_hit() -> None:
        def_provider_hit(ENTITY_ID)

    lookups, request_local = runner.lookups, runner.metrics.request_local
    entry_of, touch, timer = local.entry_of, local.touch, runner.timer

    def lookup() -> None:
        # What the wrappers do inline (the bus's freshness aside: these caches have no bus).
        now = timer()
        if next(lookups) % TIMING_SAMPLE:
            entry = entry_of(key)
            if entry is not None and now - entry.stored_at < 3600.0:
                try:  # noqa: SIM105 - as the wrappers do it
                    touch(key)
                except KeyError:
                    pass
            else:
                local.get(key, 3600.0)
        else:
            runner.timed_local_get(key, 3600.0)
        request_local()

    steps = (
        lambda: None,
        whole_hit,
        whole_def_provider_hit,
        lambda: spec.local_key(_ARGS, _NO_KWARGS),
        lambda: spec.gcache_key(key),
        lambda: provider(provider_key),
        lookup,
        lambda: local.get(key, 3600.0),
    )
    return dict(zip(SYNC_PARTS, steps, strict=True)), plain, subjects


async def _run_remote_part(part: str, url: str, calls: int) -> None:
    steps, subjects = await _remote_steps(url)
    step = steps[part]
    counted = _WARMUP + calls
    check = (
        expect_path(subjects, "tracked_remote_hit", body_runs=0, counters=remote_hits(counted))
        if part == "hit"
        else nullcontext()
    )
    with subjects.remote_cache.enable(), check:  # entered once: no part of a hit
        for _ in range(counted):
            await step()
    # subjects are left open: the child leaves with os._exit, as in benchmarks.instructions


def _run_sync_part(part: str, url: str, calls: int) -> None:
    steps, plain, subjects = _sync_steps(url)

    def in_plain_thread() -> None:
        # Entered once: entering it is no part of a hit. The first calls miss and store.
        with subjects.hit_cache.enable(), plain.enable():
            steps["sync_hit"]()
            steps["sync_hit_def_provider"]()
            step = steps[part]
            counted = _WARMUP + calls
            # Both whole hits must be hits (their body is sync_hit's, which the subjects count).
            counters = local_hits(counted) if part == "sync_hit" else {}
            check = (
                expect_path(subjects, "sync_hit", body_runs=0, counters=counters)
                if part in ("sync_hit", "sync_hit_def_provider")
                else nullcontext()
            )
            with check:
                for _ in range(counted):
                    step()

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            in_plain_thread()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def _child(part: str, url: str, calls: int) -> None:
    if part in REMOTE_PARTS:
        asyncio.run(_run_remote_part(part, url, calls))
    else:
        _run_sync_part(part, url, calls)
    sys.stdout.flush()
    os._exit(0)  # as in benchmarks.instructions: no shutdown cost in the count


def _print(title: str, parts: dict[str, str], figures: dict[str, float], empty: str) -> None:
    loop = figures[empty]
    print(f"\n{title} (the empty step, {loop:,.0f}, taken off every other row)")
    for part, description in parts.items():
        if part != empty:
            print(f"  {part:<22} {figures[part] - loop:>8,.0f}  {description}")


def main(argv: Sequence[str] | None = None) -> int:
    figures = counting_main(
        argv,
        module="benchmarks.instruction_parts",
        description="Instructions per call of each step of the REMOTE and sync LOCAL hits.",
        paths=[*REMOTE_PARTS, *SYNC_PARTS],
        default_calls=1000,
        child=_child,
    )
    if figures is None:
        return 2
    _print("tracked REMOTE hit, by step", REMOTE_PARTS, figures, "empty")
    _print("sync LOCAL hit, by step", SYNC_PARTS, figures, "sync_empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
