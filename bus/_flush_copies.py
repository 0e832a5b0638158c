"""Redis Cluster: one copy of the namespace flush watermark F in every hash slot.

The write script must refuse, atomically, a value computed before the last flush; on a Cluster
it can only read keys in the value's own slot. So F has a copy in each of the 16384 slots
(``ns:flush:slot:{tag}``, :mod:`bus._slots` finds the tags) and a value's write reads the copy
of its slot. A flush raises F first (in the namespace's slot, with its announcement), then every
copy (each ``max(copy, F)``), then deletes the stored values: by the time it returns, no slot
accepts a value computed before F. A copy that is missing means a new namespace (the process that
creates the namespace creates the copies, see :func:`create_flush_copies`) or a node that lost
its data — and with it that slot's entity watermarks; the write script then sets it to now and
refuses older values, as it does with the single server's F.

Both operations send one script per primary, over the copies of the slots it serves (the
script's ``allow-cross-slot-keys`` flag, Redis 7.0+, lets it touch many slots of its own node):
a handful of round trips, never on the read or write path. If the slot map changed meanwhile
(a migration), the node refuses the keys it does not serve and the operation raises.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import SlotNotCoveredError

from ._names import flush_copy_key
from ._slots import slot_of, slot_tag, slot_tags

__all__ = ["create_flush_copies", "flush_copy_for", "raise_flush_copies"]

_SET_COPIES = """#!lua flags=allow-cross-slot-keys
-- ARGV[1] 'create' (SET NX) or 'raise' (copy = max(copy, F)), ARGV[2] F, then the copies' keys,
-- all served by this node (undeclared keys: they span many slots of this node).
local f = tonumber(ARGV[2])
for i = 3, #ARGV do
  if ARGV[1] == 'create' then
    redis.call('SET', ARGV[i], ARGV[2], 'NX')
  else
    local cur = redis.call('GET', ARGV[i])
    if not cur or tonumber(cur) < f then redis.call('SET', ARGV[i], ARGV[2]) end
  end
end
return #ARGV - 2
"""


def flush_copy_for(namespace: str, key: str) -> str:
    """The copy of F in ``key``'s slot."""
    return flush_copy_key(namespace, slot_tag(slot_of(key)))


async def _set_copies(client: RedisCluster, namespace: str, mode: str, watermark: int) -> None:
    await client.initialize()
    by_node: dict[ClusterNode, list[str]] = {}
    for tag in slot_tags():
        key = flush_copy_key(namespace, tag)
        node = client.get_node_from_key(key)
        if node is None:
            raise SlotNotCoveredError(f"no node serves the slot of {key}")
        by_node.setdefault(node, []).append(key)
    await asyncio.gather(
        *(
            client.execute_command(
                "EVAL", _SET_COPIES, 0, mode, watermark, *keys, target_nodes=node
            )
            for node, keys in by_node.items()
        )
    )


async def raise_flush_copies(client: RedisCluster, namespace: str, watermark: int) -> None:
    """Set every slot's copy of F to ``max(copy, watermark)``."""
    await _set_copies(client, namespace, "raise", watermark)


async def create_flush_copies(client: RedisCluster, namespace: str, watermark: int) -> None:
    """Create the copies of a new namespace's F (``SET NX``: a copy already made, or raised by
    a flush meanwhile, is left alone)."""
    await _set_copies(client, namespace, "create", watermark)
