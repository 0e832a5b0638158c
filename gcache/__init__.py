"""GCache: a read-through function cache with an in-process layer and a Redis layer.

See the README for the guide; every public name is re-exported here.
"""

from ._cache import GCache as GCache
from ._config import BusConfig as BusConfig
from ._config import CacheLayer as CacheLayer
from ._config import GCacheConfig as GCacheConfig
from ._config import GCacheKeyConfig as GCacheKeyConfig
from ._config import RedisConfig as RedisConfig
from ._exceptions import GCacheError as GCacheError
from ._exceptions import InvalidationError as InvalidationError
from ._exceptions import KeyBuildError as KeyBuildError
from ._keys import GCacheKey as GCacheKey

__all__ = [
    "BusConfig",
    "CacheLayer",
    "GCache",
    "GCacheConfig",
    "GCacheError",
    "GCacheKey",
    "GCacheKeyConfig",
    "InvalidationError",
    "KeyBuildError",
    "RedisConfig",
]
