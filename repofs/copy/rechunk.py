"""``copy --rechunk``: file contents cut again with the destination's chunker, and the trees
rewritten bottom-up to point at the new blobs.

Three passes:

1. ``RechunkWalk`` reads every tree below the chosen snapshots (level by level, pack by pack,
   as a plain copy does) and records each tree's subtrees and each file's content. A file of
   one blob shorter than the chunker's minimum chunk is one chunk whatever the polynomial, so
   its blob is copied as it is; every other content is cut again.
2. Each distinct content is read in file order (one ranged read per run of blobs that follow
   each other in a pack), fed to a fresh ``Chunker`` of the destination's polynomial, and the
   new chunks are stored; identical files are cut once.
3. Trees are rewritten by height, leaves first, so a tree's subtrees have their new ids when
   it is rewritten: new content lists and subtree ids give new tree bytes and a new id. A tree
   that nothing changed keeps its bytes and id.

The new blob ids are those a backup of the same files into the destination would make.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import trio

from ..chunker import MIN_SIZE, Chunker
from ..model.ids import hash_id
from ..model.tree import FILE, Node, decode_tree, encode_tree
from ..repo.index import BlobType
from ..repo.packer import SealedBlob
from .blobs import MAX_GAP, ReadRun, Wanted
from .planner import TreeWalk, tree_refs
from .reader import SourceReader, fetch_all
from .report import CopyStats
from .sink import BlobSink, Stored

FILE_RUN = 4 << 20  # bytes one read of a file's blobs may cover

Content = tuple[bytes, ...]
_Piece = tuple[bytes, int, bool, "SealedBlob | None"]


def file_runs(located: Iterable[tuple[bytes, Wanted]], max_gap: int = MAX_GAP,
              max_run: int = FILE_RUN) -> list[ReadRun]:
    """Reads of a file's blobs in content order: a blob joins the read before it when it lies
    in the same pack, after it, at most ``max_gap`` bytes further on."""
    runs: list[ReadRun] = []
    current: ReadRun | None = None
    for pack_id, b in located:
        if (current is not None and current.pack_id == pack_id
                and current.end <= b.offset <= current.end + max_gap and b.end - current.start <= max_run):
            current.blobs.append(b)
            current.end = b.end
            continue
        current = ReadRun(pack_id, b.offset, b.end, [b])
        runs.append(current)
    return runs


def by_height(children: dict[bytes, list[bytes]]) -> list[list[bytes]]:
    """Trees grouped by height (0: no subtrees), so each group's subtrees are in earlier ones."""
    height: dict[bytes, int] = {}
    for root, subtrees in children.items():
        if root in height:
            continue
        stack = [(root, iter(subtrees))]
        while stack:
            tree, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                height[tree] = 1 + max((height[c] for c in children[tree]), default=-1)
            elif child not in height:
                stack.append((child, iter(children[child])))
    levels: list[list[bytes]] = [[] for _ in range(1 + max(height.values(), default=-1))]
    for tree, h in height.items():
        levels[h].append(tree)
    return levels


class RechunkWalk(TreeWalk):
    """Pass 1: the tree graph and the contents to cut again; copies no trees."""

    def __init__(self, reader: SourceReader, sink: BlobSink, stats: CopyStats, workers: int) -> None:
        super().__init__(reader, sink, stats, workers)
        self.children: dict[bytes, list[bytes]] = {}
        self.contents: dict[Content, None] = {}

    def open_tree(self, wanted: Wanted, plain: bytes, frame: bytes | None) -> Any:
        return wanted, tree_refs(plain, wanted.id)

    def visit(self, opened: Any, store: list[Stored]) -> list[bytes]:
        wanted, (subtrees, contents) = opened
        self.children[wanted.id] = subtrees
        for content in contents:
            if content in self.contents:
                continue
            if len(content) == 1 and self.reader.locate(content[0], BlobType.DATA)[1].plain_length < MIN_SIZE:
                self.want_data(content[0])
            else:
                self.contents[content] = None
        return subtrees


