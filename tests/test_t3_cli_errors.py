"""Bad input: one clear line naming the object, exit code 1, and nothing written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import trio

from conftest import RepoFixture, run_repofs
from restic_util import PASSWORD, restic
from repofs.backend.local import LocalBackend
from repofs.errors import DamagedPack
from repofs.repo.config import Config
from repofs.repo.repository import Repository


def state(repo: Path) -> dict[str, tuple[int, int]]:
    """Every file of the repository with its size and mtime."""
    out = {}
    for dirpath, _, names in os.walk(repo):
        for n in names:
            st = os.stat(os.path.join(dirpath, n))
            out[os.path.relpath(os.path.join(dirpath, n), repo)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def damaged(restic_repo: RepoFixture, tmp_path: Path) -> Path:
    """A private copy of the restic repository, for tests that damage it."""
    copy = tmp_path / "repo"
    shutil.copytree(restic_repo.path, copy)
    for dirpath, dirs, names in os.walk(copy):
        for n in names:
            os.chmod(os.path.join(dirpath, n), 0o600)
    return copy


def fails(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    before = state(repo) if repo.exists() else None
    proc = run_repofs("-r", repo, *args, env=env, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if before is not None:
        assert state(repo) == before
    return err


def data_blob_and_pack(repo: Path) -> tuple[str, str, int]:
    """A data blob id, the pack that holds it and its offset, from restic's own index."""
    for index_id in restic(repo, "list", "index").decode().split():
        for pack in json.loads(restic(repo, "cat", "index", index_id))["packs"]:
            for blob in pack["blobs"]:
                if blob["type"] == "data":
                    return blob["id"], pack["id"], blob["offset"]
    raise AssertionError("no data blob in the index")


def test_wrong_password(restic_repo: RepoFixture) -> None:
    err = fails(restic_repo.path, "snapshots", env={"RESTIC_PASSWORD": "not it"})
    assert "wrong password" in err


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    assert "not a repository" in fails(tmp_path / "plain", "snapshots")
    assert "not a repository" in fails(tmp_path / "missing", "snapshots")


def test_unknown_repository_version(damaged: Path) -> None:
    async def rewrite_config() -> None:
        repo = await Repository.open(LocalBackend(str(damaged)), PASSWORD.encode())
        cfg = Config(7, repo.config.id, repo.config.chunker_polynomial)
        (damaged / "config").write_bytes(repo.key.seal(cfg.encode()))
    trio.run(rewrite_config)
    assert "version 7" in fails(damaged, "snapshots")


def test_ambiguous_short_id(tmp_path: Path, restic_repo: RepoFixture) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(restic_repo.path, repo)
    src = restic_repo.source
    seen: dict[str, int] = {}
    while max(seen.values(), default=0) < 2:  # 17 snapshots guarantee a shared first digit
        restic(repo, "backup", "-q", "--tag", f"n{len(seen)}", str(src / "docs" / "hello.txt"))
        seen = {}
        for i in restic(repo, "list", "snapshots").decode().split():
            seen[i[0]] = seen.get(i[0], 0) + 1
    prefix = next(k for k, v in seen.items() if v >= 2)
    assert "ambiguous" in fails(repo, "ls", prefix)


def test_missing_snapshot(restic_repo: RepoFixture) -> None:
    assert "deadbeef" in fails(restic_repo.path, "ls", "deadbeef")
    assert "no snapshot" in fails(restic_repo.path, "ls", "latest", "--host", "nobody")


def test_blob_with_bad_mac(damaged: Path) -> None:
    blob, pack, offset = data_blob_and_pack(damaged)
    path = damaged / "data" / pack[:2] / pack
    raw = bytearray(path.read_bytes())
    raw[offset + 20] ^= 0x01
    path.write_bytes(bytes(raw))
    err = fails(damaged, "cat", "blob", blob)
    assert "MAC mismatch" in err and pack[:16] in err and blob[:16] in err


def test_index_names_missing_pack(damaged: Path) -> None:
    blob, pack, _ = data_blob_and_pack(damaged)
    os.remove(damaged / "data" / pack[:2] / pack)
    err = fails(damaged, "cat", "blob", blob)
    assert pack in err and "missing" in err


@pytest.mark.parametrize("damage", ["truncate", "flip-header"])
def test_damaged_pack_header(damaged: Path, damage: str) -> None:
    _, pack, _ = data_blob_and_pack(damaged)
    path = damaged / "data" / pack[:2] / pack
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[:len(raw) // 2]
    else:
        raw[-10] ^= 0x40
    path.write_bytes(bytes(raw))

    async def header() -> None:
        repo = await Repository.open(LocalBackend(str(damaged)), PASSWORD.encode())
        await repo.load_pack_header(bytes.fromhex(pack))

    with pytest.raises(DamagedPack, match=pack):
        trio.run(header)


def test_no_repository_given() -> None:
    proc = run_repofs("snapshots", check=False)
    assert proc.returncode == 1 and b"-r/--repo" in proc.stderr
