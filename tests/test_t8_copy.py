"""repofs copy against restic as the oracle: restic-made repositories into repofs-made ones
and back, v1 and v2 both ways, other passwords and backends; `restic check --read-data` and
`restic restore` judge the result."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import RepoFixture, make_varied_tree, run_repofs
from rest_server import rest_server
from restic_util import PASSWORD, backup, init_repo, needs_restic, restic, restic_env

pytestmark = needs_restic

OTHER = "another-password"


def copy(dst: str | Path, src: str | Path, *args: str, dst_pw: str = OTHER, src_pw: str = PASSWORD,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run_repofs("-r", dst, "copy", "--from-repo", src, *args,
                      env={"RESTIC_PASSWORD": dst_pw, "RESTIC_FROM_PASSWORD": src_pw}, check=check)


def summary(proc: subprocess.CompletedProcess[bytes]) -> dict:
    (line,) = proc.stdout.splitlines()
    doc = json.loads(line)
    assert doc["message_type"] == "summary"
    return doc


def restic_as(pw: str):  # type: ignore[no-untyped-def]
    def run(repo: str | Path, *args: str, cwd: Path | None = None) -> bytes:
        return restic(repo, *args, cwd=cwd, env={"RESTIC_PASSWORD": pw})
    return run


def snapshots(repo: str | Path, pw: str = OTHER) -> list[dict]:
    return sorted(json.loads(restic_as(pw)(repo, "snapshots", "--json")), key=lambda s: s["time"])


def blob_lines(repo: str | Path, pw: str = OTHER) -> Counter[str]:
    """Every index entry as 'type id' (a blob stored twice counts twice)."""
    return Counter(restic_as(pw)(repo, "list", "blobs").decode().splitlines())


def listing(root: Path) -> dict[str, tuple]:
    """What a restore must reproduce: type, permissions, size, content or link target, mtime."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    what: object = f.read()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = None
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), what, mtime)
    return out


def restored(repo: str | Path, snapshot: str, target: Path, pw: str) -> dict[str, tuple]:
    restic_as(pw)(repo, "restore", snapshot, "--target", str(target))
    return listing(target)


def files_of(repo: Path) -> set[str]:
    return {str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and p.parent.name != "locks"}


# -- restic-made into repofs-made, both versions, other password -------------------------------

@pytest.mark.parametrize("dst_version", [1, 2])
def test_copy_into_repofs_made_repository(restic_repo: RepoFixture, tmp_path: Path, dst_version: int) -> None:
    src = restic_repo.path
    dst = tmp_path / "dst"
    run_repofs("-r", dst, "init", "--repository-version", str(dst_version), env={"RESTIC_PASSWORD": OTHER})
    proc = copy(dst, src)
    assert b"different chunker polynomials" in proc.stderr  # a fresh repository has its own
    assert proc.stderr.count(b"different chunker polynomials") == 1
    restic_as(OTHER)(dst, "check", "--read-data")

    ours = snapshots(dst)
    theirs = snapshots(src, PASSWORD)
    assert [s["original"] for s in ours] == [s["id"] for s in theirs]
    for mine, orig in zip(ours, theirs):
        assert "parent" not in mine
        for key in ("time", "tree", "paths", "hostname", "username", "tags"):
            assert mine.get(key) == orig.get(key), key
    for mine, orig in zip(ours, theirs):
        assert restored(dst, mine["id"], tmp_path / f"r-{mine['short_id']}", OTHER) == \
            restored(src, orig["id"], tmp_path / f"o-{orig['short_id']}", PASSWORD)

    # Compressed blobs only in version 2.
    index_compressed = b'"uncompressed_length"' in b"".join(
        restic_as(OTHER)(dst, "cat", "index", i) for i in os.listdir(dst / "index"))
    assert index_compressed == (dst_version == 2)

    # A second copy copies nothing and writes nothing.
    before = files_of(dst)
    again = summary(copy(dst, src, "--json"))
    assert again["snapshots_copied"] == 0 and again["snapshots_skipped"] == 2
    assert again["data_blobs"] == again["tree_blobs"] == again["read_requests"] == 0
    assert files_of(dst) == before
    # restic sees our copies as copies too.
    out = restic(dst, "copy", "--from-repo", str(src),
                 env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD}).decode()
    assert out.count("skipping source snapshot") == 2
    assert files_of(dst) == before


