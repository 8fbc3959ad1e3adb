"""The mount's inode table against a simple model of what the kernel knows.

Random sequences of lookups, listings (some entries refused), forgets and reads of values,
as a hypothesis state machine: lookup counts must match, a number must never stand for two
different entries, an entry looked up again while its folder's block lives must get its old
number back, and nothing the kernel forgot may stay in the table.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from repofs.fuse.inodes import ROOT_INODE, InodeTable

KEYS = ["a", "b", "c", ("hardlink", 1, 2)]
FOLDERS = {10: 5, 11: 1, 12: 40, 13: 0}  # block key (a folder inode) -> entries

What = tuple[str, Hashable, int]  # ("key", key, 0) or ("entry", folder, position)


class Kernel(RuleBasedStateMachine):
    """The table under test beside a model: lookup counts of what the kernel knows."""

    def __init__(self) -> None:
        super().__init__()
        self.table: InodeTable[object] = InodeTable("root")
        self.counts: dict[int, int] = {}      # live inode -> lookup count
        self.what: dict[int, What] = {}       # every number ever handed out -> what it is
        self.by_what: dict[What, int] = {}    # live entries and keys -> their number
        self.block_base: dict[int, int] = {}  # folder -> base of its live block

    # -- helpers -------------------------------------------------------------------------

    def _handed_out(self, ino: int, what: What) -> None:
        """``ino`` was given for ``what``: the same number as before while it lives, a number
        never seen before otherwise."""
        assert ino != ROOT_INODE
        if what in self.by_what:
            assert ino == self.by_what[what], (what, ino, self.by_what[what])
        else:
            assert self.what.get(ino, what) == what, f"{ino} was {self.what[ino]}, now {what}"
        self.what[ino] = what

    def _fresh(self, first: int) -> None:
        """Numbers from ``first`` on were never handed out."""
        assert all(ino < first for ino in self.what), (first, max(self.what))

    def _learned(self, ino: int, what: What, n: int = 1) -> None:
        self.counts[ino] = self.counts.get(ino, 0) + n
        self.by_what[what] = ino

    def _block_lives(self, folder: int) -> bool:
        return any(w[0] == "entry" and w[1] == folder for w in self.by_what)

    # -- keyed inodes --------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS))
    def lookup_key(self, key: Hashable) -> None:
        what: What = ("key", key, 0)
        ino = self.table.ino_for(key, lambda: what)
        if what not in self.by_what:
            self._fresh(ino)
        self._handed_out(ino, what)
        self.table.remember(ino)
        self._learned(ino, what)

    @rule(key=st.sampled_from(KEYS))
    def refuse_key(self, key: Hashable) -> None:
        """A readdir entry made for ``key`` that the kernel's buffer did not take."""
        what: What = ("key", key, 0)
        ino = self.table.ino_for(key, lambda: what)
        if what not in self.by_what:
            self._fresh(ino)
        self._handed_out(ino, what)
        self.table.discard_unused(ino)
        if what not in self.by_what:
            assert ino not in self.table

    # -- blocks --------------------------------------------------------------------------

    @rule(folder=st.sampled_from(sorted(FOLDERS)), data=st.data())
    def list_folder(self, folder: int, data: st.DataObject) -> None:
        """A listing from ``start`` on, of which the kernel accepts ``take`` entries; the
        way ``VFS._readdir_nodes`` counts them (counts updated in place, then settle)."""
        size = FOLDERS[folder]
        start = data.draw(st.integers(0, size), label="start")
        take = data.draw(st.integers(0, size - start), label="take")
        lived = self._block_lives(folder)
        block = self.table.block(folder, size, lambda pos: ("entry", folder, pos))
        if lived:
            assert block.base == self.block_base[folder]
        else:
            self._fresh(block.base)
        for pos in range(start, start + take):
            c = block.counts[pos]
            if not c:
                block.live += 1
            block.counts[pos] = c + 1
            what: What = ("entry", folder, pos)
            self._handed_out(block.base + pos, what)
            self._learned(block.base + pos, what)
        self.table.settle(block)
        if take or lived:
            self.block_base[folder] = block.base
        else:  # refused at once: the block is gone, its numbers with it
            assert all(block.base + pos not in self.table for pos in range(size))
            for pos in range(size):
                self.what.setdefault(block.base + pos, ("entry", folder, pos))

    @rule(folder=st.sampled_from(sorted(FOLDERS)), data=st.data())
    def lookup_entry(self, folder: int, data: st.DataObject) -> None:
        size = FOLDERS[folder]
        if not size:
            return
        pos = data.draw(st.integers(0, size - 1), label="pos")
        lived = self._block_lives(folder)
        block = self.table.block(folder, size, lambda p: ("entry", folder, p))
        if lived:
            assert block.base == self.block_base[folder]
        else:
            self._fresh(block.base)
        ino = self.table.remember_entry(block, pos)
        what: What = ("entry", folder, pos)
        self._handed_out(ino, what)
        self._learned(ino, what)
        self.block_base[folder] = block.base

    # -- both ----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.counts))
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        ino = data.draw(st.sampled_from(sorted(self.counts)), label="ino")
        n = data.draw(st.integers(1, self.counts[ino]), label="n")
        dropped = self.table.forget(ino, n)
        assert dropped == (n == self.counts[ino])
        self.counts[ino] -= n
        if not self.counts[ino]:
            del self.counts[ino]
            del self.by_what[self.what[ino]]
            folder = self.what[ino][1]
            if self.what[ino][0] == "entry" and not self._block_lives(folder):
                del self.block_base[folder]  # type: ignore[arg-type]

    @precondition(lambda self: bool(self.counts))
    @rule(data=st.data())
    def relookup(self, data: st.DataObject) -> None:
        """A lookup of a known inode by number (``.``, ``..``)."""
        ino = data.draw(st.sampled_from(sorted(self.counts)), label="ino")
        self.table.remember(ino)
        self.counts[ino] += 1

    @precondition(lambda self: bool(self.what))
    @rule(data=st.data())
    def forget_stale(self, data: st.DataObject) -> None:
        """A forget for a number the table no longer has changes nothing."""
        dead = sorted(set(self.what) - set(self.counts))
        if dead:
            ino = data.draw(st.sampled_from(dead), label="dead")
            assert self.table.forget(ino, 1) is False
            with pytest.raises(KeyError):
                self.table.get(ino)

    @rule()
    def forget_all(self) -> None:
        self.table.forget_all()
        self.counts.clear()
        self.by_what.clear()
        self.block_base.clear()

    # -- what must hold ------------------------------------------------------------------

    @invariant()
    def counts_and_values_match(self) -> None:
        table = self.table
        assert len(table) == 1 + len(self.counts)
        assert table.get(ROOT_INODE) == "root" and table.count(ROOT_INODE) == 1
        for ino, n in self.counts.items():
            assert ino in table and table.count(ino) == n
            assert table.get(ino) == self.what[ino]
        for ino in set(self.what) - set(self.counts):
            assert ino not in table and table.count(ino) == 0
        live = dict(table.items())
        assert set(live) == {ROOT_INODE, *self.counts}


