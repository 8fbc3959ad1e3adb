"""The write path's components: packs, blob saving, dedup, compression, index files.

Blobs are saved into real repositories (made by restic and by repofs), then the files are
read back with repofs' readers and checked by `restic check --read-data`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restic_util import PASSWORD, init_repo, needs_restic, restic
from repofs.backend.base import FileType, Handle
from repofs.backend.local import LocalBackend
from repofs.chunker.polynomial import random_polynomial
from repofs.errors import UsageError
from repofs.model.ids import hash_id
from repofs.model.tree import Node, encode_tree
from repofs.repo.crypto import Key
from repofs.repo.index import BlobType, IndexBuilder
from repofs.repo.pack import decode_header, expected_size
from repofs.repo.packer import MIB, PackBuffer, Packer, check_pack_size
from repofs.repo.repository import Repository
from repofs.repo import saver as saver_mod
from repofs.repo.saver import BlobSaver, Compression

pytestmark = needs_restic


async def _open(path: Path) -> Repository:
    repo = await Repository.open(LocalBackend(str(path)), PASSWORD.encode())
    await repo.load_index()
    return repo


def _blobs(seed: int, count: int, size: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % 2:
            out.append(rng.randbytes(size))
        else:
            out.append(bytes([i % 251]) * size)  # compressible
    return out


async def _save_all(repo: Repository, blobs: list[bytes], blob_type: BlobType = BlobType.DATA,
                    **kwargs: object) -> BlobSaver:
    async with trio.open_nursery() as nursery:
        saver = BlobSaver(repo, nursery, **kwargs)  # type: ignore[arg-type]
        for b in blobs:
            await saver.save(blob_type, b)
        await saver.flush()
    return saver


def _pack_files(repo_path: Path) -> list[Path]:
    return sorted(p for p in (repo_path / "data").rglob("*") if p.is_file())


@pytest.mark.parametrize("version", [1, 2])
async def test_saved_blobs_pass_restic_check(tmp_path: Path, version: int) -> None:
    path = init_repo(tmp_path / "repo", version=version)
    repo = await _open(path)
    blobs = _blobs(1, 30, 300_000) + [b"", b"tiny"]
    saver = await _save_all(repo, blobs, pack_size=check_pack_size(4))
    assert saver.packer is not None and saver.packer.packs_saved >= 2
    assert len(saver.index_writer.written) == 1
    out = restic(path, "check", "--read-data").decode()
    assert "no errors were found" in out
    # Every blob reads back with its own id; v1 never compresses, v2 compresses data.
    repo = await _open(path)
    for b in blobs:
        assert await repo.load_blob(BlobType.DATA, hash_id(b)) == b
        (loc,) = repo.index.lookup(hash_id(b), BlobType.DATA)
        assert loc.compressed == (version == 2 and len(b) > 0)  # the empty blob stays plain


async def test_packs_match_their_headers_and_sizes(tmp_path: Path) -> None:
    path = init_repo(tmp_path / "repo")
    repo = await _open(path)
    await _save_all(repo, _blobs(2, 40, 300_000), pack_size=check_pack_size(4))
    repo = await _open(path)
    packs = _pack_files(path)
    assert len(packs) >= 2
    for p in packs:
        assert hash_id(p.read_bytes()).hex() == p.name  # named by the hash of the bytes
        entries = await repo.load_pack_header(bytes.fromhex(p.name))
        assert expected_size(entries) == p.stat().st_size
        assert {e.type for e in entries} == {BlobType.DATA}
        assert os.stat(p).st_mode & 0o777 == 0o400


async def test_duplicates_are_stored_once(tmp_path: Path) -> None:
    path = init_repo(tmp_path / "repo")
    repo = await _open(path)
    blob = os.urandom(100_000)
    async with trio.open_nursery() as nursery:
        saver = BlobSaver(repo, nursery)
        results = [await saver.save(BlobType.DATA, blob) for _ in range(3)]
        # The same bytes as a tree are a different blob.
        as_tree = await saver.save(BlobType.TREE, blob)
        await saver.flush()
    assert [r.known for r in results] == [False, True, True]
    assert not as_tree.known
    assert results[0].size_in_repo > 0 and results[1].size_in_repo == 0
    repo = await _open(path)
    assert len(repo.index.lookup(hash_id(blob), BlobType.DATA)) == 1
    # A later saver dedups against the index.
    async with trio.open_nursery() as nursery:
        again = BlobSaver(repo, nursery)
        assert (await again.save(BlobType.DATA, blob)).known
        await again.flush()
    assert again.packer is not None and again.packer.packs_saved == 0


@pytest.mark.parametrize("mode", list(Compression))
async def test_compression_modes(tmp_path: Path, mode: Compression) -> None:
    path = init_repo(tmp_path / "repo", version=2)
    repo = await _open(path)
    data = b"compressible " * 20_000
    tree = encode_tree([Node(name=b"x", content=(hash_id(data),))])
    async with trio.open_nursery() as nursery:
        saver = BlobSaver(repo, nursery, compression=mode)
        await saver.save(BlobType.DATA, data)
        await saver.save(BlobType.TREE, tree)
        await saver.flush()
    repo = await _open(path)
    (dloc,) = repo.index.lookup(hash_id(data), BlobType.DATA)
    (tloc,) = repo.index.lookup(hash_id(tree), BlobType.TREE)
    assert dloc.compressed == (mode is not Compression.OFF)
    assert tloc.compressed  # tree blobs are always compressed in v2
    if mode is not Compression.OFF:
        assert dloc.length < len(data) // 10
    assert await repo.load_blob(BlobType.DATA, hash_id(data)) == data
    assert await repo.load_blob(BlobType.TREE, hash_id(tree)) == tree


async def test_index_files_split_and_follow_their_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(saver_mod, "INDEX_MAX_BLOBS_V2", 5)
    path = init_repo(tmp_path / "repo")
    repo = await _open(path)
    saved_packs: list[bytes] = []
    written_after: list[set[bytes]] = []
    original = repo.save_unpacked

    async def spy(type_: FileType, doc: bytes) -> bytes:
        if type_ is FileType.INDEX:
            listed = {bytes.fromhex(n) for n, _ in await repo.backend.list(FileType.PACK)}
            written_after.append(listed)
        return await original(type_, doc)

    monkeypatch.setattr(repo, "save_unpacked", spy)
    # Two packs of more than 5 blobs each: each one fills an index file, in any upload order.
    saver = await _save_all(repo, _blobs(3, 30, 400_000), pack_size=check_pack_size(4))
    assert saver.packer is not None
    saved_packs = [bytes.fromhex(n) for n, _ in await repo.backend.list(FileType.PACK)]
    assert len(saver.index_writer.written) >= 2
    # Each index file lists only packs that were stored before it was written.
    builder_repo = await _open(path)
    for index_id, stored_before in zip(saver.index_writer.written, written_after):
        doc = await builder_repo.load_unpacked(FileType.INDEX, index_id)
        b = IndexBuilder()
        b.add_file(index_id, doc)
        assert set(b.finish().pack_ids()) <= stored_before
    assert set(builder_repo.index.pack_ids()) == set(saved_packs)
    assert "no errors were found" in restic(path, "check").decode()


async def test_repofs_made_repository(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "repo"))
    repo = await Repository.create(backend, PASSWORD.encode(), 1, random_polynomial())
    await repo.load_index()
    await _save_all(repo, _blobs(4, 6, 50_000))
    assert "no errors were found" in restic(tmp_path / "repo", "check", "--read-data").decode()


async def test_dry_run_saver_writes_nothing(tmp_path: Path) -> None:
    path = init_repo(tmp_path / "repo")
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    repo = await _open(path)
    saver = await _save_all(repo, _blobs(5, 4, 10_000), dry_run=True)
    assert saver.packer is None and saver.blobs_added[BlobType.DATA] == 4
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before


def test_pack_size_limits() -> None:
    assert check_pack_size(16) == 16 * MIB
    for bad in (3, 129):
        with pytest.raises(UsageError):
            check_pack_size(bad)
    assert Compression.parse("MAX") is Compression.MAX
    with pytest.raises(UsageError):
        Compression.parse("fast")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.binary(max_size=3000), st.booleans(), st.booleans()), max_size=12))
def test_pack_buffer_round_trip(blobs: list[tuple[bytes, bool, bool]]) -> None:
    """Whatever goes into a pack comes back out of it: header entries, offsets, contents."""
    key = Key.random()
    sealer = saver_mod.BlobSealer(key, 2)
    buf = PackBuffer(BlobType.DATA)
    sealed_list = []
    for data, is_tree, plain in blobs:
        blob_type = BlobType.TREE if is_tree else BlobType.DATA
        sealed = sealer.seal(blob_type, data, hash_id(data))
        if plain:
            sealed = saver_mod.BlobSealer(key, 1).seal(blob_type, data, hash_id(data))
        buf.add(sealed)
        sealed_list.append(sealed)
    pack = buf.finish(key)
    raw = b"".join(pack.parts)
    assert hash_id(raw) == pack.id
    assert len(raw) == pack.size == expected_size(pack.entries)
    hlen = int.from_bytes(raw[-4:], "little")
    entries = decode_header(key.open(raw[-4 - hlen:-4]), "test")
    assert entries == pack.entries
    repo = Repository.__new__(Repository)
    repo.key = key
    for e, sealed, (data, _, _) in zip(entries, sealed_list, blobs):
        assert (e.id, e.type, e.uncompressed_length) == (sealed.id, sealed.type, sealed.uncompressed_length)
        assert Repository.decode_blob(repo, e.id, e.type, e, pack.id, raw[e.offset:e.offset + e.length]) == data


async def test_upload_failure_is_not_indexed(tmp_path: Path) -> None:
    """A pack whose upload fails is never announced, so no index file can list it."""
    path = init_repo(tmp_path / "repo")
    repo = await _open(path)

    async def broken_save(h: Handle, data: bytes) -> None:
        raise OSError("disk on fire")

    repo.backend.save = broken_save  # type: ignore[method-assign]
    with pytest.raises(BaseExceptionGroup):
        await _save_all(repo, _blobs(6, 3, 1000))
    assert not list((path / "index").iterdir())


class _HeldBackend(LocalBackend):
    """A local backend whose pack uploads wait until ``release`` is set."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.release = trio.Event()
        self.waiting = 0

    async def save(self, h: Handle, data: object) -> None:  # type: ignore[override]
        if h.type is FileType.PACK:
            self.waiting += 1
            await self.release.wait()
        await super().save(h, data)  # type: ignore[arg-type]


