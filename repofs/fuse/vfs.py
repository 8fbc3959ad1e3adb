"""The mounted file system as a model, without FUSE: inodes, folders, files, attributes.

At the top is the layout (``layout.py``): meta folders, snapshot folders and ``latest``
links, rebuilt when the snapshot list changes. It is re-read on access to a meta folder, at
most every ``refresh_interval`` seconds, and the kernel caches its entries only briefly.
Below a snapshot folder are the snapshot's trees, which never change: they are loaded when
a folder is looked up or listed, kept decoded in the shared byte-bounded cache, and the
kernel may cache their entries and attributes for long. Listing a folder queues its
sub-folders' trees for loading in the background (newest listing first, bounded queue, a
few workers), and each tree comes with its neighbours in the pack (``reader.py``), so
``find``, ``du`` and file managers rarely wait for one tree at a time. Files are read
through ``reader.OpenFile``; when a snapshot's files are opened in tree order (tar, cp -r),
``ahead.WalkAhead`` names the blobs of the files to come, across folders, and they are asked
for at once, so small files share ranged reads.

Inodes come from ``InodeTable``. The entries of a folder in a snapshot get one block of
consecutive numbers (the folder's inode is the block's key, an entry's position in the
listing its offset), so listing a folder does no bookkeeping per entry beyond its lookup
count, and an entry's value (``_Item``) is made only when the kernel asks about it. Every
name of a hard-linked file has one keyed inode per snapshot, (snapshot folder inode,
device, inode), so the links share one number; meta entries are keyed by their path (and
snapshot id or link target).

Errors leave as ``FsError`` with an errno; damaged or missing blobs and backend failures
are logged once each (with the path that met them first) and become EIO. ``operations.py``
translates calls and errors to pyfuse3; tests call this class directly.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pyfuse3
import trio

from ..backend.base import FileType
from ..cache.blobcache import BlobCache
from ..errors import RepofsError
from ..model.snapshot import Snapshot
from ..model.tree import (CHARDEV, DEV, DIR, FIFO, FILE, MODE_SETGID, MODE_SETUID, MODE_STICKY, SOCKET,
                          SYMLINK, Node, decode_tree, posix_mode)
from ..repo.index import BlobType
from ..repo.repository import Repository
from ..select import filter_snapshots
from .ahead import PathStep, WalkAhead
from .inodes import ROOT_INODE, Block, InodeTable
from .layout import (DEFAULT_PATH_TEMPLATES, DEFAULT_TIME_TEMPLATE, Layout, MetaDir, SnapshotDir,
                     SnapshotLink, build_layout)
from .reader import BlobFetcher, FileMap, OpenFile

log = logging.getLogger(__name__)

LONG_TIMEOUT = 3600.0   # seconds the kernel may trust what lies inside a snapshot
SHORT_TIMEOUT = 1.0     # ... and the top-level folders, which change with the snapshot list
PREFETCH_QUEUE = 4096   # sub-folder trees waiting to be loaded; the oldest are dropped
PREFETCH_WORKERS = 2
PREFETCH_BATCH = 4      # trees a worker asks for at once (each brings its pack neighbours)
INLINE_DECODE = 64 << 10  # trees larger than this are decoded in a worker thread
BIG_FILE_BLOBS = 2048     # files with more blobs get their offset map built in a thread
BLKSIZE = 1 << 20         # st_blksize: what cat and cp use as buffer size

# st_mode file types of the node types; other types and Go modes with setuid, setgid or
# sticky bits go through the model's posix_mode.
_S_IFMT = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, DEV: stat.S_IFBLK,
           CHARDEV: stat.S_IFCHR, FIFO: stat.S_IFIFO, SOCKET: stat.S_IFSOCK}
_GO_SPECIAL_BITS = MODE_SETUID | MODE_SETGID | MODE_STICKY


class FsError(Exception):
    """A file-system answer other than success: an errno, and for ENOENT how long the
    kernel may remember the miss (0: not at all)."""

    def __init__(self, errno_: int, negative_timeout: float = 0.0) -> None:
        super().__init__(os.strerror(errno_))
        self.errno = errno_
        self.negative_timeout = negative_timeout


class Attr(pyfuse3.EntryAttributes):
    """What stat shows, and how long the kernel may cache the entry and the attributes.

    It is the record pyfuse3 sends (a plain C struct, usable without a mount), so that a
    listing builds one object per entry and nothing is copied on the way to the kernel.
    The short names below are for readers of the model (tests, messages).
    """

    __slots__ = ()

    ino = property(lambda self: self.st_ino)
    mode = property(lambda self: self.st_mode)
    nlink = property(lambda self: self.st_nlink)
    uid = property(lambda self: self.st_uid)
    gid = property(lambda self: self.st_gid)
    size = property(lambda self: self.st_size)
    rdev = property(lambda self: self.st_rdev)
    blocks = property(lambda self: self.st_blocks)
    blksize = property(lambda self: self.st_blksize)
    atime_ns = property(lambda self: self.st_atime_ns)
    mtime_ns = property(lambda self: self.st_mtime_ns)
    ctime_ns = property(lambda self: self.st_ctime_ns)


def _attr(ino: int, mode: int, nlink: int, uid: int, gid: int, time_ns: int, size: int = 0,
          timeout: float = SHORT_TIMEOUT) -> Attr:
    """Attributes of an entry of the top-level folders (atime, mtime and ctime alike)."""
    a = Attr()
    a.st_ino = ino
    a.st_mode = mode
    a.st_nlink = nlink
    a.st_uid = uid
    a.st_gid = gid
    a.st_size = size
    a.st_blocks = 1 if size else 0
    a.st_blksize = BLKSIZE
    a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = time_ns
    a.entry_timeout = SHORT_TIMEOUT
    a.attr_timeout = timeout
    return a


@dataclass
class VfsConfig:
    """What the mount shows: layout templates, snapshot filters, owners, refresh."""

    path_templates: Sequence[str] = DEFAULT_PATH_TEMPLATES
    time_template: str = DEFAULT_TIME_TEMPLATE
    hosts: Sequence[str] = ()
    tags: Sequence[str] = ()
    paths: Sequence[str] = ()
    owner_root: bool = False
    refresh_interval: float = 30.0
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    read_ahead: int | None = None  # bytes; None: an eighth of the cache, 2 to 32 MiB


# -- inode values -----------------------------------------------------------------------

@dataclass(slots=True, eq=False)
class _Meta:
    path: str
    parent: int


@dataclass(slots=True, eq=False)
class _Root:
    snapshot: Snapshot
    path: str
    parent: int


@dataclass(slots=True, eq=False)
class _Link:
    link: SnapshotLink
    path: str
    parent: int


@dataclass(slots=True, eq=False)
class _Item:
    node: Node
    parent: int
    root: int
    fmap: FileMap | None = None


_Value = _Meta | _Root | _Link | _Item


class _Listing:
    """A decoded tree: nodes in stored (sorted) order, their positions by name, and the
    positions of hard-linked files. Its ``__sizeof__`` estimates the memory it holds, so
    the byte-bounded cache can count it."""

    __slots__ = ("nodes", "names", "hardlinks", "cost")

    def __init__(self, nodes: list[Node], raw_size: int) -> None:
        names = [n.name for n in nodes]
        self.names: dict[bytes, int] = dict(zip(names, range(len(names))))
        if len(self.names) != len(nodes) or _odd_names(names, self.names):
            nodes = _usable_nodes(nodes)
            self.names = {n.name: pos for pos, n in enumerate(nodes)}
        self.nodes = nodes
        self.hardlinks = frozenset(pos for pos, n in enumerate(nodes)
                                   if n.links > 1 and n.inode and n.type == FILE)
        self.cost = 2 * raw_size + 160 * len(nodes)

    def __sizeof__(self) -> int:
        return self.cost


def _odd_names(names: list[bytes], known: dict[bytes, int]) -> bool:
    """Whether a name is not usable as it is: empty, ``.``, ``..``, or holding ``/`` or NUL
    (checked on all names joined, in C, rather than name by name)."""
    if b"" in known or b"." in known or b".." in known:
        return True
    joined = b"/".join(names)
    return joined.count(b"/") != max(len(names) - 1, 0) or b"\0" in joined


def _usable_nodes(nodes: list[Node]) -> list[Node]:
    """The nodes a folder can show: each under its last path component, the first of
    duplicate names, none with an unusable name."""
    seen: set[bytes] = set()
    kept: list[Node] = []
    for node in nodes:
        name = _clean_name(node.name)
        if name is None or name in seen:
            continue
        if name != node.name:
            node = replace(node, name=name)
        seen.add(name)
        kept.append(node)
    return kept


def _clean_name(name: bytes) -> bytes | None:
    """The name a node can have in a folder: its last path component; None if unusable."""
    if b"/" in name:
        name = name.rstrip(b"/").rpartition(b"/")[2]
    if name in (b"", b".", b"..") or b"\0" in name:
        return None
    return name


def _decode_listing(raw: bytes) -> _Listing:
    return _Listing(decode_tree(raw), len(raw))


@dataclass(slots=True)
class _DirHandle:
    ino: int
    root: int
    meta_path: str | None
    entries: list[tuple[bytes, MetaDir | SnapshotDir | SnapshotLink]] | None = None
    listing: _Listing | None = None


@dataclass(slots=True)
class _FileHandle:
    ino: int
    reader: OpenFile


class VFS:
    """The file system over one open repository; lives inside the mount's nursery."""

    def __init__(self, repo: Repository, cache: BlobCache, nursery: trio.Nursery,
                 config: VfsConfig | None = None) -> None:
        self.repo = repo
        self.cache = cache
        self.nursery = nursery
        self.config = config or VfsConfig()
        self.fetcher = BlobFetcher(repo, cache, nursery)
        self.inodes: InodeTable[_Value] = InodeTable(_Meta("", ROOT_INODE))
        self.layout = Layout({"": MetaDir()})
        self.mounted_ns = time.time_ns()
        window = self.config.read_ahead
        if window is None:
            window = min(max(cache.max_bytes // 8, 2 << 20), 32 << 20)
        self.read_ahead = window
        self._snapshots: dict[bytes, Snapshot] = {}
        self._index_loaded = False
        self._next_check = -math.inf
        self._refresh_lock = trio.Lock()
        self._dirs: dict[int, _DirHandle] = {}
        self._files: dict[int, _FileHandle] = {}
        self._next_fh = 1
        self._wanted: deque[bytes] = deque(maxlen=PREFETCH_QUEUE)
        self._wake = trio.Event()
        self._reported: set[str] = set()
        self.ahead = WalkAhead(self._cached_listing, self._want_trees, self.read_ahead)

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the snapshot list and the index, then start the tree prefetchers."""
        await self.refresh(force=True)
        for _ in range(PREFETCH_WORKERS):
            self.nursery.start_soon(self._prefetch_worker)

    def close(self) -> None:
        """Forget every inode and handle (after unmounting)."""
        self._dirs.clear()
        self._files.clear()
        self.inodes.forget_all()

    async def refresh(self, force: bool = False) -> None:
        """Re-read the snapshot list if ``refresh_interval`` has passed (or ``force``); load
        new snapshots and the index they need, and rebuild the layout if anything changed."""
        if not force and trio.current_time() < self._next_check:
            return
        async with self._refresh_lock:
            if not force and trio.current_time() < self._next_check:
                return
            try:
                await self._reload()
            except RepofsError as exc:
                if force:
                    raise
                self._report("snapshot list", exc)
            finally:
                self._next_check = trio.current_time() + self.config.refresh_interval

    async def _reload(self) -> None:
        ids = await self.repo.list_ids(FileType.SNAPSHOT)
        present = set(ids)
        if self._index_loaded and present == set(self._snapshots):
            return
        known = {i: s for i, s in self._snapshots.items() if i in present}
        new = [i for i in ids if i not in known]

        async def load(snapshot_id: bytes) -> None:
            try:
                known[snapshot_id] = await self.repo.load_snapshot(snapshot_id)
            except RepofsError as exc:  # a damaged or vanished snapshot file: leave it out
                self._report(f"snapshot {snapshot_id.hex()[:8]}", exc)

        async def load_index() -> None:
            await self.repo.load_index()
            self._index_loaded = True

        async with trio.open_nursery() as nursery:
            if new or not self._index_loaded:  # new snapshots may need new packs
                nursery.start_soon(load_index)
            for snapshot_id in new:
                nursery.start_soon(load, snapshot_id)
        self._snapshots = known
        c = self.config
        chosen = filter_snapshots(list(known.values()), c.hosts, c.tags, c.paths)
        self.layout = await self.repo.cpu_run(build_layout, chosen, c.path_templates, c.time_template)

    # -- inodes ------------------------------------------------------------------------

    def _value(self, ino: int) -> _Value:
        try:
            return self.inodes.get(ino)
        except KeyError:
            raise FsError(errno.ESTALE) from None

    def _meta_child(self, parent: int, folder: str, name: str,
                    item: MetaDir | SnapshotDir | SnapshotLink) -> int:
        path = f"{folder}/{name}" if folder else name
        if isinstance(item, MetaDir):
            return self.inodes.ino_for(("meta", path), lambda: _Meta(path, parent))
        if isinstance(item, SnapshotDir):
            snap = item.snapshot
            return self.inodes.ino_for(("snap", path, snap.id), lambda: _Root(snap, path, parent))
        return self.inodes.ino_for(("link", path, item.target), lambda: _Link(item, path, parent))

    def _children(self, ino: int, root: int, listing: _Listing) -> Block[_Value]:
        """The inode block of a snapshot folder's entries (made on first use)."""
        nodes = listing.nodes
        return self.inodes.block(ino, len(nodes), lambda pos: _Item(nodes[pos], ino, root))

    def _hardlink(self, parent: int, root: int, node: Node) -> int:
        """The inode all names of a hard-linked file in one snapshot share (uncounted)."""
        key = ("hardlink", root, node.device_id, node.inode)
        return self.inodes.ino_for(key, lambda: _Item(node, parent, root))

    def _parent(self, ino: int) -> int:
        return ROOT_INODE if ino == ROOT_INODE else self._value(ino).parent

    def forget(self, items: Sequence[tuple[int, int]]) -> None:
        for ino, n in items:
            self.inodes.forget(ino, n)

    def path_of(self, ino: int) -> str:
        """The path of an inode below the mount point, for messages."""
        parts: list[str] = []
        while ino != ROOT_INODE:
            value = self.inodes.get(ino) if ino in self.inodes else None
            if value is None:
                parts.append("?")
                break
            if isinstance(value, _Item):
                parts.append(os.fsdecode(value.node.name))
                ino = value.parent
            else:
                parts.append(value.path)
                break
        return "/".join(reversed(parts))

    # -- attributes --------------------------------------------------------------------

    def getattr(self, ino: int) -> Attr:
        value = self._value(ino)
        if isinstance(value, _Item):
            return self._node_attr(ino, value.node)
        uid, gid = (0, 0) if self.config.owner_root else (self.config.uid, self.config.gid)
        if isinstance(value, _Meta):
            return _attr(ino, stat.S_IFDIR | 0o555, 2, uid, gid, self.mounted_ns)
        if isinstance(value, _Root):
            return _attr(ino, stat.S_IFDIR | 0o555, 2, uid, gid, value.snapshot.time.ns,
                         timeout=LONG_TIMEOUT)
        size = len(os.fsencode(value.link.target))
        return _attr(ino, stat.S_IFLNK | 0o777, 1, uid, gid, value.link.snapshot.time.ns, size)

    def _node_attr(self, ino: int, node: Node) -> Attr:
        """A snapshot entry's attributes; every listed entry passes here, so it is lean."""
        a = Attr()
        a.st_ino = ino
        kind = node.type
        go_mode = node.mode
        if go_mode & _GO_SPECIAL_BITS or kind not in _S_IFMT:
            a.st_mode = posix_mode(node)
        else:
            a.st_mode = _S_IFMT[kind] | (go_mode & 0o777)
        if kind == FILE:
            size = node.size
            a.st_size = size
            a.st_blocks = (size + 511) >> 9
            a.st_nlink = node.links or 1
        else:
            if kind == SYMLINK:
                size = len(_link_target(node))
                a.st_size = size
                a.st_blocks = (size + 511) >> 9
            elif kind == DEV or kind == CHARDEV:
                a.st_rdev = node.device
            a.st_nlink = node.links or (2 if kind == DIR else 1)
        if self.config.owner_root:
            a.st_uid = a.st_gid = 0
        else:
            a.st_uid = node.uid
            a.st_gid = node.gid
        a.st_blksize = BLKSIZE
        a.st_atime_ns = node.atime.ns
        a.st_mtime_ns = node.mtime.ns
        a.st_ctime_ns = node.ctime.ns
        a.entry_timeout = LONG_TIMEOUT
        a.attr_timeout = LONG_TIMEOUT
        return a

    # -- folders -----------------------------------------------------------------------

    async def lookup(self, parent: int, name: bytes) -> Attr:
        """The entry ``name`` in folder ``parent``; counts one lookup of the inode."""
        value = self._value(parent)
        if name == b".":
            ino = parent
        elif name == b"..":
            ino = self._parent(parent)
        elif isinstance(value, _Meta):
            await self.refresh()
            folder = self.layout.dirs.get(value.path)
            text = os.fsdecode(name)
            item = folder.children.get(text) if folder is not None else None
            if item is None:
                raise FsError(errno.ENOENT)
            ino = self._meta_child(parent, value.path, text, item)
        else:
            listing = await self._listing_of(parent, value)
            pos = listing.names.get(name)
            if pos is None:
                raise FsError(errno.ENOENT, LONG_TIMEOUT)
            root = _root_of(parent, value)
            if pos in listing.hardlinks:
                ino = self._hardlink(parent, root, listing.nodes[pos])
            else:
                block = self._children(parent, root, listing)
                ino = self.inodes.remember_entry(block, pos)
                return self._node_attr(ino, listing.nodes[pos])
        try:
            self.inodes.remember(ino)
        except KeyError:  # ``..`` of an entry whose folder the kernel forgot already
            raise FsError(errno.ESTALE) from None
        return self.getattr(ino)

    async def opendir(self, ino: int) -> int:
        value = self._value(ino)
        if isinstance(value, _Meta):
            await self.refresh()
            folder = self.layout.dirs.get(value.path)
            items = sorted(folder.children.items()) if folder is not None else []
            handle = _DirHandle(ino, ino, value.path,
                                entries=[(os.fsencode(n), item) for n, item in items])
        else:
            listing = await self._listing_of(ino, value)
            self._queue_subtrees(listing)
            handle = _DirHandle(ino, _root_of(ino, value), None, listing=listing)
        fh = self._next_fh
        self._next_fh += 1
        self._dirs[fh] = handle
        return fh

    def readdir(self, fh: int, start: int, reply: Callable[[bytes, Attr, int], bool]) -> None:
        """Offer the entries from position ``start`` on, ``.`` and ``..`` first, to
        ``reply(name, attributes, next position)`` until it refuses one (returns False).
        Every entry accepted but ``.`` and ``..`` counts one lookup of its inode."""
        h = self._dirs[fh]
        if start == 0:
            if not reply(b".", self.getattr(h.ino), 1):
                return
            start = 1
        if start == 1:
            if not reply(b"..", self.getattr(self._parent(h.ino)), 2):
                return
            start = 2
        if h.listing is not None:
            self._readdir_nodes(h.ino, h.root, h.listing, start - 2, reply)
            return
        assert h.entries is not None and h.meta_path is not None
        for pos in range(start - 2, len(h.entries)):
            name, item = h.entries[pos]
            ino = self._meta_child(h.ino, h.meta_path, os.fsdecode(name), item)
            if not reply(name, self.getattr(ino), pos + 3):
                self.inodes.discard_unused(ino)
                return
            self.inodes.remember(ino)

    def _readdir_nodes(self, ino: int, root: int, listing: _Listing, first: int,
                       reply: Callable[[bytes, Attr, int], bool]) -> None:
        nodes = listing.nodes
        if first >= len(nodes):
            return
        block = self._children(ino, root, listing)
        base, counts = block.base, block.counts
        hardlinks = listing.hardlinks
        node_attr = self._node_attr
        try:
            for pos in range(first, len(nodes)):
                node = nodes[pos]
                if hardlinks and pos in hardlinks:
                    link = self._hardlink(ino, root, node)
                    if not reply(node.name, node_attr(link, node), pos + 3):
                        self.inodes.discard_unused(link)
                        return
                    self.inodes.remember(link)
                    continue
                if not reply(node.name, node_attr(base + pos, node), pos + 3):
                    return
                c = counts[pos]
                if not c:
                    block.live += 1
                counts[pos] = c + 1
        finally:
            self.inodes.settle(block)

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def listdir(self, ino: int) -> list[tuple[bytes, Attr]]:
        """Every entry but ``.`` and ``..``, each counted as the kernel would (for tests
        and tools; the mount uses opendir/readdir)."""
        fh = await self.opendir(ino)
        out: list[tuple[bytes, Attr]] = []

        def take(name: bytes, attr: Attr, _: int) -> bool:
            out.append((name, attr))
            return True
        try:
            self.readdir(fh, 2, take)
            return out
        finally:
            self.releasedir(fh)

    def readlink(self, ino: int) -> bytes:
        value = self._value(ino)
        if isinstance(value, _Link):
            return os.fsencode(value.link.target)
        if isinstance(value, _Item) and value.node.type == SYMLINK:
            return _link_target(value.node)
        raise FsError(errno.EINVAL)

    async def _listing_of(self, ino: int, value: _Value) -> _Listing:
        if isinstance(value, _Root):
            tree_id: bytes | None = value.snapshot.tree
        elif isinstance(value, _Item) and value.node.type == DIR:
            tree_id = value.node.subtree
        else:
            raise FsError(errno.ENOTDIR)
        if tree_id is None:
            return _Listing([], 0)
        try:
            return await self._listing(tree_id)
        except RepofsError as exc:
            self._report(self.path_of(ino), exc)
            raise FsError(errno.EIO) from None

    async def _listing(self, tree_id: bytes) -> _Listing:
        return await self.cache.get(("listing", tree_id), lambda: self._load_listing(tree_id))

    async def _load_listing(self, tree_id: bytes) -> _Listing:
        raw = await self.fetcher.get(tree_id, BlobType.TREE)
        if len(raw) > INLINE_DECODE:
            return await self.repo.cpu_run(_decode_listing, raw)
        return _decode_listing(raw)

    def _queue_subtrees(self, listing: _Listing) -> None:
        queued = False
        for node in reversed(listing.nodes):
            if node.subtree is not None and self.cache.get_cached(("listing", node.subtree)) is None:
                self._wanted.append(node.subtree)
                queued = True
        if queued:
            self._wake.set()

    async def _prefetch_worker(self) -> None:
        """Load queued trees, newest first, a batch at a time: the trees of one batch that
        lie side by side in a pack come in one ranged read."""
        while True:
            if not self._wanted:
                if self._wake.is_set():
                    self._wake = trio.Event()
                await self._wake.wait()
                continue
            batch: list[bytes] = []
            while self._wanted and len(batch) < PREFETCH_BATCH:
                tree_id = self._wanted.pop()
                if tree_id not in batch and self.cache.get_cached(("listing", tree_id)) is None:
                    batch.append(tree_id)
            self.fetcher.want(batch, BlobType.TREE)
            async with trio.open_nursery() as nursery:
                for tree_id in batch:
                    nursery.start_soon(self._prefetch_one, tree_id)

    async def _prefetch_one(self, tree_id: bytes) -> None:
        try:
            await self._listing(tree_id)
        except RepofsError:
            pass  # whoever opens that folder meets the error and reports it

    # -- files -------------------------------------------------------------------------

    async def open(self, ino: int) -> int:
        value = self._value(ino)
        if not isinstance(value, _Item):
            raise FsError(errno.EISDIR)
        node = value.node
        if node.type != FILE:
            raise FsError(errno.EISDIR if node.type == DIR else errno.EINVAL)
        if value.fmap is None:
            content = node.content or ()
            if len(content) > BIG_FILE_BLOBS:
                value.fmap = await self.repo.cpu_run(FileMap.build, content, self.repo.index)
            else:
                value.fmap = FileMap.build(content, self.repo.index)
        reader = OpenFile(value.fmap, self.fetcher, self.read_ahead)
        # A small file's blob and, for readers going through the snapshot, the next files'
        # blobs: asked for together, so neighbours in a pack share one ranged read. (A
        # larger file's blobs come with its first read, read-ahead included.)
        own = value.fmap.ids if len(value.fmap.ids) == 1 else ()
        ahead = self._walk_ahead(value)
        if own or ahead:
            self.fetcher.want([*own, *ahead] if ahead else own)
        fh = self._next_fh
        self._next_fh += 1
        self._files[fh] = _FileHandle(ino, reader)
        return fh

    def _walk_ahead(self, value: _Item) -> list[bytes]:
        """What ``ahead`` says to ask for now that ``value``'s file was opened."""
        folder = self.inodes.get(value.parent) if value.parent in self.inodes else None
        tree_id = _tree_of(folder)
        listing = self._cached_listing(tree_id) if tree_id is not None else None
        if tree_id is None or listing is None:
            return []
        pos = listing.names.get(value.node.name)
        if pos is None:
            return []
        return self.ahead.opened(tree_id, pos, lambda: self._path(value.parent, tree_id, listing, pos))

    def _path(self, folder: int, tree_id: bytes, listing: _Listing, pos: int) -> list[PathStep]:
        """(tree id, listing, position) of each folder from the snapshot's root (or the
        highest folder whose listing is at hand) down to ``pos`` in folder ``folder``."""
        out: list[PathStep] = [(tree_id, listing, pos)]
        value = self.inodes.get(folder) if folder in self.inodes else None
        while isinstance(value, _Item):
            parent = self.inodes.get(value.parent) if value.parent in self.inodes else None
            parent_tree = _tree_of(parent)
            parent_listing = self._cached_listing(parent_tree) if parent_tree is not None else None
            at = parent_listing.names.get(value.node.name) if parent_listing is not None else None
            if parent_tree is None or parent_listing is None or at is None:
                break
            out.append((parent_tree, parent_listing, at))
            value = parent
        out.reverse()
        return out

    def _cached_listing(self, tree_id: bytes) -> _Listing | None:
        listing = self.cache.get_cached(("listing", tree_id))
        return listing if isinstance(listing, _Listing) else None

    def _want_trees(self, tree_ids: list[bytes]) -> None:
        """Load folders' trees soon (a walk waits for the first): at the front of the prefetch
        queue, the first of them taken first."""
        self._wanted.extend(reversed(tree_ids))
        self._wake.set()

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        h = self._files[fh]
        try:
            return await h.reader.read(offset, size)
        except RepofsError as exc:
            self._report(self.path_of(h.ino), exc)
            raise FsError(errno.EIO) from None

    def release(self, fh: int) -> None:
        self._files.pop(fh, None)

    # -- extended attributes -----------------------------------------------------------

    def listxattr(self, ino: int) -> list[bytes]:
        value = self._value(ino)
        if not isinstance(value, _Item):
            return []
        return [os.fsencode(name) for name, _ in value.node.extended_attributes]

    def getxattr(self, ino: int, name: bytes) -> bytes:
        value = self._value(ino)
        if isinstance(value, _Item):
            for n, v in value.node.extended_attributes:
                if os.fsencode(n) == name:
                    return v
        raise FsError(errno.ENODATA)

    # -- reporting ---------------------------------------------------------------------

    def _report(self, where: str, exc: RepofsError) -> None:
        """Log a failure once per distinct error, naming where it was met first."""
        message = str(exc)
        if message in self._reported:
            return
        self._reported.add(message)
        log.error("%s: %s", where or "/", message)


def _tree_of(value: _Value | None) -> bytes | None:
    """The tree of a snapshot folder or of a folder in a snapshot."""
    if isinstance(value, _Root):
        return value.snapshot.tree
    if isinstance(value, _Item):
        return value.node.subtree
    return None


def _root_of(ino: int, value: _Value) -> int:
    return value.root if isinstance(value, _Item) else ino


def _link_target(node: Node) -> bytes:
    if node.linktarget_raw is not None:
        return node.linktarget_raw
    return os.fsencode(node.linktarget or "")
