"""Where copied blobs go: the destination's blob saver, or only counted in a dry run.

Index files: restic writes one when it holds 150 000 blobs (50 000 in v1) or is ten minutes
old. A copy also writes one whenever the packs stored since the last index file reach
``max(INDEX_MIN_PACKS, packs already indexed // INDEX_GROWTH)``: an interrupted copy loses at
most that much work (the blobs of unindexed packs are uploaded again by the next run), while a
long copy still leaves only a logarithmic number of index files.
"""

from __future__ import annotations

import threading

import trio

from ..repo.index import BlobType
from ..repo.packer import DEFAULT_PACK_SIZE, SealedBlob
from ..repo.repository import Repository
from ..repo.saver import BlobSaver, Compression
from .blobs import Transcoder
from .report import CopyStats

INDEX_MIN_PACKS = 8
INDEX_GROWTH = 4

Stored = tuple[BlobType, int, "SealedBlob | None"]
"""A claimed blob for ``BlobSink.add``: type, plaintext length, the sealed blob (None in a
dry run)."""


class BlobSink:
    """Claims, seals and stores blobs in ``dst`` (index loaded); with ``dry_run`` it only
    claims and counts. ``claim`` and ``seal`` are thread-safe; ``add`` runs in trio."""

    def __init__(self, dst: Repository, nursery: trio.Nursery, stats: CopyStats,
                 compression: Compression = Compression.AUTO, pack_size: int = DEFAULT_PACK_SIZE,
                 dry_run: bool = False) -> None:
        self.dst = dst
        self.stats = stats
        self.dry_run = dry_run
        self.transcoder = Transcoder(dst.key, dst.version, compression)
        self.saver: BlobSaver | None = None
        if not dry_run:
            self.saver = BlobSaver(dst, nursery, compression, pack_size)
        self._claimed: set[tuple[BlobType, bytes]] = set()
        self._lock = threading.Lock()
        self._indexed_packs = 0
        self._adding = trio.Lock()

    def has(self, blob_type: BlobType, blob_id: bytes) -> bool:
        """Whether the destination's index lists the blob (claims not counted)."""
        return self.dst.index.has(blob_id, blob_type)

    def claim(self, blob_type: BlobType, blob_id: bytes) -> bool:
        """True for the first caller of a blob the destination lacks: it must be ``add``ed."""
        if self.saver is not None:
            return self.saver.reserve(blob_type, blob_id)
        key = (blob_type, blob_id)
        with self._lock:
            if key in self._claimed or self.dst.index.has(blob_id, blob_type):
                return False
            self._claimed.add(key)
            return True

    def seal(self, blob_type: BlobType, blob_id: bytes, plain: bytes | None, frame: bytes | None,
             plain_length: int) -> SealedBlob | None:
        """The blob as the destination stores it (None in a dry run). CPU work."""
        if self.dry_run:
            return None
        return self.transcoder.seal(blob_type, blob_id, plain, frame, plain_length)

    async def add(self, blobs: list[Stored]) -> None:
        """Store claimed blobs: (type, plaintext length, sealed blob or None in a dry run);
        writes an index file when one is due."""
        if not blobs:
            return
        for blob_type, plain_length, _ in blobs:
            self.stats.blobs[blob_type] += 1
            self.stats.bytes_done += plain_length
        if self.saver is None:
            return
        # One adder at a time: a full pack waiting for an upload slot is held by its adder,
        # so concurrent adders would each start and fill another pack meanwhile.
        async with self._adding:
            for _, _, sealed in blobs:
                assert sealed is not None
                self.stats.stored += sealed.size_in_repo
                await self.saver.add(sealed)
        await self._index_if_due()

    async def _index_if_due(self) -> None:
        assert self.saver is not None and self.saver.packer is not None
        saved = self.saver.packer.packs_saved
        if saved - self._indexed_packs >= max(INDEX_MIN_PACKS, self._indexed_packs // INDEX_GROWTH):
            self._indexed_packs = saved
            await self.saver.index_writer.flush()

    async def flush(self) -> None:
        """Upload the open packs, then write the index entries not yet written."""
        if self.saver is not None:
            await self.saver.flush()

    async def save_index(self) -> None:
        """Write index entries for the packs stored so far (on the way out of a failed or
        interrupted copy, so a rerun need not upload them again)."""
        if self.saver is not None:
            await self.saver.index_writer.flush()
