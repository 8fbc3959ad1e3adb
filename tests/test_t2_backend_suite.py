"""One conformance suite for every backend: local folder and REST (rclone serve restic)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rest_server import rest_server
from restic_util import needs_restic, restic
from repofs.backend.base import CONFIG, Backend, FileNotFound, FileType, Handle
from repofs.backend.local import LocalBackend
from repofs.backend.location import open_backend
from repofs.model.ids import hash_id
from conftest import make_varied_tree, run_repofs


@pytest.fixture(params=["local", "rest"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        be: Backend = LocalBackend(str(tmp_path / "repo"))
        yield be
        await be.close()
        return
    with rest_server(tmp_path / "served") as url:
        be = open_backend(f"rest:{url}")
        yield be
        await be.close()


async def test_conformance(backend: Backend) -> None:
    await backend.create()
    with pytest.raises(FileNotFound):
        await backend.stat(CONFIG)
    await backend.save(CONFIG, b"config bytes")
    assert await backend.load(CONFIG) == b"config bytes"
    blobs = {}
    for t in (FileType.PACK, FileType.INDEX, FileType.SNAPSHOT, FileType.KEY, FileType.LOCK):
        data = os.urandom(700 + len(blobs))
        name = hash_id(data).hex()
        blobs[(t, name)] = data
        await backend.save(Handle(t, name), data)
        assert await backend.list(t) == [(name, len(data))]
    for (t, name), data in blobs.items():
        h = Handle(t, name)
        assert await backend.stat(h) == len(data)
        assert await backend.load(h) == data
        assert await backend.load(h, 100, 50) == data[50:150]
        assert await backend.load(h, 0, 600) == data[600:]
        await backend.remove(h)
        with pytest.raises(FileNotFound):
            await backend.load(h)
        assert await backend.list(t) == []


async def test_a_file_saved_in_parts_is_their_concatenation(backend: Backend) -> None:
    await backend.create()
    # Parts of every size, empty ones and more than one writev takes at once among them.
    parts = [os.urandom(n % 5000) for n in range(0, 1500 * 37, 37)] + [b"", os.urandom(3 << 20)]
    whole = b"".join(parts)
    h = Handle(FileType.PACK, hash_id(whole).hex())
    await backend.save(h, parts)
    assert await backend.stat(h) == len(whole)
    assert await backend.load(h) == whole


@needs_restic
def test_restic_and_repofs_share_a_rest_repository(tmp_path: Path) -> None:
    with rest_server(tmp_path / "served") as url:
        repo = f"rest:{url}"
        run_repofs("-r", repo, "init")
        src = make_varied_tree(tmp_path / "src")
        restic(repo, "backup", ".", cwd=src)
        restic(repo, "check")
        assert run_repofs("-r", repo, "ls", "-l", "latest").stdout == restic(repo, "ls", "-l", "latest")
        assert run_repofs("-r", repo, "snapshots", "--json").stdout.strip() == \
            restic(repo, "snapshots", "--json").strip()
