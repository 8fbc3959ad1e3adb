"""Pack files: blobs back to back, then the encrypted header and its length (FORMAT.md §5)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import DamagedPack
from .crypto import OVERHEAD
from .index import BlobType

ENTRY_PLAIN = 37  # type u8, length u32, id[32]
ENTRY_COMPRESSED = 41  # type u8, length u32, uncompressed_length u32, id[32]
HEADER_LEN_SIZE = 4
MAX_HEADER = 16 << 20
# restic's first read of a pack tail: room for 15 compressed entries.
EAGER_TAIL = 15 * ENTRY_COMPRESSED + OVERHEAD + HEADER_LEN_SIZE
MIN_PACK = ENTRY_PLAIN + OVERHEAD + HEADER_LEN_SIZE

_ENTRY_TYPES = {  # type byte -> (blob type, compressed)
    0: (BlobType.DATA, False),
    1: (BlobType.TREE, False),
    2: (BlobType.DATA, True),
    3: (BlobType.TREE, True),
}


@dataclass(frozen=True, slots=True)
class PackEntry:
    """One blob as a pack header lists it; offset is derived from the entries before it."""

    id: bytes
    type: BlobType
    offset: int
    length: int
    uncompressed_length: int | None = None

    @property
    def plain_length(self) -> int:
        return self.uncompressed_length if self.uncompressed_length is not None else self.length - OVERHEAD


def header_length(tail: bytes, pack_size: int, name: str) -> int:
    """The sealed header's length from the last bytes of a pack, checked against the size."""
    if pack_size < MIN_PACK:
        raise DamagedPack(f"pack {name}: {pack_size} bytes is too short to be a pack")
    (hlen,) = struct.unpack_from("<I", tail, len(tail) - HEADER_LEN_SIZE)
    if hlen < OVERHEAD + ENTRY_PLAIN or hlen > pack_size - HEADER_LEN_SIZE or hlen > MAX_HEADER:
        raise DamagedPack(f"pack {name}: header length {hlen} is invalid for a {pack_size}-byte pack")
    return hlen


def decode_header(plain: bytes, name: str, version: int = 2) -> list[PackEntry]:
    """Entries of a decrypted pack header, with their offsets."""
    entries: list[PackEntry] = []
    pos = offset = 0
    while pos < len(plain):
        kind = _ENTRY_TYPES.get(plain[pos])
        if kind is None:
            raise DamagedPack(f"pack {name}: unknown header entry type {plain[pos]} at byte {pos}")
        btype, compressed = kind
        if compressed and version < 2:
            raise DamagedPack(f"pack {name}: compressed blob in a version {version} repository")
        size = ENTRY_COMPRESSED if compressed else ENTRY_PLAIN
        if pos + size > len(plain):
            raise DamagedPack(f"pack {name}: header ends inside an entry")
        if compressed:
            length, ulen = struct.unpack_from("<II", plain, pos + 1)
            blob_id = plain[pos + 9:pos + 41]
        else:
            (length,) = struct.unpack_from("<I", plain, pos + 1)
            ulen = None
            blob_id = plain[pos + 5:pos + 37]
        entries.append(PackEntry(bytes(blob_id), btype, offset, length, ulen))
        offset += length
        pos += size
    return entries


def encode_header(entries: Iterable[PackEntry]) -> bytes:
    """Header plaintext for entries in pack order."""
    out = bytearray()
    for e in entries:
        if e.uncompressed_length is None:
            out += struct.pack("<BI", int(e.type), e.length) + e.id
        else:
            out += struct.pack("<BII", int(e.type) + 2, e.length, e.uncompressed_length) + e.id
    return bytes(out)


def expected_size(entries: Iterable[PackEntry]) -> int:
    """The file size a pack with these entries must have (what `restic check` computes)."""
    total = OVERHEAD + HEADER_LEN_SIZE
    for e in entries:
        total += e.length + (ENTRY_PLAIN if e.uncompressed_length is None else ENTRY_COMPRESSED)
    return total
