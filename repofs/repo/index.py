"""The compact blob index: blob id and type -> every (pack, offset, length) holding it.

Index files are scanned in C (``_index``) straight from their decoded JSON, without a
Python object per blob, and merged into one table per blob type: 46 bytes per stored
location, sorted by id and bucketed on the first two id bytes (see ``_index.c``).

Merging follows restic 0.14: every index file is loaded, ``supersedes`` is returned to the
caller but not applied, exact duplicate entries are dropped, and different locations of the
same blob are all kept.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import IntegrityError
from . import _index

CRYPTO_OVERHEAD = 32  # IV + MAC around every stored blob

Entry = tuple[bytes, "BlobType", int, int, "int | None"]
"""One blob of a pack: (blob id, type, offset, length, uncompressed length or None)."""

_U32 = 1 << 32


class BlobType(enum.IntEnum):
    """The two kinds of blob; the numbers are the table numbers in ``_index``."""

    DATA = 0
    TREE = 1

    @property
    def json_name(self) -> str:
        """The name used in index JSON and by ``restic list blobs``."""
        return "data" if self is BlobType.DATA else "tree"


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where one copy of a blob is stored."""

    pack_id: bytes
    offset: int
    length: int  # bytes in the pack, crypto overhead included
    uncompressed_length: int | None  # plaintext length of a compressed blob, else None

    @property
    def compressed(self) -> bool:
        return self.uncompressed_length is not None

    @property
    def plain_length(self) -> int:
        """Length of the blob's plaintext (what its id hashes)."""
        if self.uncompressed_length is not None:
            return self.uncompressed_length
        return self.length - CRYPTO_OVERHEAD


class Index(_index.Index):
    """An immutable merged index, made by ``IndexBuilder.finish()``.

    Inherited from C: ``has(blob_id, type)``, ``count(type)`` (distinct ids of a type),
    ``location_count(type)`` (stored locations of a type), ``pack_ids()``,
    ``any_compressed()``, ``nbytes()`` (bytes held by the tables). ``len(index)`` is the
    number of distinct (id, type) pairs; a blob stored in two packs counts once.
    """

    __slots__ = ()

    def lookup(self, blob_id: bytes, type: BlobType) -> list[BlobLocation]:
        """Every stored location of the blob; [] when the index does not know it."""
        return [BlobLocation(p, o, n, u) for p, o, n, u in self._lookup(blob_id, type)]

    def iter_blobs(self, type: BlobType, chunk: int = 4096) -> Iterator[tuple[bytes, BlobLocation]]:
        """(blob id, location) for every location of one type, in id order.

        A blob stored in several packs comes once per location, adjacently.
        """
        packs = self.pack_ids()
        total = self.location_count(type)
        for start in range(0, total, chunk):
            for blob_id, pack, off, length, ulen in self._entries(type, start, start + chunk):
                yield blob_id, BlobLocation(packs[pack], off, length, ulen)

    def blobs_by_pack(self) -> dict[bytes, list[tuple[bytes, BlobType, BlobLocation]]]:
        """Every pack's blobs as (blob id, type, location), sorted by offset."""
        out: dict[bytes, list[tuple[bytes, BlobType, BlobLocation]]] = {p: [] for p in self.pack_ids()}
        for type_ in BlobType:
            for blob_id, loc in self.iter_blobs(type_):
                out[loc.pack_id].append((blob_id, type_, loc))
        for blobs in out.values():
            blobs.sort(key=lambda b: b[2].offset)
        return out


class IndexBuilder:
    """Collects index files and new packs, then makes one ``Index``.

    ``add_file`` scans in C with the GIL released, so index files may be fed from worker
    threads; calls on one builder are serialised by a lock inside it.
    """

    __slots__ = ("_builder",)

    def __init__(self) -> None:
        self._builder = _index.Builder()

    def add_file(self, index_id: bytes, plaintext_json: bytes | bytearray | memoryview) -> list[bytes]:
        """Add the entries of one decoded index file; returns the ids it supersedes.

        A malformed file raises IntegrityError and adds nothing.
        """
        try:
            return self._builder.add_json(plaintext_json)
        except ValueError as exc:
            raise IntegrityError(f"index {index_id.hex()}: {exc}") from None

    def add_pack(self, pack_id: bytes, entries: Iterable[Entry]) -> None:
        """Add the blobs of one pack (e.g. a pack just written)."""
        self._builder.add_pack(pack_id, [tuple(e) for e in entries])

    def finish(self) -> Index:
        """The merged index; the builder is spent afterwards."""
        index: Index = self._builder.finish(Index)
        return index


def encode_index(packs: Iterable[tuple[bytes, Iterable[Entry]]], supersedes: Sequence[bytes] = ()) -> bytes:
    """An index file's JSON exactly as restic 0.14 writes it (compact, trailing newline).

    Packs and blobs keep the given order; a pack without blobs is left out, as restic
    never lists one. ``uncompressed_length`` appears only for compressed blobs.
    """
    return b"".join(encode_index_parts(packs, supersedes))


def encode_index_parts(packs: Iterable[tuple[bytes, Iterable[Entry]]],
                       supersedes: Sequence[bytes] = ()) -> Iterator[bytes]:
    """``encode_index`` piece by piece (about one piece per pack), so that a large index
    can be compressed as it is made instead of being held whole, several times over."""
    head = ['{"supersedes":[', ",".join(f'"{i.hex()}"' for i in supersedes), "],"] if supersedes else ["{"]
    yield ("".join(head) + '"packs":[').encode()
    first_pack = True
    for pack_id, entries in packs:
        blobs = []
        for blob_id, type_, offset, length, ulen in entries:
            if not (0 <= offset < _U32 and 0 <= length < _U32 and (ulen is None or 0 <= ulen < _U32)):
                raise ValueError(f"blob {blob_id.hex()}: offset or length out of range")
            name = BlobType(type_).json_name
            tail = f',"uncompressed_length":{ulen}' if ulen else ""
            blobs.append(f'{{"id":"{blob_id.hex()}","type":"{name}","offset":{offset},"length":{length}{tail}}}')
        if not blobs:
            continue
        sep = "" if first_pack else ","
        first_pack = False
        yield f'{sep}{{"id":"{pack_id.hex()}","blobs":[{",".join(blobs)}]}}'.encode()
    yield b"]}\n"
