"""Depth-first walks over snapshot trees (dump, ls): batches of nodes, subtrees fetched
in groups.

Handing nodes over one at a time and loading each tree on its own (a backend request and a
trip through a thread per folder) cost a dump of many small files, or ``ls`` of a large
snapshot, more than everything else. Here the walk sends the siblings up to the next
folder it enters as one list, and when it opens a tree it fetches the trees of the folders
it will enter next in as few reads as their packs allow, through a TreeLoader cache of its
own (so nothing is loaded twice).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence

import trio

from .cache.blobcache import BlobCache
from .errors import RepofsError
from .fetch import PackReader, close_enough, fetch_range
from .model.tree import Node
from .repo.index import BlobLocation, BlobType
from .trees import TreeLoader

NodeBatch = list[tuple[bytes, Node]]
Descend = Callable[[bytes, Node], bool]

BATCH = 256  # nodes per batch at most
PREFETCH = 8  # groups of trees read ahead of the walk at once
CACHE = 8 << 20  # trees fetched ahead and not yet walked, in bytes; the walk needs no more
BATCHES_AHEAD = 4  # batches ``walk`` lets the walk run ahead of its reader


class _Group:
    """Tree blobs of one pack read together, the first time any of them is asked for."""

    def __init__(self, pack_id: bytes) -> None:
        self.pack_id = pack_id
        self.start = self.end = -1
        self.blobs: list[tuple[bytes, BlobLocation]] = []
        self.started = False
        self.done = trio.Event()
        self.plain: dict[bytes, bytes] = {}

    def add(self, blob_id: bytes, loc: BlobLocation) -> None:
        self.start = loc.offset if self.start < 0 else min(self.start, loc.offset)
        self.end = max(self.end, loc.offset + loc.length)
        self.blobs.append((blob_id, loc))

    async def fill(self, repo: PackReader) -> None:
        try:
            results = await fetch_range(repo, BlobType.TREE, self.pack_id, self.start, self.end, self.blobs)
            self.plain = {bid: r for (bid, _), r in zip(self.blobs, results) if isinstance(r, bytes)}
        finally:
            self.done.set()


class TreeFetcher:
    """A BlobLoader for TreeLoader: tree blobs announced with ``expect`` are read in
    groups; everything else (and anything a group failed to deliver) goes to the
    repository's ``load_blob``."""

    def __init__(self, repo: PackReader) -> None:
        self.repo = repo
        self._groups: dict[bytes, _Group] = {}

    def expect(self, tree_ids: Sequence[bytes]) -> list[_Group]:
        """Group the trees by pack and neighbourhood; returns the new groups."""
        located = []
        for tid in tree_ids:
            if tid in self._groups:
                continue
            found = self.repo.index.lookup(tid, BlobType.TREE)
            if found:
                located.append((found[0].pack_id, found[0].offset, tid, found[0]))
        located.sort(key=lambda x: (x[0], x[1]))
        groups: list[_Group] = []
        for pack_id, _, tid, loc in located:
            group = groups[-1] if groups else None
            if group is None or group.pack_id != pack_id or not close_enough(group.start, group.end, loc):
                group = _Group(pack_id)
                groups.append(group)
            group.add(tid, loc)
            self._groups[tid] = group
        return groups

    async def load_blob(self, type: BlobType, blob_id: bytes) -> bytes:  # noqa: A002
        group = self._groups.pop(blob_id, None) if type is BlobType.TREE else None
        if group is not None:
            if not group.started:
                group.started = True
                await group.fill(self.repo)
            else:
                await group.done.wait()
            plain = group.plain.pop(blob_id, None)
            if plain is not None:
                return plain
        return await self.repo.load_blob(type, blob_id)


async def walk_batches(repo: PackReader, tree_id: bytes, descend: Descend,
                       send: trio.MemorySendChannel[NodeBatch]) -> None:
    """Send ``(path, node)`` for every node below ``tree_id`` in restic's order (sorted
    names, each folder followed by its contents) as lists: the siblings up to the next
    folder walked into. ``descend`` decides which folders the walk enters."""
    fetcher = TreeFetcher(repo)
    # Each tree is walked once: a cache as large as the TreeLoader's (made for browsing)
    # would only keep what is done with. A tree pushed out before the walk gets to it is
    # loaded again, alone.
    loader = TreeLoader(fetcher, BlobCache(CACHE))
    limiter = trio.CapacityLimiter(PREFETCH)
    with send:
        async with trio.open_nursery() as nursery:

            async def warm(group: _Group) -> None:
                async with limiter:
                    for tid, _ in group.blobs:
                        try:
                            await loader.raw(tid)
                        except RepofsError:
                            pass  # the walk meets the error itself when it gets there

            async def open_tree(path: bytes, tid: bytes) -> Iterator[Node]:
                try:
                    found = await loader.load(tid)
                except RepofsError as exc:
                    raise type(exc)(f"{os.fsdecode(path) or '/'}: {exc}") from None
                ahead = [n.subtree for n in found
                         if n.subtree is not None and descend(path + b"/" + n.name, n)]
                for group in fetcher.expect(ahead):  # type: ignore[arg-type]
                    nursery.start_soon(warm, group)
                return iter(found)

            stack: list[tuple[bytes, Iterator[Node]]] = [(b"", await open_tree(b"", tree_id))]
            batch: NodeBatch = []
            while stack:
                path, siblings = stack[-1]
                node = next(siblings, None)
                if node is None:
                    stack.pop()
                    continue
                node_path = path + b"/" + node.name
                batch.append((node_path, node))
                if node.subtree is not None and descend(node_path, node):
                    await send.send(batch)
                    batch = []
                    stack.append((node_path, await open_tree(node_path, node.subtree)))
                elif len(batch) >= BATCH:
                    await send.send(batch)
                    batch = []
            if batch:
                await send.send(batch)
            nursery.cancel_scope.cancel()


def _everything(path: bytes, node: Node) -> bool:
    return True


@trio.as_safe_channel
async def walk(repo: PackReader, tree_id: bytes,
               descend: Descend = _everything) -> AsyncGenerator[NodeBatch, None]:
    """``walk_batches`` to be read as ``async with walk(repo, tree_id) as batches``."""
    send, recv = trio.open_memory_channel[NodeBatch](BATCHES_AHEAD)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(walk_batches, repo, tree_id, descend, send)
        with recv:
            async for batch in recv:
                yield batch