Kernel.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestInodeTable = Kernel.TestCase


def test_listing_refused_at_once_leaves_nothing() -> None:
    table: InodeTable[str] = InodeTable("root")
    block = table.block(7, 3, lambda pos: f"entry {pos}")
    table.settle(block)
    assert len(table) == 1 and all(block.base + p not in table for p in range(3))
    again = table.block(7, 3, lambda pos: f"entry {pos}")
    assert again is not block and again.base >= block.base + 3


def test_entry_keeps_its_number_while_a_sibling_is_known() -> None:
    table: InodeTable[str] = InodeTable("root")
    block = table.block(7, 3, lambda pos: f"entry {pos}")
    first = table.remember_entry(block, 0)
    second = table.remember_entry(block, 1)
    assert table.forget(first, 1)
    assert first not in table and table.get(second) == "entry 1"
    assert table.remember_entry(table.block(7, 3, lambda pos: f"entry {pos}"), 0) == first
    assert table.forget(first, 1) and table.forget(second, 1)
    fresh = table.remember_entry(table.block(7, 3, lambda pos: f"entry {pos}"), 0)
    assert fresh > second  # the block went with its last entry: new numbers, never old ones


def test_a_block_has_one_size() -> None:
    table: InodeTable[str] = InodeTable("root")
    table.remember_entry(table.block(7, 3, str), 0)
    with pytest.raises(ValueError):
        table.block(7, 4, str)


def test_remember_of_an_unknown_number_fails() -> None:
    table: InodeTable[str] = InodeTable("root")
    block = table.block(7, 3, str)
    table.remember_entry(block, 2)
    with pytest.raises(KeyError):
        table.remember(block.base + 3)
    assert table.forget(block.base + 2, 1)
    with pytest.raises(KeyError):
        table.remember(block.base + 2)
