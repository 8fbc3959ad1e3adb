"""Read-ahead across files, for readers that go through a snapshot in tree order.

tar, cp -r, rsync and backup programs open a folder's files one after the other in listing
order and go into each sub-folder where they meet it (pre-order). restic stored the blobs of
a snapshot in about that order, so asking early for the blobs of the files such a reader
will open next makes them arrive in a few long ranged reads, across folder ends, and the
reader finds each file's content waiting instead of paying a backend request per file.

A walk starts when a file is opened that is the first file of its folder or comes a little
after the one opened there last. It follows the tree from that file on, as a stack of
(folder, next position), and marks each file it passes with how many bytes were asked for
before it. When the reader opens a marked file the walk knows how far ahead it is, and tops
up once half of its window is used. The window starts small and doubles with each top-up
(up to the mount's read-ahead size), so a program that opens two files in a row does not set
off megabytes of reads. A sub-folder whose listing is not loaded stops the walk until it is;
its load is asked for once, together with the listings of the next sub-folders of the same
folder (``TREES_AHEAD``), which the walk will want right after. Without those, a walk ahead
of the reader's own folder listings would stop at every folder and top up a folder's worth
of files at a time, in many small ranged reads. Of a large file only the first blobs are
asked for: its own sequential read-ahead (``reader.OpenFile``) takes over once it is read.

Files are known by (folder tree id, position). A snapshot may hold the same tree twice
(two folders alike to the last inode number); a walk that meets a file whose first mark is
still ahead of the reader does not mark it again (its blobs are the same, asked for
already), so a reader in the second copy may find no marks until it leaves it.

Everything here runs on the event loop between checkpoints, so each call does bounded work
(at most ``MAX_STEPS`` entries visited), and memory is bounded too: at most ``MAX_WALKS``
walks of at most ``MAX_MARKS`` marked files each, their stacks no deeper than the tree, and
``FOLDERS_TRACKED`` remembered positions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from ..model.tree import DIR, FILE, Node

FIRST_WINDOW = 1 << 20   # bytes a new walk asks for ahead of its reader
FILE_AHEAD = 1 << 20     # of a large file, about this much is asked for by a walk
ORDER_GAP = 8            # a file opened at most this many entries after the last one is in order
MAX_WALKS = 4            # readers followed at once; the least recent is dropped
MAX_MARKS = 4096         # files marked ahead of one reader
MAX_STEPS = 4 * MAX_MARKS  # entries one top-up may go through (folders of symlinks, empty files)
TREES_AHEAD = 32         # a stopped walk asks for the listings of this many next entries' folders
FOLDERS_TRACKED = 4096   # folders whose last opened position is remembered


class Listing(Protocol):
    """What a walk needs of a folder's listing: nodes in stored order, positions by name."""

    @property
    def nodes(self) -> Sequence[Node]: ...

    @property
    def names(self) -> dict[bytes, int]: ...


PathStep = tuple[bytes, Listing, int]  # folder tree id, its listing, a position in it


class _Frame:
    """One level of a walk's stack: a folder and the position to go on from."""

    __slots__ = ("tree_id", "listing", "pos")

    def __init__(self, tree_id: bytes, listing: Listing, pos: int) -> None:
        self.tree_id = tree_id
        self.listing = listing
        self.pos = pos


class _Walk:
    """One reader followed through a snapshot.

    ``marks`` and ``order`` hold the same keys, ``order`` in walk order, each once:
    (folder tree id, position) of a file the walk passed -> bytes asked for before it.
    """

    __slots__ = ("stack", "marks", "order", "total", "reader", "window", "waiting")

    def __init__(self, stack: list[_Frame], window: int) -> None:
        self.stack = stack
        self.marks: dict[tuple[bytes, int], int] = {}
        self.order: deque[tuple[bytes, int]] = deque()
        self.total = 0   # bytes asked for so far
        self.reader = 0  # bytes asked for before the file the reader opened last
        self.window = window
        self.waiting: bytes | None = None  # the sub-folder tree the walk waits for


