"""What the archiver tells its caller while it runs: per-item statistics and events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..model.tree import Node


@dataclass(slots=True)
class ItemStats:
    """New blobs an item added: count, plaintext bytes, and bytes stored in the repository
    (compressed, encrypted, with header entries)."""

    data_blobs: int = 0
    data_size: int = 0
    data_size_in_repo: int = 0
    tree_blobs: int = 0
    tree_size: int = 0
    tree_size_in_repo: int = 0

    def add(self, other: ItemStats) -> None:
        self.data_blobs += other.data_blobs
        self.data_size += other.data_size
        self.data_size_in_repo += other.data_size_in_repo
        self.tree_blobs += other.tree_blobs
        self.tree_size += other.tree_size
        self.tree_size_in_repo += other.tree_size_in_repo


class Reporter(Protocol):
    """Receives events; all calls come from the trio thread. ``item`` is the path inside the
    snapshot (folders end with ``/``)."""

    def start_file(self, item: str) -> None:
        """A file is being read."""

    def complete_blob(self, nbytes: int) -> None:
        """``nbytes`` of file content have been read."""

    def complete_item(self, item: str, previous: Node | None, current: Node | None,
                      stats: ItemStats, seconds: float) -> None:
        """A file or folder is saved (``current``; None for the final root event)."""

    def error(self, item: str, exc: BaseException) -> None:
        """An item could not be saved; the backup goes on without it."""


class NullReporter:
    """A Reporter that ignores everything (for tests and quiet callers)."""

    def start_file(self, item: str) -> None:
        pass

    def complete_blob(self, nbytes: int) -> None:
        pass

    def complete_item(self, item: str, previous: Node | None, current: Node | None,
                      stats: ItemStats, seconds: float) -> None:
        pass

    def error(self, item: str, exc: BaseException) -> None:
        pass
