"""Locks: restic sees ours, ours respect restic's, stale ones are ignored, release always."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import trio

from restic_util import RESTIC, needs_restic, restic, restic_env
from repofs.backend.base import FileType
from repofs.backend.local import LocalBackend
from repofs.errors import RepoLocked
from repofs.model import gotime
from repofs.repo.lock import LockInfo, locked
from repofs.repo.repository import Repository

PASSWORD = b"repofs-test"


async def new_repo(path: Path) -> Repository:
    return await Repository.create(LocalBackend(str(path)), PASSWORD, 2, 0x3DA3358B4DC173)


def foreign_lock(exclusive: bool, host: str = "elsewhere", age_ns: int = 0, pid: int = 1) -> bytes:
    now = gotime.now_local()
    return LockInfo(gotime.Timestamp(now.ns - age_ns, now.offset), exclusive, host, "someone", pid).encode()


@needs_restic
async def test_restic_sees_our_shared_lock_and_it_goes_away(tmp_path: Path) -> None:
    repo = await new_repo(tmp_path / "repo")
    async with locked(repo):
        ids = restic(tmp_path / "repo", "list", "locks", "--no-lock").split()
        assert len(ids) == 1
        doc = json.loads(restic(tmp_path / "repo", "cat", "lock", ids[0].decode(), "--no-lock"))
        assert doc["exclusive"] is False and doc["pid"] == os.getpid()
        # restic's exclusive operations wait for us
        proc = subprocess.run([RESTIC, "-r", str(tmp_path / "repo"), "--no-cache", "unlock"],
                              env=restic_env(), capture_output=True, check=True)
        assert proc.returncode == 0
        assert len(await repo.list_ids(FileType.LOCK)) == 1  # a live lock is not stale
    assert await repo.list_ids(FileType.LOCK) == []


@pytest.mark.parametrize("exclusive,host,age_min,blocks", [
    (True, "elsewhere", 0, True),       # a fresh exclusive lock of another host
    (False, "elsewhere", 0, False),     # shared locks never block a reader
    (True, "elsewhere", 31, False),     # older than 30 minutes: stale
    (True, "local", 0, False),          # this host, dead process: stale
])
async def test_conflicts(tmp_path: Path, exclusive: bool, host: str, age_min: int, blocks: bool) -> None:
    import socket

    repo = await new_repo(tmp_path / "repo")
    dead_pid = 2**22 + 12345  # above pid_max on most systems
    if host == "local":
        host = socket.gethostname()
    await repo.save_unpacked(FileType.LOCK, foreign_lock(exclusive, host, age_min * 60 * 10**9, dead_pid))
    if blocks:
        with pytest.raises(RepoLocked, match="already locked"):
            async with locked(repo):
                pass
    else:
        async with locked(repo):
            assert len(await repo.list_ids(FileType.LOCK)) == 2
    assert len(await repo.list_ids(FileType.LOCK)) == 1


async def test_released_on_cancellation(tmp_path: Path) -> None:
    repo = await new_repo(tmp_path / "repo")
    with trio.move_on_after(1):
        async with locked(repo):
            assert len(await repo.list_ids(FileType.LOCK)) == 1
            await trio.sleep_forever()
    assert await repo.list_ids(FileType.LOCK) == []


async def test_exclusive_wants_no_other_lock(tmp_path: Path) -> None:
    repo = await new_repo(tmp_path / "repo")
    await repo.save_unpacked(FileType.LOCK, foreign_lock(False))
    with pytest.raises(RepoLocked):
        async with locked(repo, exclusive=True):
            pass


async def test_meanwhile_runs_while_the_lock_settles(tmp_path: Path) -> None:
    repo = await new_repo(tmp_path / "repo")
    seen: list[int] = []

    async def meanwhile() -> None:
        seen.append(len(await repo.list_ids(FileType.LOCK)))

    async with locked(repo, meanwhile=meanwhile):
        assert seen == [1]  # ours, written before the wait


async def test_meanwhile_cancelled_when_another_lock_turns_up(tmp_path: Path) -> None:
    repo = await new_repo(tmp_path / "repo")
    cancelled: list[bool] = []

    async def meanwhile() -> None:
        await repo.save_unpacked(FileType.LOCK, foreign_lock(True))  # another process locks meanwhile
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    with pytest.raises(RepoLocked, match="already locked"):
        async with locked(repo, meanwhile=meanwhile):
            pytest.fail("the body ran")
    assert cancelled == [True]
    assert len(await repo.list_ids(FileType.LOCK)) == 1  # the other one; ours is gone
