"""The copy's parts on their own: read planning, re-sealing, snapshot matching, tree graphs,
and reading past a damaged pack."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from repofs.backend.base import FileType, Handle
from repofs.backend.local import LocalBackend
from repofs.chunker.polynomial import random_polynomial
from repofs.copy.blobs import Transcoder, Wanted, open_blob, plan_runs
from repofs.copy.planner import tree_refs
from repofs.copy.reader import SourceReader
from repofs.copy.rechunk import by_height, file_runs
from repofs.copy.snapshots import choose, copied, find_copies, similar
from repofs.errors import DamagedPack, IntegrityError
from repofs.model.gotime import Timestamp
from repofs.model.ids import hash_id
from repofs.model.snapshot import Snapshot
from repofs.model.tree import DIR, FILE, Node, decode_tree, encode_tree
from repofs.repo.crypto import Key
from repofs.repo.index import BlobType, encode_index
from repofs.repo.packer import Packer
from repofs.repo.repository import Repository
from repofs.repo.saver import BlobSealer, Compression

ids = st.binary(min_size=32, max_size=32)


# -- read planning -----------------------------------------------------------------------------

@st.composite
def pack_blobs(draw: st.DrawFn) -> list[Wanted]:
    """Some blobs of one pack: consecutive entries, a random subset wanted."""
    lengths = draw(st.lists(st.integers(33, 3 << 20), min_size=1, max_size=40))
    offset, out = 0, []
    for i, n in enumerate(lengths):
        if draw(st.booleans()):
            out.append(Wanted(hash_id(bytes([i])), BlobType.DATA, offset, n, None))
        offset += n
    return draw(st.permutations(out))


@given(pack_blobs(), st.integers(0, 2 << 20), st.integers(1, 8 << 20))
def test_plan_runs(blobs: list[Wanted], max_gap: int, max_run: int) -> None:
    runs = plan_runs(b"p" * 32, blobs, max_gap, max_run)
    assert sorted(b.offset for r in runs for b in r.blobs) == sorted(b.offset for b in blobs)
    for r in runs:
        assert r.start == r.blobs[0].offset and r.end == r.blobs[-1].end
        assert r.length <= max_run or len(r.blobs) == 1
        for a, b in itertools.pairwise(r.blobs):
            assert a.end <= b.offset <= a.end + max_gap
    for a, b in itertools.pairwise(runs):  # a new run only where the rules demand one
        assert b.start > a.end + max_gap or b.blobs[0].end - a.start > max_run


@given(st.lists(st.tuples(st.sampled_from([b"a" * 32, b"b" * 32]), st.integers(0, 1 << 20),
                          st.integers(33, 1 << 20)), max_size=30))
def test_file_runs_keep_content_order(entries: list[tuple[bytes, int, int]]) -> None:
    located = [(pack, Wanted(hash_id(bytes([i])), BlobType.DATA, off, n, None))
               for i, (pack, off, n) in enumerate(entries)]
    runs = file_runs(located, max_gap=4096, max_run=2 << 20)
    assert [(r.pack_id, b) for r in runs for b in r.blobs] == located
    for r in runs:
        assert r.start == r.blobs[0].offset and r.end == r.blobs[-1].end
        for a, b in itertools.pairwise(r.blobs):
            assert a.end <= b.offset <= a.end + 4096


def test_by_height_puts_subtrees_first() -> None:
    # d is below both b and c, and c is also right below the root.
    children = {b"r": [b"b", b"c"], b"b": [b"c", b"d"], b"c": [b"d"], b"d": [], b"e": []}
    levels = by_height(children)
    assert [sorted(level) for level in levels] == [[b"d", b"e"], [b"c"], [b"b"], [b"r"]]
    height = {t: h for h, level in enumerate(levels) for t in level}
    assert all(height[c] < height[p] for p, cs in children.items() for c in cs)


# -- opening and re-sealing --------------------------------------------------------------------

def _stored(sealer: BlobSealer, blob_type: BlobType, data: bytes) -> tuple[Wanted, bytes]:
    blob = sealer.seal(blob_type, data, hash_id(data))
    return Wanted(blob.id, blob_type, 0, len(blob.data), blob.uncompressed_length), blob.data


@pytest.mark.parametrize("src_version", [1, 2])
@pytest.mark.parametrize("dst_version", [1, 2])
@pytest.mark.parametrize("compression", list(Compression))
def test_reseal_between_versions(src_version: int, dst_version: int, compression: Compression) -> None:
    src_key, dst_key = Key.random(), Key.random()
    data = os.urandom(1000) + b"x" * 50_000
    for blob_type in BlobType:
        wanted, sealed = _stored(BlobSealer(src_key, src_version), blob_type, data)
        assert (wanted.uncompressed_length is not None) == (src_version == 2)
        plain, frame = open_blob(src_key, wanted, b"p" * 32, sealed)
        assert plain == data and (frame is not None) == (src_version == 2)
        transcoder = Transcoder(dst_key, dst_version, compression)
        again = transcoder.seal(blob_type, wanted.id, plain, frame, len(data))
        out = dst_key.open(again.data)
        compresses = dst_version == 2 and (blob_type is BlobType.TREE or compression is not Compression.OFF)
        assert (again.uncompressed_length is not None) == compresses
        if compresses and frame is not None and compression is not Compression.MAX:
            assert out == frame  # the source's frame, re-encrypted
        reopened, _ = open_blob(dst_key, Wanted(again.id, blob_type, 0, len(again.data),
                                                again.uncompressed_length), b"q" * 32, again.data)
        assert reopened == data


def test_open_without_plaintext_still_checks() -> None:
    key = Key.random()
    data = b"compressible " * 60_000  # more than one piece
    wanted, sealed = _stored(BlobSealer(key, 2), BlobType.DATA, data)
    plain, frame = open_blob(key, wanted, b"p" * 32, sealed, need_plain=False)
    assert plain is None and frame is not None
    wrong = dataclasses.replace(wanted, id=hash_id(b"other"))
    with pytest.raises(DamagedPack, match="does not match its id"):
        open_blob(key, wrong, b"p" * 32, sealed, need_plain=False)
    with pytest.raises(DamagedPack, match="zstd"):
        open_blob(key, dataclasses.replace(wanted, uncompressed_length=len(data) - 1), b"p" * 32, sealed,
                  need_plain=False)
    damaged = bytearray(sealed)
    damaged[40] ^= 1
    with pytest.raises(DamagedPack, match="MAC"):
        open_blob(key, wanted, b"p" * 32, bytes(damaged))
    with pytest.raises(DamagedPack, match="short read"):
        open_blob(key, wanted, b"p" * 32, sealed[:-1])


# -- trees ---------------------------------------------------------------------------------------

@given(st.lists(st.tuples(st.binary(min_size=1, max_size=8), st.lists(ids, max_size=3),
                          st.one_of(st.none(), ids)), max_size=10, unique_by=lambda t: t[0]))
def test_tree_refs_agree_with_decode_tree(entries: list[tuple[bytes, list[bytes], bytes | None]]) -> None:
    nodes = [Node(name=name, type=DIR, subtree=sub) if sub is not None
             else Node(name=name, type=FILE, content=tuple(content)) for name, content, sub in entries]
    raw = encode_tree(sorted(nodes, key=lambda n: n.name))
    subtrees, contents = tree_refs(raw, hash_id(raw))
    decoded = decode_tree(raw)
    assert subtrees == [n.subtree for n in decoded if n.subtree is not None]
    assert contents == [tuple(n.content) for n in decoded if n.content]


def test_tree_refs_refuse_garbage() -> None:
    for raw in (b"[]", b'{"nodes":[{"subtree":"abc"}]}', b'{"nodes":[{"content":["00"]}]}', b"{"):
        with pytest.raises(IntegrityError):
            tree_refs(raw, b"t" * 32)


# -- snapshots -----------------------------------------------------------------------------------

def _snap(n: int, **kw: object) -> Snapshot:
    fields: dict = {"time": Timestamp(n * 10**9), "tree": bytes([n]) * 32, "paths": ["/a", "/b"],
                    "hostname": "h", "username": "u", "tags": ["x", "y"], "id": hashlib_id(n)}
    fields.update(kw)
    return Snapshot(**fields)


def hashlib_id(n: int) -> bytes:
    return hash_id(b"snapshot %d" % n)


def test_copies_are_found_as_restic_finds_them() -> None:
    src = [_snap(1), _snap(2), _snap(3, original=hashlib_id(99))]
    copy1 = dataclasses.replace(copied(src[0], src[0].tree), id=hash_id(b"c1"), paths=["/b", "/a"])
    copy3 = dataclasses.replace(copied(src[2], src[2].tree), id=hash_id(b"c3"))
    assert copy1.original == src[0].id and copy1.parent is None
    assert copy3.original == hashlib_id(99)  # a copy of a copy keeps the first id
    same_tags_other_order = dataclasses.replace(copy3, tags=["y", "x"])
    found = find_copies(src, [copy1, same_tags_other_order])
    assert [f for _, f in found] == [copy1, None, same_tags_other_order]
    # The source snapshot itself, present in the destination (an identical file), counts.
    assert find_copies([src[1]], [src[1]])[0][1] == src[1]
    # Any other field makes it another snapshot; the tree only when trees are compared.
    for change in ({"time": Timestamp(5)}, {"hostname": "other"}, {"username": "v"}, {"uid": 1},
                   {"gid": 2}, {"paths": ["/a"]}, {"tags": ["x"]}, {"excludes": ["*.o"]}):
        assert not similar(copy1, dataclasses.replace(src[0], **change))
    rechunked = dataclasses.replace(copy1, tree=b"t" * 32)
    assert find_copies(src[:1], [rechunked])[0][1] is None
    assert find_copies(src[:1], [rechunked], compare_tree=False)[0][1] == rechunked


def test_choose() -> None:
    snaps = [_snap(3, hostname="b"), _snap(1), _snap(2, tags=["z"])]
    assert [s.time.ns for s in choose(snaps)] == [10**9, 2 * 10**9, 3 * 10**9]
    assert [s.hostname for s in choose(snaps, hosts=["b"])] == ["b"]
    assert choose(snaps, ["latest"], tags=["x,y"]) == [snaps[0]]
    assert choose(snaps, ["latest"], hosts=["h"]) == [snaps[2]]
    assert choose(snaps, [hashlib_id(2).hex()[:8], "latest", hashlib_id(2).hex()]) == [snaps[2], snaps[0]]


# -- reading past a damaged pack -----------------------------------------------------------------

def _damage(name: str, offset: int) -> None:
    os.chmod(name, 0o600)
    with open(name, "r+b") as f:
        f.seek(offset)
        f.write(b"\0\0\0\0")


async def test_reader_falls_back_to_another_copy(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "repo"))
    repo = await Repository.create(backend, b"pw", 2, random_polynomial())
    blobs = [os.urandom(5000) for _ in range(3)]
    sealer = BlobSealer(repo.key, 2)
    packs = []

    async def saved(pack) -> None:  # type: ignore[no-untyped-def]
        packs.append(pack)

    async with trio.open_nursery() as nursery:  # the same blobs in two packs
        packer = Packer(backend, repo.key, nursery, saved)
        for copy_no in range(2):
            for b in blobs:
                await packer.add(sealer.seal(BlobType.DATA, b, hash_id(b)))
            await packer.flush()
    await repo.save_unpacked(FileType.INDEX, encode_index((p.id, p.index_entries()) for p in packs))
    await repo.load_index()
    warnings: list[str] = []
    reader = SourceReader(repo, warnings.append)
    victim = hash_id(blobs[1])
    first = repo.index.lookup(victim, BlobType.DATA)[0]
    # Damage the copy of blobs[1] that is read first.
    _damage(backend.filename(Handle(FileType.PACK, first.pack_id.hex())), first.offset + 20)

    runs = reader.plan((hash_id(b), BlobType.DATA) for b in blobs)
    got: list[bytes] = []

    async def consume(results: list[bytes]) -> None:
        got.extend(results)

    for run in runs:
        await reader.fetch(run, lambda w, plain, frame: plain, consume)
    assert sorted(got) == sorted(blobs)
    assert reader.stats.fallbacks == 1 and len(warnings) == 1 and "MAC" in warnings[0]
