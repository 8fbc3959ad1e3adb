"""Zip members for snapshot nodes, streamed to unseekable output.

Files are deflated with ISA-L (python-isal: zlib's format, 3-4 times as fast), each with a
data descriptor after its data, since the CRC and the compressed size are known only at
the end. Each blob is compressed on its own (in a worker thread) and ends on a byte
boundary with a full flush, so the blob pieces concatenate into one valid deflate
stream. Stretches that do not compress go in as stored blocks: ISA-L writes them so
itself, at about 1 GB/s; zlib (kept as the reference for the tests) is slow on them,
so for it they are found with a probe and never run through it. CRCs are computed per
blob and combined. Folders, symlinks and empty files are stored with their CRC and
sizes in the local header. Zip64 records appear where sizes, offsets or counts need them.

Extra fields: extended timestamp (``UT``, mtime in UTC) and Info-ZIP's unix uid/gid
(``ux``) on every member; the external attributes carry the unix mode.
"""

from __future__ import annotations

import functools
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from isal import isal_zlib

from ..model import tree as nodes
from ..model.gotime import NS, Timestamp
from ..model.tree import Node, posix_mode
from .common import Buffer, Entry, link_target

DEFLATER: ModuleType = isal_zlib  # compressor module: compressobj, flush modes
LEVEL = 1
PROBE = 1 << 10
INCOMPRESSIBLE = 0.92  # a probe that shrinks less than this marks its segment as stored
STORED_BLOCK = 0xFFFF
SEGMENT = 32 << 10  # one stored block per incompressible segment
FINAL_BLOCK = b"\x03\x00"  # an empty, final fixed-Huffman deflate block

U16 = 0xFFFF
U32 = 0xFFFFFFFF
STORE, DEFLATE = 0, 8
FLAG_DESCRIPTOR = 0x08
FLAG_UTF8 = 0x800
UNIX = 3

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR32 = struct.Struct("<IIII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")

# CRC-32 of A+B from crc32(A), crc32(B) and len(B), in C: the pieces of a file are
# checksummed in the decoder threads, the file's CRC is put together in the writer.
crc32_combine = isal_zlib.crc32_combine


# -- deflate pieces ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A blob as part of a deflate stream: its CRC, plaintext length and encoded parts."""

    crc: int
    size: int
    parts: tuple[Buffer, ...]
    encoded_size: int


def stored_blocks(data: bytes | memoryview) -> list[Buffer]:
    """``data`` as non-final stored deflate blocks (the stream must be byte aligned)."""
    view = memoryview(data)
    out: list[Buffer] = []
    for start in range(0, len(view), STORED_BLOCK):
        part = view[start:start + STORED_BLOCK]
        out.append(struct.pack("<BHH", 0, len(part), len(part) ^ 0xFFFF))
        out.append(part)
    return out


class _Compressors(threading.local):
    """zlib streams kept per thread: making one costs about 100 µs (it clears some
    hundred KiB), more than compressing a small blob. A full flush ends each use, which
    also forgets the history, so every use starts as a fresh stream would."""

    def __init__(self) -> None:
        self.streams: dict[tuple[ModuleType, str, int], Any] = {}

    def get(self, use: str, level: int, module: ModuleType) -> Any:
        comp = self.streams.get((module, use, level))
        if comp is None:
            comp = self.streams[module, use, level] = module.compressobj(level, module.DEFLATED, -15)
        return comp


_compressors = _Compressors()


def _incompressible(segment: memoryview, module: ModuleType) -> bool:
    """Whether a probe from the segment's start fails to shrink (zlib on random data is
    slow, about 60 MB/s, so it must not see such data at all)."""
    probe = segment[:PROBE]
    if len(probe) < PROBE:
        return False
    comp = _compressors.get("probe", 1, module)
    size = len(comp.compress(probe)) + len(comp.flush(module.Z_FULL_FLUSH))
    return size > INCOMPRESSIBLE * PROBE


def stored_piece(plain: bytes, module: ModuleType = DEFLATER) -> Piece:
    """A blob as stored deflate blocks, not compressed."""
    parts = tuple(stored_blocks(plain))
    return Piece(module.crc32(plain), len(plain), parts, sum(len(p) for p in parts))


