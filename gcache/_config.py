"""Configuration objects: what a user passes in, validated when it is built.

Every object here is a frozen, keyword-only dataclass. Validation happens in ``__post_init__`` so
a bad value fails where it was written, not on the first cache miss in production.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from ._serializers import SERIALIZERS, SerializerName
from ._signing import signing_keys

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from redis.asyncio import Redis, RedisCluster

    from ._keys import GCacheKey

__all__ = [
    "DEFAULT_MAX_LOCAL_BYTES",
    "DEFAULT_MAX_LOCAL_ENTRIES",
    "DEFAULT_MAX_VALUE_BYTES",
    "DEFAULT_NAMESPACE",
    "DEFAULT_SOCKET_TIMEOUT",
    "DEFAULT_WATERMARK_TTL_SEC",
    "BusConfig",
    "CacheLayer",
    "ConfigProvider",
    "GCacheConfig",
    "GCacheKeyConfig",
    "RedisConfig",
]

DEFAULT_NAMESPACE = "gcache"
DEFAULT_MAX_LOCAL_ENTRIES = 100_000
DEFAULT_MAX_LOCAL_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_WATERMARK_TTL_SEC = 3600.0
DEFAULT_MAX_STALENESS_MS = 500.0
DEFAULT_STREAM_MAXLEN = 100_000

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class CacheLayer(Enum):
    """The two layers of the cache, consulted in this order."""

    LOCAL = "local"
    """In-process memory of one replica."""
    REMOTE = "remote"
    """Redis, shared by every replica."""


def _check_number(what: str, layer: object, value: object, *, high: float | None = None) -> float:
    if not isinstance(layer, CacheLayer):
        raise TypeError(f"{what} keys must be CacheLayer members, got {layer!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}[{layer.name}] must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (high is not None and value > high):
        bound = f"between 0 and {high:g}" if high is not None else ">= 0"
        raise ValueError(f"{what}[{layer.name}] must be {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class GCacheKeyConfig:
    """How one call is cached: per-layer TTL in seconds and ramp in percent.

    A layer missing from either mapping, with a TTL of 0 or a ramp of 0 is not used. The ramp is
    the share of calls that use the layer (a random draw per call), so a new use case can be
    rolled out from 0 to 100 without a deploy.
    """

    ttl_sec: Mapping[CacheLayer, float]
    ramp: Mapping[CacheLayer, float]
    # Flattened copies read on the hot path (attribute access beats two dict lookups).
    local_ttl: float = field(init=False, repr=False, compare=False)
    remote_ttl: float = field(init=False, repr=False, compare=False)
    local_ramp: float = field(init=False, repr=False, compare=False)
    remote_ramp: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("ttl_sec", "ramp"):
            if not isinstance(getattr(self, name), Mapping):
                raise TypeError(f"{name} must be a mapping of CacheLayer to number")
        ttl = {k: _check_number("ttl_sec", k, v) for k, v in self.ttl_sec.items()}
        ramp = {k: _check_number("ramp", k, v, high=100) for k, v in self.ramp.items()}
        setattr_ = object.__setattr__
        setattr_(self, "local_ttl", ttl.get(CacheLayer.LOCAL, 0.0))
        setattr_(self, "remote_ttl", ttl.get(CacheLayer.REMOTE, 0.0))
        setattr_(self, "local_ramp", ramp.get(CacheLayer.LOCAL, 0.0))
        setattr_(self, "remote_ramp", ramp.get(CacheLayer.REMOTE, 0.0))


ConfigProvider = Callable[
    ["GCacheKey"],
    Awaitable[GCacheKeyConfig | None] | GCacheKeyConfig | None,
]
"""Returns the config for one call, or ``None`` to skip caching for it. May be async or sync.

