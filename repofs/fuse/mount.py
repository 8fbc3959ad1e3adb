"""The mount's life: build the model, mount, serve until told to stop, always unmount.

``serve`` runs in the foreground inside the operation's nursery. The file system stops
when it is unmounted from outside (``fusermount3 -u``, ``umount``) or when the process gets
SIGINT or SIGTERM; either way ``pyfuse3.close`` unmounts (lazily, if something is
still busy inside) before the repository lock is released by the caller.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import pyfuse3
import trio

from ..cache.blobcache import BlobCache
from ..errors import RepofsError, UsageError
from ..repo.repository import Repository
from ..tuning import tuned
from .operations import Operations
from .vfs import VFS, VfsConfig

DEFAULT_CACHE_MIB = 64
# Not SIGHUP: restic sends it to a lock's holder to see whether it is alive.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class MountFailed(RepofsError):
    """The kernel refused the mount."""


@dataclass
class MountConfig:
    mountpoint: str
    cache_bytes: int = DEFAULT_CACHE_MIB << 20
    allow_other: bool = False
    default_permissions: bool = True  # with allow_other: let the kernel check modes
    fsname: str = "repofs"
    vfs: VfsConfig = field(default_factory=VfsConfig)


def safe_fsname(text: str) -> str:
    """``text`` as a file-system name for the mount table: printable ASCII without the
    commas and backslashes that FUSE's option parser would split or unescape."""
    out = "".join(c if " " < c <= "~" and c not in ",\\" else "_" for c in text)
    return out[:200] or "repofs"


def fuse_options(config: MountConfig) -> set[str]:
    """The mount options: read-only, named, and restic's permission rules: with
    ``allow_other`` the kernel checks file modes unless told not to; without it only the
    mounting user gets in, and may read everything in the snapshots."""
    options = {"ro", f"fsname={safe_fsname(config.fsname)}", "subtype=repofs"}
    if config.allow_other:
        options.add("allow_other")
        if config.default_permissions:
            options.add("default_permissions")
    return options


def check_mountpoint(path: str) -> None:
    if not os.path.isdir(path):
        raise UsageError(f"mountpoint {path} does not exist or is not a folder")
    if os.path.ismount(path):
        raise UsageError(f"{path} is already a mount point")


async def serve(repo: Repository, config: MountConfig,
                ready: Callable[[], None] = lambda: None) -> signal.Signals | None:
    """Mount ``repo`` at ``config.mountpoint`` and serve it until it is unmounted or a stop
    signal arrives; returns that signal, or None when unmounted from outside. ``ready`` is
    called once the file system answers."""
    check_mountpoint(config.mountpoint)
    received: list[signal.Signals] = []
    async with trio.open_nursery() as nursery:
        vfs = VFS(repo, BlobCache(config.cache_bytes), nursery, config.vfs)
        await vfs.start()
        # What exists now (modules, the index, the snapshot list) stays for the life of the
        # mount: out of the collector's sight. Listings make many small objects (nodes,
        # attributes, inode records) that live until evicted; at the collector's default
        # threshold they were rescanned over and over, a sixth of a `find`.
        gc.freeze()
        with tuned(), trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            try:
                pyfuse3.init(Operations(vfs), config.mountpoint, fuse_options(config))
            except RuntimeError as exc:
                raise MountFailed(f"cannot mount at {config.mountpoint}: {exc}") from None
            try:
                async def stop_on_signal() -> None:
                    async for signum in signals:
                        received.append(signal.Signals(signum))
                        pyfuse3.terminate()
                        return

                nursery.start_soon(stop_on_signal)
                ready()
                await pyfuse3.main()
            finally:
                pyfuse3.close(unmount=True)
                vfs.close()
                nursery.cancel_scope.cancel()
    return received[0] if received else None
