"""Writing packs: sealed blobs go into one open pack per blob type; full packs are finished
(header sealed and appended, whole file hashed) and uploaded by background tasks while the
next pack fills (FORMAT.md §5, §11).

A pack is announced through ``on_saved`` only after its upload succeeded and the backend
reported the size that was written, so whoever builds index files from those announcements
never lists a pack that is not stored.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..backend.base import Backend, FileType, Handle
from ..errors import BackendError, UsageError
from .crypto import OVERHEAD, Key
from .index import BlobType, Entry
from .pack import ENTRY_COMPRESSED, ENTRY_PLAIN, MAX_HEADER, PackEntry, encode_header

MIB = 1 << 20
DEFAULT_PACK_SIZE = 16 * MIB
MIN_PACK_SIZE = 4 * MIB
MAX_PACK_SIZE = 128 * MIB
# Pack offsets and lengths are uint32 in index files: never let a pack grow near that.
_U32_LIMIT = (1 << 32) - 1


def check_pack_size(mib: int) -> int:
    """The target pack size in bytes for ``--pack-size`` MiB (restic allows 4 to 128)."""
    size = mib * MIB
    if not MIN_PACK_SIZE <= size <= MAX_PACK_SIZE:
        raise UsageError(f"pack size {mib} MiB is out of range: use 4 to 128")
    return size


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """A blob ready for a pack: its id, type, stored bytes (IV, ciphertext, MAC) and the
    plaintext length when the stored bytes are a zstd frame (None when not compressed)."""

    id: bytes
    type: BlobType
    data: bytes
    uncompressed_length: int | None
    plain_length: int

    @property
    def entry_size(self) -> int:
        return ENTRY_PLAIN if self.uncompressed_length is None else ENTRY_COMPRESSED

    @property
    def size_in_repo(self) -> int:
        """Bytes the blob adds to the repository: stored bytes plus its header entry."""
        return len(self.data) + self.entry_size


@dataclass(frozen=True, slots=True)
class FinishedPack:
    """A complete pack file: its id (SHA-256 of the bytes), its bytes as the parts that
    make it when written back to back (the blobs, the header, its length), its size and
    its header entries."""

    id: bytes
    parts: list[bytes]
    size: int
    entries: list[PackEntry]
    type: BlobType

    def index_entries(self) -> list[Entry]:
        return [(e.id, e.type, e.offset, e.length, e.uncompressed_length) for e in self.entries]


class PackBuffer:
    """One pack being filled in memory: blobs back to back and their header entries.

    The blobs are kept as a list and never joined: appending to one bytearray re-copies it
    every time it grows (~8x the pack size in all), and joining them at the end would hold
    the pack twice while it is hashed and written."""

    __slots__ = ("type", "_parts", "_size", "entries", "_header_size")

    def __init__(self, blob_type: BlobType) -> None:
        self.type = blob_type
        self._parts: list[bytes] = []
        self._size = 0
        self.entries: list[PackEntry] = []
        self._header_size = 0

    @property
    def size(self) -> int:
        """Bytes of blob data so far (restic compares this with the target size)."""
        return self._size

    def __len__(self) -> int:
        return len(self.entries)

    def fits(self, blob: SealedBlob) -> bool:
        """Whether the blob still fits the header limit and uint32 offsets."""
        return (self._header_size + blob.entry_size + OVERHEAD <= MAX_HEADER
                and self._size + len(blob.data) + MAX_HEADER < _U32_LIMIT)

    def add(self, blob: SealedBlob) -> None:
        self.entries.append(PackEntry(blob.id, blob.type, self._size, len(blob.data),
                                      blob.uncompressed_length))
        self._parts.append(blob.data)
        self._size += len(blob.data)
        self._header_size += blob.entry_size

    def full(self, target: int) -> bool:
        return self._size >= target or self._header_size + ENTRY_COMPRESSED + OVERHEAD > MAX_HEADER

    def finish(self, key: Key) -> FinishedPack:
        """Seal the header, append it and its length, hash the whole file (CPU work)."""
        header = key.seal(encode_header(self.entries))
        parts, self._parts = self._parts, []
        parts += (header, struct.pack("<I", len(header)))
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return FinishedPack(digest.digest(), parts, self._size + len(header) + 4, self.entries, self.type)


PackSaved = Callable[[FinishedPack], Awaitable[None]]


class Packer:
    """Collects sealed blobs into packs and uploads full packs in the background.

    ``add`` appends to the open pack of the blob's type; when that pack reaches the target
    size it is handed to an upload task, at most ``uploads`` at a time. While a full pack
    waits for a free slot, every ``add`` of its type waits with it instead of filling another
    pack, which bounds memory to about ``(uploads + 1) * pack_size`` per blob type, however
    many tasks add at once. Uploads run in ``nursery``, so a failed upload cancels the
    operation that owns it. ``flush`` uploads the open packs and waits until every upload has
    finished.
    """

    def __init__(self, backend: Backend, key: Key, nursery: trio.Nursery, on_saved: PackSaved,
                 pack_size: int = DEFAULT_PACK_SIZE, cpu: trio.CapacityLimiter | None = None,
                 uploads: int | None = None) -> None:
        self.backend = backend
        self.key = key
        self.pack_size = pack_size
        self._nursery = nursery
        self._on_saved = on_saved
        self._cpu = cpu
        self._open: dict[BlobType, PackBuffer] = {}
        self._handing_over: dict[BlobType, trio.Event] = {}  # a full pack waits for a slot
        self._slots = trio.Semaphore(max(1, uploads if uploads is not None else backend.upload_slots))
        self._running = 0
        self._idle = trio.Event()
        self._idle.set()
        self.packs_saved = 0
        self.bytes_saved = 0

    async def add(self, blob: SealedBlob) -> None:
        """Put a sealed blob into the open pack of its type (may wait for an upload slot)."""
        while (handing_over := self._handing_over.get(blob.type)) is not None:
            await handing_over.wait()
        buf = self._open.get(blob.type)
        if buf is not None and not buf.fits(blob):
            await self._hand_over(buf)
            await self.add(blob)
            return
        if buf is None:
            buf = self._open[blob.type] = PackBuffer(blob.type)
        buf.add(blob)
        if buf.full(self.pack_size):
            await self._hand_over(buf)

    async def _hand_over(self, buf: PackBuffer) -> None:
        """Detach a full pack and queue it; adds of its type wait until it has a slot."""
        del self._open[buf.type]
        done = self._handing_over[buf.type] = trio.Event()
        try:
            await self._queue(buf)
        finally:
            del self._handing_over[buf.type]
            done.set()

    async def flush(self) -> None:
        """Upload the open packs, then wait for all uploads to finish."""
        for blob_type in list(self._open):
            buf = self._open.pop(blob_type)
            if len(buf):
                await self._queue(buf)
        while self._running:
            await self._idle.wait()

    async def _queue(self, buf: PackBuffer) -> None:
        await self._slots.acquire()
        self._running += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        self._nursery.start_soon(self._upload, buf)

    async def _upload(self, buf: PackBuffer) -> None:
        try:
            pack = await trio.to_thread.run_sync(buf.finish, self.key, limiter=self._cpu)
            h = Handle(FileType.PACK, pack.id.hex())
            await self.backend.save(h, pack.parts)
            stored = await self.backend.stat(h)
            if stored != pack.size:
                raise BackendError(f"{h}: the backend stored {stored} bytes, {pack.size} were sent")
            self.packs_saved += 1
            self.bytes_saved += pack.size
            await self._on_saved(pack)
        finally:
            self._slots.release()
            self._running -= 1
            if not self._running:
                self._idle.set()
