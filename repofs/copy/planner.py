"""The tree walk of a copy: every tree below the chosen snapshots, read from the source a
level at a time and pack by pack; trees the destination lacks are copied on the way, and
the data blobs it lacks are collected for the data phase.

Trees are copied with their ids and bytes unchanged. Every tree is walked even when the
destination holds it already: an index may list a tree whose blobs an interrupted backup or
copy never stored, so a tree's presence says nothing about its subtrees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..errors import IntegrityError
from ..model.ids import ID_SIZE
from ..repo.index import BlobType
from ..repo.packer import SealedBlob
from .blobs import Wanted
from .reader import SourceReader, fetch_all
from .report import CopyStats
from .sink import BlobSink, Stored


def tree_refs(plain: bytes, tree_id: bytes) -> tuple[list[bytes], list[tuple[bytes, ...]]]:
    """The subtree ids of a tree blob and the content (data blob ids) of each of its files
    that has any."""
    try:
        nodes = json.loads(plain)["nodes"] or ()
        subtrees = [bytes.fromhex(n["subtree"]) for n in nodes if n.get("subtree")]
        contents = [tuple(bytes.fromhex(c) for c in n["content"]) for n in nodes if n.get("content")]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"tree {tree_id.hex()}: cannot parse: {exc}") from None
    if any(len(i) != ID_SIZE for i in subtrees) or any(len(i) != ID_SIZE for c in contents for i in c):
        raise IntegrityError(f"tree {tree_id.hex()}: an id is not 32 bytes")
    return subtrees, contents


class TreeWalk:
    """Walks source trees once each (across every ``walk`` call), copying those the
    destination lacks; ``wanted_data`` holds the data blobs met that the destination lacks,
    in the order first met."""

    def __init__(self, reader: SourceReader, sink: BlobSink, stats: CopyStats, workers: int) -> None:
        self.reader = reader
        self.sink = sink
        self.stats = stats
        self.workers = workers
        self.visited: set[bytes] = set()
        self.wanted_data: dict[bytes, None] = {}

    def want_data(self, blob_id: bytes) -> None:
        if blob_id not in self.wanted_data and not self.sink.has(BlobType.DATA, blob_id):
            self.wanted_data[blob_id] = None

    async def walk(self, roots: Iterable[bytes]) -> None:
        """Walk the trees below ``roots`` not walked before."""
        found: list[bytes] = []

        async def consume(results: list[Any]) -> None:
            store: list[Stored] = []
            for result in results:
                self.stats.trees_read += 1
                for s in self.visit(result, store):
                    if s not in self.visited:
                        self.visited.add(s)
                        found.append(s)
            await self.sink.add(store)

        level = [r for r in dict.fromkeys(roots) if r not in self.visited]
        self.visited.update(level)
        while level:
            runs = self.reader.plan((t, BlobType.TREE) for t in level)
            await fetch_all(self.reader, runs, self.open_tree, consume, self.workers)
            level = found[:]
            found.clear()

    def open_tree(self, wanted: Wanted, plain: bytes, frame: bytes | None) -> _Opened:
        """Thread side: the tree's references, and the tree sealed when it is ours to copy."""
        subtrees, contents = tree_refs(plain, wanted.id)
        claimed = self.sink.claim(BlobType.TREE, wanted.id)
        sealed = self.sink.seal(BlobType.TREE, wanted.id, plain, frame, len(plain)) if claimed else None
        return wanted, claimed, sealed, subtrees, contents

    def visit(self, opened: _Opened, store: list[Stored]) -> list[bytes]:
        """Trio side: the tree to ``store`` if claimed, its data blobs noted; returns its
        subtrees."""
        wanted, claimed, sealed, subtrees, contents = opened
        if claimed:
            self.stats.planned_blobs += 1
            self.stats.planned_bytes += wanted.plain_length
            store.append((BlobType.TREE, wanted.plain_length, sealed))
        for content in contents:
            for blob_id in content:
                self.want_data(blob_id)
        return subtrees


_Opened = tuple[Wanted, bool, "SealedBlob | None", list[bytes], list[tuple[bytes, ...]]]
