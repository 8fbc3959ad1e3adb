#!/usr/bin/env python3
"""Benchmark the blob index: memory per blob, load speed, lookup speed.

Builds synthetic restic index files (v2 style, deterministic seed, a few hundred blobs per
pack, at most --per-file blobs per file as restic writes them) in memory, then measures:

* memory: the process's resident set growth (/proc/self/statm) from just before loading
  to just after ``finish()``, with every JSON buffer freed and a garbage collection run,
  divided by the number of blobs. Each index file is generated, loaded and dropped in
  turn, as a repository load does, and the first reading is taken before any JSON exists,
  so whatever the C allocator keeps cached of freed buffers counts against the index.
  With ``--hold-json`` all files are generated before the first reading and are still
  alive at the second instead: the JSON then counts neither way. Peak growth (VmHWM) is
  reported where the kernel lets us reset it.
* load: seconds for every ``add_file`` plus ``finish()``, and blobs per second.
* lookups: ``has()`` for known and unknown ids, ``lookup()`` for known ids; many calls
  timed together, the Python loop around them included.

Usage: tools/bench_index.py [--blobs N] [--json]
"""

from __future__ import annotations

import argparse
import binascii
import gc
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from repofs.repo.index import BlobType, IndexBuilder

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Current resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def sample_step(blobs: int, samples: int) -> int:
    return max(1, blobs // max(1, samples))


def generate(blobs: int, per_file: int, seed: int, samples: int, sample: bytearray) -> Iterator[bytearray]:
    """Index files holding ``blobs`` blobs, one at a time.

    Every file is written into one bytearray, and every ``sample_step(...)``-th blob is
    recorded in ``sample`` (33 bytes each: type, id; sized by the caller), so generating
    leaves nothing behind that would count as memory growth.
    """
    rng = random.Random(seed)
    step = sample_step(blobs, samples)
    made = 0
    while made < blobs:
        in_file = min(per_file, blobs - made)
        doc = bytearray(b'{"packs":[')
        done = 0
        while done < in_file:
            n = min(rng.randint(100, 500), in_file - done)
            tree = rng.random() < 0.05  # restic keeps tree blobs in packs of their own
            name = b"tree" if tree else b"data"
            if done:
                doc += b","
            doc += b'{"id":"%s","blobs":[' % binascii.hexlify(rng.randbytes(32))
            offset = 0
            for i in range(n):
                raw = rng.randbytes(32)
                ulen = rng.randint(512, 1 << 20)
                length = ulen // 2 + 32
                if (made + done) % step == 0:
                    at = (made + done) // step * 33
                    sample[at:at + 33] = bytes([tree]) + raw
                doc += b'%s{"id":"%s","type":"%s","offset":%d,"length":%d,"uncompressed_length":%d}' % (
                    b"," if i else b"", binascii.hexlify(raw), name, offset, length, ulen)
                offset += length
                done += 1
            doc += b"]}"
        doc += b"]}\n"
        made += in_file
        yield doc


def per_call_us(fn, args: list[tuple[bytes, BlobType]]) -> float:
    start = time.perf_counter()
    for blob_id, type_ in args:
        fn(blob_id, type_)
    return (time.perf_counter() - start) / len(args) * 1e6


def run(blobs: int, per_file: int, seed: int, lookups: int, stream: bool) -> dict[str, object]:
    sample = bytearray(33 * -(-blobs // sample_step(blobs, lookups)))  # allocated before measuring
    files: Iterable[bytearray] = generate(blobs, per_file, seed, lookups, sample)
    if not stream:
        files = list(files)
    json_bytes = 0
    load_s = 0.0

    gc.collect()
    have_peak = reset_peak()
    before = rss()
    builder = IndexBuilder()
    for number, doc in enumerate(files):
        json_bytes += len(doc)
        start = time.perf_counter()
        builder.add_file(number.to_bytes(32, "big"), doc)
        load_s += time.perf_counter() - start
    del doc
    start = time.perf_counter()
    index = builder.finish()
    load_s += time.perf_counter() - start
    del builder
    gc.collect()
    after = rss()
    peak = peak_rss() - before if have_peak else None
    index_files = number + 1
    del files

    assert len(index) == blobs, (len(index), blobs)
    rng = random.Random(seed + 2)
    known = [(bytes(sample[i + 1:i + 33]), BlobType(sample[i])) for i in range(0, len(sample), 33)]
    hits = [known[rng.randrange(len(known))] for _ in range(lookups)]
    misses = [(rng.randbytes(32), BlobType.DATA) for _ in range(lookups)]
    assert all(index.has(i, t) for i, t in hits[:1000])
    assert not any(index.has(i, t) for i, t in misses[:1000])
    has_hit = per_call_us(index.has, hits)
    has_miss = per_call_us(index.has, misses)
    lookup_hit = per_call_us(index.lookup, hits)

    return {
        "blobs": blobs,
        "index_files": index_files,
        "json_bytes": json_bytes,
        "mode": "stream" if stream else "held",
        "rss_growth_bytes": after - before,
        "bytes_per_blob": (after - before) / blobs,
        "table_bytes_per_blob": index.nbytes() / blobs,
        "peak_growth_bytes": peak,
        "load_seconds": load_s,
        "blobs_per_second": blobs / load_s,
        "has_hit_us": has_hit,
        "has_miss_us": has_miss,
        "lookup_hit_us": lookup_hit,
        "lookups_timed": lookups,
    }


def describe(r: dict[str, object]) -> str:
    peak = r["peak_growth_bytes"]
    peak_text = f", peak +{peak / 2**20:.0f} MiB" if isinstance(peak, int) else ""
    return (
        f"{r['blobs']:,} blobs in {r['index_files']} index files ({r['json_bytes'] / 2**20:.0f} MiB JSON): "
        f"{r['bytes_per_blob']:.1f} bytes/blob RSS growth, JSON {'freed' if r['mode'] == 'stream' else 'held'} "
        f"(tables {r['table_bytes_per_blob']:.1f}){peak_text}; "
        f"load {r['load_seconds']:.2f} s ({r['blobs_per_second'] / 1e6:.2f} M blobs/s); "
        f"has() hit {r['has_hit_us']:.2f} µs, miss {r['has_miss_us']:.2f} µs; "
        f"lookup() hit {r['lookup_hit_us']:.2f} µs (per call, Python loop included)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=1_000_000, help="blobs to index (default 1,000,000)")
    parser.add_argument("--per-file", type=int, default=150_000, help="blobs per index file (restic v2: 150,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lookups", type=int, default=200_000, help="calls timed per lookup kind")
    parser.add_argument("--hold-json", action="store_true",
                        help="generate all JSON before measuring and keep it alive (see above)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a line of text")
    args = parser.parse_args(argv)
    if args.blobs < 1 or args.per_file < 1 or args.lookups < 1:
        parser.error("--blobs, --per-file and --lookups must be positive")
    result = run(args.blobs, args.per_file, args.seed, args.lookups, not args.hold_json)
    print(json.dumps(result) if args.json else describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
