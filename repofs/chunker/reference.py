"""The chunking algorithm in plain Python: the specification the C scanner is tested against.

It follows restic's chunker (restic/chunker v0.4.0, FORMAT.md section 9) step by step: a
64-byte window whose Rabin fingerprint modulo the repository's polynomial is updated one byte
at a time; a chunk ends after the byte at which the low ``average_bits`` bits of the
fingerprint are all zero, but never before ``min_size`` bytes and always at ``max_size``. The
first ``min_size - 64`` bytes of every chunk are not hashed, and the state is reset after
every cut. It is slow (a few MB/s); use it on small inputs only.
"""

from __future__ import annotations

from .polynomial import degree, mod

WINDOW_SIZE = 64
MIN_SIZE = 512 * 1024
MAX_SIZE = 8 * 1024 * 1024
AVERAGE_BITS = 20
#: Highest polynomial degree the fingerprint arithmetic (64-bit words) allows.
MAX_DEGREE = 53
MIN_DEGREE = 8


def check_parameters(polynomial: int, min_size: int, max_size: int, average_bits: int) -> None:
    """Raise ValueError unless the chunker can work with these parameters."""
    if not MIN_DEGREE <= degree(polynomial) <= MAX_DEGREE:
        raise ValueError(
            f"chunker polynomial {polynomial:#x} has degree {degree(polynomial)}, "
            f"want {MIN_DEGREE}..{MAX_DEGREE}"
        )
    if not WINDOW_SIZE <= min_size <= max_size:
        raise ValueError(f"want {WINDOW_SIZE} <= min_size <= max_size, got {min_size}, {max_size}")
    if not 0 <= average_bits < 64:
        raise ValueError(f"average_bits must be in 0..63, got {average_bits}")


def append_byte(h: int, b: int, polynomial: int) -> int:
    """The fingerprint ``h`` extended by one byte: ``(h * x^8 + b) mod polynomial``."""
    return mod((h << 8) | b, polynomial)


def tables(polynomial: int) -> tuple[list[int], list[int]]:
    """The two 256-entry lookup tables of a polynomial, as restic defines them.

    ``out[b]`` is the fingerprint of byte ``b`` followed by 63 zero bytes: XOR-ing it removes
    ``b`` when it leaves the window. ``mod[b]`` is ``(b * x^k mod P) | (b * x^k)`` for
    k = deg(P): XOR-ing it clears the 8 bits above the degree and adds their remainder.
    """
    k = degree(polynomial)
    out = []
    for b in range(256):
        h = append_byte(0, b, polynomial)
        for _ in range(WINDOW_SIZE - 1):
            h = append_byte(h, 0, polynomial)
        out.append(h)
    modt = [mod(b << k, polynomial) | (b << k) for b in range(256)]
    return out, modt


class ReferenceChunker:
    """restic's chunker state machine over one in-memory byte string."""

    def __init__(
        self,
        polynomial: int,
        min_size: int = MIN_SIZE,
        max_size: int = MAX_SIZE,
        average_bits: int = AVERAGE_BITS,
    ) -> None:
        check_parameters(polynomial, min_size, max_size, average_bits)
        self.out, self.mod = tables(polynomial)
        self.shift = degree(polynomial) - 8
        self.min_size = min_size
        self.max_size = max_size
        self.split_mask = (1 << average_bits) - 1
        self._reset()

    def _reset(self) -> None:
        self.window = [0] * WINDOW_SIZE
        self.wpos = 0
        self.digest = 0
        self._slide(1)

    def _slide(self, b: int) -> None:
        o = self.window[self.wpos]
        self.window[self.wpos] = b
        self.wpos = (self.wpos + 1) % WINDOW_SIZE
        self.digest ^= self.out[o]
        top = self.digest >> self.shift
        self.digest = ((self.digest << 8) | b) ^ self.mod[top]

    def chunk_lengths(self, data: bytes) -> list[int]:
        """Lengths of the chunks ``data`` is cut into, as if it were one whole file."""
        lengths = []
        start = 0
        while start < len(data):
            self._reset()
            pos = start + self.min_size - WINDOW_SIZE  # skipped, not hashed
            end = len(data)  # unless a cut comes first, the data ends the chunk
            while pos < len(data):
                self._slide(data[pos])
                pos += 1
                length = pos - start
                if length >= self.min_size and (
                    self.digest & self.split_mask == 0 or length >= self.max_size
                ):
                    end = pos
                    break
            lengths.append(end - start)
            start = end
        return lengths
