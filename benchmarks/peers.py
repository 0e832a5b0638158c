"""Peer libraries measured like gcache: the same warmed hit, and the same miss, through each
one's own decorator (built by :mod:`.peer_caches`, as its documentation tells a user to).

Hits: aiocache's memory backend, cashews ``mem://`` and cashews client-side caching are LOCAL
hits (compared with gcache's async LOCAL hit); cashews ``redis://`` and dialcache's tracked
REMOTE-only read are REMOTE hits (compared with gcache's tracked REMOTE hit, and through it with a
raw GET); dialcache's LOCAL hit is a LOCAL hit. Misses (a new id per call: the function runs and
the value is written to every layer the peer has) are compared with gcache's async miss. The
cached functions have the subjects' signature and result (:data:`~benchmarks.subjects.VALUE`).

The peers are optional (``pip install -e '.[bench]'``), never runtime dependencies of gcache: a
peer whose package is not installed is reported as skipped, and the run goes on without it.

Like gcache's scenarios, every timed round is checked: for a hit the cached body must not run,
for a miss it must run once per call; the warm-up must have run it exactly once and returned the
value.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from .checks import PathError
from .peer_caches import (
    INSTALL_HINT,
    Body,
    PeerCache,
    aiocache_memory,
    cashews_cache,
    dialcache_cache,
    installed,
)
from .scenarios import Scenario
from .subjects import ENTITY_ID, VALUE, Profile
from .timing import time_async_calls

__all__ = [
    "AIOCACHE_MEMORY",
    "CASHEWS_MEM",
    "PEERS",
    "Peer",
    "PeerScenarios",
    "Skipped",
    "prepare_peer_scenarios",
]

Kind = Literal["hit", "miss"]
Build = Callable[[Body, str], Awaitable[PeerCache]]
"""Builds the peer's cache around a body, given the run's private Redis URL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """One peer scenario: a package, what is timed, and how it is compared."""

    name: str
    title: str
    package: str
    """Import name of the package the scenario needs."""
    kind: Kind
    io: bool
    baseline: str
    """The gcache scenario this one is divided by."""
    build: Build


async def _aiocache_memory(body: Body, redis_url: str) -> PeerCache:
    return aiocache_memory(body)


def _cashews(url: Callable[[str], str], name: str) -> Build:
    async def build(body: Body, redis_url: str) -> PeerCache:
        return await cashews_cache(body, url(redis_url), name)

    return build


def _dialcache(name: str, *, local: bool, remote: bool, tracked: bool) -> Build:
    async def build(body: Body, redis_url: str) -> PeerCache:
        return dialcache_cache(
            body, redis_url, namespace=name, local=local, remote=remote, tracked=tracked
        )

    return build


def _mem(redis_url: str) -> str:
    return "mem://?size=1000000"  # room for every miss of a run: no eviction is timed


def _redis(redis_url: str) -> str:
    return redis_url


def _client_side(redis_url: str) -> str:
    return f"{redis_url}?client_side=true"


AIOCACHE_MEMORY: Final = "peer_aiocache_memory_hit"
CASHEWS_MEM: Final = "peer_cashews_mem_hit"

