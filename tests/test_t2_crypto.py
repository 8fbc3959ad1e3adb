"""Sealing and opening: round trips, and every damaged byte is caught by the MAC; the C
sealer (OpenSSL from C, without the GIL) and the cryptography package agree on every byte."""

from __future__ import annotations

import concurrent.futures

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repofs.model.ids import hash_id
from repofs.repo import _seal, compress
from repofs.repo.crypto import NATIVE, OVERHEAD, Key, MacError

KEY = Key.random()
# The same key through the cryptography package.
REFERENCE = Key(KEY.encrypt, KEY.mac_k, KEY.mac_r, native=False)
native_only = pytest.mark.skipif(not NATIVE, reason="the C sealer is not available")


@given(st.binary(max_size=5000))
def test_round_trip(plain: bytes) -> None:
    sealed = KEY.seal(plain)
    assert len(sealed) == len(plain) + OVERHEAD
    assert KEY.open(sealed) == plain


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=300), st.data(), st.sampled_from([KEY, REFERENCE]))
def test_any_flipped_bit_fails(plain: bytes, data: st.DataObject, key: Key) -> None:
    sealed = bytearray(key.seal(plain))
    pos = data.draw(st.integers(0, len(sealed) - 1))
    sealed[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(MacError):
        key.open(bytes(sealed))


@native_only
@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16),
       st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
       st.integers(0, 9000), st.randoms(use_true_random=False))
def test_native_matches_cryptography(encrypt: bytes, mac_k: bytes, mac_r: bytes, iv: bytes, size: int,
                                     rnd: object) -> None:
    plain = rnd.randbytes(size)  # type: ignore[attr-defined]
    reference = Key(encrypt, mac_k, mac_r, native=False)
    native = _seal.SealKey(encrypt, mac_k, reference.mac_r)
    sealed = native.seal(iv, plain)
    assert sealed[:16] == iv and len(sealed) == size + OVERHEAD
    if any(iv):
        assert reference.open(sealed) == plain  # the reference checks our MAC and decrypts
    assert native.open(reference.seal(plain)) == plain
    assert native.open(memoryview(sealed)) == plain


@native_only
@pytest.mark.parametrize("iv", [b"\xff" * 16, b"\x00" * 8 + b"\xff" * 8, b"\x01" + b"\x00" * 7 + b"\xff" * 8,
                                b"\x00" * 15 + b"\x01"])
@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 4095, 4096, 70_000, 1 << 20])
def test_native_counter_carries_like_go(iv: bytes, size: int) -> None:
    """The whole IV block is one big-endian counter, carried across its 64-bit halves and
    wrapping around at the end, as Go's CTR (and OpenSSL's) does."""
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sealed = _seal.SealKey(KEY.encrypt, KEY.mac_k, KEY.mac_r).seal(iv, plain)
    assert REFERENCE.open(sealed) == plain


@native_only
def test_native_key_serves_many_threads_at_once() -> None:
    """Threads share one SealKey and the OpenSSL contexts it keeps between calls: every
    object sealed or opened at the same time still matches the reference."""
    native = _seal.SealKey(KEY.encrypt, KEY.mac_k, KEY.mac_r)
    plains = [bytes([n]) * size for n, size in enumerate([0, 1, 15, 100, 4096, 5000, 70_000, 1 << 20] * 2)]

    def work(n: int) -> list[bool]:
        checks = []
        for round in range(30):
            plain = plains[(n + round) % len(plains)]
            iv = bytes([n + 1, round]) + bytes(14)
            sealed = native.seal(iv, plain)
            checks.append(REFERENCE.open(sealed) == plain and native.open(REFERENCE.seal(plain)) == plain)
        return checks

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(16)))
    assert all(all(checks) for checks in results) and len(results) == 16


@native_only
def test_native_key_initialised_again_uses_the_new_keys() -> None:
    native = _seal.SealKey(KEY.encrypt, KEY.mac_k, KEY.mac_r)
    iv = bytes(range(1, 17))
    assert KEY.open(native.seal(iv, b"x" * 5000)) == b"x" * 5000  # contexts kept for KEY
    other = Key.random(native=False)
    native.__init__(other.encrypt, other.mac_k, other.mac_r)  # type: ignore[misc]
    assert other.open(native.seal(iv, b"y" * 5000)) == b"y" * 5000


@pytest.mark.parametrize("size", [6, 5000])
def test_other_key_fails(size: int) -> None:
    with pytest.raises(MacError):
        Key.random().open(KEY.seal(bytes(size)))
    with pytest.raises(MacError):
        Key.random(native=False).open(KEY.seal(bytes(size)))


