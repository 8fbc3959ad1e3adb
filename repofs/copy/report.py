"""What a copy tells its caller: counters the core updates (read by a progress display in
the trio thread) and the events it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..model.snapshot import Snapshot
from ..repo.index import BlobType
from .reader import ReadStats


@dataclass
class CopyStats:
    """Counters of one copy; ``planned_*`` grow while trees are walked."""

    phase: str = "snapshots"  # snapshots, trees, data, rechunk, index, done
    snapshots: int = 0  # chosen in the source
    skipped: int = 0  # already in the destination
    saved: int = 0  # written to the destination
    trees_read: int = 0
    planned_blobs: int = 0
    planned_bytes: int = 0  # plaintext bytes of the blobs to copy
    blobs: dict[BlobType, int] = field(default_factory=lambda: {BlobType.DATA: 0, BlobType.TREE: 0})
    bytes_done: int = 0  # plaintext bytes of the blobs copied
    stored: int = 0  # bytes they add to the destination (pack header entries included)
    rechunked_files: int = 0
    rechunked_bytes: int = 0  # file bytes read and cut again
    rechunk_total: int = 0  # file bytes to cut again
    read: ReadStats = field(default_factory=ReadStats)

    @property
    def blobs_done(self) -> int:
        return sum(self.blobs.values())


class CopyReporter(Protocol):
    def snapshot(self, snap: Snapshot, existing: Snapshot | None) -> None:
        """A chosen source snapshot: to be copied, or ``existing`` is its copy already."""

    def saved(self, snap: Snapshot, new_id: bytes) -> None:
        """The copy of ``snap`` is stored as ``new_id``."""

    def warning(self, text: str) -> None:
        """Something the user should know; the copy goes on."""


class QuietReporter:
    """A reporter that reports nothing."""

    def snapshot(self, snap: Snapshot, existing: Snapshot | None) -> None:
        pass

    def saved(self, snap: Snapshot, new_id: bytes) -> None:
        pass

    def warning(self, text: str) -> None:
        pass
