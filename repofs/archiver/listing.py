"""One folder at a time, in a worker thread: list it, apply the excludes, ``lstat`` every
entry and decide what each needs (FORMAT.md §7.3).

Everything that does not need its content read is finished here: symlinks, devices, fifos,
and files unchanged since the parent snapshot (same size, mtime, ctime and inode, content
all in the index), whose node takes the parent's content list. Files to read and folders to
enter come back to the archiver as ``Entry`` records.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import IntegrityError, RepofsError
from ..model import tree
from ..model.tree import Node, decode_tree
from .nodes import file_changed, node_from_stat, unchanged_file_node
from .select import Selector


class ItemError(RepofsError):
    """An item that cannot be saved, described like Go's ``*os.PathError``:
    ``op``, ``path`` and ``errno`` (0 for errors that are not system errors). Reported and
    skipped inside folders; fatal for the folders above the targets."""

    def __init__(self, message: str, op: str = "", path: str = "", errno: int = 0) -> None:
        super().__init__(message)
        self.op = op
        self.path = path
        self.errno = errno

    @classmethod
    def from_os(cls, op: str, path: bytes, exc: OSError) -> ItemError:
        reason = exc.strerror or str(exc)
        reason = reason[:1].lower() + reason[1:]
        shown = os.fsdecode(path)
        return cls(f"{op} {shown}: {reason}", op, shown, exc.errno or 0)


class Kind(enum.Enum):
    NODE = "node"  # finished: ``node`` is set
    FILE = "file"  # content to read
    DIR = "dir"  # folder to enter
    ERROR = "error"  # cannot be saved: ``error`` is set


@dataclass(slots=True)
class Entry:
    kind: Kind
    name: bytes
    path: bytes
    st: os.stat_result | None = None
    previous: Node | None = None
    node: Node | None = None
    error: ItemError | None = None
    unchanged: bool = False  # a file whose content comes from the parent snapshot
    warning: ItemError | None = None  # reported, but the entry is still saved
    listing: Listing | None = None  # a folder listed already, in the same call as its parent
    listing_error: ItemError | None = None  # or why listing it failed


@dataclass(slots=True)
class Listing:
    """A folder: its own node (no subtree yet), its entries in name order, and the nodes of
    its tree in the parent snapshot (None when there is none)."""

    meta: Node
    entries: list[Entry]
    previous_nodes: list[Node] | None


class Lister:
    """Classifies paths for the archiver; thread-safe, holds no per-folder state."""

    def __init__(self, selector: Selector, data_known: Callable[[bytes], bool],
                 with_atime: bool = False, ignore_ctime: bool = False, ignore_inode: bool = False) -> None:
        self.selector = selector
        self.data_known = data_known
        self.with_atime = with_atime
        # --ignore-inode implies --ignore-ctime, as in restic.
        self.check_ctime = not (ignore_ctime or ignore_inode)
        self.check_inode = not ignore_inode

    def entry(self, name: bytes, path: bytes, previous: Node | None) -> Entry | None:
        """What to do with ``path`` (absolute); None when it is excluded or a socket."""
        select = self.selector
        if not select.by_name(path):
            return None
        try:
            st = os.lstat(path)
        except OSError as exc:
            return Entry(Kind.ERROR, name, path, error=ItemError.from_os("lstat", path, exc))
        if select.filters_by_stat and not select.by_stat(path, st):
            return None
        mode = st.st_mode
        if stat.S_ISREG(mode):
            if previous is None or file_changed(st, previous, self.check_ctime, self.check_inode):
                return Entry(Kind.FILE, name, path, st, previous)
            content = previous.content or ()
            if not all(self.data_known(b) for b in content):
                warning = ItemError(f"parts of {os.fsdecode(path)} not found in the repository index; "
                                    "storing the file again")
                return Entry(Kind.FILE, name, path, st, previous, warning=warning)
            try:
                node = unchanged_file_node(name, path, st, previous, self.with_atime)
            except OSError as exc:
                return Entry(Kind.ERROR, name, path, error=ItemError.from_os("lstat", path, exc))
            return Entry(Kind.NODE, name, path, st, previous, node, unchanged=True)
        if stat.S_ISDIR(mode):
            return Entry(Kind.DIR, name, path, st, previous)
        if stat.S_ISSOCK(mode):
            return None
        try:
            node = node_from_stat(name, path, st, self.with_atime)
        except OSError as exc:
            op = "readlink" if stat.S_ISLNK(mode) else "listxattr"
            return Entry(Kind.ERROR, name, path, error=ItemError.from_os(op, path, exc))
        return Entry(Kind.NODE, name, path, st, previous, node)

    def folders(self, name: bytes, path: bytes, st: os.stat_result, previous_tree: bytes | None,
                cached: Callable[[bytes], bytes | None], budget: int) -> Listing:
        """``folder``, then its subfolders depth first, up to ``budget`` more folders in all,
        as long as their trees in the parent snapshot are at hand (``cached`` gives a tree
        blob by id, or None). One worker-thread call then does the work of many."""
        left = [budget]
        return self._folders(name, path, st, previous_tree, cached, left)

    def _folders(self, name: bytes, path: bytes, st: os.stat_result, previous_tree: bytes | None,
                 cached: Callable[[bytes], bytes | None], left: list[int]) -> Listing:
        listing = self.folder(name, path, st, previous_tree)
        for e in listing.entries:
            if e.kind is not Kind.DIR or left[0] <= 0:
                continue
            raw = None
            if is_dir_node(e.previous):
                assert e.previous is not None and e.previous.subtree is not None
                raw = cached(e.previous.subtree)
                if raw is None:
                    continue  # its parent tree is not loaded yet: a later call lists it
            left[0] -= 1
            assert e.st is not None
            try:
                e.listing = self._folders(e.name, e.path, e.st, raw, cached, left)
            except ItemError as exc:
                e.listing_error = exc
        return listing

    def folder(self, name: bytes, path: bytes, st: os.stat_result, previous_tree: bytes | None) -> Listing:
        """One folder; ``previous_tree`` is its tree blob in the parent snapshot.
        Raises ItemError when the folder cannot be listed."""
        try:
            meta = node_from_stat(name, path, st, self.with_atime)
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise ItemError.from_os("open", path, exc) from None
        previous: dict[bytes, Node] = {}
        previous_nodes = None
        if previous_tree is not None:
            try:
                previous_nodes = decode_tree(previous_tree)
            except IntegrityError:
                pass  # a damaged parent tree only costs reading the files again
            else:
                previous = {n.name: n for n in previous_nodes}
        prefix = path if path.endswith(b"/") else path + b"/"
        out = []
        for child in names:
            e = self.entry(child, prefix + child, previous.get(child))
            if e is not None:
                out.append(e)
        return Listing(meta, out, previous_nodes)


def is_dir_node(node: Node | None) -> bool:
    return node is not None and node.type == tree.DIR and node.subtree is not None
