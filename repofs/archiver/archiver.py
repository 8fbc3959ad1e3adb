"""The archiver: walks the targets depth first in name order and turns them into trees.

The walk itself is sequential; folders are listed a few steps ahead of it in a worker thread
(``ListingAhead``), files go to the ``FileSaver`` and folders to the ``TreeSaver``, which both
finish in the background, so listing, reading, sealing and uploading overlap with the walk.
The parent snapshot's trees are read alongside to find unchanged files.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

import trio

from ..errors import IntegrityError, NotFound, RepofsError
from ..model import tree
from ..model.gotime import Timestamp
from ..model.tree import Node
from ..repo.index import BlobType
from ..repo.saver import BlobSaver
from ..trees import TreeLoader
from .ahead import ListingAhead
from .file_saver import FileSaver
from .future import FutureNode
from .listing import Entry, ItemError, Kind, Lister, Listing, is_dir_node
from .nodes import local_time, node_from_stat, renamed
from .prefetch import TreePrefetcher
from .report import ItemStats, Reporter
from .select import Selector
from .targets import TargetTree, components
from .tree_saver import TreeSaver


class EmptySnapshot(RepofsError):
    """Nothing was left to save."""


@dataclass(frozen=True, slots=True)
class ArchiverOptions:
    read_concurrency: int = 2
    with_atime: bool = False
    ignore_ctime: bool = False
    ignore_inode: bool = False


def _item(sn_path: bytes) -> str:
    return os.fsdecode(sn_path)


class Archiver:
    """Saves target trees through ``saver``; background tasks run in ``nursery``.

    ``save_root`` returns the root tree id; afterwards ``close`` ends the file readers, and
    the caller flushes the saver before writing a snapshot.
    """

    def __init__(self, saver: BlobSaver, trees: TreeLoader, polynomial: int, selector: Selector,
                 reporter: Reporter, nursery: trio.Nursery, cpu: trio.CapacityLimiter,
                 options: ArchiverOptions | None = None) -> None:
        self.saver = saver
        self.trees = trees
        self.reporter = reporter
        options = options or ArchiverOptions()
        self.options = options
        self._nursery = nursery
        self.lister = Lister(selector, lambda blob: saver.known(BlobType.DATA, blob),
                             options.with_atime, options.ignore_ctime, options.ignore_inode)
        self.files = FileSaver(saver, polynomial, reporter, nursery, cpu,
                               options.read_concurrency, options.with_atime)
        self.tree_saver = TreeSaver(saver, reporter, nursery, cpu)
        self._walk = trio.CapacityLimiter(1)
        self.prefetcher = TreePrefetcher(saver.repo, trees.cache, nursery)

    async def close(self) -> None:
        await self.files.close()

    # -- the parent snapshot ------------------------------------------------------------

    async def _previous_tree(self, node: Node | None, path: bytes) -> bytes | None:
        """The raw tree blob of ``node`` in the parent snapshot, if it is a folder."""
        if not is_dir_node(node):
            return None
        assert node is not None and node.subtree is not None
        try:
            return await self.trees.raw(node.subtree)
        except (NotFound, IntegrityError) as exc:
            self.reporter.error(os.fsdecode(path), ItemError(
                f"tree {node.subtree.hex()} could not be loaded; the repository could be damaged: {exc}"))
            return None

    async def _previous_nodes(self, node: Node | None, path: bytes) -> dict[bytes, Node]:
        raw = await self._previous_tree(node, path)
        if raw is None:
            return {}
        try:
            return {n.name: n for n in tree.decode_tree(raw)}
        except IntegrityError:
            return {}

    async def parent_nodes(self, tree_id: bytes | None) -> dict[bytes, Node]:
        """The root entries of the parent snapshot's tree."""
        if tree_id is None:
            return {}
        fake = Node(name=b"", type=tree.DIR, subtree=tree_id)
        nodes = await self._previous_nodes(fake, b"/")
        self.prefetcher.want([n.subtree for n in nodes.values() if n.subtree is not None], depth=3)
        return nodes

    # -- entries --------------------------------------------------------------------------

    async def _save_entry(self, sn_path: bytes, entry: Entry,
                          ahead: ListingAhead | None = None) -> FutureNode | None:
        item = _item(sn_path)
        kind = entry.kind
        if kind is Kind.NODE:
            node = entry.node
            if entry.unchanged:
                prev = entry.previous
                assert prev is not None
                self.reporter.complete_item(item, prev, prev, ItemStats(), 0.0)
                self.reporter.complete_blob(prev.size)
            return FutureNode.ready(node)
        if kind is Kind.FILE:
            if entry.warning is not None:
                self.reporter.error(os.fsdecode(entry.path), entry.warning)
            assert entry.st is not None
            return await self.files.save(item, entry.name, entry.path, entry.previous, entry.st.st_size)
        if kind is Kind.DIR:
            assert entry.st is not None
            if entry.listing_error is not None:
                self.reporter.error(os.fsdecode(entry.path), entry.listing_error)
                return None
            return await self._save_dir(sn_path, entry.name, entry.path, entry.st, entry.previous,
                                        entry.listing, ahead)
        assert entry.error is not None
        self.reporter.error(os.fsdecode(entry.path), entry.error)
        return None

    def _cached_tree(self, tree_id: bytes) -> bytes | None:
        """A parent tree blob if the cache holds it (called from the listing thread)."""
        return self.trees.cache.get_cached((BlobType.TREE, tree_id))

    async def _save_dir(self, sn_path: bytes, name: bytes, path: bytes, st: os.stat_result,
                        previous: Node | None, listing: Listing | None = None,
                        ahead: ListingAhead | None = None) -> FutureNode | None:
        """A folder's node to come; its listing is given, or comes from ``ahead`` (which
        starts here for the folder a walk begins with)."""
        start = trio.current_time()
        if listing is None:
            if ahead is None:
                ahead = ListingAhead(self.lister, self._previous_tree, self._cached_tree, self.prefetcher,
                                     self._walk)
                ahead.start(self._nursery, name, path, st, previous)
            got = await ahead.next(path)
            if isinstance(got, ItemError):
                self.reporter.error(os.fsdecode(path), got)
                return None
            listing = got
        meta, entries, previous_nodes = listing.meta, listing.entries, listing.previous_nodes
        if is_dir_node(previous):
            # Its parent tree is decoded now and not read again: without this, the parent's
            # trees stay cached up to the cache's bound (tens of MiB for 100k files).
            self.trees.cache.discard((BlobType.TREE, previous.subtree))  # type: ignore[union-attr]
        children = []
        for entry in entries:
            fut = await self._save_entry(sn_path + b"/" + entry.name, entry, ahead)
            if fut is not None:
                children.append(fut)
        return self.tree_saver.save(_item(sn_path) + "/", meta, children, previous, start, previous_nodes)

    # -- targets ----------------------------------------------------------------------------

    async def _save_target(self, sn_path: bytes, name: bytes, path: bytes,
                           previous: Node | None) -> FutureNode | None:
        entry = await trio.to_thread.run_sync(self.lister.entry, name, path, previous, limiter=self._walk)
        if entry is None:
            return None
        return await self._save_entry(sn_path, entry)

    async def _save_tree(self, sn_path: bytes, atree: TargetTree, previous: dict[bytes, Node]) -> list[Node]:
        """The nodes of one level of the target tree, all complete."""
        futures: list[tuple[bytes, FutureNode]] = []
        for name in sorted(atree.nodes):
            sub = atree.nodes[name]
            item_path = sn_path + b"/" + name
            old = previous.get(name)
            if sub.leaf:
                fut = await self._save_target(item_path, name, os.path.abspath(sub.path), old)
                if fut is not None:
                    futures.append((name, fut))
                continue
            start = trio.current_time()
            info_path = os.path.abspath(sub.info_path)
            nodes = await self._save_tree(item_path, sub, await self._previous_nodes(old, info_path))
            tree_id, stats = await self.tree_saver.save_nodes(nodes)
            node = await trio.to_thread.run_sync(_dir_node, name, info_path, self.options.with_atime)
            node = node.replace(subtree=tree_id)
            self.reporter.complete_item(_item(item_path) + "/", old, node, stats, trio.current_time() - start)
            futures.append((name, FutureNode.ready(node)))
        out = []
        for name, fut in futures:
            node = await fut.get()
            if node is not None:
                out.append(renamed(node, name))
        return out

    async def save_root(self, atree: TargetTree, parent_tree: bytes | None) -> bytes:
        """Save everything the target tree names; returns the root tree id."""
        start = trio.current_time()
        nodes = await self._save_tree(b"", atree, await self.parent_nodes(parent_tree))
        if not nodes:
            raise EmptySnapshot("snapshot is empty")
        tree_id, stats = await self.tree_saver.save_nodes(nodes)
        self.reporter.complete_item("/", None, None, stats, trio.current_time() - start)
        return tree_id


    async def save_stdin(self, fd: int, filename: bytes, mtime: Timestamp) -> bytes:
        """Save standard input as the file ``/filename`` (a path is allowed), as restic's
        ``--stdin`` does: mode 0644, all times ``mtime``, our uid and gid, no names; the
        folders above it get mode 0755 and the current time. Returns the root tree id."""
        start = trio.current_time()
        comps = components(b"/" + filename)
        if not comps:
            raise ItemError(f"invalid stdin filename {os.fsdecode(filename)!r}")
        uid, gid = os.getuid(), os.getgid()
        sn_path = b"/" + b"/".join(comps)
        meta = Node(name=comps[-1], type=tree.FILE, mode=0o644, mtime=mtime, atime=mtime, ctime=mtime,
                    uid=uid, gid=gid)
        node = await (await self.files.save_stream(_item(sn_path), fd, meta)).get()
        if node is None:
            raise EmptySnapshot("snapshot is empty")
        nodes = [node]
        for depth in range(len(comps) - 1, 0, -1):
            tree_id, stats = await self.tree_saver.save_nodes(nodes)
            now = local_time(time.time_ns())
            folder = Node(name=comps[depth - 1], type=tree.DIR, mode=tree.MODE_DIR | 0o755, mtime=now,
                          atime=now, ctime=now, uid=uid, gid=gid, subtree=tree_id)
            item = _item(b"/" + b"/".join(comps[:depth])) + "/"
            self.reporter.complete_item(item, None, folder, stats, trio.current_time() - start)
            nodes = [folder]
        tree_id, stats = await self.tree_saver.save_nodes(nodes)
        self.reporter.complete_item("/", None, None, stats, trio.current_time() - start)
        return tree_id


def _dir_node(name: bytes, path: bytes, with_atime: bool) -> Node:
    """An intermediate folder above a target: ``stat`` (links followed), must be a folder."""
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise ItemError(f"path is not a directory: {os.fsdecode(path)}")
        return node_from_stat(name, path, st, with_atime)
    except OSError as exc:
        raise ItemError.from_os("stat", path, exc) from None