async def test_concurrent_adders_wait_while_a_full_pack_waits_for_its_upload(tmp_path: Path) -> None:
    """With uploads stuck, many adders at once fill no more than the uploading pack and the
    one waiting for a slot: memory stays bounded however many tasks add."""
    backend = _HeldBackend(str(tmp_path / "repo"))
    await backend.create()
    key = Key.random()
    saver = saver_mod.BlobSealer(key, 1)
    pack_size = check_pack_size(4)
    accepted = 0

    async def on_saved(pack: object) -> None:
        pass

    async def adder(seed: int) -> None:
        nonlocal accepted
        for data in _blobs(seed, 40, 256 << 10):
            await packer.add(saver.seal(BlobType.DATA, data, hash_id(data)))
            accepted += len(data)

    async with trio.open_nursery() as nursery:
        packer = Packer(backend, key, nursery, on_saved, pack_size, uploads=1)
        async with trio.open_nursery() as adders:
            for seed in range(8):
                adders.start_soon(adder, seed)
            while not backend.waiting:  # the first pack's hashing runs in a thread
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
            assert backend.waiting == 1
            # One pack uploading, one full and waiting for the slot, a blob on its way per adder.
            assert accepted <= 2 * pack_size + 8 * (256 << 10)
            backend.release.set()
        await packer.flush()
    assert accepted == 8 * 40 * (256 << 10)
    assert len(await backend.list(FileType.PACK)) == packer.packs_saved >= 8 * 40 * (256 << 10) // pack_size
