"""Memory of the LOCAL layer: bytes per entry beyond the value, and whether the layer is bounded.

Each contender fills its in-process layer with ``plan.memory_entries`` entries (one million in
a full run) through its own decorator (an async call per new id, as a miss stores it), in a
fresh spawned process of its own, so no contender inherits another's heap. Memory is the
process's resident set (``/proc/self/statm``), read after a full garbage collection before and
after filling.

**Overhead per entry** = (RSS after - RSS before) / entries. Everything the caller owns is built
before the first reading: the ids, and the value, one object every entry refers to. So the
value's own size is not in the difference, and what is left is what the cache allocates per
entry beyond the value: keys, entry records, LRU links, indexes, timers. (A cache that copied
or serialized the value would show the copy here, as it should.) The target is < 300 bytes.

**Bounded**: what the layer is bounded by, from each library's configuration. For gcache it is
also checked: a second cache with ``max_local_bytes`` set to a quarter of what the fill would
take is filled the same way, and must end holding at most that many bytes.

gcache runs LOCAL only (no Redis): the figure is the LOCAL layer, not a client.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry

from gcache import CacheLayer, GCache, GCacheConfig, GCacheKey, GCacheKeyConfig
from gcache._local import LocalCache, charge

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
from .peers import Skipped
from .plan import Plan
from .subjects import KEY_TYPE, VALUE, Profile

__all__ = ["MEMORY_CONTENDERS", "BoundCheck", "MemoryResult", "measure_local_memory"]

T = TypeVar("T")

_TTL_SEC: Final = 3600
_LOCAL_ONLY: Final = GCacheKeyConfig(
    ttl_sec={CacheLayer.LOCAL: _TTL_SEC, CacheLayer.REMOTE: 0},
    ramp={CacheLayer.LOCAL: 100, CacheLayer.REMOTE: 0},
)
_BOUND_CHECK_FRACTION: Final = 4


@dataclass(frozen=True, slots=True)
class MemoryResult:
    name: str
    title: str
    entries: int
    rss_delta_bytes: int
    bound: str
    """What bounds the layer (from its configuration), or that nothing does."""

    @property
    def overhead_per_entry(self) -> float:
        return self.rss_delta_bytes / self.entries


MEMORY_CONTENDERS: Final = (
    ("gcache", "gcache LOCAL", None, "entries and bytes (max_local_entries, max_local_bytes)"),
    ("aiocache_memory", "aiocache memory", "aiocache", "none"),
    ("cashews_mem", "cashews mem://", "cashews", "entries (size=)"),
    ("dialcache", "dialcache LOCAL", "dialcache", "entries (local_max_size)"),
)
"""Name, title, package needed (None: gcache), what bounds the layer."""


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _local_only(key: GCacheKey) -> GCacheKeyConfig:
    return _LOCAL_ONLY


def _gcache(body: Body, entries: int, max_bytes: int) -> tuple[PeerCache, LocalCache]:
    cache = GCache(
        GCacheConfig(
            cache_config_provider=_local_only,
            namespace="bench-memory",
            metrics_registry=CollectorRegistry(),
            max_local_entries=entries,
            max_local_bytes=max_bytes,
            bus=None,
        )
    )
    cached = cache.cached(key_type=KEY_TYPE, id_arg="user_id", use_case="bench.memory")(body)

    async def invalidate(user_id: str) -> object:
        return None

    peer = PeerCache(
        function=cached, invalidate=invalidate, enable=cache.enable, aclose=cache.aclose
    )
    return peer, cache._local  # the benchmark reads the layer's own counters


async def _build(name: str, body: Body, entries: int) -> PeerCache:
    if name == "gcache":
        return _gcache(body, entries, 2**62)[0]
    if name == "aiocache_memory":
        return aiocache_memory(body)
    if name == "cashews_mem":
        return await cashews_cache(body, f"mem://?size={2 * entries}", "memory")
    return dialcache_cache(
        body, None, namespace="memory", local=True, remote=False, tracked=False,
        max_entries=2 * entries,
    )  # fmt: skip


async def _fill(name: str, entries: int) -> int:
    """RSS growth while ``entries`` new ids are stored; every one must still be a hit after."""
    runs = 0

    async def profile(user_id: str) -> Profile:
        nonlocal runs
        runs += 1
        return VALUE

    ids = [f"user-{n}" for n in range(entries)]  # the caller's data: before the first reading
    cache = await _build(name, profile, entries)
    with cache.enable():
        await cache.function("warm-up")  # first-call set-up is not per-entry memory
    gc.collect()
    before = _rss_bytes()
    with cache.enable():
        for user_id in ids:
            await cache.function(user_id)
    gc.collect()
    after = _rss_bytes()
    if runs != entries + 1:
        raise PathError(f"{name}: the function ran {runs} times for {entries} new ids")
    with cache.enable():  # a sample of the ids: still stored (nothing evicted during the fill)
        for user_id in ids[:: max(1, entries // 100)]:
            await cache.function(user_id)
    if runs != entries + 1:
        raise PathError(f"{name}: entries were evicted during the fill")
    await cache.aclose()
    return after - before


async def _gcache_bound(entries: int, max_bytes: int) -> tuple[int, int, int]:
    """Fill a byte-bounded gcache LOCAL layer: (entries held, bytes accounted, RSS growth)."""

    async def profile(user_id: str) -> Profile:
        return VALUE

    ids = [f"user-{n}" for n in range(entries)]
    cache, local = _gcache(profile, entries, max_bytes)
    gc.collect()
    before = _rss_bytes()
    with cache.enable():
        for user_id in ids:
            await cache.function(user_id)
    gc.collect()
    grown = _rss_bytes() - before
    held = (len(local), local.nbytes, grown)
    await cache.aclose()
    return held


def _child_fill(name: str, entries: int) -> int:
    return asyncio.run(_fill(name, entries))


def _child_bound(entries: int, max_bytes: int) -> tuple[int, int, int]:
    return asyncio.run(_gcache_bound(entries, max_bytes))


def _in_fresh_process(function: Callable[..., T], *args: object) -> T:
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        result: T = pool.apply(function, args)
    return result


@dataclass(frozen=True, slots=True)
class BoundCheck:
    """gcache's LOCAL layer filled past a byte bound."""

    max_bytes: int
    entries_offered: int
    entries_held: int
    bytes_accounted: int
    rss_delta_bytes: int