PEERS: Final = (
    Peer(name=AIOCACHE_MEMORY, title="peer: aiocache memory hit", package="aiocache",
         kind="hit", io=False, baseline="async_local_hit", build=_aiocache_memory),
    Peer(name=CASHEWS_MEM, title="peer: cashews mem:// hit", package="cashews",
         kind="hit", io=False, baseline="async_local_hit",
         build=_cashews(_mem, "bench-mem")),
    Peer(name="peer_cashews_client_side_hit", title="peer: cashews client_side hit",
         package="cashews", kind="hit", io=False, baseline="async_local_hit",
         build=_cashews(_client_side, "bench-cs")),
    Peer(name="peer_dialcache_local_hit", title="peer: dialcache LOCAL hit",
         package="dialcache", kind="hit", io=False, baseline="async_local_hit",
         build=_dialcache("bench-dc-local", local=True, remote=False, tracked=False)),
    Peer(name="peer_cashews_redis_hit", title="peer: cashews redis:// hit", package="cashews",
         kind="hit", io=True, baseline="tracked_remote_hit",
         build=_cashews(_redis, "bench-redis")),
    Peer(name="peer_dialcache_tracked_remote_hit", title="peer: dialcache tracked REMOTE hit",
         package="dialcache", kind="hit", io=True, baseline="tracked_remote_hit",
         build=_dialcache("bench-dc-remote", local=False, remote=True, tracked=True)),
    Peer(name="peer_aiocache_memory_miss", title="peer: aiocache memory miss",
         package="aiocache", kind="miss", io=True, baseline="async_miss",
         build=_aiocache_memory),
    Peer(name="peer_cashews_mem_miss", title="peer: cashews mem:// miss", package="cashews",
         kind="miss", io=True, baseline="async_miss", build=_cashews(_mem, "bench-mem-miss")),
    Peer(name="peer_cashews_redis_miss", title="peer: cashews redis:// miss",
         package="cashews", kind="miss", io=True, baseline="async_miss",
         build=_cashews(_redis, "bench-redis-miss")),
    Peer(name="peer_dialcache_miss", title="peer: dialcache LOCAL+REMOTE miss",
         package="dialcache", kind="miss", io=True, baseline="async_miss",
         build=_dialcache("bench-dc-miss", local=True, remote=True, tracked=False)),
)  # fmt: skip
"""Every peer scenario, in table order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A peer scenario that did not run, and why."""

    name: str
    title: str
    reason: str


@dataclass(slots=True)
class PeerScenarios:
    """The peer scenarios that can run, those that cannot, and how to release what they hold."""

    scenarios: list[Scenario]
    skipped: list[Skipped]
    closers: list[Callable[[], Awaitable[object]]]

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


async def prepare_peer_scenarios(redis_url: str) -> PeerScenarios:
    """Build, warm and check every installed peer's cached function; skip the others.

    Must run on the event loop that will time them (the peers' Redis clients are per loop).
    """
    fallbacks: Counter[str] = Counter()
    result = PeerScenarios(scenarios=[], skipped=[], closers=[])

    def body(name: str) -> Body:
        async def profile(user_id: str) -> Profile:
            fallbacks[name] += 1
            return VALUE

        return profile

    try:
        for peer in PEERS:
            if not installed(peer.package):
                reason = f"{peer.package} not installed ({INSTALL_HINT})"
                result.skipped.append(Skipped(name=peer.name, title=peer.title, reason=reason))
                continue
            cache = await peer.build(body(peer.name), redis_url)
            result.closers.append(cache.aclose)
            # Warm: the first call runs the body and stores the value, the second must be a hit.
            runs_before = fallbacks[peer.name]
            with cache.enable():
                values = [await cache.function(ENTITY_ID), await cache.function(ENTITY_ID)]
            ran = fallbacks[peer.name] - runs_before
            if ran != 1 or values != [VALUE, VALUE]:
                raise PathError(
                    f"{peer.name}: warming ran the body {ran} time(s), expected 1, "
                    f"and returned {values!r}"
                )
            result.scenarios.append(
                Scenario(
                    name=peer.name,
                    title=peer.title,
                    io=peer.io,
                    baseline=peer.baseline,
                    measure=_measure(peer, cache, fallbacks),
                )
            )
    except BaseException:
        await result.aclose()
        raise
    return result


def _measure(
    peer: Peer, cache: PeerCache, fallbacks: Counter[str]
) -> Callable[[int], Awaitable[int]]:
    fresh_ids = (f"{peer.name}-miss-{n}" for n in itertools.count())

    async def measure(calls: int) -> int:
        if peer.kind == "hit":
            args, expected = [ENTITY_ID] * calls, 0
        else:  # never asked for before: always a miss
            args, expected = list(itertools.islice(fresh_ids, calls)), calls
        runs_before = fallbacks[peer.name]
        with cache.enable():
            elapsed = await time_async_calls(cache.function, args)
        ran = fallbacks[peer.name] - runs_before
        if ran != expected:
            raise PathError(
                f"{peer.name}: not the path being measured: the body ran {ran} time(s), "
                f"expected {expected}"
            )
        return elapsed

    return measure
