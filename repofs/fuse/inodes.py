"""The inode table: numbers from a counter, lookup counts, forget.

Snapshot trees are loaded lazily, so inode numbers cannot be fixed in advance and must not
be derived from names (hashes collide). Numbers come from one counter and are never reused
for another entry. An inode lives while the kernel's lookup count is above zero and is
dropped when ``forget`` brings the count to zero.

There are two ways to get a number:

* ``ino_for`` allocates one inode under a key that says what the entry is (a meta folder, a
  snapshot folder, a link; one key for all names of a hard-linked file). A later lookup of
  the same key, after the inode was dropped, gets a fresh number.
* ``block`` reserves consecutive numbers for all entries of one folder of a snapshot at
  once, ``base + position`` for the entry at that position of the (immutable) listing. A
  folder of a thousand entries costs one allocation, and listing it no bookkeeping per
  entry but its lookup count; the value of an entry is made only when it is asked for. A
  block lives while any of its entries is known to the kernel; an entry forgotten and looked
  up again while its block lives gets its old number back (it is the same file).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

ROOT_INODE = 1

T = TypeVar("T")


class Block(Generic[T]):
    """The numbers ``base`` .. ``base + size - 1`` of one folder's entries.

    ``counts[pos]`` is the lookup count of the entry at ``pos``; ``live`` how many counts
    are above zero. ``make(pos)`` builds the value of an entry when it is first asked for.
    A caller that counts many entries in a loop (a listing) may update ``counts`` and
    ``live`` itself, exactly as ``InodeTable.remember_entry`` does, and must call
    ``InodeTable.settle`` afterwards.
    """

    __slots__ = ("key", "base", "size", "make", "counts", "live")

    def __init__(self, key: Hashable, base: int, size: int, make: Callable[[int], T]) -> None:
        self.key = key
        self.base = base
        self.size = size
        self.make = make
        self.counts = [0] * size
        self.live = 0


class InodeTable(Generic[T]):
    """Inode number -> value, key -> inode number, and the kernel's lookup count of each.

    The root inode is pinned: it exists before the kernel looks anything up and is never
    dropped. A keyed inode is allocated by ``ino_for`` with a count of zero; callers either
    ``remember`` it (the kernel was told about it) or ``discard_unused`` it. A block is
    reserved by ``block`` with every count at zero; callers ``remember_entry`` the entries
    the kernel was told about, then ``settle`` the block, which drops it if none was.

    Only inodes with a count above zero (and the root) are live: ``get``, ``in`` and
    ``count`` know nothing of the others, even in a block that lives on.
    """

    def __init__(self, root: T) -> None:
        self._values: dict[int, T] = {ROOT_INODE: root}  # keyed inodes
        self._key_of: dict[int, Hashable] = {}
        self._by_key: dict[Hashable, int] = {}
        self._counts: dict[int, int] = {}
        self._blocks: dict[Hashable, Block[T]] = {}
        self._bases: list[int] = []  # of the live blocks, ascending (numbers only grow)
        self._by_base: list[Block[T]] = []
        self._made: dict[int, T] = {}  # values of block entries asked for so far
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._values) + sum(b.live for b in self._by_base)

    def __contains__(self, ino: int) -> bool:
        return ino in self._values or self._entry(ino) is not None

    def get(self, ino: int) -> T:
        """The value of a live inode; KeyError for an unknown or forgotten one."""
        value = self._values.get(ino)
        if value is not None:
            return value
        value = self._made.get(ino)
        if value is not None:
            return value
        found = self._entry(ino)
        if found is None:
            raise KeyError(ino)
        block, pos = found
        value = self._made[ino] = block.make(pos)
        return value

    def items(self) -> Iterator[tuple[int, T]]:
        """Every live inode and its value (block entries are made on the way)."""
        out = list(self._values.items())
        for block in list(self._by_base):
            out.extend((block.base + pos, self.get(block.base + pos))
                       for pos, c in enumerate(block.counts) if c)
        return iter(out)

    # -- keyed inodes ------------------------------------------------------------------

    def ino_for(self, key: Hashable, make: Callable[[], T]) -> int:
        """The inode of ``key``; a new one, holding ``make()``, if the key has none."""
        ino = self._by_key.get(key)
        if ino is not None:
            return ino
        ino = self._next
        self._next += 1
        self._values[ino] = make()
        self._key_of[ino] = key
        self._by_key[key] = ino
        self._counts[ino] = 0
        return ino

    # -- blocks ------------------------------------------------------------------------

    def block(self, key: Hashable, size: int, make: Callable[[int], T]) -> Block[T]:
        """The block of ``key`` (a folder), ``size`` numbers, reserved on first use.

        A new block with no entry remembered is dropped again by ``settle``.
        """
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = Block(key, self._next, size, make)
            self._next += max(size, 1)
            self._bases.append(block.base)
            self._by_base.append(block)
        elif block.size != size:
            raise ValueError(f"block {key!r} has {block.size} numbers, not {size}")
        return block

    def remember_entry(self, block: Block[T], pos: int, n: int = 1) -> int:
        """The kernel learned about the entry at ``pos`` ``n`` more times; its number."""
        c = block.counts[pos]
        if not c:
            block.live += 1
        block.counts[pos] = c + n
        return block.base + pos

    def settle(self, block: Block[T]) -> None:
        """Drop ``block`` if none of its entries is known (after a listing that the kernel
        refused, or a failed lookup)."""
        if not block.live and self._blocks.get(block.key) is block:
            self._drop_block(block)

    def _entry(self, ino: int) -> tuple[Block[T], int] | None:
        """The live block entry ``ino`` (count above zero), as block and position."""
        i = bisect.bisect_right(self._bases, ino) - 1
        if i < 0:
            return None
        block = self._by_base[i]
        pos = ino - block.base
        if pos >= block.size or not block.counts[pos]:
            return None
        return block, pos

    def _drop_block(self, block: Block[T]) -> None:
        del self._blocks[block.key]
        i = bisect.bisect_left(self._bases, block.base)
        del self._bases[i]
        del self._by_base[i]
        made = self._made
        if made:
            for pos, c in enumerate(block.counts):
                if c:
                    made.pop(block.base + pos, None)
        # The values of entries forgotten earlier went at their forget.

    # -- counts ------------------------------------------------------------------------

    def count(self, ino: int) -> int:
        """The lookup count (the root reports 1: it is always known)."""
        if ino == ROOT_INODE:
            return 1
        if ino in self._counts:
            return self._counts[ino]
        found = self._entry(ino)
        return found[0].counts[found[1]] if found else 0

    def remember(self, ino: int, n: int = 1) -> None:
        """The kernel learned about ``ino`` ``n`` more times (lookup, accepted readdir entry).

        KeyError if ``ino`` is neither a keyed inode nor a number of a live block."""
        if ino == ROOT_INODE:
            return
        if ino in self._counts:
            self._counts[ino] += n
            return
        i = bisect.bisect_right(self._bases, ino) - 1
        if i >= 0 and ino - self._by_base[i].base < self._by_base[i].size:
            self.remember_entry(self._by_base[i], ino - self._by_base[i].base, n)
            return
        raise KeyError(ino)

    def forget(self, ino: int, n: int) -> bool:
        """The kernel forgot ``ino`` ``n`` times; True when the inode was dropped."""
        if ino == ROOT_INODE:
            return False
        if ino in self._counts:
            left = self._counts[ino] - n
            if left > 0:
                self._counts[ino] = left
                return False
            self._drop(ino)
            return True
        found = self._entry(ino)
        if found is None:
            return False
        block, pos = found
        left = block.counts[pos] - n
        if left > 0:
            block.counts[pos] = left
            return False
        block.counts[pos] = 0
        block.live -= 1
        self._made.pop(ino, None)
        if not block.live:
            self._drop_block(block)
        return True

    def discard_unused(self, ino: int) -> None:
        """Drop an inode allocated but never shown to the kernel."""
        if self._counts.get(ino) == 0:
            self._drop(ino)

    def forget_all(self) -> None:
        """Drop every inode but the root (after unmounting, when no forget will come)."""
        for ino in list(self._counts):
            self._drop(ino)
        for block in list(self._by_base):
            self._drop_block(block)
        self._made.clear()

    def _drop(self, ino: int) -> None:
        del self._values[ino]
        del self._counts[ino]
        del self._by_key[self._key_of.pop(ino)]
