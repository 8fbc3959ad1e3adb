"""Saving blobs: dedup against the index and the blobs already queued, compression as the
repository version and ``--compression`` ask, encryption, packing, and index files written
after the packs they list (FORMAT.md §4.2, §6.2, §11).

The pieces, usable on their own (the copy command feeds blobs, the archiver files):

* ``BlobSealer`` compresses and encrypts one blob: CPU work, safe in any thread;
* ``IndexWriter`` collects the packs the packer announces and writes an index file when
  restic would (150 000 blobs in v2, 50 000 in v1, or ten minutes), and the rest at the end;
* ``BlobSaver`` ties them to a ``Packer``: ``reserve`` claims a blob id (thread-safe), so two
  equal chunks met at the same time are stored once; ``save`` does everything for one blob.
"""

from __future__ import annotations

import enum
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import trio

from ..backend.base import FileType
from ..errors import UsageError
from ..model.ids import hash_id
from . import compress
from .crypto import Key
from .index import BlobType, encode_index_parts
from .packer import DEFAULT_PACK_SIZE, FinishedPack, Packer, SealedBlob
from .repository import Repository

# Blobs up to this size are hashed and sealed on the calling thread: a worker thread
# costs more than the work.
INLINE_MAX = 64 << 10

INDEX_MAX_BLOBS_V1 = 50_000
INDEX_MAX_BLOBS_V2 = 3 * INDEX_MAX_BLOBS_V1
INDEX_MAX_AGE = 10 * 60.0

# A pending index entry: id, type, offset, length, uncompressed length (0: none). 45 bytes
# instead of ~170 for a tuple of Python objects, per new blob until the index file is out.
_ENTRY = struct.Struct("<32sBIII")


class Compression(enum.Enum):
    """``--compression``: what happens to data blobs in a version 2 repository."""

    AUTO = "auto"
    OFF = "off"
    MAX = "max"

    @classmethod
    def parse(cls, text: str) -> Compression:
        try:
            return cls(text.lower())
        except ValueError:
            raise UsageError(f"invalid compression mode {text!r}, must be one of (auto|off|max)") from None


# zstd levels: restic's "auto" is its encoder's default speed (about level 3), "max" its
# best-compression setting (about level 11).
LEVELS = {Compression.AUTO: 3, Compression.OFF: 3, Compression.MAX: 11}


class BlobSealer:
    """Compress (version 2 only: tree blobs always, data blobs unless ``OFF``) and encrypt."""

    def __init__(self, key: Key, version: int, compression: Compression = Compression.AUTO) -> None:
        self.key = key
        self.version = version
        self.compression = compression
        self.level = LEVELS[compression]

    def compresses(self, blob_type: BlobType) -> bool:
        return self.version >= 2 and (blob_type is BlobType.TREE or self.compression is not Compression.OFF)

    def seal(self, blob_type: BlobType, data: bytes | bytearray | memoryview, blob_id: bytes) -> SealedBlob:
        # An uncompressed length of 0 reads as "not compressed" in headers and indexes,
        # so the empty blob is always stored plain.
        if len(data) and self.compresses(blob_type):
            frame = compress.compress(data, self.level)
            return SealedBlob(blob_id, blob_type, self.key.seal(frame), len(data), len(data))
        return SealedBlob(blob_id, blob_type, self.key.seal(data), None, len(data))


class IndexWriter:
    """Index files for the packs a backup stores, written only after those packs."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.max_blobs = INDEX_MAX_BLOBS_V2 if repo.version >= 2 else INDEX_MAX_BLOBS_V1
        self.written: list[bytes] = []
        self._packs: list[tuple[bytes, bytes]] = []  # pack id, its entries packed
        self._blobs = 0
        self._started = trio.current_time()

    async def pack_saved(self, pack: FinishedPack) -> None:
        """Note a stored pack; write an index file once restic would call the index full."""
        packed = b"".join([_ENTRY.pack(e.id, e.type, e.offset, e.length, e.uncompressed_length or 0)
                           for e in pack.entries])
        self._packs.append((pack.id, packed))
        self._blobs += len(pack.entries)
        if self._blobs >= self.max_blobs or trio.current_time() - self._started >= INDEX_MAX_AGE:
            await self.flush()

    async def flush(self) -> None:
        """Write what is not yet in an index file."""
        if not self._packs:
            return
        packs, self._packs, self._blobs = self._packs, [], 0
        self._started = trio.current_time()
        self.written.append(await self.repo.save_unpacked_parts(FileType.INDEX, _index_parts(packs)))


def _index_parts(packs: list[tuple[bytes, bytes]]) -> Iterator[bytes]:
    """The index file for packs whose entries ``IndexWriter`` packed, piece by piece."""
    return encode_index_parts((pack_id, [(i, t, o, n, u or None) for i, t, o, n, u in _ENTRY.iter_unpack(packed)])
                              for pack_id, packed in packs)


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What became of one blob: ``known`` when it was already stored or queued;
    ``size_in_repo`` counts the stored bytes and the header entry of a new blob."""

    id: bytes
    known: bool
    length: int
    size_in_repo: int = 0


