"""A backup killed at any moment leaves a repository `restic check` accepts, and never a
snapshot whose trees are missing: packs are stored before the index files that list them,
and the snapshot only after both."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from restic_util import PASSWORD, needs_restic, restic

pytestmark = [needs_restic, pytest.mark.slow]


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "RESTIC_PASSWORD": PASSWORD, "TZ": "UTC"}


def _repofs(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "repofs", *map(os.fspath, args)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _make_source(root: Path, rng: random.Random) -> None:
    for d in range(8):
        (root / f"d{d}").mkdir(parents=True, exist_ok=True)
        for f in range(25):
            (root / f"d{d}" / f"small{f}").write_bytes(rng.randbytes(rng.randrange(100, 20_000)))
    for i in range(10):
        (root / f"big{i}.bin").write_bytes(rng.randbytes(2 << 20))


def _touch_some(root: Path, rng: random.Random) -> None:
    """New content for a few files, so that every run has new data to store."""
    for i in rng.sample(range(10), 6):
        (root / f"big{i}.bin").write_bytes(rng.randbytes(2 << 20))
    for d in rng.sample(range(8), 2):
        (root / f"d{d}" / "small0").write_bytes(rng.randbytes(5000))


def _count(repo: Path, folder: str) -> int:
    return sum(1 for p in (repo / folder).rglob("*") if p.is_file() and "-tmp-" not in p.name)


def _after_new(repo: Path, folder: str) -> Callable[[], bool]:
    before = _count(repo, folder)
    return lambda: _count(repo, folder) > before


def _after_seconds(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def _run_and_kill(repo: Path, src: Path, when: Callable[[], bool], sig: int) -> int | None:
    proc = _repofs("-r", repo, "backup", "--pack-size", "4", src)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not when():
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("backup neither finished nor reached the kill point in 60 s")
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc.returncode


def _check(repo: Path, *args: str) -> None:
    out = restic(repo, "check", *args).decode()
    assert "no errors were found" in out


def test_backup_killed_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(60606)
    repo = tmp_path / "repo"
    subprocess.run([sys.executable, "-m", "repofs", "-r", repo, "init"], env=_env(), check=True,
                   stdout=subprocess.DEVNULL)
    src = tmp_path / "src"
    _make_source(src, rng)
    # A complete run with as much new data as the runs below, to place the random kills.
    _touch_some(src, rng)
    started = time.monotonic()
    assert _run_and_kill(repo, src, lambda: False, signal.SIGKILL) == 0
    full = time.monotonic() - started
    kill_points = [
        ("first pack stored", lambda: _after_new(repo, "data")),
        ("first index file stored", lambda: _after_new(repo, "index")),
        *((f"after {f:.0%} of a run", lambda f=f: _after_seconds(f * full))
          for f in (rng.uniform(0.3, 1.0) for _ in range(5))),
    ]
    killed = 0
    for label, make_when in kill_points:
        _touch_some(src, rng)
        code = _run_and_kill(repo, src, make_when(), signal.SIGKILL)
        assert code in (0, -signal.SIGKILL), label
        killed += code != 0
        # A killed process leaves its lock behind, as restic does; `unlock` removes it.
        restic(repo, "unlock")
        _check(repo)
    assert killed >= 3
    # Ctrl-C: the backup stops, removes its lock, and the repository checks clean as is.
    _touch_some(src, rng)
    code = _run_and_kill(repo, src, _after_new(repo, "data"), signal.SIGINT)
    assert code in (0, 130)
    assert not list((repo / "locks").iterdir())
    _check(repo)
    # The repository stays usable: a full backup after all that, then every byte is read.
    _touch_some(src, rng)
    assert _run_and_kill(repo, src, lambda: False, signal.SIGKILL) == 0
    _check(repo, "--read-data")
    target = tmp_path / "restored"
    restic(repo, "restore", "latest", "--target", target)
    restored = target / src.relative_to("/")
    for p in src.rglob("*"):
        if p.is_file():
            assert (restored / p.relative_to(src)).read_bytes() == p.read_bytes(), p
