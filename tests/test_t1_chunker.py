"""The chunker: C scanner against the Python reference, restic as the oracle, polynomials."""

from __future__ import annotations

import io
import json
import random
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repofs.chunker import (
    MAX_SIZE,
    MIN_SIZE,
    Chunker,
    _tables,
    chunk_file,
    degree,
    is_irreducible,
    random_polynomial,
)
from repofs.chunker.polynomial import gcd, mod, mulmod
from repofs.chunker.reference import ReferenceChunker, tables
from repofs.model.ids import hash_id, parse_id
from restic_util import backup, cat_blob, init_repo, needs_restic, restic

# Polynomials restic 0.14 chose for two test repositories (FORMAT.md 9).
POLY = 0x28E85720D1E23D
POLY_V1 = 0x2DB51D5E089F2D

KiB = 1024
MiB = 1024 * KiB


def lengths(chunks: list[bytes]) -> list[int]:
    return [len(c) for c in chunks]


def feed_pieces(chunker: Chunker, data: bytes, splits: list[int]) -> list[bytes]:
    """All chunks of ``data`` fed to ``chunker`` in pieces cut at ``splits``."""
    bounds = [0, *sorted(s for s in set(splits) if 0 < s < len(data)), len(data)]
    chunks: list[bytes] = []
    for a, b in zip(bounds, bounds[1:]):
        chunks += chunker.feed(data[a:b])
    last = chunker.finish()
    return chunks + [last] if last else chunks


def reference_lengths(data: bytes, **params: int) -> list[int]:
    return ReferenceChunker(POLY, **params).chunk_lengths(data)


def awkward_splits(cut_lengths: list[int], min_size: int) -> list[int]:
    """Buffer boundaries around every place the scanner changes mode: start of hashing,
    first checked byte, every cut, and one-byte buffers across each cut."""
    splits = []
    start = 0
    for n in cut_lengths:
        for rel in (1, min_size - 65, min_size - 64, min_size - 63, min_size - 1, min_size,
                    min_size + 1, n - 64, n - 63, n - 62, n - 1, n, n + 1, n + 63, n + 64):
            splits.append(start + rel)
        splits.extend(range(start + n - 70, start + n + 70))
        start += n
    return splits


# --- polynomials ---------------------------------------------------------------------


def clmul(a: int, b: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        a <<= 1
        b >>= 1
    return result


def brute_irreducible(p: int) -> bool:
    n = degree(p)
    return n >= 1 and all(mod(p, q) for q in range(2, 1 << (n // 2 + 1)))


def necklace_count(n: int) -> int:
    """Number of irreducible polynomials of degree n over GF(2) (Gauss's formula)."""

    def mobius(k: int) -> int:
        result, f = 1, 2
        while f * f <= k:
            if k % f == 0:
                k //= f
                if k % f == 0:
                    return 0
                result = -result
            f += 1
        return -result if k > 1 else result

    return sum(mobius(d) * 2 ** (n // d) for d in range(1, n + 1) if n % d == 0) // n


def test_degree() -> None:
    assert degree(0) == -1
    assert degree(1) == 0
    assert degree(0b1011) == 3
    assert degree(POLY) == 53


@given(st.integers(0, 1 << 60), st.integers(0, 1 << 60), st.integers(2, 1 << 54))
def test_mulmod_is_reduced_carryless_product(a: int, b: int, p: int) -> None:
    assert mulmod(a, b, p) == mod(clmul(a, b), p)
    assert degree(mod(a, p)) < degree(p)


def test_gcd_of_products() -> None:
    f, g, h = 0b1011, 0b10011, 0b111  # irreducible of degrees 3, 4, 2
    assert gcd(clmul(f, g), clmul(f, h)) == f
    assert gcd(f, g) == 1


def test_is_irreducible_matches_trial_division() -> None:
    for p in range(1 << 10):
        assert is_irreducible(p) == brute_irreducible(p), hex(p)


@pytest.mark.parametrize("n", range(1, 14))
def test_is_irreducible_counts(n: int) -> None:
    found = sum(is_irreducible(p) for p in range(1 << n, 1 << (n + 1)))
    assert found == necklace_count(n)


def test_restic_polynomials_are_irreducible_and_products_are_not() -> None:
    assert is_irreducible(POLY) and is_irreducible(POLY_V1)
    f = 0b1011  # x^3 + x + 1
    assert not is_irreducible(clmul(POLY, f))
    assert not is_irreducible(clmul(POLY, POLY_V1))
    assert not is_irreducible(POLY << 1)  # divisible by x


def test_random_polynomial() -> None:
    seen = set()
    for _ in range(4):
        p = random_polynomial()
        assert degree(p) == 53 and p & 1
        assert is_irreducible(p)
        seen.add(p)
    assert len(seen) == 4


# --- tables and parameters -----------------------------------------------------------


@pytest.mark.parametrize("poly", [POLY, POLY_V1, 0x11B])
def test_fast_tables_equal_reference(poly: int) -> None:
    out, reduce = tables(poly)
    assert struct.unpack("=512Q", _tables(poly)) == (*out, *reduce)


def test_tables_are_cached() -> None:
    assert _tables(POLY) is _tables(POLY)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"polynomial": POLY << 1},  # degree 54
        {"polynomial": 0x1D},  # degree 4
        {"polynomial": POLY, "min_size": 63, "max_size": 100},
        {"polynomial": POLY, "min_size": 200, "max_size": 199},
        {"polynomial": POLY, "average_bits": 64},
    ],
)
def test_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Chunker(**kwargs)
    with pytest.raises(ValueError):
        ReferenceChunker(**kwargs)


# --- C scanner against the reference ---------------------------------------------------


@st.composite
def small_cases(draw: st.DrawFn) -> tuple[dict[str, int], bytes, list[int]]:
    """Small chunk sizes and data mixing random runs with constant runs, plus buffer splits."""
    min_size = draw(st.integers(64, 300))
    max_size = min_size + draw(st.sampled_from([0, 1, 63, 64, 200, 1000, 3000]))
    params = {"min_size": min_size, "max_size": max_size, "average_bits": draw(st.integers(0, 9))}
    parts = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=1500),
                st.builds(lambda b, n: bytes([b]) * n, st.integers(0, 255), st.integers(0, 3000)),
            ),
            max_size=6,
        )
    )
    data = b"".join(parts)
    splits = draw(st.lists(st.integers(0, len(data)), max_size=20))
    return params, data, splits


@settings(max_examples=300, deadline=None)
@given(small_cases())
def test_small_sizes_match_reference(case: tuple[dict[str, int], bytes, list[int]]) -> None:
    params, data, splits = case
    chunks = feed_pieces(Chunker(POLY, **params), data, splits)
    assert b"".join(chunks) == data
    assert lengths(chunks) == reference_lengths(data, **params)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 200))
def test_small_sizes_every_byte_its_own_buffer(seed: int, min_extra: int) -> None:
    params = {"min_size": 64 + min_extra, "max_size": 64 + 5 * min_extra, "average_bits": 5}
    data = random.Random(seed).randbytes(2000)
    chunks = feed_pieces(Chunker(POLY, **params), data, list(range(len(data))))
    assert lengths(chunks) == reference_lengths(data, **params)


@pytest.mark.parametrize("min_size", [64, 65, 100])
def test_small_sizes_short_tail_after_cut(min_size: int) -> None:
    """Buffers that end a few bytes after a cut: the next window starts in the old buffer."""
    params = {"min_size": min_size, "max_size": 4 * min_size, "average_bits": 3}
    data = random.Random(min_size).randbytes(3000)
    expected = reference_lengths(data, **params)
    for size in range(2, 130):
        chunks = feed_pieces(Chunker(POLY, **params), data, list(range(0, len(data), size)))
        assert lengths(chunks) == expected, size


@pytest.mark.parametrize("average_bits", [9, 12, 14])
def test_long_scans_with_frequent_matches(average_bits: int) -> None:
    """Scans long enough for the interleaved lanes, with several matches per lane."""
    params = {"min_size": 64, "max_size": 256 * KiB, "average_bits": average_bits}
    data = random.Random(average_bits).randbytes(512 * KiB)
    expected = reference_lengths(data, **params)
    assert len(expected) > 10
    assert lengths(feed_pieces(Chunker(POLY, **params), data, [])) == expected


@pytest.fixture(scope="module")
def random_3mib() -> tuple[bytes, list[int]]:
    """3 MiB of seeded random data and the reference's chunk lengths at restic's sizes."""
    data = random.Random(3).randbytes(3 * MiB)
    return data, ReferenceChunker(POLY).chunk_lengths(data)


def test_real_sizes_match_reference(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    assert len(expected) > 1  # the data has content-defined cuts, not only the end
    chunks = Chunker(POLY).feed(data)
    assert lengths(chunks) + [len(data) - sum(lengths(chunks))] == expected


def test_real_sizes_awkward_buffers(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    chunks = feed_pieces(Chunker(POLY), data, awkward_splits(expected, MIN_SIZE))
    assert lengths(chunks) == expected
    assert b"".join(chunks) == data


def test_cuts_reports_offsets_within_each_buffer(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    chunker = Chunker(POLY)
    ends = []
    for base in range(0, len(data), 100_000):
        ends += [base + e for e in chunker.cuts(data[base : base + 100_000])]
    assert ends == [sum(expected[: i + 1]) for i in range(len(expected) - 1)]
    assert chunker.pending == expected[-1]
    with pytest.raises(RuntimeError):
        chunker.finish()  # the caller holds the bytes
    chunker.reset()
    assert chunker.pending == 0


# --- edge cases of FORMAT.md 9 ------------------------------------------------------------


def test_zeros_cut_at_min_size() -> None:
    data = bytes(3 * MiB + 7)
    expected = [MIN_SIZE] * 6 + [7]
    assert reference_lengths(data) == expected
    assert lengths(feed_pieces(Chunker(POLY), data, [])) == expected
    assert lengths(feed_pieces(Chunker(POLY), data, awkward_splits(expected, MIN_SIZE))) == expected


def test_constant_ones_cut_at_max_size() -> None:
    data = b"\x01" * (20 * MiB + 5)
    assert lengths(Chunker(POLY).feed(data)) == [MAX_SIZE, MAX_SIZE]
    assert lengths(list(chunk_file(io.BytesIO(data), POLY))) == [MAX_SIZE, MAX_SIZE, 4 * MiB + 5]


def test_exactly_min_size_is_one_chunk() -> None:
    data = random.Random(5).randbytes(MIN_SIZE)
    assert reference_lengths(data) == [MIN_SIZE]
    assert lengths(feed_pieces(Chunker(POLY), data, [MIN_SIZE - 64, MIN_SIZE - 1])) == [MIN_SIZE]
    # One more byte: zeros match at the first checked position, so the extra byte is alone.
    assert lengths(feed_pieces(Chunker(POLY), bytes(MIN_SIZE + 1), [])) == [MIN_SIZE, 1]


def test_empty_input() -> None:
    chunker = Chunker(POLY)
    assert chunker.feed(b"") == []
    assert chunker.finish() == b""
    assert list(chunk_file(io.BytesIO(b""), POLY)) == []
    assert ReferenceChunker(POLY).chunk_lengths(b"") == []


def test_chunker_is_reusable_after_finish(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    chunker = Chunker(POLY)
    chunker.feed(data[:1_000_000])
    chunker.finish()
    assert lengths(feed_pieces(chunker, data, [])) == expected


def test_feed_copies_reused_buffers(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    src = io.BytesIO(data)
    buf = bytearray(300_000)
    chunker = Chunker(POLY)
    chunks = []
    while n := src.readinto(buf):
        chunks += chunker.feed(memoryview(buf)[:n])
        buf[:] = bytes(len(buf))  # the caller scribbles over its buffer
    chunks.append(chunker.finish())
    assert b"".join(chunks) == data
    assert lengths(chunks) == expected


def test_chunkers_in_parallel_threads(random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib

    def run(read_size: int) -> list[int]:
        return lengths(list(chunk_file(io.BytesIO(data), POLY, read_size=read_size)))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [65_536, 100_003, 1 << 20, 3 * MiB]))
    assert results == [expected] * 4


def test_chunk_file_by_path(tmp_path: Path, random_3mib: tuple[bytes, list[int]]) -> None:
    data, expected = random_3mib
    path = tmp_path / "f"
    path.write_bytes(data)
    assert lengths(list(chunk_file(path, POLY, read_size=777_777))) == expected


# --- restic as the oracle ---------------------------------------------------------------


def _content_ids_by_name(repo: Path, snapshot_id: str) -> dict[str, list[bytes]]:
    """The data blob ids of each file at the top of a snapshot, as restic stored them."""
    snapshot = json.loads(restic(repo, "cat", "snapshot", snapshot_id))
    tree = json.loads(cat_blob(repo, snapshot["tree"]))
    return {
        n["name"]: [parse_id(i) for i in n["content"]] for n in tree["nodes"] if n["type"] == "file"
    }


@needs_restic
@pytest.mark.slow
def test_chunks_equal_restic_blobs(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    poly = int(json.loads(restic(repo, "cat", "config"))["chunker_polynomial"], 16)
    assert degree(poly) == 53 and is_irreducible(poly)
    src = tmp_path / "src"
    src.mkdir()
    files = {
        "random.bin": random.Random(20).randbytes(20 * MiB),
        "ones.bin": b"\x01" * (2 * MAX_SIZE + 5),
        "zeros.bin": bytes(3 * MiB + 7),
        "min.bin": random.Random(21).randbytes(MIN_SIZE),
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    stored = _content_ids_by_name(repo, backup(repo, src))
    assert sorted(stored) == sorted(files)
    assert len(stored["random.bin"]) > 5
    for name in files:
        assert [hash_id(c) for c in chunk_file(src / name, poly)] == stored[name], name
