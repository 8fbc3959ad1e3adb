"""scrypt with parallel lanes: the same bytes as hashlib.scrypt, and restic's key files open."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restic_util import PASSWORD, needs_restic
from repofs.backend.base import FileType
from repofs.backend.local import LocalBackend
from repofs.errors import IntegrityError, WrongPassword
from repofs.repo import _scrypt
from repofs.repo.keyfile import KeyFile
from repofs.repo.repository import Repository
from repofs.repo import scrypt as scrypt_module
from repofs.repo.scrypt import MEMORY_BUDGET, derive_ahead, lane_threads, scrypt


def oracle(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=1 << 30)


@settings(max_examples=150, deadline=None)
@given(password=st.binary(max_size=80), salt=st.binary(max_size=80), log_n=st.integers(1, 9),
       r=st.integers(1, 5), p=st.integers(1, 5), dklen=st.integers(1, 130))
def test_matches_hashlib(password: bytes, salt: bytes, log_n: int, r: int, p: int, dklen: int) -> None:
    assert scrypt(password, salt, 1 << log_n, r, p, dklen) == oracle(password, salt, 1 << log_n, r, p, dklen)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), log_n=st.integers(1, 10), r=st.integers(1, 9))
def test_every_code_path_agrees(data: st.DataObject, log_n: int, r: int) -> None:
    """Plain C, SSE2 and AVX-512 (those this machine runs) give the same lane."""
    block = data.draw(st.binary(min_size=128 * r, max_size=128 * r))
    want = _scrypt.romix_on("none", block, 1 << log_n, r)
    assert all(_scrypt.romix_on(path, block, 1 << log_n, r) == want for path in _scrypt.PATHS)
    assert _scrypt.romix(block, 1 << log_n, r) == want


@pytest.mark.parametrize("path", _scrypt.PATHS)
def test_one_lane_is_romix(path: str) -> None:
    """scrypt with p=1 is PBKDF2, ROMix, PBKDF2: checks each code path alone against OpenSSL."""
    password, salt, n, r = b"pleaseletmein", b"SodiumChloride", 1 << 12, 8
    lane = hashlib.pbkdf2_hmac("sha256", password, salt, 1, 128 * r)
    derived = hashlib.pbkdf2_hmac("sha256", password, _scrypt.romix_on(path, lane, n, r), 1, 64)
    assert derived == oracle(password, salt, n, r, 1, 64)


def test_best_path_is_last() -> None:
    assert _scrypt.PATHS[0] == "none" and _scrypt.PATHS[-1] == _scrypt.SIMD
    with pytest.raises(ValueError):
        _scrypt.romix_on("mmx", bytes(128), 16, 1)


def test_restic_parameters() -> None:
    """N=2^15, r=8 and the p=9 restic's calibration picks on a fast machine: nine lanes."""
    password, salt = os.urandom(12), os.urandom(64)
    assert scrypt(password, salt, 1 << 15, 8, 9, 64) == oracle(password, salt, 1 << 15, 8, 9, 64)


def test_lane_threads_stay_within_cores_and_memory() -> None:
    cores = len(os.sched_getaffinity(0))
    assert lane_threads(1 << 15, 8, 9) == min(9, cores, MEMORY_BUDGET // (32 << 20))
    assert lane_threads(1 << 15, 8, 1) == 1
    assert lane_threads(1 << 22, 8, 9) == 1  # 4 GiB a lane: one at a time, like hashlib
    for p in range(1, 20):
        assert lane_threads(1 << 15, 8, p) * (1 << 15) * 8 * 128 <= max(MEMORY_BUDGET, (1 << 15) * 8 * 128)


@pytest.mark.parametrize("n", [0, 1, 3, 6, 1 << 16])
def test_bad_cost_refused(n: int) -> None:
    """N must be a power of two above 1, and with r=1 below 2^16 (RFC 7914)."""
    with pytest.raises(ValueError):
        _scrypt.romix(bytes(128), n, 1)
    with pytest.raises(ValueError):
        scrypt(b"pw", b"salt", n, 1, 3, 64)


def test_bad_lane_refused() -> None:
    with pytest.raises(ValueError):
        _scrypt.romix(bytes(127), 16, 1)
    with pytest.raises(ValueError):
        _scrypt.romix(bytes(128), 16, 0)
    with pytest.raises(ValueError):
        scrypt(b"pw", b"salt", 16, 1, 0, 64)


@needs_restic
def test_restic_key_file_opens(restic_repo) -> None:  # type: ignore[no-untyped-def]
    """A key restic made (its calibrated N, r, p) gives the master key, through every lane."""
    (key_path,) = (restic_repo.path / "keys").iterdir()
    doc = json.loads(key_path.read_bytes())
    kf = KeyFile.decode(key_path.read_bytes(), key_path.name)
    assert (kf.n, kf.r, kf.p) == (doc["N"], doc["r"], doc["p"])
    assert kf.open(PASSWORD.encode()) is not None
    assert kf.open(b"not the password") is None
    derived = scrypt(PASSWORD.encode(), kf.salt, kf.n, kf.r, kf.p, 64)
    assert derived == oracle(PASSWORD.encode(), kf.salt, kf.n, kf.r, kf.p, 64)


@needs_restic
async def test_restic_repository_opens(restic_repo) -> None:  # type: ignore[no-untyped-def]
    backend = LocalBackend(str(restic_repo.path))
    repo = await Repository.open(backend, PASSWORD.encode())
    assert repo.version == restic_repo.version
    assert sorted(i.hex() for i in await repo.list_ids(FileType.SNAPSHOT)) == sorted(restic_repo.snapshot_ids)
    with pytest.raises(WrongPassword):
        await Repository.open(backend, b"wrong")


@pytest.mark.parametrize("n, r, p", [(3, 8, 1), (1, 8, 1), (1 << 15, 0, 1), (1 << 15, 8, 0)])
def test_key_file_with_impossible_parameters_is_damaged(n: int, r: int, p: int) -> None:
    doc = {"kdf": "scrypt", "N": n, "r": r, "p": p, "salt": base64.b64encode(bytes(64)).decode(), "data": ""}
    with pytest.raises(IntegrityError, match="impossible scrypt parameters"):
        KeyFile.decode(json.dumps(doc).encode(), "k")


def test_derived_ahead_is_taken_by_the_same_call() -> None:
    args = (b"ahead", b"salt" * 16, 1 << 10, 8, 2, 64)
    derive_ahead(*args)
    derive_ahead(*args)  # once is enough: the second is the same derivation
    assert args in scrypt_module._ahead
    assert scrypt(*args) == oracle(*args)
    assert args not in scrypt_module._ahead  # taken once; a later call derives on its own
    assert scrypt(*args) == oracle(*args)


def test_derived_ahead_error_reaches_the_caller() -> None:
    args = (b"ahead", b"salt", 3, 8, 1, 64)  # N not a power of two
    derive_ahead(*args)
    with pytest.raises(ValueError, match="bad parameters"):
        scrypt(*args)


def test_other_arguments_do_not_take_a_derivation_ahead() -> None:
    derive_ahead(b"guessed", b"salt", 1 << 10, 8, 1, 64)
    assert scrypt(b"typed", b"salt", 1 << 10, 8, 1, 64) == oracle(b"typed", b"salt", 1 << 10, 8, 1, 64)
    assert scrypt(b"guessed", b"salt", 1 << 10, 8, 1, 64) == oracle(b"guessed", b"salt", 1 << 10, 8, 1, 64)
