"""File contents for the mount: byte offsets to blobs, ranged pack reads, read-ahead.

``FileMap`` turns a file's content list into cumulative offsets (blob sizes from the index)
so a read finds its first blob by binary search. ``BlobFetcher`` loads blobs into the
shared cache: the blobs wanted at once are grouped into runs of neighbours in one pack, each
run is one ranged backend request, and its blobs are decrypted, decompressed and checked in
worker threads under the repository's ``cpu`` limiter, up to 1 MiB per thread call (a batch
of a few KiB is cheaper to decode than a trip to a thread, so it stays on the loop). A
wanted tree brings the trees stored next to it. ``OpenFile`` reads for one open file handle
and keeps a sequential reader's next blobs on their way (bounded in bytes).

Concurrency contract (trio, one thread): ``BlobFetcher._flights`` and the cache are touched
only between checkpoints. ``want`` registers a flight for every blob it starts before it
returns, so a reader that asks for the same blob right after joins that flight. Loads run as
tasks of the mount's nursery, not of the request that started them: a reader that goes away
does not cancel a load that others wait for. A flight always ends with a value or an error.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from ..backend.base import FileNotFound
from ..cache.blobcache import BlobCache, Flight
from ..errors import DamagedPack, IntegrityError, NotFound, RepofsError
from ..fetch import read_range
from ..repo.index import BlobLocation, BlobType, Index
from ..repo.pack import PackEntry
from ..repo.repository import Repository

MAX_RUN_BYTES = 8 << 20  # one ranged read fetches at most this much (or one larger blob)
MAX_AHEAD_BLOBS = 32     # read-ahead stops after this many blobs, whatever their size
DECODE_BATCH_BYTES = 1 << 20  # small blobs of one ranged read are decoded together up to this
INLINE_DECODE_BYTES = 8 << 10  # batches this small are decoded without a worker thread
TREE_WINDOW = 256 << 10  # trees this close to a wanted one in its pack come along
MAX_HEADERS = 256        # pack headers remembered for finding those neighbours


class FileMap:
    """Where each byte of a file comes from: its blob ids and their start offsets.

    ``starts[k]`` is the offset of blob ``k``; ``starts[-1]`` is the end of the last blob
    whose size is known. When the index does not know a blob, ``missing`` is its position
    and the map ends there: reads beyond it fail.
    """

    __slots__ = ("ids", "starts", "missing")

    def __init__(self, ids: Sequence[bytes], starts: list[int], missing: int | None) -> None:
        self.ids = ids
        self.starts = starts
        self.missing = missing

    @classmethod
    def build(cls, content: Sequence[bytes], index: Index) -> FileMap:
        starts = [0]
        for k, blob_id in enumerate(content):
            locations = index.lookup(blob_id, BlobType.DATA)
            if not locations:
                return cls(content, starts, k)
            starts.append(starts[-1] + locations[0].plain_length)
        return cls(content, starts, None)

    @property
    def size(self) -> int:
        """Bytes the map can serve."""
        return self.starts[-1]

    def blob_at(self, offset: int) -> int:
        """Position of the blob holding byte ``offset`` (which must be below ``size``)."""
        return bisect.bisect_right(self.starts, offset) - 1


Key = tuple[BlobType, bytes]


@dataclass(frozen=True, slots=True)
class _Part:
    key: Key
    location: BlobLocation


class BlobFetcher:
    """Blobs by type and id, kept in ``cache`` under ``(type, id)``, loaded in runs of
    pack neighbours."""

    def __init__(self, repo: Repository, cache: BlobCache, nursery: trio.Nursery,
                 max_runs: int = 4) -> None:
        self.repo = repo
        self.cache = cache
        self.nursery = nursery
        self.runs = trio.CapacityLimiter(max_runs)
        self.ranged_reads = 0  # backend requests made, for statistics and tests
        self._flights: dict[Key, Flight] = {}
        self._broken: dict[Key, RepofsError] = {}
        self._headers: dict[bytes, list[PackEntry]] = {}
        self._header_flights: set[bytes] = set()

    def pending(self, blob_id: bytes, type: BlobType = BlobType.DATA) -> bool:  # noqa: A002
        """Whether the blob is on its way."""
        return (type, blob_id) in self._flights

    def want(self, ids: Sequence[bytes], type: BlobType = BlobType.DATA) -> None:  # noqa: A002
        """Start loading each blob of ``ids`` that is neither cached nor on its way.

        The blobs are grouped by pack and sorted by offset; each stretch of adjacent ones
        (up to MAX_RUN_BYTES) is one ranged read. Runs start in the order of their first
        blob in ``ids``, so the blob a reader waits for comes first. Trees come with
        their neighbours in the pack (see ``_tree_neighbours``).
        """
        by_pack: dict[bytes, list[tuple[int, _Part]]] = {}
        cached = self.cache.get_cached
        lookup = self.repo.index.lookup
        for order, blob_id in enumerate(ids):
            key = (type, blob_id)
            if key in self._flights or key in self._broken or cached(key) is not None:
                continue
            locations = lookup(blob_id, type)
            if not locations:
                continue  # get() reports it
            self._flights[key] = Flight()
            by_pack.setdefault(locations[0].pack_id, []).append((order, _Part(key, locations[0])))
        if type is BlobType.TREE:
            for pack_id, parts in by_pack.items():
                parts.extend((len(ids), p) for p in self._tree_neighbours(pack_id, parts))
        runs: list[tuple[int, list[_Part]]] = []
        for parts in by_pack.values():
            parts.sort(key=lambda p: p[1].location.offset)
            run: list[_Part] = []
            first = 0
            for order, part in parts:
                loc = part.location
                if run:
                    last = run[-1].location
                    end = last.offset + last.length
                    if loc.offset == end and end + loc.length - run[0].location.offset <= MAX_RUN_BYTES:
                        run.append(part)
                        first = min(first, order)
                        continue
                    runs.append((first, run))
                run, first = [part], order
            if run:
                runs.append((first, run))
        for _, run in sorted(runs, key=lambda r: r[0]):
            self.nursery.start_soon(self._fetch, run)

    def _tree_neighbours(self, pack_id: bytes, parts: list[tuple[int, _Part]]) -> list[_Part]:
        """The trees stored next to the wanted ones, up to TREE_WINDOW bytes either side.

        restic writes a snapshot's trees in post-order, so a folder's sub-folders lie just
        before it in its pack and its next sibling's just after: a walk of the snapshot
        (find, du, tar) will want them soon, and reading them now costs one ranged read
        instead of a request each. Neighbours come from the pack's header (loaded once in
        the background) and are used only where the index agrees on their place.
        """
        header = self._headers.get(pack_id)
        if header is None:
            if pack_id not in self._header_flights:
                self._header_flights.add(pack_id)
                self.nursery.start_soon(self.load_header, pack_id)
            return []
        offsets = [e.offset for e in header]
        extra: list[_Part] = []
        lookup = self.repo.index.lookup
        for _, part in list(parts):
            here = part.location.offset
            lo = bisect.bisect_left(offsets, here - TREE_WINDOW)
            hi = bisect.bisect_right(offsets, here + TREE_WINDOW)
            for entry in header[lo:hi]:
                key = (BlobType.TREE, entry.id)
                if (entry.type is not BlobType.TREE or key in self._flights or key in self._broken
                        or self.cache.get_cached(key) is not None):
                    continue
                locations = lookup(entry.id, BlobType.TREE)
                if not locations or (locations[0].pack_id, locations[0].offset) != (pack_id, entry.offset):
                    continue
                self._flights[key] = Flight()
                extra.append(_Part(key, locations[0]))
        return extra

    async def load_header(self, pack_id: bytes) -> None:
        """Remember a tree pack's header; an empty one if it cannot be read (no neighbours
        then: the trees themselves are still loaded, and report any damage). Started in
        the background by the first want of a tree in that pack."""
        try:
            async with self.runs:
                entries = await self.repo.load_pack_header(pack_id)
        except RepofsError:
            entries = []
        if len(self._headers) >= MAX_HEADERS:
            self._headers.clear()
        self._headers[pack_id] = sorted(entries, key=lambda e: e.offset)
        self._header_flights.discard(pack_id)

    async def get(self, blob_id: bytes, type: BlobType = BlobType.DATA) -> bytes:  # noqa: A002
        """The plaintext of a blob; NotFound or IntegrityError when it cannot be had."""
        key = (type, blob_id)
        value = self.cache.get_cached(key)
        if value is not None:
            return value
        broken = self._broken.get(key)
        if broken is not None:
            raise broken
        if key not in self._flights:
            if not self.repo.index.lookup(blob_id, type):
                raise NotFound(f"{type.name.lower()} blob {blob_id.hex()} is not in the index")
            self.want([blob_id], type)
        flight = self._flights[key]
        await flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.value is not None
        return flight.value

    async def _fetch(self, run: list[_Part]) -> None:
        flights = [self._flights[p.key] for p in run]
        try:
            first, last = run[0].location, run[-1].location
            start, end = first.offset, last.offset + last.length
            raw: bytes | None = None
            error: RepofsError | None = None
            try:
                async with self.runs:
                    self.ranged_reads += 1
                    raw = await read_range(self.repo, first.pack_id, start, end)
            except FileNotFound:
                error = DamagedPack(f"pack {first.pack_id.hex()} is listed in the index but missing")
            except RepofsError as exc:
                error = exc
            # Small blobs are decoded together, one worker-thread call per batch.
            batches: list[list[_Part]] = []
            size = 0
            for part in run:
                if batches and size + part.location.length <= DECODE_BATCH_BYTES:
                    batches[-1].append(part)
                    size += part.location.length
                else:
                    batches.append([part])
                    size = part.location.length
            async with trio.open_nursery() as nursery:
                for batch in batches:
                    nursery.start_soon(self._decode, batch, raw, start, error)
        finally:
            for part, flight in zip(run, flights):
                if not flight.done.is_set():
                    flight.error = RepofsError(f"loading blob {part.key[1].hex()} was cancelled")
                    flight.done.set()
                if self._flights.get(part.key) is flight:
                    del self._flights[part.key]

    def _decode_all(self, batch: list[_Part], raw: bytes, start: int) -> list[bytes | RepofsError]:
        """Plaintexts of a batch of blobs from one ranged read (runs in a worker thread).
        A run, and so a batch, holds one type: ``want`` groups the blobs of one type."""
        return self.repo.decode_blobs(batch[0].key[0], batch[0].location.pack_id, start, raw,  # type: ignore[return-value]
                                      [(part.key[1], part.location) for part in batch])

    async def _decode(self, batch: list[_Part], raw: bytes | None, start: int,
                      error: RepofsError | None) -> None:
        """Decode a batch (or try other copies of what fails) and end each blob's flight."""
        if raw is None:
            assert error is not None
            results: list[bytes | RepofsError] = [error] * len(batch)
        elif sum(p.location.length for p in batch) <= INLINE_DECODE_BYTES:
            # A few KiB decrypt and hash faster than a trip to a worker thread and back.
            results = self._decode_all(batch, raw, start)
        else:
            results = await self.repo.cpu_run(self._decode_all, batch, raw, start)
        for part, result in zip(batch, results):
            flight = self._flights[part.key]
            if isinstance(result, RepofsError):
                try:
                    result = await self._other_copies(part, result)
                except RepofsError as final:
                    if isinstance(final, (IntegrityError, NotFound)):
                        self._broken[part.key] = final
                    flight.error = final
                    flight.done.set()
                    continue
            flight.value = result
            self.cache.put(part.key, result)
            flight.done.set()

    async def _other_copies(self, part: _Part, exc: RepofsError) -> bytes:
        """The blob from any other pack the index lists for it; ``exc`` if there is none."""
        type_, blob_id = part.key
        if len(self.repo.index.lookup(blob_id, type_)) < 2:
            raise exc
        return await self.repo.load_blob(type_, blob_id)