async def measure_local_memory(
    plan: Plan, progress: Callable[[str], None]
) -> tuple[dict[str, MemoryResult], list[Skipped], BoundCheck]:
    """Each installed contender's fill, then gcache's byte-bound check."""
    results: dict[str, MemoryResult] = {}
    skipped: list[Skipped] = []
    entries = plan.memory_entries
    for name, title, package, bound in MEMORY_CONTENDERS:
        if name != "gcache" and not plan.memory_peers:
            progress(f"LOCAL memory: {title} not measured in a {plan.name} run")
            continue
        if package is not None and not installed(package):
            reason = f"{package} not installed ({INSTALL_HINT})"
            skipped.append(Skipped(name=f"memory_{name}", title=title, reason=reason))
            continue
        progress(f"LOCAL memory: {title}, {entries:,} entries (a process of its own)")
        delta = await asyncio.to_thread(_in_fresh_process, _child_fill, name, entries)
        results[name] = MemoryResult(
            name=name, title=title, entries=entries, rss_delta_bytes=delta, bound=bound
        )
    # Room for about a quarter of the entries, by gcache's own accounting of each entry.
    max_bytes = entries * charge(len(pickle.dumps(VALUE))) // _BOUND_CHECK_FRACTION
    progress(f"LOCAL memory: gcache with max_local_bytes={max_bytes:,}")
    held, accounted, grown = await asyncio.to_thread(
        _in_fresh_process, _child_bound, entries, max_bytes
    )
    if accounted > max_bytes:
        raise PathError(f"gcache LOCAL holds {accounted:,} bytes over its bound of {max_bytes:,}")
    check = BoundCheck(
        max_bytes=max_bytes,
        entries_offered=entries,
        entries_held=held,
        bytes_accounted=accounted,
        rss_delta_bytes=grown,
    )
    return results, skipped, check