def test_r_is_masked_and_json_round_trips() -> None:
    key = Key(bytes(range(32)), bytes(range(16)), b"\xff" * 16)
    assert key.mac_r == bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")
    assert Key.from_json(key.to_json()) == key


def test_short_and_zero_iv_refused() -> None:
    with pytest.raises(MacError):
        KEY.open(b"\x00" * 10)
    sealed = KEY.seal(b"abc")
    with pytest.raises(MacError):
        KEY.open(b"\x00" * 16 + sealed[16:])


@native_only
@pytest.mark.parametrize("size", [16, 31, 32, 33, 48, 64, 4096, 5000])
@pytest.mark.parametrize("r", [b"\x01" + bytes(15), bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")])
def test_native_mac_reduces_like_the_reference(size: int, r: bytes) -> None:
    """Ciphertexts of all-ones bytes with r = 1 or the largest r drive the accumulator to or
    past 2^130 - 5, through the final reduction that random data almost never reaches."""
    iv = bytes(range(1, 17))
    reference = Key(KEY.encrypt, KEY.mac_k, r, native=False)
    native = _seal.SealKey(KEY.encrypt, KEY.mac_k, r)
    stream = native.seal(iv, bytes(size))[16:-16]
    plain = bytes(b ^ 0xFF for b in stream)
    sealed = native.seal(iv, plain)
    assert sealed[16:-16] == b"\xff" * size
    assert reference.open(sealed) == plain


Described = list[tuple[int, int, int, bytes]]  # open_blobs' (offset, length, uncompressed, id)


def _range_of(blobs: list[tuple[bytes, bool]], gap: bytes = b"\0" * 7) -> tuple[bytes, Described]:
    """Sealed blobs back to back (with gaps), and open_blobs' description of each."""
    raw = bytearray(gap)
    items = []
    for plain, compressed in blobs:
        sealed = KEY.seal(compress.compress(plain) if compressed else plain)
        items.append((len(raw), len(sealed), len(plain) if compressed else -1, hash_id(plain)))
        raw += sealed + gap
    return bytes(raw), items


@native_only
@settings(max_examples=100)
@given(st.lists(st.tuples(st.binary(max_size=3000) | st.sampled_from([bytes(70_000), b"ab" * 40_000]),
                          st.booleans()), max_size=8))
def test_open_blobs_decodes_ranges(blobs: list[tuple[bytes, bool]]) -> None:
    raw, items = _range_of(blobs)
    assert KEY.native is not None
    assert KEY.native.open_blobs(raw, items) == [plain for plain, _ in blobs]
    assert KEY.native.open_blobs(memoryview(raw), items[::-1]) == [plain for plain, _ in blobs][::-1]


@native_only
def test_open_blobs_reports_each_damage_alone() -> None:
    blobs = [(b"first" * 100, True), (b"second" * 100, False), (b"third" * 100, True), (b"fourth", False),
             (b"fifth" * 100, True), (b"sixth", False)]
    raw, items = _range_of(blobs)
    damaged = bytearray(raw)
    damaged[items[0][0] + 20] ^= 1  # a ciphertext byte: MAC
    items[1] = (*items[1][:3], hash_id(b"something else"))  # id mismatch
    items[2] = (items[2][0], items[2][1], items[2][2] + 1, items[2][3])  # not the recorded length
    items[3] = (len(raw) - 10, items[3][1], -1, items[3][3])  # beyond the range
    damaged[items[4][0]:items[4][0] + 16] = bytes(16)  # an all-zero IV
    assert KEY.native is not None
    got = KEY.native.open_blobs(bytes(damaged), items)
    assert got == [1, 3, 2, 4, 1, b"sixth"]


@native_only
async def test_repository_decodes_ranges_alike_with_and_without_the_c_decoder() -> None:
    from repofs.repo.index import BlobLocation, BlobType
    from repofs.repo.repository import Repository

    blobs = [(b"plain" * 50, False), (b"packed" * 500, True), (b"", False), (b"damaged" * 10, True)]
    raw, items = _range_of(blobs)
    damaged = bytearray(raw)
    damaged[items[3][0] + 30] ^= 4
    pack_id = hash_id(b"pack")
    located = [(blob_id, BlobLocation(pack_id, 1000 + offset, length, None if ulen < 0 else ulen))
               for offset, length, ulen, blob_id in items]
    results = []
    for key in (KEY, REFERENCE):
        repo = Repository(None, key, None)  # type: ignore[arg-type]  # decoding needs the key alone
        results.append(repo.decode_blobs(BlobType.DATA, pack_id, 1000, bytes(damaged), located))
    native, reference = results
    assert native[:3] == reference[:3] == [plain for plain, _ in blobs[:3]]
    assert str(native[3]) == str(reference[3]) and "MAC mismatch" in str(native[3])
