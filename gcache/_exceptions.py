"""Exceptions raised by gcache.

::

    GCacheError
    ├── InvalidationError   an invalidation or flush could not be made durable in Redis
    └── KeyBuildError       a call's arguments cannot be turned into a cache key (internal:
                            the call then runs uncached, it never reaches the caller)

Configuration mistakes raise the built-in ``ValueError`` or ``TypeError`` at decoration or
construction time, so that they surface in the first test run rather than in production.
"""

from __future__ import annotations

__all__ = ["GCacheError", "InvalidationError", "KeyBuildError"]


class GCacheError(Exception):
    """Root of every exception gcache defines."""


class InvalidationError(GCacheError):
    """An invalidation or flush did not reach Redis after all retries.

    Raised by :meth:`GCache.invalidate` / :meth:`GCache.ainvalidate` and the flush calls. The
    LOCAL layer of the calling process *has* been invalidated; other replicas and the REMOTE
    layer may still hold the old value, so the caller should treat the write as not
    propagated (retry, or fail the request).
    """


class KeyBuildError(GCacheError):
    """An argument value has no stable cache-key form (for example an object whose ``repr``
    contains its memory address). Give the argument an ``arg_adapters`` entry, or list it in
    ``ignore_args``."""
