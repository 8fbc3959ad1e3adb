"""Blobs on their way from one repository to another: which bytes of a source pack to read,
and turning a source blob's stored bytes into the destination's (FORMAT.md §3, §4.2, §5).

* ``Wanted``: one stored blob of a source pack (a pack header or index entry).
* ``plan_runs``: a pack's wanted blobs as ranged reads; neighbours a small gap apart share
  one read, so a pack costs one request per group of wanted blobs, not one per blob.
* ``open_blob``: MAC check, decryption, decompression, SHA-256 check with the source key;
  keeps the zstd frame of a compressed blob.
* ``Transcoder``: seals a blob for the destination. A frame the source compressed is reused
  when the destination compresses that blob too (re-encrypted, not recompressed).

These are CPU work, safe in any thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import zstandard

from ..errors import DamagedPack, IntegrityError
from ..model.ids import hash_id
from ..repo import compress
from ..repo.crypto import Key, MacError
from ..repo.index import BlobLocation, BlobType
from ..repo.packer import SealedBlob
from ..repo.saver import BlobSealer, Compression

MAX_GAP = 1 << 20  # bytes of unwanted blobs worth reading over to keep one request
MAX_RUN = 4 << 20  # bytes one request may cover
STREAM_PIECE = 512 << 10  # bytes of plaintext per piece when checking a frame without keeping it


@dataclass(frozen=True, slots=True)
class Wanted:
    """One blob to read from a source pack."""

    id: bytes
    type: BlobType
    offset: int
    length: int
    uncompressed_length: int | None

    @classmethod
    def at(cls, blob_id: bytes, blob_type: BlobType, loc: BlobLocation) -> Wanted:
        return cls(blob_id, blob_type, loc.offset, loc.length, loc.uncompressed_length)

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def plain_length(self) -> int:
        if self.uncompressed_length is not None:
            return self.uncompressed_length
        return self.length - 32


@dataclass(slots=True)
class ReadRun:
    """One ranged read of a pack and the wanted blobs inside the range, in pack order."""

    pack_id: bytes
    start: int
    end: int
    blobs: list[Wanted]

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_runs(pack_id: bytes, blobs: Iterable[Wanted], max_gap: int = MAX_GAP,
              max_run: int = MAX_RUN) -> list[ReadRun]:
    """The reads that fetch ``blobs`` of one pack: sorted by offset, a blob joins the read
    before it when the gap is at most ``max_gap`` and the read stays within ``max_run``
    (a single larger blob gets a read of its own)."""
    runs: list[ReadRun] = []
    current: ReadRun | None = None
    for b in sorted(blobs, key=lambda b: b.offset):
        if (current is not None and current.end <= b.offset <= current.end + max_gap
                and b.end - current.start <= max_run):
            current.blobs.append(b)
            current.end = b.end
            continue
        current = ReadRun(pack_id, b.offset, b.end, [b])
        runs.append(current)
    return runs


def open_blob(key: Key, blob: Wanted, pack_id: bytes, sealed: bytes | memoryview,
              need_plain: bool = True) -> tuple[bytes | None, bytes | None]:
    """A stored blob's plaintext and, when it is compressed, its zstd frame; checked
    against its MAC and its id. Without ``need_plain`` a large compressed blob is checked by
    decompressing it piece by piece, and its plaintext may be None. Raises DamagedPack."""
    where = f"{blob.type.json_name} blob {blob.id.hex()[:16]} in pack {pack_id.hex()[:16]}"
    if len(sealed) != blob.length:
        raise DamagedPack(f"{where}: short read (truncated pack)")
    try:
        stored = key.open(sealed)
    except MacError:
        raise DamagedPack(f"{where}: MAC mismatch (damaged pack)") from None
    if blob.uncompressed_length is None:
        if hash_id(stored) != blob.id:
            raise DamagedPack(f"{where}: content does not match its id (damaged pack)")
        return stored, None
    try:
        if need_plain or blob.uncompressed_length <= STREAM_PIECE:
            plain: bytes | None = compress.decompress(stored, blob.uncompressed_length)
            digest = hash_id(plain)  # type: ignore[arg-type]
        else:
            plain = None
            digest = _frame_digest(stored, blob.uncompressed_length)
    except (IntegrityError, zstandard.ZstdError) as exc:
        raise DamagedPack(f"{where}: {exc}") from None
    if digest != blob.id:
        raise DamagedPack(f"{where}: content does not match its id (damaged pack)")
    return plain, stored


_local = threading.local()


def _frame_digest(frame: bytes, size: int) -> bytes:
    """SHA-256 of a zstd frame's output, which must be ``size`` bytes, decompressed a piece
    at a time."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    digest = hashlib.sha256()
    n = 0
    for piece in dctx.read_to_iter(frame, read_size=len(frame), write_size=STREAM_PIECE):
        digest.update(piece)
        n += len(piece)
        if n > size:
            break
    if n != size:
        raise IntegrityError(f"zstd: got {n} bytes, want {size}")
    return digest.digest()


class Transcoder:
    """Seals blobs for the destination: its key, its version, its ``--compression``."""

    def __init__(self, key: Key, version: int, compression: Compression = Compression.AUTO) -> None:
        self.sealer = BlobSealer(key, version, compression)
        # --compression max asks for smaller blobs than the source's frames may be.
        self.reuse_frames = compression is not Compression.MAX

    def reuses(self, blob_type: BlobType) -> bool:
        """Whether a source frame of this blob type is stored as it is (re-encrypted)."""
        return self.reuse_frames and self.sealer.compresses(blob_type)

    def seal(self, blob_type: BlobType, blob_id: bytes, plain: bytes | None, frame: bytes | None,
             plain_length: int) -> SealedBlob:
        """The blob sealed for the destination; ``plain`` may be None when ``frame`` is given
        and reused."""
        if frame is not None and self.reuses(blob_type):
            return SealedBlob(blob_id, blob_type, self.sealer.key.seal(frame), plain_length, plain_length)
        if plain is None:
            raise ValueError(f"blob {blob_id.hex()}: plaintext needed to seal it")
        return self.sealer.seal(blob_type, plain, blob_id)
