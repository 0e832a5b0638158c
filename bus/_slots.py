"""Redis Cluster hash slots: which slot a key is in, and one hash tag per slot.

A Cluster runs a script only when all its keys are in one slot, so a value that the write script
checks against the namespace flush watermark F needs a copy of F *in its own slot*. The copies
are named by a hash tag per slot: the first short decimal string (``"0"``, ``"1"``, …) whose
CRC16 lands in that slot, found once by search (about 110,000 CRC16s, tens of milliseconds, done
on first use and cached). The search is deterministic, so every process, in any language, finds
the same tags.
"""

from __future__ import annotations

import functools

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = ["SLOTS", "slot_of", "slot_tag", "slot_tags"]

SLOTS = REDIS_CLUSTER_HASH_SLOTS


def slot_of(key: str) -> int:
    """The Cluster slot of ``key`` (its ``{hash tag}`` if it has one)."""
    return key_slot(key.encode())


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each slot, the first decimal string (as a hash tag) that maps to it."""
    tags: list[str | None] = [None] * SLOTS
    missing = SLOTS
    candidate = 0
    while missing:
        text = str(candidate)
        slot = key_slot(text.encode())
        if tags[slot] is None:
            tags[slot] = text
            missing -= 1
        candidate += 1
    return tuple(tag for tag in tags if tag is not None)


def slot_tag(slot: int) -> str:
    """The hash tag (without braces) of ``slot``."""
    return slot_tags()[slot]
