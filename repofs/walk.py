"""Depth-first walks over snapshot trees, loading the trees ahead of the walker."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator

import trio

from .model.tree import Node
from .trees import TreeLoader

PREFETCH = 8
BATCH = 256  # nodes handed over at once, at most

# Decides for a directory node and its path whether the walk descends into it.
Descend = Callable[[bytes, Node], bool]


def _everything(path: bytes, node: Node) -> bool:
    return True


@trio.as_safe_channel
async def walk(trees: TreeLoader, tree_id: bytes, prefix: bytes = b"",
               descend: Descend = _everything) -> AsyncGenerator[list[tuple[bytes, Node]], None]:
    """(path, node) for every node below ``tree_id`` in restic's order: sorted names, each
    directory followed at once by its contents; in lists of up to BATCH, since every hand-over
    through the channel costs a task switch. Use as ``async with walk(...) as batches``.

    When a tree is loaded its subtrees are fetched in the background, at most PREFETCH at a
    time, so the walk rarely waits on one tree at a time.
    """
    limiter = trio.CapacityLimiter(PREFETCH)
    async with trio.open_nursery() as nursery:

        async def prefetch(subtree: bytes) -> None:
            async with limiter:
                try:
                    await trees.raw(subtree)
                except Exception:  # noqa: BLE001  the walker meets the error itself later
                    pass

        async def open_tree(tid: bytes) -> Iterator[Node]:
            nodes = await trees.load(tid)
            for n in nodes:
                if n.subtree is not None:
                    nursery.start_soon(prefetch, n.subtree)
            return iter(nodes)

        stack: list[tuple[bytes, Iterator[Node]]] = [(prefix, await open_tree(tree_id))]
        batch: list[tuple[bytes, Node]] = []
        while stack:
            path, nodes = stack[-1]
            node = next(nodes, None)
            if node is None:
                stack.pop()
                continue
            node_path = path + b"/" + node.name
            batch.append((node_path, node))
            if node.subtree is not None and descend(node_path, node):
                stack.append((node_path, await open_tree(node.subtree)))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        nursery.cancel_scope.cancel()
