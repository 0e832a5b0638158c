"""Peer libraries measured like gcache: the same warmed hit, through each one's own decorator.

Each peer is used as its documentation tells a user to: aiocache's ``@cached`` with its memory
backend (``Cache.MEMORY``, what ``aiocache.Cache(Cache.MEMORY)`` builds), cashews' ``@cache``
after ``cache.setup("mem://")``, and cashews against the run's private ``redis-server``. The
cached functions have the subjects' signature and result (:data:`~benchmarks.subjects.VALUE`
for :data:`~benchmarks.subjects.ENTITY_ID`), and each is warmed before timing.

The peers are optional (``pip install -e '.[bench]'``), never runtime dependencies of gcache: a
peer whose package is not installed is reported as skipped, and the run goes on without it. They
are imported by name at run time (:func:`importlib.import_module`), so neither the package nor
its type information is needed to type-check or import this module.

Like gcache's scenarios, every timed round is checked: the cached body must not run (a hit), and
the warm-up must have run it exactly once and returned the value.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from .checks import PathError
from .scenarios import Scenario
from .subjects import ENTITY_ID, VALUE, Profile
from .timing import time_async_calls

__all__ = ["PEERS", "Peer", "PeerScenarios", "Skipped", "prepare_peer_scenarios"]

_TTL_SEC: Final = 3600  # far longer than any run, as for gcache's own subjects
_INSTALL_HINT: Final = "pip install -e '.[bench]'"


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """One peer scenario: a package, and how its hit is compared."""

    name: str
    title: str
    package: str
    """Import name of the package the scenario needs."""
    io: bool
    baseline: str
    """The gcache scenario (or raw baseline) this one is divided by."""


AIOCACHE_MEMORY: Final = "peer_aiocache_memory_hit"
CASHEWS_MEM: Final = "peer_cashews_mem_hit"
CASHEWS_REDIS: Final = "peer_cashews_redis_hit"

PEERS: Final = (
    Peer(
        name=AIOCACHE_MEMORY,
        title="peer: aiocache memory hit",
        package="aiocache",
        io=False,
        baseline="async_local_hit",
    ),
    Peer(
        name=CASHEWS_MEM,
        title="peer: cashews mem:// hit",
        package="cashews",
        io=False,
        baseline="async_local_hit",
    ),
    Peer(
        name=CASHEWS_REDIS,
        title="peer: cashews redis:// hit",
        package="cashews",
        io=True,
        baseline="raw_redis_get",
    ),
)
"""Every peer scenario, in table order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A peer scenario that did not run, and why."""

    name: str
    title: str
    reason: str


CachedFunction = Callable[[str], Awaitable[Profile]]


@dataclass(slots=True)
class PeerScenarios:
    """The peer scenarios that can run, those that cannot, and how to release what they hold."""

    scenarios: list[Scenario]
    skipped: list[Skipped]
    closers: list[Callable[[], Awaitable[object]]]

    async def aclose(self) -> None:
        for close in self.closers:
            await close()


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


async def prepare_peer_scenarios(redis_url: str) -> PeerScenarios:
    """Build, warm and check every installed peer's cached function; skip the others.

    Must run on the event loop that will time them (the cashews Redis client is per loop).
    """
    fallbacks: Counter[str] = Counter()
    functions: dict[str, CachedFunction] = {}
    closers: list[Callable[[], Awaitable[object]]] = []
    skipped: list[Skipped] = []

    def body(name: str) -> CachedFunction:
        async def profile(user_id: str) -> Profile:
            fallbacks[name] += 1
            return VALUE

        return profile

    for peer in PEERS:
        if not _installed(peer.package):
            reason = f"{peer.package} not installed ({_INSTALL_HINT})"
            skipped.append(Skipped(name=peer.name, title=peer.title, reason=reason))

    # The decorators are applied as calls, not with ``@``: the modules are imported by name and
    # so typed ``Any``, and mypy --strict rejects an untyped decorator. The result is the same.
    if _installed("aiocache"):
        aiocache: Any = importlib.import_module("aiocache")
        # aiocache 0.12 builds the backend from its class: a SimpleMemoryCache, the object
        # ``aiocache.Cache(aiocache.Cache.MEMORY)`` returns.
        decorated = aiocache.cached(ttl=_TTL_SEC, cache=aiocache.Cache.MEMORY)(
            body(AIOCACHE_MEMORY)
        )
        functions[AIOCACHE_MEMORY] = cast("CachedFunction", decorated)
        closers.append(decorated.cache.close)

    if _installed("cashews"):
        cashews: Any = importlib.import_module("cashews")
        cashews.cache.setup("mem://")
        functions[CASHEWS_MEM] = cast(
            "CachedFunction", cashews.cache(ttl=_TTL_SEC)(body(CASHEWS_MEM))
        )
        closers.append(cashews.cache.close)
        # A cache instance of its own, so the mem:// one above stays the global default.
        redis_cache: Any = cashews.Cache(name="bench-redis")
        redis_cache.setup(redis_url)
        functions[CASHEWS_REDIS] = cast(
            "CachedFunction", redis_cache(ttl=_TTL_SEC, prefix="bench-peer")(body(CASHEWS_REDIS))
        )
        closers.append(redis_cache.close)

    result = PeerScenarios(scenarios=[], skipped=skipped, closers=closers)
    try:
        for peer in PEERS:
            function = functions.get(peer.name)
            if function is None:
                continue
            # Warm: the first call runs the body and stores the value, the second must be a hit.
            runs_before = fallbacks[peer.name]
            values = [await function(ENTITY_ID), await function(ENTITY_ID)]
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
                    measure=_measure(peer.name, function, fallbacks),
                )
            )
    except BaseException:
        await result.aclose()
        raise
    return result


def _measure(
    name: str, function: CachedFunction, fallbacks: Counter[str]
) -> Callable[[int], Awaitable[int]]:
    async def measure(calls: int) -> int:
        runs_before = fallbacks[name]
        elapsed = await time_async_calls(function, [ENTITY_ID] * calls)
        ran = fallbacks[name] - runs_before
        if ran:
            raise PathError(f"{name}: not the path being measured: the body ran {ran} time(s)")
        return elapsed

    return measure
