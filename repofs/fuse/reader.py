"""File contents for the mount: byte offsets to blobs, ranged pack reads, read-ahead.

``FileMap`` turns a file's content list into cumulative offsets (blob sizes from the index)
so a read finds its first blob by binary search. ``BlobFetcher`` loads data blobs into the
shared cache: the blobs wanted at once are grouped into runs of neighbours in one pack, each
run is one ranged backend request, and each blob of it is decrypted and decompressed in a
worker thread under the repository's ``cpu`` limiter. ``OpenFile`` reads for one open file
handle and keeps a sequential reader's next blobs on their way (bounded in bytes).

Concurrency contract (trio, one thread): ``BlobFetcher._flights`` and the cache are touched
only between checkpoints. ``want`` registers a flight for every blob it starts before it
returns, so a reader that asks for the same blob right after joins that flight. Loads run as
tasks of the mount's nursery, not of the request that started them: a reader that goes away
does not cancel a load that others wait for. A flight always ends with a value or an error.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from ..backend.base import FileNotFound, FileType, Handle
from ..cache.blobcache import BlobCache
from ..errors import DamagedPack, IntegrityError, NotFound, RepofsError
from ..repo.index import BlobLocation, BlobType, Index
from ..repo.repository import Repository

log = logging.getLogger(__name__)

MAX_RUN_BYTES = 8 << 20  # one ranged read fetches at most this much (or one larger blob)
MAX_AHEAD_BLOBS = 32     # read-ahead stops after this many blobs, whatever their size


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


class _Flight:
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Part:
    blob_id: bytes
    location: BlobLocation


class BlobFetcher:
    """Data blobs by id, through ``cache``, loaded in runs of pack neighbours."""

    def __init__(self, repo: Repository, cache: BlobCache, nursery: trio.Nursery,
                 max_runs: int = 4) -> None:
        self.repo = repo
        self.cache = cache
        self.nursery = nursery
        self.runs = trio.CapacityLimiter(max_runs)
        self.ranged_reads = 0  # backend requests made, for statistics and tests
        self._flights: dict[bytes, _Flight] = {}
        self._broken: dict[bytes, RepofsError] = {}

    @staticmethod
    def key(blob_id: bytes) -> tuple[BlobType, bytes]:
        return (BlobType.DATA, blob_id)

    def want(self, ids: Sequence[bytes]) -> None:
        """Start loading each blob of ``ids`` that is neither cached nor on its way.

        The blobs are grouped by pack and sorted by offset; each stretch of adjacent ones
        (up to MAX_RUN_BYTES) is one ranged read. Runs start in the order of their first
        blob in ``ids``, so the blob a reader waits for comes first.
        """
        by_pack: dict[bytes, list[tuple[int, _Part]]] = {}
        for order, blob_id in enumerate(ids):
            if (blob_id in self._flights or blob_id in self._broken
                    or self.cache.get_cached(self.key(blob_id)) is not None):
                continue
            locations = self.repo.index.lookup(blob_id, BlobType.DATA)
            if not locations:
                continue  # get() reports it
            self._flights[blob_id] = _Flight()
            by_pack.setdefault(locations[0].pack_id, []).append((order, _Part(blob_id, locations[0])))
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

    async def get(self, blob_id: bytes) -> bytes:
        """The plaintext of a data blob; NotFound or IntegrityError when it cannot be had."""
        value = self.cache.get_cached(self.key(blob_id))
        if value is not None:
            return value
        broken = self._broken.get(blob_id)
        if broken is not None:
            raise broken
        if blob_id not in self._flights:
            if not self.repo.index.lookup(blob_id, BlobType.DATA):
                raise NotFound(f"data blob {blob_id.hex()} is not in the index")
            self.want([blob_id])
        flight = self._flights[blob_id]
        await flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.value is not None
        return flight.value

    async def _fetch(self, run: list[_Part]) -> None:
        flights = [self._flights[p.blob_id] for p in run]
        try:
            first, last = run[0].location, run[-1].location
            start, end = first.offset, last.offset + last.length
            raw: bytes | None = None
            error: RepofsError | None = None
            try:
                async with self.runs:
                    self.ranged_reads += 1
                    raw = await self.repo.backend.load(Handle(FileType.PACK, first.pack_id.hex()),
                                                       end - start, start)
                if len(raw) != end - start:
                    raise DamagedPack(f"pack {first.pack_id.hex()}: short read (truncated pack)")
            except FileNotFound:
                error = DamagedPack(f"pack {first.pack_id.hex()} is listed in the index but missing")
            except RepofsError as exc:
                error = exc
            async with trio.open_nursery() as nursery:
                for part, flight in zip(run, flights):
                    nursery.start_soon(self._finish, part, flight, raw, start, error)
        finally:
            for part, flight in zip(run, flights):
                if not flight.done.is_set():
                    flight.error = RepofsError(f"loading data blob {part.blob_id.hex()} was cancelled")
                    flight.done.set()
                if self._flights.get(part.blob_id) is flight:
                    del self._flights[part.blob_id]

    async def _finish(self, part: _Part, flight: _Flight, raw: bytes | None, start: int,
                      error: RepofsError | None) -> None:
        """Decode one blob of a run (or try its other copies) and end its flight."""
        loc = part.location
        try:
            if raw is None:
                assert error is not None
                raise error
            sealed = memoryview(raw)[loc.offset - start:loc.offset - start + loc.length]
            value = await self.repo.cpu_run(self.repo.decode_blob, part.blob_id, BlobType.DATA,
                                            loc, loc.pack_id, sealed)
        except RepofsError as exc:
            try:
                value = await self._other_copies(part, exc)
            except RepofsError as final:
                if isinstance(final, (IntegrityError, NotFound)):
                    self._broken[part.blob_id] = final
                flight.error = final
                flight.done.set()
                return
        flight.value = value
        self.cache.put(self.key(part.blob_id), value)
        flight.done.set()

    async def _other_copies(self, part: _Part, exc: RepofsError) -> bytes:
        """The blob from any other pack the index lists for it; ``exc`` if there is none."""
        locations = self.repo.index.lookup(part.blob_id, BlobType.DATA)
        if len(locations) < 2:
            raise exc
        return await self.repo.load_blob(BlobType.DATA, part.blob_id)


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
