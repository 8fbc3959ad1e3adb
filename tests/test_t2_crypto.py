"""Sealing and opening: round trips, and every damaged byte is caught by the MAC."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repofs.repo.crypto import OVERHEAD, Key, MacError

KEY = Key.random()


@given(st.binary(max_size=5000))
def test_round_trip(plain: bytes) -> None:
    sealed = KEY.seal(plain)
    assert len(sealed) == len(plain) + OVERHEAD
    assert KEY.open(sealed) == plain


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_flipped_bit_fails(plain: bytes, data: st.DataObject) -> None:
    sealed = bytearray(KEY.seal(plain))
    pos = data.draw(st.integers(0, len(sealed) - 1))
    sealed[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(MacError):
        KEY.open(bytes(sealed))


def test_other_key_fails() -> None:
    with pytest.raises(MacError):
        Key.random().open(KEY.seal(b"secret"))


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
