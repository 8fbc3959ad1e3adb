"""Shared fixtures: varied source folders and restic-made repositories to read."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from restic_util import PASSWORD, RESTIC, backup, init_repo

BIG_FILE = 9 * 1024 * 1024 + 12345  # more than one maximal chunk


def _try(fn, *args) -> bool:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except OSError:
        return False
    return True


def make_varied_tree(root: Path, seed: int = 1) -> Path:
    """A folder with what restic users keep: nested folders, unicode and odd names, empty
    files, symlinks, hardlinks, a file over 8 MiB, xattrs and a fifo where allowed."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "docs" / "deep" / "deeper").mkdir(parents=True)
    (root / "Grüße-日本").mkdir()
    (root / "empty-dir").mkdir()
    (root / "docs" / "hello.txt").write_text("hello world\n")
    (root / "docs" / "deep" / "deeper" / "bottom.txt").write_text("bottom\n" * 100)
    (root / "Grüße-日本" / "naïve café.txt").write_text("unicode\n")
    (root / "a\"b\\c<d>&e.txt").write_text("quotes\n")
    (root / "tab\there").write_text("tab\n")
    (root / "empty").write_bytes(b"")
    os.symlink("docs/hello.txt", root / "link-to-hello")
    os.symlink("/nonexistent/target", root / "dangling")
    os.link(root / "docs" / "hello.txt", root / "hardlink-to-hello")
    with open(os.path.join(os.fsencode(root), b"bad-\xff\xfe-utf8"), "wb") as f:
        f.write(b"invalid utf-8 name\n")
    # Partly compressible, partly random, larger than one 8 MiB chunk.
    big = bytearray()
    while len(big) < BIG_FILE:
        big += rng.randbytes(65536) if rng.random() < 0.5 else bytes([rng.randrange(256)]) * 65536
    (root / "big.bin").write_bytes(bytes(big[:BIG_FILE]))
    for i in range(30):
        (root / "docs" / f"note-{i:02d}.txt").write_bytes(rng.randbytes(rng.randrange(1, 4000)))
    os.chmod(root / "docs" / "note-00.txt", 0o600)
    os.chmod(root / "docs" / "note-01.txt", 0o4755)
    _try(os.setxattr, root / "docs" / "hello.txt", "user.comment", b"greeting\x00\xff")
    _try(os.mkfifo, root / "fifo")
    return root


@dataclass
class RepoFixture:
    path: Path
    source: Path
    version: int
    snapshot_ids: list[str]


def _restic_repo(tmp: Path, version: int) -> RepoFixture:
    source = make_varied_tree(tmp / "src")
    repo = init_repo(tmp / "repo", version=version)
    ids = [backup(repo, source, "--tag", "first,all", "--host", "alpha")]
    (source / "docs" / "added-later.txt").write_text("second snapshot\n")
    ids.append(backup(repo, source, "--tag", "all", "--host", "beta"))
    return RepoFixture(repo, source, version, ids)


@pytest.fixture(scope="session", params=[1, 2], ids=["v1", "v2"])
def restic_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RepoFixture:
    """A repository made by restic (version 1 and 2) with two snapshots of a varied folder.
    Read-only for tests: copy it before damaging it."""
    if RESTIC is None:
        pytest.skip("restic binary not installed")
    return _restic_repo(tmp_path_factory.mktemp(f"restic-v{request.param}"), request.param)


def run_repofs(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None,
               input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the repofs command line in a child process, with the test password."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
                "RESTIC_PASSWORD": PASSWORD, "TZ": "UTC"}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "repofs", *map(os.fspath, args)], env=full_env,
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"repofs {args!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc
