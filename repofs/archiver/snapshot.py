"""A whole backup in restic's order: packs, then index files, then the snapshot (FORMAT.md §11).

``backup`` runs the archiver in one nursery with the blob saver; only after every pack is
stored and every index file written does it write the snapshot file. A crash or Ctrl-C
before that leaves packs and maybe index files nobody points at (``restic prune`` removes
them), never a snapshot whose trees are missing.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from ..backend.base import FileType
from ..model.gotime import Timestamp
from ..model.ids import hash_id
from ..model.snapshot import Snapshot, encode_snapshot
from ..repo import compress
from ..repo.packer import DEFAULT_PACK_SIZE
from ..repo.repository import Repository
from ..repo.saver import BlobSaver, Compression
from ..trees import TreeLoader
from . import targets as targets_mod
from .archiver import Archiver, ArchiverOptions
from .report import Reporter
from .select import Selector


@dataclass
class BackupRequest:
    """What to back up and how to label it. ``targets`` are the paths as given (they must
    exist); ``excludes`` are recorded in the snapshot; ``stdin`` names the file that standard
    input becomes (then ``targets`` is ignored)."""

    targets: list[bytes]
    time: Timestamp
    hostname: str
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    parent: Snapshot | None = None
    stdin: bytes | None = None
    stdin_fd: int = 0


@dataclass
class BackupResult:
    snapshot: Snapshot
    id: bytes
    dry_run: bool


def absolute_paths(targets: Sequence[bytes]) -> list[str]:
    """The snapshot's ``paths``: each target made absolute and clean."""
    return [os.fsdecode(targets_mod.clean(os.path.abspath(t))) for t in targets]


def find_parent(snapshots: Sequence[Snapshot], paths: Sequence[str], hostname: str,
                not_after: Timestamp) -> Snapshot | None:
    """restic's automatic parent: the newest snapshot of ``hostname`` holding all ``paths``
    and not newer than ``not_after``."""
    best = None
    for s in snapshots:
        if s.hostname != hostname or s.time.ns > not_after.ns:
            continue
        if not all(p in s.paths for p in paths):
            continue
        if best is None or s.time.ns >= best.time.ns:
            best = s
    return best


def _user() -> tuple[str, int, int]:
    uid = os.getuid()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return "", uid, os.getgid()
    return entry.pw_name, uid, entry.pw_gid


async def backup(repo: Repository, request: BackupRequest, selector: Selector, reporter: Reporter,
                 options: ArchiverOptions | None = None,
                 compression: Compression = Compression.AUTO, pack_size: int = DEFAULT_PACK_SIZE,
                 dry_run: bool = False) -> BackupResult:
    """Back up ``request`` into ``repo`` (index loaded, lock held by the caller)."""
    atree = None
    if request.stdin is None:
        atree = await trio.to_thread.run_sync(targets_mod.build, list(request.targets))
    parent_tree = request.parent.tree if request.parent is not None else None
    trees = TreeLoader(repo)
    async with trio.open_nursery() as nursery:
        saver = BlobSaver(repo, nursery, compression, pack_size, dry_run)
        arch = Archiver(saver, trees, repo.config.chunker_polynomial, selector, reporter, nursery,
                        repo.cpu, options or ArchiverOptions())
        if atree is not None:
            root = await arch.save_root(atree, parent_tree)
        else:
            assert request.stdin is not None
            root = await arch.save_stdin(request.stdin_fd, request.stdin, request.time)
        await arch.close()
        await saver.flush()

    if request.stdin is not None:
        paths = [os.fsdecode(targets_mod.clean(b"/" + request.stdin))]
    else:
        paths = absolute_paths(request.targets)
    username, uid, gid = _user()
    snap = Snapshot(time=request.time, parent=request.parent.id if request.parent else None, tree=root,
                    paths=paths, hostname=request.hostname, username=username, uid=uid, gid=gid,
                    excludes=list(request.excludes), tags=list(request.tags))
    doc = encode_snapshot(snap)
    if dry_run:
        sealed = await repo.cpu_run(repo.key.seal, compress.encode_unpacked(doc, repo.version))
        snap_id = hash_id(sealed)
    else:
        snap_id = await repo.save_unpacked(FileType.SNAPSHOT, doc)
    snap.id = snap_id
    return BackupResult(snap, snap_id, dry_run)
