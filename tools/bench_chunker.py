#!/usr/bin/env python3
"""Throughput of the chunker on seeded random data, one core.

Reports MB/s (10^6 bytes per second) of:
  * the C scanner with restic's parameters, boundaries only (``cuts``) and with the chunk
    bytes assembled (``feed``);
  * the C scanner with min_size = 64, so that nearly every byte is hashed (the raw speed of
    the inner loop; with restic's parameters about a third of the bytes are skipped);
  * the pure-Python reference, on a smaller sample.

Usage: bench_chunker.py [--mib 256] [--reference-mib 4] [--repeat 3]
(with repofs installed, or from the checkout with PYTHONPATH=. after building the extension)
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from repofs.chunker import READ_SIZE, Chunker
from repofs.chunker.reference import ReferenceChunker

POLYNOMIAL = 0x28E85720D1E23D  # a polynomial restic chose for a test repository


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def in_reads(data: bytes) -> list[memoryview]:
    view = memoryview(data)
    return [view[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]


def scan_cuts(chunker: Chunker, reads: list[memoryview]) -> int:
    n = sum(len(chunker.cuts(r)) for r in reads)
    chunker.reset()
    return n


def scan_feed(chunker: Chunker, reads: list[memoryview]) -> int:
    n = sum(len(chunker.feed(r)) for r in reads)
    return n + bool(chunker.finish())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="data for the C scanner")
    parser.add_argument("--reference-mib", type=int, default=4, help="data for the reference")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best one counts")
    args = parser.parse_args()

    rng = random.Random(0)
    data = b"".join(rng.randbytes(1 << 20) for _ in range(args.mib))
    reads = in_reads(data)
    mb = len(data) / 1e6

    restic = Chunker(POLYNOMIAL)
    hash_all = Chunker(POLYNOMIAL, min_size=64)
    rows = [
        ("C, restic parameters, cuts()", lambda: scan_cuts(restic, reads), mb),
        ("C, restic parameters, feed()", lambda: scan_feed(restic, reads), mb),
        ("C, min_size=64 (every byte hashed)", lambda: scan_cuts(hash_all, reads), mb),
    ]
    sample = data[: args.reference_mib << 20]
    reference = ReferenceChunker(POLYNOMIAL)
    rows.append(
        (
            "Python reference, restic parameters",
            lambda: reference.chunk_lengths(sample),
            len(sample) / 1e6,
        )
    )
    for name, run, size in rows:
        seconds = best_seconds(run, args.repeat if size == mb else 1)
        print(f"{name:40s} {size / seconds:10.1f} MB/s")


if __name__ == "__main__":
    main()
