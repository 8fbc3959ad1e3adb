"""Repository locks (FORMAT.md §8): shared for readers, exclusive for pruning.

A lock is an unpacked file in locks/. It is refreshed (rewritten under a new name) every
five minutes while held and removed on exit, Ctrl-C included. Locks of dead local processes
and locks older than 30 minutes are stale and do not block us.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import trio

from ..backend.base import FileNotFound, FileType, Handle
from ..errors import IntegrityError, RepoLocked
from ..model import gojson, gotime
from ..model.ids import short
from .repository import Repository

STALE_AFTER_NS = 30 * 60 * 10**9
REFRESH_EVERY = 5 * 60
RECHECK_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class LockInfo:
    time: gotime.Timestamp
    exclusive: bool
    hostname: str
    username: str
    pid: int
    uid: int = 0
    gid: int = 0

    @classmethod
    def mine(cls, exclusive: bool) -> LockInfo:
        return cls(gotime.now_local(), exclusive, socket.gethostname(), getpass.getuser(),
                   os.getpid(), os.getuid(), os.getgid())

    @classmethod
    def decode(cls, doc: bytes) -> LockInfo:
        d = json.loads(doc)
        return cls(gotime.parse(d["time"]), bool(d.get("exclusive", False)), d.get("hostname", ""),
                   d.get("username", ""), int(d.get("pid", 0)), int(d.get("uid", 0)), int(d.get("gid", 0)))

    def encode(self) -> bytes:
        doc: dict = {"time": gotime.format(self.time), "exclusive": self.exclusive,
                     "hostname": self.hostname, "username": self.username, "pid": self.pid}
        if self.uid:
            doc["uid"] = self.uid
        if self.gid:
            doc["gid"] = self.gid
        return gojson.dumps(doc)

    def is_stale(self, now_ns: int, hostname: str) -> bool:
        if now_ns - self.time.ns > STALE_AFTER_NS:
            return True
        if self.hostname != hostname:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (f"{kind} lock by {self.username}@{self.hostname} (PID {self.pid}) "
                f"since {self.time.to_datetime():%Y-%m-%d %H:%M:%S}")


async def _conflicts(repo: Repository, exclusive: bool, own: bytes | None) -> list[tuple[bytes, LockInfo]]:
    now = gotime.now_local().ns
    host = socket.gethostname()
    found = []
    for lock_id in await repo.list_ids(FileType.LOCK):
        if lock_id == own:
            continue
        try:
            info = LockInfo.decode(await repo.load_unpacked(FileType.LOCK, lock_id))
        except (FileNotFound, IntegrityError, ValueError, KeyError):
            continue  # vanished or unreadable: restic 0.14 ignores those too
        if info.is_stale(now, host):
            continue
        if exclusive or info.exclusive:
            found.append((lock_id, info))
    return found


def _raise_locked(found: list[tuple[bytes, LockInfo]]) -> None:
    lock_id, info = found[0]
    raise RepoLocked(f"repository is already locked: {info.describe()}, lock {short(lock_id)}")


class _Held:
    def __init__(self, repo: Repository, exclusive: bool, lock_id: bytes) -> None:
        self.repo = repo
        self.exclusive = exclusive
        self.lock_id = lock_id

    async def refresh_forever(self) -> None:
        while True:
            await trio.sleep(REFRESH_EVERY)
            new_id = await self.repo.save_unpacked(FileType.LOCK, LockInfo.mine(self.exclusive).encode())
            old, self.lock_id = self.lock_id, new_id
            await _remove(self.repo, old)


async def _remove(repo: Repository, lock_id: bytes) -> None:
    try:
        await repo.backend.remove(Handle(FileType.LOCK, lock_id.hex()))
    except FileNotFound:
        pass


@contextmanager
def _ignoring_sighup() -> Iterator[None]:
    """restic checks whether a lock's holder on the same host is alive by sending it SIGHUP
    (`restic unlock`, and newer versions whenever they lock): a holder must survive that."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@asynccontextmanager
async def locked(repo: Repository, exclusive: bool = False,
                 meanwhile: Callable[[], Awaitable[object]] | None = None) -> AsyncIterator[None]:
    """Hold a lock on ``repo`` for the body; released on any exit, cancellation included.

    ``meanwhile()`` runs while the new lock settles (RECHECK_DELAY, as restic waits), so that
    wait costs nothing: reading only, no output, nothing written; the body starts once both
    are done, and it is cancelled when another lock turns up."""
    with _ignoring_sighup():
        async with _locked(repo, exclusive, meanwhile):
            yield


@asynccontextmanager
async def _locked(repo: Repository, exclusive: bool,
                  meanwhile: Callable[[], Awaitable[object]] | None) -> AsyncIterator[None]:
    found = await _conflicts(repo, exclusive, None)
    if found:
        _raise_locked(found)
    held = _Held(repo, exclusive, await repo.save_unpacked(FileType.LOCK, LockInfo.mine(exclusive).encode()))
    try:
        async with trio.open_nursery() as nursery:
            if meanwhile is not None:
                nursery.start_soon(meanwhile)
            await trio.sleep(RECHECK_DELAY)
            found = await _conflicts(repo, exclusive, held.lock_id)
            if found:
                nursery.cancel_scope.cancel()
        if found:
            _raise_locked(found)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(held.refresh_forever)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _remove(repo, held.lock_id)
