"""A repository in a local folder, with restic's layout and permissions (FORMAT.md §1, §11)."""

from __future__ import annotations

import errno
import os
import secrets

import trio

from ..errors import BackendError
from ..fdio import writev_all
from ..model.ids import is_id
from .base import FileNotFound, FileType, Handle, Payload, PermanentError, payload_size

DIR_MODE = 0o700
FILE_MODE = 0o400


def _os_error(h: Handle | str, exc: OSError) -> BackendError:
    if exc.errno == errno.ENOENT:
        return FileNotFound(f"{h}: file does not exist")
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return PermanentError(f"{h}: {reason.lower()}")


class LocalBackend:
    """Files in a folder; blocking calls run in threads bounded by ``connections``."""

    def __init__(self, path: str, connections: int = 2) -> None:
        self.path = os.path.abspath(path)
        self.location = path
        self.connections = connections
        # The disk is the limit, not latency: a second pack in flight only costs memory.
        self.upload_slots = 1
        self._limiter = trio.CapacityLimiter(connections)

    def filename(self, h: Handle) -> str:
        if h.type is FileType.CONFIG:
            return os.path.join(self.path, "config")
        if h.type is FileType.PACK:
            return os.path.join(self.path, "data", h.name[:2], h.name)
        return os.path.join(self.path, h.type.value, h.name)

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def create(self) -> None:
        await self._run(self._create)

    def _create(self) -> None:
        if os.path.exists(os.path.join(self.path, "config")):
            raise BackendError(f"{self.location}: a repository already exists there")
        try:
            os.makedirs(self.path, mode=DIR_MODE, exist_ok=True)
            for t in FileType:
                if t is not FileType.CONFIG:
                    os.makedirs(os.path.join(self.path, t.value), mode=DIR_MODE, exist_ok=True)
            for i in range(256):
                os.makedirs(os.path.join(self.path, "data", f"{i:02x}"), mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise _os_error(self.location, exc) from None

    async def list(self, type: FileType) -> list[tuple[str, int]]:
        return await self._run(self._list, type)

    def _list(self, type: FileType) -> list[tuple[str, int]]:
        top = os.path.join(self.path, type.value)
        dirs = [top]
        if type is FileType.PACK:
            try:
                dirs = [e.path for e in os.scandir(top) if e.is_dir()]
            except FileNotFoundError:
                return []
        out = []
        for d in dirs:
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if is_id(e.name) and e.is_file():
                            out.append((e.name, e.stat().st_size))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _os_error(d, exc) from None
        return out

    async def stat(self, h: Handle) -> int:
        try:
            return (await self._run(os.stat, self.filename(h))).st_size
        except OSError as exc:
            raise _os_error(h, exc) from None

    async def load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        return await self._run(self.blocking_load, h, length, offset)

    def blocking_load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        try:
            fd = os.open(self.filename(h), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(h, exc) from None
        try:
            if length <= 0:
                length = os.fstat(fd).st_size - offset
            data = os.pread(fd, length, offset)
        except OSError as exc:
            raise _os_error(h, exc) from None
        finally:
            os.close(fd)
        return data

    async def save(self, h: Handle, data: Payload) -> None:
        await self._run(self._save, h, data)

    def _save(self, h: Handle, data: Payload) -> None:
        final = self.filename(h)
        folder = os.path.dirname(final)
        tmp = f"{final}-tmp-{secrets.token_hex(8)}"
        try:
            os.makedirs(folder, mode=DIR_MODE, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                writev_all(fd, [data] if isinstance(data, bytes) else list(data))
                os.fsync(fd)
            finally:
                os.close(fd)
            size = payload_size(data)
            if os.path.getsize(tmp) != size:
                raise PermanentError(f"{h}: wrote {os.path.getsize(tmp)} of {size} bytes")
            os.chmod(tmp, FILE_MODE)
            os.rename(tmp, final)
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            _remove_quietly(tmp)
            raise _os_error(h, exc) from None
        except BaseException:
            _remove_quietly(tmp)
            raise

    async def remove(self, h: Handle) -> None:
        await self._run(self._remove, h)

    def _remove(self, h: Handle) -> None:
        name = self.filename(h)
        try:
            os.chmod(name, 0o666)
            os.remove(name)
        except OSError as exc:
            raise _os_error(h, exc) from None

    async def close(self) -> None:
        pass


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass

