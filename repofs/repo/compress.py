"""zstd as restic v2 repositories use it (FORMAT.md §4.3, §4.4).

restic's frames may lack a content size, so decompression always goes through a streaming
decompressor or a known output size, never the one-shot call that needs the header field.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import zstandard

from ..errors import IntegrityError

UNPACKED_ZSTD = 0x02

_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = getattr(_local, "c", None)
    if cache is None:
        cache = _local.c = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return c


def decompress(frame: bytes, size: int | None = None) -> bytes:
    """One zstd frame; ``size`` is the exact plaintext length when known."""
    try:
        if size is not None:
            out = _decompressor().decompress(frame, max_output_size=size)
        else:
            stream = _decompressor().decompressobj()
            out = stream.decompress(frame)
            if not stream.eof:
                raise IntegrityError("zstd: the frame ends early")
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"zstd: {exc}") from None
    if size is not None and len(out) != size:
        raise IntegrityError(f"zstd: got {len(out)} bytes, want {size}")
    return out


def compress(data: bytes, level: int = 3) -> bytes:
    return _compressor(level).compress(data)


def decode_unpacked(plaintext: bytes, version: int) -> bytes:
    """The JSON inside an index, snapshot or lock file's plaintext."""
    if version < 2 or not plaintext or plaintext[0] in b"{[":
        return plaintext
    if plaintext[0] == UNPACKED_ZSTD:
        return decompress(plaintext[1:])
    raise IntegrityError(f"unsupported encoding byte {plaintext[0]:#04x}")


def encode_unpacked(doc: bytes, version: int) -> bytes:
    """The plaintext restic writes for an unpacked file: v2 compresses, v1 does not."""
    if version < 2:
        return doc
    return bytes([UNPACKED_ZSTD]) + compress(doc)


def encode_unpacked_parts(parts: Iterable[bytes], version: int, level: int = 3) -> bytes:
    """``encode_unpacked`` of the concatenated ``parts``, compressed as they come in v2
    (the frame then carries no content size, which restic's decoder does not need)."""
    if version < 2:
        return b"".join(parts)
    stream = zstandard.ZstdCompressor(level=level).compressobj()
    out = [bytes([UNPACKED_ZSTD])]
    out += (stream.compress(part) for part in parts)
    out.append(stream.flush())
    return b"".join(out)
