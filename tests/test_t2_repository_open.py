"""Opening a repository: files read ahead during the key derivation are the files later loads
would read, and errors come out as they did without reading ahead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import RepoFixture
from restic_util import PASSWORD, backup
from repofs.backend.base import Backend, FileType, Handle
from repofs.backend.local import LocalBackend
from repofs.errors import IntegrityError, NotARepository, WrongPassword
from repofs.repo import repository
from repofs.repo.repository import Repository

BOTH = (FileType.SNAPSHOT, FileType.INDEX)


class CountingBackend:
    """A local backend that counts the files it was asked to read."""

    def __init__(self, path: Path) -> None:
        self.inner = LocalBackend(str(path))
        self.location = self.inner.location
        self.connections = self.inner.connections
        self.upload_slots = self.inner.upload_slots
        self.blocking_load = None  # every read goes through ``load``, to be counted
        self.loads: list[Handle] = []

    async def list(self, type: FileType) -> list[tuple[str, int]]:
        return await self.inner.list(type)

    async def stat(self, h: Handle) -> int:
        return await self.inner.stat(h)

    async def load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        self.loads.append(h)
        return await self.inner.load(h, length, offset)

    async def close(self) -> None:
        await self.inner.close()


def listed(path: Path, *types: FileType) -> list[Handle]:
    return [Handle(t, p.name) for t in types for p in sorted((path / t.value).iterdir())]


async def test_same_repository_with_and_without_read_ahead(restic_repo: RepoFixture) -> None:
    plain = await Repository.open(LocalBackend(str(restic_repo.path)), PASSWORD.encode())
    early = await Repository.open(LocalBackend(str(restic_repo.path)), PASSWORD.encode(), read_ahead=BOTH)
    assert early.config == plain.config and early.key == plain.key
    assert await early.load_snapshots() == await plain.load_snapshots()
    a, b = await early.load_index(), await plain.load_index()
    assert len(a) == len(b) and sorted(a.pack_ids()) == sorted(b.pack_ids())


async def test_read_files_reads_every_file_in_order(restic_repo: RepoFixture) -> None:
    backend = CountingBackend(restic_repo.path)
    into: dict[Handle, bytes] = {}
    await repository._read_files(backend, BOTH, into)
    assert set(into) == set(listed(restic_repo.path, *BOTH)) and len(backend.loads) == len(into)
    types = [h.type for h in backend.loads]
    assert types == sorted(types, key=BOTH.index)  # snapshots first, as asked
    for h, raw in into.items():
        assert raw == (restic_repo.path / h.type.value / h.name).read_bytes()


async def test_read_files_keeps_to_the_budget(restic_repo: RepoFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {h: (restic_repo.path / h.type.value / h.name).stat().st_size
             for h in listed(restic_repo.path, FileType.SNAPSHOT)}
    monkeypatch.setattr(repository, "READ_AHEAD_BYTES", min(sizes.values()))
    into: dict[Handle, bytes] = {}
    await repository._read_files(CountingBackend(restic_repo.path), BOTH, into)
    assert len(into) == 1 and sum(map(len, into.values())) <= min(sizes.values())


async def test_loads_take_what_was_read_ahead(restic_repo: RepoFixture) -> None:
    """Every snapshot and index file read once: by the read-ahead, not again by the loads."""
    opened = await Repository.open(LocalBackend(str(restic_repo.path)), PASSWORD.encode())
    backend = CountingBackend(restic_repo.path)
    early: dict[Handle, bytes] = {}
    await repository._read_files(backend, BOTH, early)
    repo = Repository(backend, opened.key, opened.config, read_ahead=early)
    await repo.load_snapshots()
    await repo.load_index()
    want = listed(restic_repo.path, *BOTH)
    assert len(backend.loads) == len(want) and set(backend.loads) == set(want)
    assert early == {}


async def test_damaged_file_read_ahead_is_refused(restic_repo: RepoFixture) -> None:
    """What was read early is checked like anything read later: its hash must be its name."""
    opened = await Repository.open(LocalBackend(str(restic_repo.path)), PASSWORD.encode())
    first = listed(restic_repo.path, FileType.SNAPSHOT)[0]
    raw = (restic_repo.path / "snapshots" / first.name).read_bytes()
    repo = Repository(opened.backend, opened.key, opened.config, read_ahead={first: raw[:-1] + bytes([raw[-1] ^ 1])})
    with pytest.raises(IntegrityError, match="does not match its name"):
        await repo.load_snapshot(bytes.fromhex(first.name))


async def test_file_gone_since_read_ahead_is_not_listed(restic_repo: RepoFixture, tmp_path: Path) -> None:
    """A snapshot removed after it was read ahead (a forget between open and lock) is gone."""
    path = tmp_path / "repo"
    shutil.copytree(restic_repo.path, path)
    backend: Backend = LocalBackend(str(path))
    repo = await Repository.open(backend, PASSWORD.encode())
    early: dict[Handle, bytes] = {}
    await repository._read_files(backend, (FileType.SNAPSHOT,), early)
    gone = listed(path, FileType.SNAPSHOT)[0]
    (path / "snapshots" / gone.name).unlink()
    repo = Repository(backend, repo.key, repo.config, read_ahead=early)
    assert [s.id.hex() for s in await repo.load_snapshots()] == [
        i for i in restic_repo.snapshot_ids if i != gone.name]


@pytest.mark.parametrize("read_ahead", [(), BOTH])
async def test_errors_are_plain(restic_repo: RepoFixture, tmp_path: Path, read_ahead: tuple[FileType, ...]) -> None:
    """Reading ahead or not, a wrong password and a missing repository raise the error itself."""
    with pytest.raises(WrongPassword):
        await Repository.open(LocalBackend(str(restic_repo.path)), b"not it", read_ahead=read_ahead)
    with pytest.raises(NotARepository):
        await Repository.open(LocalBackend(str(tmp_path / "missing")), PASSWORD.encode(), read_ahead=read_ahead)


async def test_index_built_again_only_when_its_files_change(restic_repo: RepoFixture, tmp_path: Path) -> None:
    """The command's load_index after the one run while the lock settled costs a listing;
    an index file added since (a backup meanwhile) makes it build the index again."""
    path = tmp_path / "repo"
    shutil.copytree(restic_repo.path, path)
    backend = CountingBackend(path)
    repo = await Repository.open(backend, PASSWORD.encode())
    first = await repo.load_index()
    loads = len(backend.loads)
    assert await repo.load_index() is first and len(backend.loads) == loads
    source = tmp_path / "new"
    source.mkdir()
    (source / "file").write_bytes(b"not in the repository before\n" * 100)
    backup(path, source)
    second = await repo.load_index()
    assert second is not first and len(second) > len(first)