def deflate_piece(plain: bytes, level: int = LEVEL, module: ModuleType = DEFLATER) -> Piece:
    """Encode one blob; runs in a worker thread (the compressor releases the GIL).

    ISA-L gets the whole blob: it stores what does not compress by itself, and probing
    every segment cost more than it saved (on the benchmark's data deflating took 13 %
    longer with probes for big blobs, 22 % for small ones; the zip came out 1.6 %
    smaller). zlib is slow on random data, so
    for it the blob is looked at in segments: compressible ones go through the
    compressor, incompressible ones become stored blocks. The compressor is fully
    flushed before a stored block and at the end, so nothing refers back past a stored
    block (whose bytes it never saw) or into another blob, and the piece ends on a byte
    boundary.
    """
    crc = module.crc32(plain)
    comp = _compressors.get("data", level, module)
    if module is isal_zlib:
        whole = [p for p in (comp.compress(plain), comp.flush(module.Z_FULL_FLUSH)) if len(p)]
        return Piece(crc, len(plain), tuple(whole), sum(len(p) for p in whole))
    view = memoryview(plain)
    parts: list[Buffer] = []
    pending = False
    for start in range(0, len(view), SEGMENT):
        segment = view[start:start + SEGMENT]
        if _incompressible(segment, module):
            if pending:
                parts.append(comp.flush(module.Z_FULL_FLUSH))
                pending = False
            parts.extend(stored_blocks(segment))
            continue
        parts.append(comp.compress(segment))
        pending = True
    if pending:
        parts.append(comp.flush(module.Z_FULL_FLUSH))
    parts = [p for p in parts if len(p)]
    return Piece(crc, len(plain), tuple(parts), sum(len(p) for p in parts))


# -- headers -------------------------------------------------------------------------------


