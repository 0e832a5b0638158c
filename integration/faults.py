"""The fault schedule: which fault starts when, planned once by the coordinator from the seed.

The run is cut into a lead-in (caches warm up), one slot per fault and a tail (the last fault
recovers). Each fault starts at the beginning of its slot and holds for at most half of it, so
every fault is followed by a quiet window in which recovery is measured. The order is shuffled
with the run's seed. The plan is only the intent: the injector never starts a fault before the
previous one has ended plus a minimum quiet time, and records what actually happened.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .config import FaultKind, RunConfig

__all__ = ["MIN_QUIET_S", "PlannedFault", "lead_seconds", "plan_faults", "tail_seconds"]

MIN_QUIET_S = 1.0
"""The least quiet time the injector leaves after a fault, whatever the plan says."""


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """One fault of the schedule; ``at_s`` counts from the start of the workload."""

    kind: FaultKind
    at_s: float
    hold_s: float
    """How long the fault lasts (0 for an instantaneous one such as a connection kill)."""
    target: int = 0
    """The instance slot a ``crash`` kills."""


def _hold(kind: FaultKind, config: RunConfig, cap: float) -> float:
    if kind == "pause":
        # Must stay above the staleness bound even when the slot is short.
        floor = config.max_staleness_ms / 1000 * 1.5
        return max(min(config.effective_pause_s, cap), floor)
    if kind == "latency":
        return min(config.latency_s, cap)
    if kind == "restart":
        return min(config.restart_down_s, cap)
    return 0.0


def lead_seconds(config: RunConfig) -> float:
    """Quiet seconds before the first fault."""
    return min(5.0, max(1.5, config.duration * 0.1))


def tail_seconds(config: RunConfig) -> float:
    """Quiet seconds after the last fault (the run is extended to keep them)."""
    return min(5.0, max(2.0, config.duration * 0.1))


def plan_faults(config: RunConfig) -> tuple[PlannedFault, ...]:
    """The schedule for ``config`` (deterministic for a given seed)."""
    kinds = list(config.runnable_faults())
    if not kinds:
        return ()
    rng = random.Random(f"faults-{config.seed}")
    rng.shuffle(kinds)
    lead, tail = lead_seconds(config), tail_seconds(config)
    span = max(config.duration - lead - tail, 0.0)
    slot = config.fault_gap_s if config.fault_gap_s is not None else span / len(kinds)
    slot = max(slot, MIN_QUIET_S)
    plan: list[PlannedFault] = []
    crashes = 0
    for index, kind in enumerate(kinds):
        target = 0
        if kind == "crash":
            target = (config.seed + crashes) % config.instances
            crashes += 1
        plan.append(
            PlannedFault(
                kind=kind,
                at_s=round(lead + index * slot, 3),
                hold_s=round(_hold(kind, config, slot / 2), 3),
                target=target,
            )
        )
    return tuple(plan)