class BlobSaver:
    """Stores blobs into ``repo`` through packs uploaded in ``nursery``.

    With ``dry_run`` blobs are still hashed, compressed and encrypted (so sizes can be
    reported) but nothing is written. Call ``flush`` once at the end: it uploads the open
    packs and writes the remaining index entries; only then do the saved blobs count as
    stored for a snapshot. ``uploads`` bounds the packs uploaded at once (the packer's
    default: the backend's upload_slots); each holds a pack in memory.
    """

    def __init__(self, repo: Repository, nursery: trio.Nursery,
                 compression: Compression = Compression.AUTO, pack_size: int = DEFAULT_PACK_SIZE,
                 dry_run: bool = False, uploads: int | None = None) -> None:
        self.repo = repo
        self.sealer = BlobSealer(repo.key, repo.version, compression)
        self.index_writer = IndexWriter(repo)
        self.packer: Packer | None = None
        if not dry_run:
            self.packer = Packer(repo.backend, repo.key, nursery, self.index_writer.pack_saved,
                                 pack_size, cpu=repo.cpu, uploads=uploads)
        self._index = repo.index
        self._lock = threading.Lock()
        # Ids claimed in this run, per blob type (a set of bare ids is half the memory of
        # one of (type, id) tuples).
        self._claimed: dict[BlobType, set[bytes]] = {t: set() for t in BlobType}
        self.blobs_added = {BlobType.DATA: 0, BlobType.TREE: 0}

    def known(self, blob_type: BlobType, blob_id: bytes) -> bool:
        """Whether the blob is in the repository's index or was claimed in this run."""
        return blob_id in self._claimed[blob_type] or self._index.has(blob_id, blob_type)

    def reserve(self, blob_type: BlobType, blob_id: bytes) -> bool:
        """Claim a blob for storing: True for the first caller of an unknown blob, who must
        then ``add`` it; False when it is stored or claimed already. Thread-safe."""
        claimed = self._claimed[blob_type]
        with self._lock:
            if blob_id in claimed or self._index.has(blob_id, blob_type):
                return False
            claimed.add(blob_id)
            return True

    def seal(self, blob_type: BlobType, data: bytes | bytearray | memoryview, blob_id: bytes) -> SealedBlob:
        """Compress and encrypt (CPU work; call from a worker thread for large blobs)."""
        return self.sealer.seal(blob_type, data, blob_id)

    async def add(self, blob: SealedBlob) -> None:
        """Queue a sealed blob claimed with ``reserve`` into its pack."""
        self.blobs_added[blob.type] += 1
        if self.packer is not None:
            await self.packer.add(blob)

    async def save(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> SaveResult:
        """Store one blob unless it is known; ``blob_id`` saves the hashing when known."""
        if blob_id is None:
            blob_id = hash_id(data) if len(data) <= INLINE_MAX else await self.repo.cpu_run(hash_id, data)
        if not self.reserve(blob_type, blob_id):
            return SaveResult(blob_id, True, len(data))
        if len(data) <= INLINE_MAX:
            sealed = self.seal(blob_type, data, blob_id)
        else:
            sealed = await self.repo.cpu_run(self.seal, blob_type, data, blob_id)
        await self.add(sealed)
        return SaveResult(blob_id, False, len(data), sealed.size_in_repo)

    async def flush(self) -> None:
        """Upload every open pack, then write the index entries not yet written."""
        if self.packer is None:
            return
        await self.packer.flush()
        await self.index_writer.flush()
