"""The backend interface every transport implements, and its typed errors."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import BackendError, NotFound


class FileType(enum.Enum):
    """The kinds of file in a repository; the value is the folder name."""

    CONFIG = "config"
    KEY = "keys"
    LOCK = "locks"
    SNAPSHOT = "snapshots"
    INDEX = "index"
    PACK = "data"


@dataclass(frozen=True, slots=True)
class Handle:
    type: FileType
    name: str = ""

    def __str__(self) -> str:
        return self.type.value if self.type is FileType.CONFIG else f"{self.type.value}/{self.name}"


CONFIG = Handle(FileType.CONFIG)


class FileNotFound(NotFound):
    """The backend has no file under that handle."""


class PermanentError(BackendError):
    """A failure a retry cannot fix (permissions, full disk, bad request)."""


class TransientError(BackendError):
    """A failure that may pass (connection reset, server busy)."""


Payload = bytes | Sequence[bytes]
"""A file to save: its bytes, or parts that make it when written back to back."""


def payload_size(data: Payload) -> int:
    return len(data) if isinstance(data, bytes) else sum(len(part) for part in data)


class Backend(Protocol):
    """Async access to a repository's files. Implementations bound their own concurrency."""

    location: str
    connections: int
    upload_slots: int
    """Packs worth uploading at once; each one in flight is a pack held in memory."""
    blocking_load: Callable[[Handle, int, int], bytes] | None
    """``load`` as a plain blocking call any worker thread may make, where loading is
    a system call (a local file); None where it needs the event loop (a network
    client). A worker that decodes what it reads saves a round trip through the loop."""

    async def create(self) -> None:
        """Make the empty layout; fails if a repository is already there."""

    async def list(self, type: FileType) -> list[tuple[str, int]]:
        """(name, size) of every file of a type; names that are not ids are skipped."""

    async def stat(self, h: Handle) -> int:
        """Size in bytes; FileNotFound when absent."""

    async def load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        """``length`` bytes from ``offset`` (0 = to the end); FileNotFound when absent."""

    async def save(self, h: Handle, data: Payload) -> None:
        """Store a whole file atomically: it appears complete under its name or not at all.
        ``data`` is the file's bytes, or a sequence of parts written back to back (a pack
        is never joined into one copy)."""

    async def remove(self, h: Handle) -> None:
        """Delete a file; FileNotFound when absent."""

    async def close(self) -> None:
        """Release connections."""
