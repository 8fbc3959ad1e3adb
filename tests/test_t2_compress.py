"""Unpacked files (index, snapshot, key) encoded whole or piece by piece."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repofs.errors import IntegrityError
from repofs.repo.compress import UNPACKED_ZSTD, decode_unpacked, encode_unpacked, encode_unpacked_parts


@given(st.lists(st.binary(max_size=3000), max_size=20), st.sampled_from([1, 2]))
def test_parts_decode_to_the_joined_document(parts: list[bytes], version: int) -> None:
    whole = b"".join(parts)
    streamed = encode_unpacked_parts(iter(parts), version)
    assert decode_unpacked(streamed, version) == whole
    assert decode_unpacked(encode_unpacked(whole, version), version) == whole


def test_v1_is_plain_and_v2_is_marked_zstd() -> None:
    doc = b'{"packs":[]}\n' * 100
    assert encode_unpacked_parts([doc[:7], doc[7:]], 1) == doc
    v2 = encode_unpacked_parts([doc[:7], doc[7:]], 2)
    assert v2[0] == UNPACKED_ZSTD and len(v2) < len(doc)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_truncated_frame_is_refused(streamed: bool) -> None:
    doc = bytes(range(256)) * 8
    encoded = encode_unpacked_parts([doc], 2) if streamed else encode_unpacked(doc, 2)
    with pytest.raises(IntegrityError):
        decode_unpacked(encoded[:-3], 2)