class OpenFile:
    """Reads of one open file handle, with read-ahead for sequential readers.

    A read is sequential when it starts in the blob where the previous one ended or the
    next (the kernel's own read-ahead sends requests slightly out of order). Then the blobs
    up to ``window`` bytes past the read are requested too; the fetch is topped up once at
    least half of that window has been consumed, so the next blobs travel in few ranged
    reads rather than one by one.
    """

    def __init__(self, fmap: FileMap, fetcher: BlobFetcher, window: int) -> None:
        self.map = fmap
        self.fetcher = fetcher
        self.window = window
        self._last_blob = -1
        self._ahead_to = 0  # blobs below this position were requested already

    async def read(self, offset: int, size: int) -> bytes:
        """Exactly the bytes asked for, fewer only at the end of the file."""
        fmap = self.map
        end = min(offset + size, fmap.size)
        if offset >= end:
            if fmap.missing is not None and size > 0:
                raise NotFound(f"data blob {fmap.ids[fmap.missing].hex()} is not in the index")
            return b""
        first = fmap.blob_at(offset)
        last = fmap.blob_at(end - 1)
        sequential = self._last_blob <= first <= self._last_blob + 1 or (offset == 0 and self._last_blob < 0)
        self._last_blob = max(last, first)
        wanted_to = last + 1
        if sequential:
            horizon = last + 1
            limit = fmap.starts[last + 1] + self.window
            n = len(fmap.starts) - 1
            while horizon < n and horizon - last <= MAX_AHEAD_BLOBS and fmap.starts[horizon] < limit:
                horizon += 1
            if horizon - self._ahead_to >= max(1, (horizon - last) // 2) or self._ahead_to <= last:
                wanted_to = horizon
                self._ahead_to = horizon
        else:
            self._ahead_to = last + 1
        self.fetcher.want(fmap.ids[first:wanted_to])
        parts = []
        for k in range(first, last + 1):
            blob = await self.fetcher.get(fmap.ids[k])
            lo = max(offset - fmap.starts[k], 0)
            hi = min(end - fmap.starts[k], len(blob))
            parts.append(blob[lo:hi] if (lo, hi) != (0, len(blob)) else blob)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) != end - offset:
            raise IntegrityError(f"data blob {fmap.ids[last].hex()}: size differs from the index")
        return data
