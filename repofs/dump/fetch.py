"""Ranged pack reads holding several blobs, and decoding the blobs in them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from ..backend.base import FileType, Handle
from ..errors import DamagedPack, RepofsError
from ..repo.index import BlobLocation, BlobType

MAX_SPAN = 8 << 20  # neighbouring blobs are read together up to this span
MAX_GAP = 64 << 10  # bytes of other blobs worth reading over to keep one read
INLINE_BLOB = 16 << 10  # reads of blobs this small on average are decoded in the loop
INLINE_TOTAL = 1 << 20  # ... when they hold no more than this in all


class PackReader(Protocol):
    """What fetching needs of a Repository: the index, ranged pack reads, blob decoding,
    whole-blob loads with every copy tried, and the CPU limiter."""

    cpu: trio.CapacityLimiter
    backend: Any

    @property
    def index(self) -> Any: ...

    def decode_blob(self, blob_id: bytes, type: BlobType, loc: BlobLocation, pack_id: bytes,
                    sealed: bytes | memoryview) -> bytes: ...

    async def load_blob(self, type: BlobType, blob_id: bytes) -> bytes: ...

    async def cpu_run(self, fn: Callable[..., Any], *args: object) -> Any: ...


def _same(plain: bytes) -> bytes:
    return plain


def close_enough(start: int, end: int, loc: BlobLocation) -> bool:
    """Whether a read of [start, end) may grow to take in ``loc`` (any side, any order)."""
    return (start - MAX_GAP <= loc.offset <= end + MAX_GAP
            and max(end, loc.offset + loc.length) - min(start, loc.offset) <= MAX_SPAN)


async def read_range(repo: PackReader, pack_id: bytes, start: int, end: int) -> bytes:
    raw = await repo.backend.load(Handle(FileType.PACK, pack_id.hex()), end - start, start)
    if len(raw) != end - start:
        raise DamagedPack(f"pack {pack_id.hex()}: short read (truncated pack)")
    return raw


def _decode_all(repo: PackReader, type: BlobType, pack_id: bytes, start: int,
                blobs: Sequence[tuple[bytes, BlobLocation]], raw: bytes,
                prepare: Callable[[bytes], Any]) -> list[Any]:
    view = memoryview(raw)
    out: list[Any] = []
    for blob_id, loc in blobs:
        rel = loc.offset - start
        try:
            plain = repo.decode_blob(blob_id, type, loc, pack_id, view[rel:rel + loc.length])
        except RepofsError as exc:
            out.append(exc)
            continue
        out.append(prepare(plain))
    return out


async def fetch_range(repo: PackReader, type: BlobType, pack_id: bytes, start: int, end: int,
                      blobs: Sequence[tuple[bytes, BlobLocation]],
                      prepare: Callable[[bytes], Any] = _same) -> list[Any]:
    """``prepare(plaintext)`` of every blob, in order, from one read of [start, end); a
    blob that fails is loaded again with ``load_blob`` (which tries its other copies),
    and where that fails too its place holds the RepofsError.

    Small blobs are decoded right here in the loop: a thread would cost more than the
    work, most of it in GIL hand-overs at every hash and zstd call. Bigger ones are
    decoded in a thread under the repository's ``cpu`` limiter.
    """
    plain = sum(loc.plain_length for _, loc in blobs)
    try:
        raw = await read_range(repo, pack_id, start, end)
        if plain <= INLINE_BLOB * len(blobs) and plain <= INLINE_TOTAL:
            results = _decode_all(repo, type, pack_id, start, blobs, raw, prepare)
        else:
            results = await repo.cpu_run(_decode_all, repo, type, pack_id, start, blobs, raw, prepare)
    except RepofsError as exc:
        results = [exc] * len(blobs)
    for i, result in enumerate(results):
        if isinstance(result, RepofsError):
            try:
                whole = await repo.load_blob(type, blobs[i][0])
                results[i] = await repo.cpu_run(prepare, whole)
            except RepofsError as exc:
                results[i] = exc
    return results
