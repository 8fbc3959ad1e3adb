"""IDs: 32-byte SHA-256 digests, shown as 64 lower-case hex characters.

IDs are plain ``bytes`` everywhere in repofs: compact, hashable and comparable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ..errors import AmbiguousId, NotFound

ID_SIZE = 32
SHORT_LEN = 8


def hash_id(data: bytes | bytearray | memoryview) -> bytes:
    """The ID of a byte string: its SHA-256 digest."""
    return hashlib.sha256(data).digest()


def parse_id(text: str) -> bytes:
    """A 64-hex-character string as an ID; ValueError when it is not one."""
    if len(text) != 2 * ID_SIZE:
        raise ValueError(f"invalid id {text!r}: want {2 * ID_SIZE} hex characters")
    return bytes.fromhex(text)


def is_id(text: str) -> bool:
    try:
        parse_id(text)
    except ValueError:
        return False
    return True


def short(id_: bytes) -> str:
    """The 8-character form restic prints."""
    return id_.hex()[:SHORT_LEN]


def find_by_prefix(prefix: str, ids: Iterable[bytes], what: str = "id") -> bytes:
    """The one ID in ``ids`` whose hex form starts with ``prefix``.

    Raises NotFound when none does and AmbiguousId when several do.
    """
    prefix = prefix.lower()
    matches = {i for i in ids if i.hex().startswith(prefix)}
    if not matches:
        raise NotFound(f"no {what} matches {prefix!r}")
    if len(matches) > 1:
        shown = ", ".join(sorted(short(m) for m in matches)[:5])
        raise AmbiguousId(f"{what} prefix {prefix!r} is ambiguous: {shown}")
    return matches.pop()
