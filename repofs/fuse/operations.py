"""The pyfuse3 request handlers: a thin adapter from FUSE requests to ``VFS`` calls.

Each handler translates arguments, calls the model, and turns the answer into pyfuse3's
types. Errors stop here: ``FsError`` becomes its errno, anything else is a bug, logged with
its traceback and answered with EIO, so the mount keeps running.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pyfuse3

from .vfs import VFS, FsError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

NAME_MAX = 255


def _translate(fn: F) -> F:
    @functools.wraps(fn)
    async def handler(*args: Any) -> Any:
        try:
            return await fn(*args)
        except FsError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None
    return handler  # type: ignore[return-value]


class Operations(pyfuse3.Operations):
    """Read-only handlers over a ``VFS``."""

    supports_dot_lookup = True

    def __init__(self, vfs: VFS) -> None:
        super().__init__()
        self.vfs = vfs

    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        try:
            return await self.vfs.lookup(parent_inode, name)
        except FsError as exc:
            if exc.errno == errno.ENOENT and exc.negative_timeout:
                miss = pyfuse3.EntryAttributes()
                miss.st_ino = 0
                miss.entry_timeout = exc.negative_timeout
                return miss
            raise pyfuse3.FUSEError(exc.errno) from None
        except Exception:
            log.exception("unexpected error in lookup")
            raise pyfuse3.FUSEError(errno.EIO) from None

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            self.vfs.forget(inode_list)
        except Exception:
            log.exception("unexpected error in forget")

    @_translate
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.vfs.getattr(inode)

    @_translate
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return self.vfs.readlink(inode)

    @_translate
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self.vfs.opendir(inode)

    @_translate
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        self.vfs.readdir(fh, start_id, functools.partial(pyfuse3.readdir_reply, token))

    @_translate
    async def releasedir(self, fh: int) -> None:
        self.vfs.releasedir(fh)

    @_translate
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FsError(errno.EROFS)
        # Snapshots never change: the page cache stays valid across opens.
        return pyfuse3.FileInfo(fh=await self.vfs.open(inode), keep_cache=True)

    @_translate
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.vfs.read(fh, off, size)

    @_translate
    async def release(self, fh: int) -> None:
        self.vfs.release(fh)

    @_translate
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return self.vfs.listxattr(inode)

    @_translate
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return self.vfs.getxattr(inode, name)

    @_translate
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = 4096
        s.f_frsize = 4096
        s.f_namemax = NAME_MAX
        return s
