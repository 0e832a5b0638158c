"""The nine Prometheus metric families of the README: names, types, labels and counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gcache import GCache, GCacheConfig
from tests.metric_values import metric
from tests.providers import BOTH, LOCAL_ONLY, constant
from tests.remote_helpers import patient, settle

COUNTERS = {
    "gcache_request_counter",
    "gcache_miss_counter",
    "gcache_disabled_counter",
    "gcache_error_counter",
    "gcache_invalidation_counter",
}
HISTOGRAMS = {
    "gcache_get_timer",
    "gcache_fallback_timer",
    "gcache_serialization_timer",
    "gcache_size_histogram",
}
BASE_LABELS = {"use_case", "key_type", "layer"}


def families(registry: CollectorRegistry) -> dict[str, Any]:
    return {family.name: family for family in registry.collect()}


def miss_then_hit(cache: GCache, use_case: str | None = "Profile") -> Callable[..., Any]:
    @cache.cached(key_type="user_id", id_arg="uid", use_case=use_case)
    def fetch_profile(uid: str) -> dict[str, str]:
        return {"uid": uid}

    with cache.enable():
        fetch_profile("u1")  # miss
        fetch_profile("u1")  # hit
    return fetch_profile  # type: ignore[no-any-return]


def test_nine_families_with_the_readme_names(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    miss_then_hit(make_cache(provider=constant(LOCAL_ONLY)))
    found = families(registry)
    assert set(found) == COUNTERS | HISTOGRAMS
    for name in COUNTERS:
        assert found[name].type == "counter", name
    for name in HISTOGRAMS:
        assert found[name].type == "histogram", name


def test_counter_samples_have_the_total_suffix_and_labels(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    fetch = miss_then_hit(cache)
    fetch("u1")  # outside enable(): a disabled sample
    found = families(registry)
    for name in ("gcache_request_counter", "gcache_miss_counter"):
        totals = [s for s in found[name].samples if s.name == name + "_total"]
        assert totals, name
        for sample in totals:
            assert set(sample.labels) == BASE_LABELS, name
            assert sample.labels["use_case"] == "Profile"
            assert sample.labels["key_type"] == "user_id"
    disabled = [s for s in found["gcache_disabled_counter"].samples if s.name.endswith("_total")]
    assert [s.labels for s in disabled] == [
        {"use_case": "Profile", "key_type": "user_id", "layer": "all", "reason": "context"}
    ]
    for name in HISTOGRAMS:
        counts = [s for s in found[name].samples if s.name == name + "_count"]
        assert counts, name
        for sample in counts:
            assert set(sample.labels) >= BASE_LABELS, name
    # What a Prometheus scrape sees (the exposition format, parsed back).
    scraped = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    labels = (("key_type", "user_id"), ("layer", "local"), ("use_case", "Profile"))
    assert scraped[("gcache_request_counter_total", labels)] == 2
    assert scraped[("gcache_miss_counter_total", labels)] == 1


def test_local_counts_for_a_known_sequence(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))

    @cache.cached(key_type="user_id", id_arg="uid", use_case="Seq")
    def get(uid: int) -> int:
        return uid

    with cache.enable():
        for uid in (1, 1, 2, 1, 2, 3):  # misses: 1, 2, 3
            get(uid)

    def count(name: str, **labels: str) -> float:
        return metric(registry, name, use_case="Seq", **labels)

    assert count("gcache_request_counter_total", layer="local") == 6
    assert count("gcache_miss_counter_total", layer="local") == 3
    assert count("gcache_request_counter_total", layer="remote") == 0
    assert count("gcache_miss_counter_total", layer="remote") == 0
    assert count("gcache_fallback_timer_count") == 3
    assert count("gcache_size_histogram_count") == 3
    assert count("gcache_serialization_timer_count", operation="dump") == 3
    assert count("gcache_disabled_counter_total") == 0
    assert count("gcache_error_counter_total") == 0


def test_async_counts_match_sync_counts(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))

    @cache.cached(key_type="user_id", id_arg="uid", use_case="ASeq")
    async def get(uid: int) -> int:
        return uid

    async def main() -> None:
        with cache.enable():
            for uid in (1, 1, 2, 1):
                await get(uid)
        await get(1)

    asyncio.run(main())
    assert metric(registry, "gcache_request_counter_total", use_case="ASeq", layer="local") == 4
    assert metric(registry, "gcache_miss_counter_total", use_case="ASeq", layer="local") == 2
    assert metric(registry, "gcache_fallback_timer_count", use_case="ASeq") == 2
    assert metric(registry, "gcache_disabled_counter_total", use_case="ASeq", reason="context") == 1


def test_remote_counts_for_a_known_sequence(
    make_cache: Callable[..., GCache], registry: CollectorRegistry, redis_url: str
) -> None:
    writer = make_cache(provider=constant(BOTH), namespace="metrics", **patient(redis_url))
    reader = make_cache(provider=constant(BOTH), namespace="metrics", **patient(redis_url))
    calls: list[str] = []

    def make(cache: GCache) -> Callable[[str], str]:
        @cache.cached(key_type="user_id", id_arg="uid", use_case="Remote")
        def get(uid: str) -> str:
            calls.append(uid)
            return "v:" + uid

        return get  # type: ignore[no-any-return]

    write, read = make(writer), make(reader)
    settle(writer)
    settle(reader)
    with writer.enable(), reader.enable():
        assert write("a") == "v:a"  # LOCAL miss, REMOTE miss, computed, stored in both
        assert write("a") == "v:a"  # LOCAL hit
        assert read("a") == "v:a"  # LOCAL miss (other instance), REMOTE hit
        assert read("a") == "v:a"  # LOCAL hit
    assert calls == ["a"]

    def count(name: str, **labels: str) -> float:
        return metric(registry, name, use_case="Remote", **labels)

    # Both instances report into the same (shared) families.
    assert count("gcache_request_counter_total", layer="local") == 4
    assert count("gcache_miss_counter_total", layer="local") == 2
    assert count("gcache_request_counter_total", layer="remote") == 2
    assert count("gcache_miss_counter_total", layer="remote") == 1
    assert count("gcache_fallback_timer_count") == 1
    assert count("gcache_serialization_timer_count", operation="load") == 1
    assert count("gcache_get_timer_count", layer="remote") == 2
    assert count("gcache_error_counter_total") == 0


def test_invalidation_counter(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    cache = make_cache(provider=constant(LOCAL_ONLY))
    cache.invalidate(key_type="user_id", id="1")
    asyncio.run(cache.ainvalidate(key_type="user_id", id="2"))
    cache.flushall()
    assert (
        metric(registry, "gcache_invalidation_counter_total", key_type="user_id", layer="local")
        == 2
    )
    assert metric(registry, "gcache_invalidation_counter_total", key_type="*", layer="local") == 1
    samples = [
        s
        for s in families(registry)["gcache_invalidation_counter"].samples
        if s.name.endswith("_total")
    ]
    assert samples
    assert all(set(s.labels) >= BASE_LABELS for s in samples)


def test_metrics_prefix_prefixes_every_name(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    miss_then_hit(make_cache(provider=constant(LOCAL_ONLY), metrics_prefix="myapp_"))
    found = families(registry)
    assert set(found) == {"myapp_" + name for name in COUNTERS | HISTOGRAMS}
    assert (
        metric(registry, "myapp_gcache_request_counter_total", use_case="Profile", layer="local")
        == 2
    )
    assert metric(registry, "gcache_request_counter_total") == 0


def test_two_caches_same_prefix_and_registry_share_families(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    first = make_cache(provider=constant(LOCAL_ONLY), metrics_prefix="p_")
    second = make_cache(provider=constant(LOCAL_ONLY), metrics_prefix="p_")
    miss_then_hit(first, use_case="Shared")
    miss_then_hit(second, use_case="Shared")
    miss_then_hit(second, use_case="OnlySecond")
    found = families(registry)
    assert set(found) == {"p_" + name for name in COUNTERS | HISTOGRAMS}
    assert metric(registry, "p_gcache_request_counter_total", use_case="Shared") == 4
    assert metric(registry, "p_gcache_miss_counter_total", use_case="Shared") == 2
    assert metric(registry, "p_gcache_miss_counter_total", use_case="OnlySecond") == 1


def test_two_prefixes_in_one_registry(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    miss_then_hit(make_cache(provider=constant(LOCAL_ONLY), metrics_prefix="a_"))
    miss_then_hit(make_cache(provider=constant(LOCAL_ONLY), metrics_prefix="b_"))
    names = set(families(registry))
    assert names == {p + n for p in ("a_", "b_") for n in COUNTERS | HISTOGRAMS}


def test_default_registry_two_instances_do_not_crash() -> None:
    prefix = "gcache_test_metrics_default_registry_"
    caches = [
        GCache(GCacheConfig(cache_config_provider=constant(LOCAL_ONLY), metrics_prefix=prefix))
        for _ in range(2)
    ]
    try:
        for cache in caches:
            miss_then_hit(cache, use_case="DefaultRegistry")
        from prometheus_client import REGISTRY

        assert (
            metric(
                REGISTRY,
                prefix + "gcache_request_counter_total",
                use_case="DefaultRegistry",
                layer="local",
            )
            == 4
        )
    finally:
        for cache in caches:
            cache.close()


def test_default_use_case_is_module_and_qualname(
    make_cache: Callable[..., GCache], registry: CollectorRegistry
) -> None:
    miss_then_hit(make_cache(provider=constant(LOCAL_ONLY)), use_case=None)
    expected = "tests.test_metrics.miss_then_hit.<locals>.fetch_profile"
    assert metric(registry, "gcache_request_counter_total", use_case=expected) == 2
    use_cases = {
        s.labels["use_case"]
        for s in families(registry)["gcache_request_counter"].samples
        if s.name.endswith("_total")
    }
    assert use_cases == {expected}