class WalkAhead:
    """Follows readers through snapshot trees and names the blobs they will read next.

    ``listing(tree_id)`` is a folder's listing if it is at hand (else None),
    ``want_trees(tree_ids)`` asks for listings to be loaded soon, the first of them first;
    ``window`` is the most a walk asks for ahead of its reader.
    """

    def __init__(self, listing: Callable[[bytes], Listing | None],
                 want_trees: Callable[[list[bytes]], None], window: int) -> None:
        self._listing = listing
        self._want_trees = want_trees
        self.window = window
        self._walks: list[_Walk] = []  # most recently used first
        self._last: dict[bytes, int] = {}  # folder tree id -> position of the file opened last

    def opened(self, tree_id: bytes, pos: int, path: Callable[[], list[PathStep]]) -> list[bytes]:
        """The file at ``pos`` in the folder of tree ``tree_id`` was opened: the blobs to ask
        for now (often none). ``path()`` gives (tree id, listing, position) of each folder
        from the snapshot's root (or as far up as listings are at hand) down to the file's
        own folder, ending with ``(tree_id, its listing, pos)``; it is called only to start
        a walk."""
        key = (tree_id, pos)
        last = self._last.get(tree_id, -1)
        if len(self._last) >= FOLDERS_TRACKED:
            self._last.clear()
        self._last[tree_id] = pos
        for i, walk in enumerate(self._walks):
            at = walk.marks.get(key)
            if at is None:
                continue
            order, marks = walk.order, walk.marks
            while order[0] != key:  # files the reader went past
                del marks[order.popleft()]
            walk.reader = at
            if i:
                self._walks.insert(0, self._walks.pop(i))
            if walk.total - at < walk.window // 2:
                return self._advance(walk)
            return []
        if last >= 0:
            in_order = last < pos <= last + ORDER_GAP
        else:  # the first file opened in its folder: in order if no file comes before it
            listing = self._listing(tree_id)
            in_order = listing is not None and not any(n.type == FILE for n in listing.nodes[:pos])
        if not in_order:
            return []
        walk = _Walk([_Frame(t, listing, p + 1) for t, listing, p in path()], min(FIRST_WINDOW, self.window))
        walk.marks[key] = 0
        walk.order.append(key)
        self._walks.insert(0, walk)
        del self._walks[MAX_WALKS:]
        return self._advance(walk)

    def _advance(self, walk: _Walk) -> list[bytes]:
        """The next files' blobs, until the window ahead of the reader is full."""
        target = walk.reader + walk.window
        total = walk.total
        stack, marks, order = walk.stack, walk.marks, walk.order
        ids: list[bytes] = []
        steps = 0
        while total < target and stack and len(order) < MAX_MARKS and steps < MAX_STEPS:
            steps += 1
            frame = stack[-1]
            nodes = frame.listing.nodes
            pos = frame.pos
            if pos >= len(nodes):
                stack.pop()
                continue
            node = nodes[pos]
            if node.type == DIR:
                sub_id = node.subtree
                if sub_id is not None:
                    sub = self._listing(sub_id)
                    if sub is None:
                        if walk.waiting != sub_id:
                            walk.waiting = sub_id
                            self._want_trees([sub_id, *self._unloaded(nodes[pos + 1:pos + 1 + TREES_AHEAD])])
                        break
                    frame.pos = pos + 1
                    stack.append(_Frame(sub_id, sub, 0))
                    continue
            frame.pos = pos + 1
            if node.type != FILE:
                continue
            key = (frame.tree_id, pos)
            if key in marks:
                continue  # a second copy of a tree the reader has not left yet
            marks[key] = total
            order.append(key)
            content = node.content
            if content:
                size = node.size
                if size > FILE_AHEAD:
                    content = content[:max(1, len(content) * FILE_AHEAD // size)]
                    size = FILE_AHEAD
                ids.extend(content)
                total += size
        if ids:
            walk.total = total
            walk.window = min(walk.window * 2, self.window)
        return ids

    def _unloaded(self, nodes: Sequence[Node]) -> list[bytes]:
        """The trees of the folders among ``nodes`` whose listings are not at hand."""
        return [n.subtree for n in nodes
                if n.type == DIR and n.subtree is not None and self._listing(n.subtree) is None]
