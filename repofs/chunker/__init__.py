"""Content-defined chunking with the same cut points as restic 0.14 (FORMAT.md section 9).

A file's content is cut where the Rabin fingerprint of the last 64 bytes, taken modulo the
repository's chunker polynomial, has its low 20 bits zero; chunks are 512 KiB to 8 MiB long,
about 1.5 MiB on average. Equal content therefore gives equal chunks, and equal blobs.

* ``Chunker`` cuts one file at a time: ``feed()`` it the file's buffers in order (any sizes),
  get back the chunks completed so far, and ``finish()`` to get the last one. ``cuts()`` is the
  same for a caller that keeps the bytes itself. The scan runs in C without the GIL.
* ``chunk_file()`` yields the chunks of a whole file.
* ``random_polynomial()``, ``is_irreducible()``, ``degree()``: the polynomial in the config.
* ``repofs.chunker.reference``: the algorithm in plain Python, the specification.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ._chunker import Scanner
from .polynomial import degree, is_irreducible, mod, mulmod, random_polynomial
from .reference import AVERAGE_BITS, MAX_SIZE, MIN_SIZE, WINDOW_SIZE, check_parameters

__all__ = [
    "AVERAGE_BITS",
    "MAX_SIZE",
    "MIN_SIZE",
    "READ_SIZE",
    "Chunker",
    "chunk_file",
    "degree",
    "is_irreducible",
    "random_polynomial",
]

#: Size of the reads ``chunk_file`` makes.
READ_SIZE = 8 * 1024 * 1024

Buffer = bytes | bytearray | memoryview


@functools.lru_cache(maxsize=8)
def _tables(polynomial: int) -> bytes:
    """The scanner's lookup tables for a polynomial, packed as 512 native uint64.

    Same values as ``reference.tables`` but computed from their linearity in the byte:
    out[b] = b * x^(8*63) mod P, mod[b] = (b * x^k mod P) | (b * x^k).
    """
    k = degree(polynomial)
    leaving = mod(1 << (8 * (WINDOW_SIZE - 1)), polynomial)
    out = [mulmod(b, leaving, polynomial) for b in range(256)]
    reduce = [mod(b << k, polynomial) | (b << k) for b in range(256)]
    return struct.pack("=512Q", *out, *reduce)


class Chunker:
    """Cuts one file at a time into chunks; reusable for the next file after ``finish()``.

    Not safe for use by several threads at once; use one Chunker per concurrent file (they are
    cheap: the tables are computed once per polynomial and shared).
    """

    def __init__(
        self,
        polynomial: int,
        min_size: int = MIN_SIZE,
        max_size: int = MAX_SIZE,
        average_bits: int = AVERAGE_BITS,
    ) -> None:
        check_parameters(polynomial, min_size, max_size, average_bits)
        self.polynomial = polynomial
        self.min_size = min_size
        self.max_size = max_size
        self.average_bits = average_bits
        self._scanner = Scanner(
            _tables(polynomial), degree(polynomial) - 8, (1 << average_bits) - 1, min_size, max_size
        )
        self._held: list[Buffer] = []  # the unfinished chunk's bytes, when fed
        self._held_size = 0

    @property
    def pending(self) -> int:
        """Length of the unfinished chunk: what ``finish()`` would return now."""
        return self._scanner.count

    def cuts(self, data: Buffer) -> list[int]:
        """Advance over the next bytes of the file; return the end offset, within ``data``,
        of each chunk completed inside it.

        The caller keeps the bytes: a completed chunk may begin in an earlier buffer, and at
        the end of the file the last ``pending`` bytes form the final chunk. Call ``reset()``
        before the next file.
        """
        return self._scanner.scan(data)

    def feed(self, data: Buffer) -> list[bytes]:
        """Advance over the next bytes of the file; return the chunks completed so far.

        The unfinished chunk's bytes are kept (copied when ``data`` is mutable, so the
        caller may reuse its buffer), and joined once when the chunk ends.
        """
        self._check_fed("feed")
        view = memoryview(data).cast("B")
        chunks = []
        start = 0
        for end in self._scanner.scan(view):
            if self._held:
                self._held.append(view[start:end])
                chunks.append(b"".join(self._held))
                self._held.clear()
                self._held_size = 0
            else:
                chunks.append(view[start:end].tobytes())
            start = end
        if start < len(view):
            rest = view[start:]
            self._held.append(rest if isinstance(data, bytes) else rest.tobytes())
            self._held_size += len(rest)
        return chunks

    def finish(self) -> bytes:
        """The last chunk of the file (``b""`` when there is none); then start over."""
        self._check_fed("finish")
        last = b"".join(self._held)
        self.reset()
        return last

    def reset(self) -> None:
        """Drop the unfinished chunk: the next bytes begin a new file."""
        self._scanner.reset()
        self._held.clear()
        self._held_size = 0

    def _check_fed(self, method: str) -> None:
        if self._held_size != self._scanner.count:
            raise RuntimeError(f"Chunker.{method}() on a file scanned with cuts()")


def chunk_file(
    source: str | os.PathLike[str] | BinaryIO, polynomial: int, read_size: int = READ_SIZE
) -> Iterator[bytes]:
    """The chunks of a whole file, given by path or as a binary file object."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from chunk_file(f, polynomial, read_size)
        return
    chunker = Chunker(polynomial)
    while buf := source.read(read_size):
        yield from chunker.feed(buf)
    last = chunker.finish()
    if last:
        yield last
