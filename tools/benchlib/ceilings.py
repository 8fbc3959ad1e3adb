"""What this machine does at best, to read the operations' figures against.

* disk: the dataset read through once, one thread, 1 MiB reads, after ``sync`` and
  ``posix_fadvise(DONTNEED)`` on every file (file contents leave this kernel's page cache;
  folder and inode metadata stay cached; in a virtual machine the host may still cache the
  disk), then the big files alone the same way, then both again from the page cache;
* CPU, one core, on 1 MiB pieces of the first big file (about a blob each): AES-256-CTR and
  Poly1305 from ``cryptography``, both together in repofs' own sealer (OpenSSL called from C
  without the GIL, as repofs seals), SHA-256 from ``hashlib``, zstd level 3 and its
  decompression from ``zstandard``; best of five passes;
* the chunker (``tools/bench_chunker.py``) and the blob index (``tools/bench_index.py``),
  both repofs only, run as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .dataset import MIB, Dataset
from .tools import ROOT

Figure = dict[str, object]


def regular_files(root: Path) -> list[Path]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def evict(paths: list[Path]) -> None:
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(paths: list[Path]) -> tuple[int, float]:
    buffer = bytearray(MIB)
    total = 0
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                total += n
    return total, time.perf_counter() - start


def disk(ds: Dataset) -> list[Figure]:
    every = regular_files(ds.data)
    big = [ds.data / p for p in ds.manifest.big]
    out = []
    for name, paths, cold in (("disk read, whole dataset, cold", every, True),
                              ("disk read, big files only, cold", big, True),
                              ("page cache read, whole dataset, warm", every, False),
                              ("page cache read, big files only, warm", big, False)):
        if cold:
            evict(paths)
        total, seconds = read_all(paths)
        out.append({"name": name, "bytes": total, "files": len(paths), "seconds": seconds,
                    "mb_per_second": total / seconds / 1e6})
    return out


def best(run: Callable[[], object], passes: int = 5) -> float:
    fastest = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def cpu(ds: Dataset, mib: int) -> list[Figure]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305
    import zstandard

    with open(ds.data / ds.big_file, "rb") as f:
        sample = f.read(mib * MIB)
    pieces = [sample[i:i + MIB] for i in range(0, len(sample), MIB)]
    pieces = (pieces * -(-mib // len(pieces)))[:mib]
    size = sum(len(p) for p in pieces)
    key, nonce = bytes(range(32)), bytes(range(16))
    compressor = zstandard.ZstdCompressor(level=3)
    frames = [compressor.compress(p) for p in pieces]
    decompressor = zstandard.ZstdDecompressor()

    def aes() -> None:
        for p in pieces:
            enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
            enc.update(p)
            enc.finalize()

    runs: list[tuple[str, Callable[[], object], str]] = [
        ("AES-256-CTR (cryptography)", aes, ""),
        ("Poly1305 (cryptography)", lambda: [Poly1305.generate_tag(key, p) for p in pieces], ""),
        ("SHA-256 (hashlib)", lambda: [hashlib.sha256(p).digest() for p in pieces], ""),
        ("zstd compress, level 3 (zstandard)", lambda: [compressor.compress(p) for p in pieces],
         f"ratio {size / sum(map(len, frames)):.2f}"),
        ("zstd decompress (zstandard)", lambda: [decompressor.decompress(f) for f in frames], ""),
    ]
    from repofs.repo import _seal
    if _seal.available():
        sealer = _seal.SealKey(key, key[:16], key[16:])
        runs.insert(2, ("AES-256-CTR + Poly1305 seal (repofs, C)", lambda: [sealer.seal(nonce, p) for p in pieces], ""))
    out = []
    for name, run, note in runs:
        seconds = best(run)
        out.append({"name": name, "bytes": size, "seconds": seconds, "mb_per_second": size / seconds / 1e6,
                    "note": note or f"{len(pieces)} pieces of 1 MiB, best of 5"})
    return out


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def chunker(mib: int) -> list[Figure]:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_chunker.py"), "--mib", str(mib),
                           "--reference-mib", "1", "--repeat", "3"],
                          env=python_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return [{"name": "chunker", "error": done.stderr.strip().splitlines()[-1:]}]
    out = []
    for line in done.stdout.splitlines():
        found = re.match(r"(.*?)\s+([\d.]+) MB/s$", line.strip())
        if found:
            out.append({"name": f"repofs chunker: {found[1]}", "mb_per_second": float(found[2]),
                        "note": f"{mib} MiB random" if "reference" not in found[1] else "1 MiB random"})
    return out


def index(blobs: int) -> Figure:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_index.py"), "--blobs", str(blobs), "--json"],
                          env=python_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"blobs": blobs, "error": lines[-1] if lines else f"exit {done.returncode}"}
    result: Figure = json.loads(done.stdout)
    return result