def test_copy_repofs_made_into_restic_made(restic_repo: RepoFixture, tmp_path: Path) -> None:
    """And back: what repofs wrote (its packs, indexes and snapshots) is a source too."""
    middle = tmp_path / "middle"
    run_repofs("-r", middle, "init", "--repository-version", str(restic_repo.version),
               "--copy-chunker-params", "--from-repo", restic_repo.path,
               env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    proc = copy(middle, restic_repo.path)
    assert b"chunker" not in proc.stderr
    back_version = 3 - restic_repo.version
    back = init_repo(tmp_path / "back", version=back_version)
    doc = summary(copy(back, middle, "--json", dst_pw=PASSWORD, src_pw=OTHER))
    assert doc["snapshots_copied"] == 2
    restic(back, "check", "--read-data")
    ours = snapshots(back, PASSWORD)
    # `original` stays the first repository's snapshot id through a copy of a copy.
    assert [s["original"] for s in ours] == [s["id"] for s in snapshots(restic_repo.path, PASSWORD)]
    assert restored(back, ours[-1]["id"], tmp_path / "r1", PASSWORD) == \
        restored(restic_repo.path, restic_repo.snapshot_ids[-1], tmp_path / "r2", PASSWORD)
    # The copy of the copy is recognised from the first repository as well.
    assert summary(copy(back, restic_repo.path, "--json", dst_pw=PASSWORD))["snapshots_skipped"] == 2


def test_filters_ids_and_dry_run(restic_repo: RepoFixture, tmp_path: Path) -> None:
    src = restic_repo.path
    dst = tmp_path / "dst"
    run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", src,
               env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    dry = summary(copy(dst, src, "--json", "--dry-run", "--host", "beta"))
    assert dry["dry_run"] and dry["snapshots_copied"] == 1 and dry["snapshots"][0]["copy"] is None
    assert not os.listdir(dst / "snapshots") and not os.listdir(dst / "index")
    assert not [p for p in (dst / "data").rglob("*") if p.is_file()]

    first = summary(copy(dst, src, "--json", restic_repo.snapshot_ids[0][:8]))
    assert first["snapshots_copied"] == 1
    assert [s["original"] for s in snapshots(dst)] == [restic_repo.snapshot_ids[0]]
    # The second snapshot has one more file than the first: only its blob and the two trees
    # on its path (the root and docs/) are new.
    rest = summary(copy(dst, src, "--json", "--tag", "all"))
    assert rest["snapshots_copied"] == 1 and rest["snapshots_skipped"] == 1
    assert (rest["data_blobs"], rest["tree_blobs"]) == (1, 2)
    assert dry["data_blobs"] == first["data_blobs"] + 1
    restic_as(OTHER)(dst, "check", "--read-data")
    assert sum(blob_lines(dst).values()) == len(blob_lines(dst))  # no blob stored twice


def test_destination_holding_part_of_the_data(tmp_path: Path) -> None:
    """A destination that holds some of the files already (a backup made there) receives the
    rest only."""
    data = make_varied_tree(tmp_path / "data")
    src = init_repo(tmp_path / "src", version=2)
    backup(src, data)
    dst = tmp_path / "dst"
    run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", src,
               env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    restic_as(OTHER)(dst, "backup", "docs", "big.bin", cwd=data)
    have = blob_lines(dst)
    want = blob_lines(src, PASSWORD)
    missing = {b for b in want if b not in have}
    doc = summary(copy(dst, src, "--json"))
    assert doc["data_blobs"] + doc["tree_blobs"] == len(missing)
    assert doc["data_blobs"] == sum(1 for b in missing if b.startswith("data "))
    after = blob_lines(dst)
    assert set(after) == set(have) | set(want)
    assert all(n == 1 for n in after.values())
    restic_as(OTHER)(dst, "check", "--read-data")


# -- interrupted copies ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version 2 repository with 96 MiB of incompressible data in 24 files."""
    root = tmp_path_factory.mktemp("big")
    data = root / "data"
    data.mkdir()
    for i in range(24):
        (data / f"f{i:02d}.bin").write_bytes(os.urandom(4 << 20))
    repo = init_repo(root / "repo", version=2)
    backup(repo, data)
    return repo


def complete_files(folder: Path) -> list[Path]:
    """Files stored under their final names (not a backend's temporary ``NAME-tmp-X``)."""
    return [p for p in folder.rglob("*") if p.is_file() and len(p.name) == 64]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_copy(dst: Path, src: Path, *args: str, sigint_ignored: bool = False) -> subprocess.Popen[bytes]:
    """A copy in the background; ``sigint_ignored`` starts it as ``nohup`` or a script's
    background job would, with SIGINT ignored (restic takes SIGINT all the same)."""
    env = restic_env({"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.Popen([sys.executable, "-m", "repofs", "-r", str(dst), "copy", "--from-repo", str(src),
                             *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_ignore_sigint if sigint_ignored else None)


def test_killed_copy_then_rerun(big_source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", big_source,
               env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    proc = _start_copy(dst, big_source, "--pack-size", "4")
    try:
        deadline = time.monotonic() + 120
        while not complete_files(dst / "index"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no index file appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not os.listdir(dst / "snapshots")
    # The killed copy's lock stays behind, as restic's would; `restic unlock` removes it.
    restic_as(OTHER)(dst, "unlock")
    restic_as(OTHER)(dst, "check", "--read-data")
    indexed = blob_lines(dst)
    assert indexed, "an index file was written before the kill"

    doc = summary(copy(dst, big_source, "--json", "--pack-size", "4"))
    assert doc["snapshots_copied"] == 1
    after = blob_lines(dst)
    assert all(n == 1 for n in after.values()), "a blob indexed before the kill was stored again"
    assert doc["data_blobs"] + doc["tree_blobs"] == len(set(after) - set(indexed))
    assert set(after) == set(blob_lines(big_source, PASSWORD))
    restic_as(OTHER)(dst, "check", "--read-data")


def test_interrupted_copy_indexes_what_it_stored(big_source: Path, tmp_path: Path) -> None:
    """Ctrl-C: the packs stored so far get an index file on the way out."""
    dst = tmp_path / "dst"
    run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", big_source,
               env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
    proc = _start_copy(dst, big_source, "--pack-size", "4", sigint_ignored=True)
    try:
        deadline = time.monotonic() + 120
        # The copy runs in slices of 5 ms and is looked at, stopped, between them: a fast copy
        # cannot store its remaining packs between the third one appearing and Ctrl-C.
        while True:
            proc.send_signal(signal.SIGSTOP)
            if len(complete_files(dst / "data")) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no pack appeared"
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert not os.listdir(dst / "snapshots") and not os.listdir(dst / "locks")
    # Fewer packs than make an index file while running: the index comes from the way out.
    # A pack whose upload was under way may be stored without being indexed (as after a
    # crash); the next run stores its blobs again, `restic prune` removes it.
    packs = {p.name for p in complete_files(dst / "data")}
    indexed_packs = set()
    for i in complete_files(dst / "index"):
        doc = json.loads(restic_as(OTHER)(dst, "cat", "index", i.name))
        indexed_packs |= {p["id"] for p in doc["packs"]}
    assert indexed_packs and indexed_packs <= packs
    restic_as(OTHER)(dst, "check", "--read-data")
    indexed = blob_lines(dst)
    doc = summary(copy(dst, big_source, "--json"))
    after = blob_lines(dst)
    assert all(n == 1 for n in after.values())
    assert doc["data_blobs"] + doc["tree_blobs"] == len(set(after) - set(indexed))


# -- chunker polynomials ----------------------------------------------------------------------

def test_rechunk_gives_the_blobs_of_a_backup(tmp_path: Path) -> None:
    data = make_varied_tree(tmp_path / "data")
    rng_file = data / "docs" / "two-megabytes.bin"
    rng_file.write_bytes(os.urandom(1 << 20) * 2)  # a repeated MiB: several chunks
    src = init_repo(tmp_path / "src", version=2)
    backup(src, data)
    dst = init_repo(tmp_path / "dst", version=1, env={"RESTIC_PASSWORD": OTHER})
    proc = copy(dst, src, "--rechunk")
    assert b"chunker" not in proc.stderr
    restic_as(OTHER)(dst, "check", "--read-data")
    copied_blobs = blob_lines(dst)
    assert snapshots(dst)[0]["tree"] != snapshots(src, PASSWORD)[0]["tree"]

    # restic cutting the same files into the destination finds every chunk there already.
    out = restic_as(OTHER)(dst, "backup", "--json", "--force", ".", cwd=data)
    (done,) = [json.loads(line) for line in out.splitlines() if b'"summary"' in line]
    assert done["data_blobs"] == 0
    data_blobs = {b for b in blob_lines(dst) if b.startswith("data ")}
    assert data_blobs == {b for b in copied_blobs if b.startswith("data ")}

    copied_snap = snapshots(dst)[0]
    assert restored(dst, copied_snap["id"], tmp_path / "r1", OTHER) == \
        restored(src, "latest", tmp_path / "r2", PASSWORD)
    # A second run finds the rechunked copy.
    assert summary(copy(dst, src, "--rechunk", "--json"))["snapshots_skipped"] == 1


# -- across backends --------------------------------------------------------------------------

def test_copy_to_a_rest_repository(restic_repo: RepoFixture, tmp_path: Path) -> None:
    with rest_server(tmp_path / "served") as url:
        dst = f"rest:{url}"
        run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", restic_repo.path,
                   env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_PASSWORD": PASSWORD})
        doc = summary(copy(dst, restic_repo.path, "--json"))
        assert doc["snapshots_copied"] == 2
        restic_as(OTHER)(dst, "check", "--read-data")
        assert restored(dst, "latest", tmp_path / "r1", OTHER) == \
            restored(restic_repo.path, "latest", tmp_path / "r2", PASSWORD)
        back = tmp_path / "back"
        run_repofs("-r", back, "init", env={"RESTIC_PASSWORD": OTHER})
        assert summary(copy(back, dst, "--json", src_pw=OTHER))["snapshots_copied"] == 2
        restic_as(OTHER)(back, "check", "--read-data")


# -- init --copy-chunker-params and the source options ----------------------------------------

def test_init_copy_chunker_params(restic_repo: RepoFixture, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\n")
    run_repofs("-r", dst, "init", "--copy-chunker-params", "--from-repo", restic_repo.path,
               "--from-password-file", pwfile, env={"RESTIC_PASSWORD": OTHER})
    mine = json.loads(restic_as(OTHER)(dst, "cat", "config"))
    theirs = json.loads(restic(restic_repo.path, "cat", "config"))
    assert mine["chunker_polynomial"] == theirs["chunker_polynomial"]
    assert mine["id"] != theirs["id"]

    proc = run_repofs("-r", tmp_path / "other", "init", "--from-repo", restic_repo.path, check=False)
    assert proc.returncode == 1 and b"--copy-chunker-params" in proc.stderr
    assert not (tmp_path / "other").exists()
    proc = run_repofs("-r", tmp_path / "other", "init", "--copy-chunker-params", check=False)
    assert proc.returncode == 1 and b"source repository" in proc.stderr
    proc = copy(dst, restic_repo.path, src_pw="wrong", check=False)
    assert proc.returncode == 1 and b"wrong password" in proc.stderr
    # Password by command, repository by environment variable.
    proc = run_repofs("-r", dst, "copy", "--from-password-command", f"echo {PASSWORD}", "--json",
                      env={"RESTIC_PASSWORD": OTHER, "RESTIC_FROM_REPOSITORY": str(restic_repo.path)})
    assert summary(proc)["snapshots_copied"] == 2