It runs on every cached call (LOCAL hits included), so it should be cheap and should not do I/O.
A sync cached function calls an async provider without an event loop when the provider never
suspends; one that does suspend is run on gcache's background loop instead.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisConfig:
    """Where the REMOTE layer lives. ``url`` (``redis://`` or ``rediss://``), when given, takes
    precedence over host/port/db/username/password/ssl; the ``ssl_*`` options apply to both
    forms (README: "TLS and ACL")."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    """Connect with TLS (implied by a ``rediss://`` url)."""
    ssl_ca_certs: str | None = None
    """PEM file of the CA(s) that signed the server's certificate; ``None`` trusts the system's."""
    ssl_certfile: str | None = None
    """Client certificate (PEM), for servers that demand one (mutual TLS)."""
    ssl_keyfile: str | None = None
    """Private key of ``ssl_certfile``, when it is not in that same file."""
    ssl_cert_reqs: Literal["required", "optional", "none"] = "required"
    """Whether the server's certificate must verify. ``"none"`` encrypts without authenticating
    the server: for tests only."""
    ssl_check_hostname: bool = True
    """Whether the server's certificate must name the host connected to."""
    url: str | None = None
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    """Seconds one Redis command may take before the cache gives up on it (and fails open)."""
    socket_connect_timeout: float = DEFAULT_SOCKET_TIMEOUT
    max_connections: int | None = None
    client_name: str = "gcache"
    cluster: bool = False
    """Redis Cluster: host/port or ``url`` name any node (the client finds the others), the
    client is a ``redis.asyncio.RedisCluster`` and ``db`` must be 0 (README: "Scaling out")."""

    def __post_init__(self) -> None:
        if self.cluster and self.db != 0:
            raise ValueError(f"a Redis Cluster has only db 0, got db={self.db}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        for name in ("socket_timeout", "socket_connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.url is not None and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"url must start with redis://, rediss:// or unix://, got {self.url!r}"
            )
        self._check_tls()

    @property
    def uses_tls(self) -> bool:
        """True when connections are made with TLS (``ssl=True`` or a ``rediss://`` url)."""
        if self.url is not None:
            return self.url.startswith("rediss://")
        return self.ssl

    def _check_tls(self) -> None:
        if self.url is not None and self.ssl and not self.uses_tls:
            raise ValueError("ssl=True needs a rediss:// url (the url decides), got redis://")
        if self.ssl_cert_reqs not in ("required", "optional", "none"):
            raise ValueError(
                f"ssl_cert_reqs must be 'required', 'optional' or 'none', "
                f"got {self.ssl_cert_reqs!r}"
            )
        files = {
            name: getattr(self, name) for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
        }
        customised = [name for name, path in files.items() if path is not None]
        if self.ssl_cert_reqs != "required":
            customised.append("ssl_cert_reqs")
        if not self.ssl_check_hostname:
            customised.append("ssl_check_hostname")
        if customised and not self.uses_tls:
            raise ValueError(
                f"{', '.join(customised)} given without TLS: set ssl=True or use a rediss:// url"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the certificate it is the key of)")
        if self.ssl_cert_reqs == "none" and self.ssl_check_hostname:
            raise ValueError("ssl_cert_reqs='none' needs ssl_check_hostname=False")
        for name, path in files.items():
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file: {path!r}")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.Redis``, or for ``Redis.from_url(url, ...)``
        when ``url`` is set (then without the fields the url carries)."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "client_name": self.client_name,
        }
        if self.max_connections is not None:
            kwargs["max_connections"] = self.max_connections
        if self.url is None:
            kwargs.update(
                host=self.host,
                port=self.port,
                db=self.db,
                username=self.username,
                password=self.password,
                ssl=self.ssl,
            )
        if self.uses_tls:
            kwargs.update(
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        return kwargs


@dataclass(frozen=True, slots=True, kw_only=True)
class BusConfig:
    """The invalidation bus that keeps every replica's LOCAL layer coherent (README: "The
    invalidation bus")."""

    transport: Literal["streams", "pubsub"] = "streams"
    """``streams`` resumes after a reconnect from the last event applied; ``pubsub`` is lighter
    but must flush the LOCAL layer on every reconnect."""
    max_staleness_ms: float = DEFAULT_MAX_STALENESS_MS
    """A tracked LOCAL hit is served only while this process can prove it has applied every
    event published more than this long ago; otherwise the LOCAL layer is bypassed."""
    stream_maxlen: int = DEFAULT_STREAM_MAXLEN
    """Events kept in the stream (approximately). A replica further behind flushes its LOCAL
    layer instead of missing invalidations."""

    def __post_init__(self) -> None:
        if self.transport not in ("streams", "pubsub"):
            raise ValueError(f"transport must be 'streams' or 'pubsub', got {self.transport!r}")
        if not self.max_staleness_ms >= 10:
            raise ValueError(f"max_staleness_ms must be >= 10, got {self.max_staleness_ms!r}")
        if self.stream_maxlen < 100:
            raise ValueError(f"stream_maxlen must be >= 100, got {self.stream_maxlen!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GCacheConfig:
    """Everything one :class:`GCache` instance needs.

    Give at most one of ``redis_config`` and ``redis_client_factory``; with neither, only the
    LOCAL layer is used.
    """

    cache_config_provider: ConfigProvider
    redis_config: RedisConfig | None = None
    redis_client_factory: Callable[[], Redis | RedisCluster] | None = None
    """Returns a ``redis.asyncio.Redis`` (or a ``redis.asyncio.RedisCluster``). Called once per
    event loop that uses the cache (and once for gcache's own background loop); it must not hand
    one client to two threads."""
    bus: BusConfig | None = BusConfig()
    """The invalidation bus, used whenever Redis is configured. ``None`` turns the subscriber
    off: LOCAL entries are then as fresh as their TTL across replicas (invalidations are still
    published, for the replicas that do listen)."""
    namespace: str = DEFAULT_NAMESPACE
    """Prefix of every Redis key this instance touches; two applications with different
    namespaces can share one Redis."""
    metrics_prefix: str = ""
    metrics_registry: CollectorRegistry | None = None
    """Where the metrics are registered; ``None`` means prometheus_client's default registry."""
    max_local_entries: int = DEFAULT_MAX_LOCAL_ENTRIES
    max_local_bytes: int = DEFAULT_MAX_LOCAL_BYTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    """Serialized values larger than this are returned but not cached (counted)."""
    watermark_ttl_sec: float = DEFAULT_WATERMARK_TTL_SEC
    """How long an invalidation keeps refusing writes of values computed before it. A fallback
    that runs longer than this is not cached at all, so the refusal can never be outlived."""
    remote_write_attempts: int = 3
    remote_write_budget_sec: float = 0.25
    invalidation_attempts: int = 5
    invalidation_budget_sec: float = 3.0
    error_log_interval_sec: float = 10.0
    """Errors of one kind are logged once per interval; the rest are counted and summarised."""
    timer: Callable[[], float] = time.monotonic
    """Monotonic clock for LOCAL expiry (and ``config_reuse_sec``); tests inject a fake one."""
    config_reuse_sec: float = 0.0
    """Reuse the config provider's answer for a decorated function this many seconds instead of
    asking on every call (0: ask on every call). Only for providers whose answer depends on the
    use case alone, not on the key's id or arguments; a provider that raises is asked again on
    the next call. Saves the provider's own cost on every hit (README: "Runtime
    Configuration")."""
    serializer: SerializerName = "pickle"
    """How values are stored in Redis: ``"pickle"`` (any picklable value) or ``"json"`` (orjson:
    only JSON-safe values are cached, and they come back as JSON gives them, tuples as lists).
    A reader treats values written with the other serializer as misses (README: "Security")."""
    signing_key: bytes | str | None = field(default=None, repr=False)
    """Turns on HMAC-SHA256 signing of REMOTE values (at least 16 bytes; str is UTF-8 encoded):
    values are signed with this key, and a value that is unsigned or does not verify is a miss,
    never deserialized. Without it, pickle trusts everyone who can write to the Redis."""
    accepted_signing_keys: Sequence[bytes | str] = field(default=(), repr=False)
    """Further keys that verify but never sign: the old key after a rotation, or the next key
    before every replica has it (README: "Security")."""

    def __post_init__(self) -> None:
        if not callable(self.cache_config_provider):
            raise TypeError("cache_config_provider must be callable")
        if self.serializer not in SERIALIZERS:
            raise ValueError(f"serializer must be 'pickle' or 'json', got {self.serializer!r}")
        signing_keys(self.signing_key, self.accepted_signing_keys)  # raises for a bad key
        object.__setattr__(self, "accepted_signing_keys", tuple(self.accepted_signing_keys))
        if self.redis_config is not None and self.redis_client_factory is not None:
            raise ValueError("give redis_config or redis_client_factory, not both")
        if not isinstance(self.namespace, str) or not _NAMESPACE_RE.fullmatch(self.namespace):
            raise ValueError(
                f"namespace must be non-empty and use only letters, digits, '_', '.', '-'; "
                f"got {self.namespace!r}"
            )
        for name in ("max_local_entries", "max_local_bytes", "max_value_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("remote_write_attempts", "invalidation_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.config_reuse_sec >= 0:
            raise ValueError(f"config_reuse_sec must be >= 0, got {self.config_reuse_sec!r}")
        for name in (
            "watermark_ttl_sec",
            "remote_write_budget_sec",
            "invalidation_budget_sec",
            "error_log_interval_sec",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @property
    def has_redis(self) -> bool:
        return self.redis_config is not None or self.redis_client_factory is not None
