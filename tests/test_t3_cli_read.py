"""repofs reads restic-made repositories (v1, v2) exactly as restic does: the oracle test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from conftest import RepoFixture, run_repofs
from restic_util import PASSWORD, restic
from repofs.backend.local import LocalBackend
from repofs.model.tree import Node
from repofs.repo.index import BlobType
from repofs.repo.repository import Repository
from repofs.walk import walk


def both(repo: RepoFixture, *args: str) -> tuple[bytes, bytes]:
    """stdout of restic and of repofs for the same arguments."""
    return restic(repo.path, *args), run_repofs("-r", repo.path, *args).stdout


def test_snapshots_json_equal(restic_repo: RepoFixture) -> None:
    theirs, ours = both(restic_repo, "snapshots", "--json")
    assert json.loads(ours) == json.loads(theirs)
    assert len(json.loads(ours)) == 2


@pytest.mark.parametrize("filters", [["--host", "alpha"], ["--tag", "first"], ["--tag", "all"],
                                     ["--tag", "first,all"], ["--tag", "nope", "--tag", "first"],
                                     ["--host", "nobody"], ["--path", "/nonexistent"]])
def test_snapshot_filters_equal(restic_repo: RepoFixture, filters: list[str]) -> None:
    theirs, ours = both(restic_repo, "snapshots", "--json", *filters)
    assert json.loads(ours) == json.loads(theirs)


def test_snapshots_table_lists_ids(restic_repo: RepoFixture) -> None:
    out = run_repofs("-r", restic_repo.path, "snapshots").stdout.decode()
    for full in restic_repo.snapshot_ids:
        assert full[:8] in out
    assert out.rstrip().endswith("2 snapshots")


@pytest.mark.parametrize("args", [[], ["-l"], ["/docs"], ["/docs", "/Grüße-日本"], ["--recursive", "/docs"],
                                  ["/docs/hello.txt"], ["/big.bin"]])
def test_ls_equal(restic_repo: RepoFixture, args: list[str]) -> None:
    theirs, ours = both(restic_repo, "ls", "latest", *args)
    assert ours == theirs


def test_ls_json_equal(restic_repo: RepoFixture) -> None:
    theirs, ours = both(restic_repo, "ls", "--json", restic_repo.snapshot_ids[0][:8])
    assert [json.loads(x) for x in ours.splitlines()] == [json.loads(x) for x in theirs.splitlines()]


def test_ls_subfolder_spec(restic_repo: RepoFixture) -> None:
    out = run_repofs("-r", restic_repo.path, "ls", "latest:docs/deep").stdout
    assert out.splitlines()[1:] == [b"/deeper", b"/deeper/bottom.txt"]


@pytest.mark.parametrize("what", ["config", "masterkey"])
def test_cat_fixed_objects_equal(restic_repo: RepoFixture, what: str) -> None:
    theirs, ours = both(restic_repo, "cat", what)
    assert ours == theirs


def test_cat_files_equal(restic_repo: RepoFixture) -> None:
    for kind in ("index", "snapshot", "key"):
        for ident in restic(restic_repo.path, "list", {"key": "keys", "snapshot": "snapshots"}.get(kind, kind)).split():
            theirs, ours = both(restic_repo, "cat", kind, ident.decode())
            assert ours == theirs, (kind, ident)


def test_cat_latest_snapshot(restic_repo: RepoFixture) -> None:
    newest = restic_repo.snapshot_ids[-1]
    assert run_repofs("-r", restic_repo.path, "cat", "snapshot", "latest").stdout == \
        restic(restic_repo.path, "cat", "snapshot", newest)


def test_cat_blobs_and_packs_equal(restic_repo: RepoFixture) -> None:
    lines = restic(restic_repo.path, "list", "blobs").decode().split("\n")
    blobs = [line.split() for line in lines if line]
    assert {t for t, _ in blobs} == {"data", "tree"}
    for _, blob_id in blobs[:12]:
        theirs, ours = both(restic_repo, "cat", "blob", blob_id)
        assert ours == theirs
    pack = restic(restic_repo.path, "list", "packs").split()[0].decode()
    theirs = restic(restic_repo.path, "cat", "pack", pack)
    assert run_repofs("-r", restic_repo.path, "cat", "pack", pack[:10]).stdout == theirs


def test_cat_tree_equal(restic_repo: RepoFixture) -> None:
    snap = restic_repo.snapshot_ids[1]
    tree_id = json.loads(restic(restic_repo.path, "cat", "snapshot", snap))["tree"]
    theirs = json.loads(restic(restic_repo.path, "cat", "blob", tree_id))  # 0.14 has no `cat tree`
    ours = run_repofs("-r", restic_repo.path, "cat", "tree", snap).stdout
    assert json.loads(ours) == theirs and ours.startswith(b'{\n  "nodes": [')
    ours_sub = run_repofs("-r", restic_repo.path, "cat", "tree", f"{snap[:8]}:docs").stdout
    names = [n["name"] for n in json.loads(ours_sub)["nodes"]]
    assert "hello.txt" in names and "deep" in names


async def _read_all_files(path: Path) -> dict[bytes, tuple[Node, bytes]]:
    repo = await Repository.open(LocalBackend(str(path)), PASSWORD.encode())
    snaps = await repo.load_snapshots()
    await repo.load_index()
    files: dict[bytes, tuple[Node, bytes]] = {}
    async with walk(repo, snaps[-1].tree) as batches:
        async for batch in batches:
            for p, node in batch:
                if node.type == "file":
                    data = b"".join([await repo.load_blob(BlobType.DATA, b) for b in node.content or ()])
                    files[p] = (node, data)
    return files


def test_every_file_reads_back(restic_repo: RepoFixture) -> None:
    files = trio.run(_read_all_files, restic_repo.path)
    src = os.fsencode(restic_repo.source)
    seen = 0
    for dirpath, _, names in os.walk(src):
        for name in names:
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full) or os.path.islink(full):
                continue
            rel = full[len(src):]
            node, data = files[rel]
            with open(full, "rb") as f:
                assert data == f.read(), rel
            assert node.size == len(data)
            seen += 1
    assert seen == len(files) > 30