def dos_time(ts: Timestamp) -> tuple[int, int]:
    """(time, date) in MS-DOS form, from the wall clock of the zone the time was kept in."""
    return _dos_time(ts.ns // NS + ts.offset)


@functools.lru_cache(maxsize=4096)  # files of a snapshot share few distinct seconds
def _dos_time(wall_seconds: int) -> tuple[int, int]:
    t = time.gmtime(wall_seconds)
    if t.tm_year < 1980:
        return 0, (1 << 5) | 1
    if t.tm_year > 2107:
        return (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    return ((t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
            ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday)


def _extras(node: Node) -> bytes:
    out = b""
    secs = node.mtime.ns // NS
    if -(1 << 31) <= secs < (1 << 31):
        out += struct.pack("<HHBi", 0x5455, 5, 1, secs)
    out += struct.pack("<HHBBIBI", 0x7875, 11, 1, 4, node.uid & U32, 4, node.gid & U32)
    return out


@dataclass(slots=True)
class _Current:
    """The file member being written."""

    entry: Entry
    offset: int
    zip64: bool
    crc: int = 0
    size: int = 0
    encoded: int = 0


class ZipFormat:
    """A zip stream; keeps the central directory (about 100 bytes a member) until the end."""

    hardlinks = False
    name = "zip"

    def __init__(self, level: int = LEVEL) -> None:
        self.level = level
        self.offset = 0  # bytes written so far
        self.count = 0
        self._central = bytearray()
        self._current: _Current | None = None

    def accepts(self, node: Node) -> bool:
        return node.type in (nodes.FILE, nodes.DIR, nodes.SYMLINK)

    def prepare(self, plain: bytes, packed_ratio: float | None) -> Piece:
        if packed_ratio is not None and packed_ratio >= INCOMPRESSIBLE:
            return stored_piece(plain)  # zstd could not shrink it: deflate would not either
        return deflate_piece(plain, self.level)

    def _emit(self, buffers: Sequence[Buffer]) -> Sequence[Buffer]:
        self.offset += sum(map(len, buffers))
        return buffers

    def begin(self, entry: Entry) -> Sequence[Buffer]:
        node = entry.node
        name = entry.path + (b"/" if node.type == nodes.DIR else b"")
        if node.type == nodes.FILE and entry.size:
            zip64 = entry.size * 1.05 + (1 << 20) >= U32
            self._current = _Current(entry, self.offset, zip64)
            extra = _extras(node) + (struct.pack("<HHQQ", 1, 16, 0, 0) if zip64 else b"")
            local = self._local(name, node, DEFLATE, FLAG_DESCRIPTOR, 0,
                                U32 if zip64 else 0, U32 if zip64 else 0, extra, zip64)
            return self._emit((local,))
        data = link_target(node) if node.type == nodes.SYMLINK else b""
        crc = zlib.crc32(data)
        header_offset = self.offset
        local = self._local(name, node, STORE, 0, crc, len(data), len(data), _extras(node), False)
        self._record(name, node, STORE, 0, crc, len(data), len(data), header_offset)
        return self._emit((local, data) if data else (local,))

    def piece(self, piece: Piece) -> Sequence[Buffer]:
        cur = self._current
        assert cur is not None
        cur.crc = crc32_combine(cur.crc, piece.crc, piece.size) if cur.size else piece.crc
        cur.size += piece.size
        cur.encoded += piece.encoded_size
        return self._emit(piece.parts)

    def end(self, entry: Entry) -> Sequence[Buffer]:
        cur = self._current
        if cur is None or cur.entry is not entry:
            return ()
        self._current = None
        encoded = cur.encoded + len(FINAL_BLOCK)
        if cur.zip64:
            desc = _DESCRIPTOR64.pack(0x08074B50, cur.crc, encoded, cur.size)
        else:
            desc = _DESCRIPTOR32.pack(0x08074B50, cur.crc, encoded, cur.size)
        name = entry.path
        self._record(name, entry.node, DEFLATE, FLAG_DESCRIPTOR, cur.crc, encoded, cur.size, cur.offset)
        return self._emit((FINAL_BLOCK, desc))

    def finish(self) -> Sequence[Buffer]:
        start, size, count = self.offset, len(self._central), self.count
        tail = bytearray()
        if count >= U16 or start >= U32 or size >= U32:
            eocd64_at = start + size
            tail += _EOCD64.pack(0x06064B50, 44, (UNIX << 8) | 45, 45, 0, 0, count, count, size, start)
            tail += _LOCATOR64.pack(0x07064B50, 0, eocd64_at, 1)
        tail += _EOCD.pack(0x06054B50, 0, 0, min(count, U16), min(count, U16),
                           min(size, U32), min(start, U32), 0)
        central, self._central = bytes(self._central), bytearray()
        return self._emit((central, bytes(tail)))

    # -- records ---------------------------------------------------------------------------

    @staticmethod
    def _flags(name: bytes) -> int:
        if name.isascii():
            return 0
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            return 0
        return FLAG_UTF8

    def _local(self, name: bytes, node: Node, method: int, flags: int, crc: int, csize: int,
               usize: int, extra: bytes, zip64: bool) -> bytes:
        t, d = dos_time(node.mtime)
        return _LOCAL.pack(0x04034B50, 45 if zip64 else 20, flags | self._flags(name), method, t, d,
                           crc, csize, usize, len(name), len(extra)) + name + extra

    def _record(self, name: bytes, node: Node, method: int, flags: int, crc: int, csize: int,
                usize: int, offset: int) -> None:
        big = [v for v in (usize, csize, offset) if v >= U32]
        extra = _extras(node)
        if big:
            extra += struct.pack("<HH", 1, 8 * len(big)) + b"".join(struct.pack("<Q", v) for v in big)
        version = 45 if big or flags & FLAG_DESCRIPTOR and self._is_zip64(usize) else 20
        t, d = dos_time(node.mtime)
        attrs = (posix_mode(node) << 16) | (0x10 if node.type == nodes.DIR else 0)
        self._central += _CENTRAL.pack(
            0x02014B50, (UNIX << 8) | version, version, flags | self._flags(name), method, t, d, crc,
            min(csize, U32), min(usize, U32), len(name), len(extra), 0, 0, 0, attrs, min(offset, U32),
        ) + name + extra
        self.count += 1

    @staticmethod
    def _is_zip64(usize: int) -> bool:
        return usize * 1.05 + (1 << 20) >= U32
