"""``python -m benchmarks --profile SCENARIO``: where one hot path spends its time.

The scenario is prepared exactly as for a timed run (same caches, same priming, same checks of
the path taken), warmed up, and then run once more under ``cProfile``; the report is the
functions with the most time of their own. Profiling multiplies the cost of every Python call,
so the absolute times are not the scenario's: read it for *where* the time goes, and the timed
run for how much there is.
"""

from __future__ import annotations

import cProfile
import io
import pstats
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from .plan import Plan
from .scenarios import prepare_scenarios
from .subjects import Subjects

__all__ = ["profile_scenario", "scenario_names"]

TOP = 25
"""Functions listed, by time spent in the function itself."""


async def scenario_names(redis_url: str) -> list[str]:
    """The names ``--profile`` accepts (the per-call scenarios of gcache and its baselines)."""
    subjects = Subjects(redis_url, CollectorRegistry())
    raw = Redis.from_url(redis_url)
    with ThreadPoolExecutor(max_workers=1) as sync_thread:
        try:
            return [s.name for s in await prepare_scenarios(subjects, raw, sync_thread)]
        finally:
            await raw.aclose()
            await subjects.aclose()


async def profile_scenario(name: str, plan: Plan, redis_url: str) -> str:
    """The cProfile report of one round of scenario ``name`` (``plan``'s calls per round)."""
    subjects = Subjects(redis_url, CollectorRegistry())
    raw = Redis.from_url(redis_url)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-sync") as sync_thread:
        try:
            scenarios = {s.name: s for s in await prepare_scenarios(subjects, raw, sync_thread)}
            if name not in scenarios:
                raise ValueError(f"no scenario {name!r}; choose from {', '.join(scenarios)}")
            scenario = scenarios[name]
            await scenario.measure(plan.warmup_calls(scenario.io))
            calls = plan.calls(scenario.io)
            # cProfile sees one thread: profile both the loop's thread and the worker thread
            # that the sync scenarios call from.
            here, worker = cProfile.Profile(), cProfile.Profile()
            sync_thread.submit(worker.enable).result()
            here.enable()
            await scenario.measure(calls)
            here.disable()
            sync_thread.submit(worker.disable).result()
        finally:
            await raw.aclose()
            await subjects.aclose()
    out = io.StringIO()
    out.write(f"{scenario.title}: {calls:,} calls under cProfile, top {TOP} by own time\n")
    # The sync scenarios run in the worker; elsewhere it only sat waiting for the next job.
    stats = pstats.Stats(worker if name.startswith("sync_") else here, stream=out)
    stats.sort_stats("tottime").print_stats(TOP)
    return out.getvalue()
