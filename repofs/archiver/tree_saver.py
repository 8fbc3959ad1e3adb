"""Saving folders: wait for the entries, encode the tree blob, store it once."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..model.ids import hash_id
from ..model.tree import Node, encode_tree
from ..repo.index import BlobType
from ..repo.saver import BlobSaver
from .future import FutureNode
from .report import ItemStats, Reporter

# Trees with more nodes than this are encoded in a worker thread.
INLINE_NODES = 32


class TreeSaver:
    """Completes folder nodes in background tasks of ``nursery``."""

    def __init__(self, saver: BlobSaver, reporter: Reporter, nursery: trio.Nursery,
                 cpu: trio.CapacityLimiter) -> None:
        self.saver = saver
        self.reporter = reporter
        self._nursery = nursery
        self._cpu = cpu

    async def save_nodes(self, nodes: Sequence[Node]) -> tuple[bytes, ItemStats]:
        """Store the tree of ``nodes``; its id and what it added."""
        def encode() -> tuple[bytes, bytes]:
            data = encode_tree(nodes)
            return data, hash_id(data)

        if len(nodes) > INLINE_NODES:
            data, tree_id = await trio.to_thread.run_sync(encode, limiter=self._cpu)
        else:
            data, tree_id = encode()
        result = await self.saver.save(BlobType.TREE, data, tree_id)
        stats = ItemStats()
        if not result.known:
            stats.tree_blobs = 1
            stats.tree_size = result.length
            stats.tree_size_in_repo = result.size_in_repo
        return tree_id, stats

    def save(self, item: str, meta: Node, entries: list[FutureNode], previous: Node | None,
             start: float, previous_nodes: list[Node] | None = None) -> FutureNode:
        """The folder ``meta`` with its subtree made of ``entries``, once they are done.
        ``previous_nodes`` are the nodes of ``previous`` (the folder in the parent snapshot)."""
        fut = FutureNode()
        self._nursery.start_soon(self._save, item, meta, entries, previous, start, previous_nodes, fut)
        return fut

    async def _save(self, item: str, meta: Node, entries: list[FutureNode], previous: Node | None,
                    start: float, previous_nodes: list[Node] | None, fut: FutureNode) -> None:
        nodes = []
        for entry in entries:
            node = await entry.get()
            if node is not None:
                nodes.append(node)
        entries.clear()
        if (previous is not None and previous.subtree is not None and nodes == previous_nodes
                and self.saver.known(BlobType.TREE, previous.subtree)):
            # Nodes equal field for field encode to the same bytes: the parent's tree is
            # this tree, no need to encode and hash it again.
            tree_id, stats = previous.subtree, ItemStats()
        else:
            tree_id, stats = await self.save_nodes(nodes)
        node = meta.replace(subtree=tree_id)
        self.reporter.complete_item(item, previous, node, stats, trio.current_time() - start)
        fut.set(node)
