"""Config providers used across the tests."""

from __future__ import annotations

from gcache import CacheLayer, GCacheKey, GCacheKeyConfig


def layers(
    local: float = 60, remote: float = 300, *, local_ramp: float = 100, remote_ramp: float = 100
) -> GCacheKeyConfig:
    return GCacheKeyConfig(
        ttl_sec={CacheLayer.LOCAL: local, CacheLayer.REMOTE: remote},
        ramp={CacheLayer.LOCAL: local_ramp, CacheLayer.REMOTE: remote_ramp},
    )


BOTH = layers()
LOCAL_ONLY = layers(remote=0, remote_ramp=0)
REMOTE_ONLY = layers(local=0, local_ramp=0)


def constant(config: GCacheKeyConfig | None):  # type: ignore[no-untyped-def]
    """An async provider that always answers ``config``."""

    async def provider(key: GCacheKey) -> GCacheKeyConfig | None:
        return config

    return provider