class Rechunker:
    """Rewrites the trees below some roots for the destination's ``polynomial``."""

    def __init__(self, reader: SourceReader, sink: BlobSink, stats: CopyStats, polynomial: int,
                 workers: int, files: int) -> None:
        self.reader = reader
        self.sink = sink
        self.stats = stats
        self.polynomial = polynomial
        self.workers = workers
        self.files = files
        self.walk = RechunkWalk(reader, sink, stats, workers)
        self.new_content: dict[Content, Content] = {}
        self.new_tree: dict[bytes, bytes] = {}

    @property
    def wanted_data(self) -> dict[bytes, None]:
        """Blobs of small files, copied as they are by the data phase."""
        return self.walk.wanted_data

    async def run(self, roots: Sequence[bytes]) -> dict[bytes, bytes]:
        """New root tree ids for ``roots``."""
        await self.walk.walk(roots)
        self.stats.phase = "rechunk"
        await self._cut_all(list(self.walk.contents))
        self.stats.phase = "trees"
        for level in by_height(self.walk.children):
            runs = self.reader.plan((t, BlobType.TREE) for t in level)
            await fetch_all(self.reader, runs, self._rewrite, self._store_tree, self.workers)
        return {r: self.new_tree[r] for r in roots}

    # -- pass 2: file contents ----------------------------------------------------------

    async def _cut_all(self, contents: list[Content]) -> None:
        located = {c: [self.reader.locate(i, BlobType.DATA) for i in c] for c in contents}
        self.stats.rechunk_total = sum(w.plain_length for blobs in located.values() for _, w in blobs)
        send, recv = trio.open_memory_channel[Content](0)

        async def worker(todo: trio.MemoryReceiveChannel[Content]) -> None:
            async with todo:
                async for content in todo:
                    self.new_content[content] = await self._cut(located[content])

        async with trio.open_nursery() as nursery:
            async with recv:
                for _ in range(self.files):
                    nursery.start_soon(worker, recv.clone())
            async with send:
                for content in contents:
                    await send.send(content)

    async def _cut(self, located: list[tuple[bytes, Wanted]]) -> Content:
        chunker = Chunker(self.polynomial)
        new_ids: list[bytes] = []

        def feed(wanted: Wanted, plain: bytes, frame: bytes | None) -> tuple[list[_Piece], int]:
            return [self._piece(p) for p in chunker.feed(plain)], len(plain)

        async def consume(results: list[tuple[list[_Piece], int]]) -> None:
            for pieces, read in results:
                self.stats.rechunked_bytes += read
                await self._store_pieces(pieces, new_ids)

        for run in file_runs(located):
            await self.reader.fetch(run, feed, consume)

        def last() -> list[_Piece]:
            piece = chunker.finish()
            return [self._piece(piece)] if piece else []

        await self._store_pieces(await self.reader.src.cpu_run(last), new_ids)
        self.stats.rechunked_files += 1
        return tuple(new_ids)

    def _piece(self, data: bytes) -> _Piece:
        """Thread side: a new chunk's id, length, and the chunk sealed if it is ours to store."""
        blob_id = hash_id(data)
        claimed = self.sink.claim(BlobType.DATA, blob_id)
        sealed = self.sink.seal(BlobType.DATA, blob_id, data, None, len(data)) if claimed else None
        return blob_id, len(data), claimed, sealed

    async def _store_pieces(self, pieces: list[_Piece], new_ids: list[bytes]) -> None:
        store: list[Stored] = []
        for blob_id, length, claimed, sealed in pieces:
            new_ids.append(blob_id)
            if claimed:
                self.stats.planned_blobs += 1
                self.stats.planned_bytes += length
                store.append((BlobType.DATA, length, sealed))
        await self.sink.add(store)

    # -- pass 3: trees ------------------------------------------------------------------

    def _rewrite(self, wanted: Wanted, plain: bytes, frame: bytes | None) -> tuple[Wanted, bytes, int, bool,
                                                                                    SealedBlob | None]:
        """Thread side: the tree with new contents and subtrees; sealed if ours to store."""
        nodes: list[Node] = decode_tree(plain)
        changed = False
        for i, node in enumerate(nodes):
            if node.subtree is not None:
                subtree = self.new_tree[node.subtree]
                if subtree != node.subtree:
                    nodes[i] = node = node.replace(subtree=subtree)
                    changed = True
            if node.type == FILE and node.content:
                content = self.new_content.get(tuple(node.content))
                if content is not None and content != tuple(node.content):
                    nodes[i] = node.replace(content=content)
                    changed = True
        tree_id = wanted.id
        if changed:
            plain = encode_tree(nodes)
            tree_id = hash_id(plain)
            frame = None
        claimed = self.sink.claim(BlobType.TREE, tree_id)
        sealed = self.sink.seal(BlobType.TREE, tree_id, plain, frame, len(plain)) if claimed else None
        return wanted, tree_id, len(plain), claimed, sealed

    async def _store_tree(self, results: list[tuple[Wanted, bytes, int, bool, SealedBlob | None]]) -> None:
        store: list[Stored] = []
        for wanted, tree_id, length, claimed, sealed in results:
            self.new_tree[wanted.id] = tree_id
            if claimed:
                self.stats.planned_blobs += 1
                self.stats.planned_bytes += length
                store.append((BlobType.TREE, length, sealed))
        await self.sink.add(store)
