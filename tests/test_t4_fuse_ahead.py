"""WalkAhead, the mount's read-ahead across files, on made-up snapshot trees (no repository).

A tree here is a dict of listings by tree id; a reader opens files the way tar does
(pre-order, listing order) and the tests look at which blobs the walk names, and when.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from repofs.fuse.ahead import FILE_AHEAD, FIRST_WINDOW, MAX_MARKS, MAX_STEPS, MAX_WALKS, PathStep, WalkAhead
from repofs.model.tree import DIR, FILE, SYMLINK, Node

KIB = 1 << 10
MIB = 1 << 20


@dataclass
class Listing:
    nodes: Sequence[Node]
    names: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = {n.name: pos for pos, n in enumerate(self.nodes)}


def file(name: str, size: int, blob: int = 256 * KIB) -> Node:
    """A file of ``size`` bytes, its blob ids made from its name (``blob`` bytes each)."""
    count = -(-size // blob)
    return Node(name.encode(), FILE, size=size, content=tuple(f"{name}#{k}".encode() for k in range(count)))


def folder(name: str, tree_id: str) -> Node:
    return Node(name.encode(), DIR, subtree=tree_id.encode())


class Trees:
    """Listings by tree id, some of them not loaded yet; records what the walk asks for."""

    def __init__(self, listings: dict[str, list[Node]], unloaded: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.listings = {k.encode(): Listing(v) for k, v in listings.items()}
        self.unloaded = {k.encode() for k in unloaded}
        self.wanted: list[list[bytes]] = []

    def listing(self, tree_id: bytes) -> Listing | None:
        return None if tree_id in self.unloaded else self.listings[tree_id]

    def want(self, tree_ids: list[bytes]) -> None:
        self.wanted.append(tree_ids)

    def load(self, tree_id: str) -> None:
        self.unloaded.discard(tree_id.encode())

    def walk_ahead(self, window: int = 8 * MIB) -> WalkAhead:
        return WalkAhead(self.listing, self.want, window)

    def files(self, tree_id: bytes = b"root", above: tuple[PathStep, ...] = ()) -> Iterator[tuple[bytes, int, list[PathStep]]]:
        """(folder tree id, position, path from the root) of every file, in tar's order."""
        listing = self.listings[tree_id]
        for pos, node in enumerate(listing.nodes):
            path = [*above, (tree_id, listing, pos)]
            if node.type == FILE:
                yield tree_id, pos, path
            elif node.type == DIR and node.subtree is not None:
                yield from self.files(node.subtree, tuple(path))

    def node(self, tree_id: bytes, pos: int) -> Node:
        return self.listings[tree_id].nodes[pos]


def read_in_order(trees: Trees, walk: WalkAhead) -> list[tuple[Node, list[bytes]]]:
    """Open every file in tar's order; what each open asked for."""
    out = []
    for tree_id, pos, path in trees.files():
        out.append((trees.node(tree_id, pos), walk.opened(tree_id, pos, lambda p=path: p)))
    return out


def test_tar_order_asks_for_every_blob_once_and_before_its_file() -> None:
    rng_sizes = [(i * 7919) % (700 * KIB) for i in range(400)]
    listings: dict[str, list[Node]] = {"root": []}
    for d in range(8):
        sub = f"d{d}"
        listings["root"].append(folder(sub, sub))
        listings[sub] = [file(f"{sub}/f{k:03d}", rng_sizes[d * 50 + k]) for k in range(50)]
        if d % 3 == 0:
            listings[sub].insert(10, folder("inner", sub + "/inner"))
            listings[sub + "/inner"] = [file(f"{sub}/inner/g{k}", 3000 + k) for k in range(5)]
    listings["root"].append(file("last", 100))
    trees = Trees(listings)
    asked: dict[bytes, int] = {}
    opened = 0
    for node, ids in read_in_order(trees, trees.walk_ahead()):
        for blob in ids:
            assert blob not in asked, f"{blob!r} asked for twice"
            asked[blob] = opened
        # Every file after the first had its blobs asked for before it was opened.
        if opened and node.content:
            assert all(asked.get(b, opened) < opened for b in node.content), node.name
        opened += 1
    everything = {b for nodes in listings.values() for n in nodes if n.type == FILE for b in n.content or ()}
    first = next(trees.files())
    assert set(asked) == everything - set(trees.node(first[0], first[1]).content or ())


def test_a_reader_out_of_order_sets_off_nothing() -> None:
    trees = Trees({"root": [file(f"f{k}", 1000) for k in range(40)]})
    walk = trees.walk_ahead()
    root = trees.listings[b"root"]

    def open_(pos: int) -> list[bytes]:
        return walk.opened(b"root", pos, lambda: [(b"root", root, pos)])
    assert open_(20) == []  # the first open in the folder, files before it: no walk
    assert open_(5) == []   # backwards
    assert open_(30) == []  # too far on (more than ORDER_GAP)
    ids = open_(31)         # the next one: in order
    assert ids and ids[0] == b"f32#0"


def test_window_starts_small_and_doubles_up_to_the_read_ahead_size() -> None:
    size = 256 * KIB
    trees = Trees({"root": [file(f"f{k:03d}", size) for k in range(300)]})
    window = 8 * MIB
    walk = trees.walk_ahead(window)
    root = trees.listings[b"root"]
    ahead_of_reader: list[int] = []  # after each top-up: bytes asked for from the open file on
    for pos in range(300):
        if walk.opened(b"root", pos, lambda: [(b"root", root, pos)]):
            (w,) = walk._walks
            ahead_of_reader.append(w.total - w.reader)
    assert ahead_of_reader[:5] == [FIRST_WINDOW, 2 * FIRST_WINDOW, 4 * FIRST_WINDOW, 8 * FIRST_WINDOW, window]
    assert max(ahead_of_reader) == window
    # Top-ups come when half the window is used, not at every open.
    assert len(ahead_of_reader) < 300 // 8


