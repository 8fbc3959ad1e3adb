"""The inode table: numbers from a counter, lookup counts, forget.

Snapshot trees are loaded lazily, so inode numbers cannot be fixed in advance and must not
be derived from names (hashes collide). An inode is allocated the first time the file
system shows an entry to the kernel, under a key that says what the entry is (usually
parent inode and name; one key for all names of a hard-linked file). It lives while the
kernel's lookup count is above zero and is dropped when ``forget`` brings the count to
zero; a later lookup of the same key gets a fresh number. Numbers are never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

ROOT_INODE = 1

T = TypeVar("T")


class InodeTable(Generic[T]):
    """Inode number -> value, key -> inode number, and the kernel's lookup count of each.

    The root inode is pinned: it exists before the kernel looks anything up and is never
    dropped. Every other inode is allocated by ``ino_for`` with a count of zero; callers
    either ``remember`` it (the kernel was told about it) or ``discard_unused`` it.
    """

    def __init__(self, root: T) -> None:
        self._values: dict[int, T] = {ROOT_INODE: root}
        self._key_of: dict[int, Hashable] = {}
        self._by_key: dict[Hashable, int] = {}
        self._counts: dict[int, int] = {}
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, ino: int) -> bool:
        return ino in self._values

    def get(self, ino: int) -> T:
        """The value of a live inode; KeyError for an unknown or forgotten one."""
        return self._values[ino]

    def items(self) -> Iterator[tuple[int, T]]:
        return iter(list(self._values.items()))

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

    def count(self, ino: int) -> int:
        """The lookup count (the root reports 1: it is always known)."""
        return 1 if ino == ROOT_INODE else self._counts.get(ino, 0)

    def remember(self, ino: int, n: int = 1) -> None:
        """The kernel learned about ``ino`` ``n`` more times (lookup, accepted readdir entry)."""
        if ino != ROOT_INODE:
            self._counts[ino] += n

    def forget(self, ino: int, n: int) -> bool:
        """The kernel forgot ``ino`` ``n`` times; True when the inode was dropped."""
        if ino == ROOT_INODE or ino not in self._counts:
            return False
        left = self._counts[ino] - n
        if left > 0:
            self._counts[ino] = left
            return False
        self._drop(ino)
        return True

    def discard_unused(self, ino: int) -> None:
        """Drop an inode allocated but never shown to the kernel."""
        if self._counts.get(ino) == 0:
            self._drop(ino)

    def forget_all(self) -> None:
        """Drop every inode but the root (after unmounting, when no forget will come)."""
        for ino in list(self._counts):
            self._drop(ino)

    def _drop(self, ino: int) -> None:
        del self._values[ino]
        del self._counts[ino]
        del self._by_key[self._key_of.pop(ino)]