def test_a_walk_stops_at_an_unloaded_folder_and_asks_for_it_once() -> None:
    trees = Trees({"root": [file("a", 10), file("b", 10), file("c", 10), folder("sub", "sub"), file("z", 10)],
                   "sub": [file("sub/x", 10), file("sub/y", 10)]}, unloaded={"sub"})
    walk = trees.walk_ahead()
    root = trees.listings[b"root"]

    def open_(pos: int) -> list[bytes]:
        return walk.opened(b"root", pos, lambda: [(b"root", root, pos)])
    assert open_(0) == [b"b#0", b"c#0"]
    assert trees.wanted == [[b"sub"]]
    assert open_(1) == []  # still not loaded: not asked for again
    assert trees.wanted == [[b"sub"]]
    trees.load("sub")
    assert open_(2) == [b"sub/x#0", b"sub/y#0", b"z#0"]  # goes on, into the folder and out
    assert trees.wanted == [[b"sub"]]


def test_a_stopped_walk_asks_for_the_next_folders_too() -> None:
    """The folders after the one a walk waits for come next: their listings are asked for
    with it, nearest first, those at hand left out, so the walk does not stop at each."""
    subs = {f"s{k}": [file(f"s{k}/f{j}", 1000) for j in range(3)] for k in range(5)}
    trees = Trees({"root": [file("a", 10), *(folder(k, k) for k in subs)], **subs}, unloaded=set(subs) - {"s2"})
    walk = trees.walk_ahead()
    root = trees.listings[b"root"]
    assert walk.opened(b"root", 0, lambda: [(b"root", root, 0)]) == []
    assert trees.wanted == [[b"s0", b"s1", b"s3", b"s4"]]
    for k in subs:
        trees.load(k)
    ids = walk.opened(b"s0", 0, lambda: [(b"root", root, 1), (b"s0", trees.listings[b"s0"], 0)])
    assert ids[:2] == [b"s0/f1#0", b"s0/f2#0"] and b"s4/f2#0" in ids


def test_marks_are_bounded() -> None:
    count = 3 * MAX_MARKS
    trees = Trees({"root": [file(f"f{k:05d}", 1) for k in range(count)]})
    walk = trees.walk_ahead(1 << 40)
    asked: set[bytes] = set()
    root = trees.listings[b"root"]
    for pos in range(count):
        asked.update(walk.opened(b"root", pos, lambda: [(b"root", root, pos)]))
        assert all(len(w.marks) == len(w.order) <= MAX_MARKS for w in walk._walks)
    assert len(asked) == count - 1


def test_one_top_up_goes_through_a_bounded_number_of_entries() -> None:
    class Counted(list):  # type: ignore[type-arg]
        reads = 0

        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            Counted.reads += 1
            return super().__getitem__(i)

    nodes = Counted([file("first", 10)] + [Node(f"l{k}".encode(), SYMLINK, linktarget="x") for k in range(10 * MAX_STEPS)]
                    + [file("last", 10)])
    listing = Listing(nodes)
    walk = WalkAhead(lambda _: listing, lambda _: None, MIB)
    Counted.reads = 0
    assert walk.opened(b"root", 0, lambda: [(b"root", listing, 0)]) == []
    assert Counted.reads <= MAX_STEPS + 1


def test_of_a_large_file_only_its_first_blobs_are_asked_for() -> None:
    big = file("big", 64 * MIB, blob=MIB)
    trees = Trees({"root": [file("a", 10), big, file("c", 10)]})
    ids = read_in_order(trees, trees.walk_ahead(32 * MIB))[0][1]
    assert [b for b in ids if b.startswith(b"big#")] == list(big.content or ())[:FILE_AHEAD // MIB]


@pytest.mark.parametrize("files", [1, 5])
def test_a_tree_met_twice_in_one_walk(files: int) -> None:
    """Two folders alike to the last inode number have one tree id, so a walk passes the
    same (tree, position) twice: reading through both must not fail, and every file must
    still find its blobs asked for ahead (those of the copy being the same blobs)."""
    listings = {"root": [folder("a", "same"), folder("b", "same"), file("z", 10)],
                "same": [file(f"s{k}", 1000) for k in range(files)]}
    trees = Trees(listings)
    walk = trees.walk_ahead(MIB)  # both copies in the first window
    asked: set[bytes] = set()
    for node, ids in read_in_order(trees, walk):
        asked.update(ids)
        assert set(node.content or ()) <= asked | {b"s0#0"}, node.name  # s0: opened first
    assert b"z#0" in asked


def test_readers_followed_at_once_are_bounded() -> None:
    listings = {f"t{k}": [file(f"t{k}/f{j}", 10) for j in range(20)] for k in range(3 * MAX_WALKS)}
    trees = Trees(listings)
    walk = trees.walk_ahead()
    for k in range(3 * MAX_WALKS):
        t = f"t{k}".encode()
        assert walk.opened(t, 0, lambda t=t: [(t, trees.listings[t], 0)])
    assert len(walk._walks) == MAX_WALKS
