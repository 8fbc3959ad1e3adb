"""Ranged pack reads holding several blobs, and decoding the blobs in them."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from .backend.base import FileType, Handle
from .errors import DamagedPack, RepofsError
from .repo.crypto import OVERHEAD
from .repo.index import BlobLocation, BlobType

MAX_SPAN = 8 << 20  # neighbouring blobs are read together up to this span
MAX_GAP = 64 << 10  # bytes of other blobs worth reading over to keep one read
INLINE_BLOB = 16 << 10  # reads of blobs this small on average are decoded in the loop
INLINE_TOTAL = 1 << 20  # ... when they hold no more than this in all

Blobs = Sequence[tuple[bytes, BlobLocation]]
Prepare = Callable[[bytes, "float | None"], Any]  # plaintext, packed_ratio -> what is kept


class PackReader(Protocol):
    """What fetching needs of a Repository: the index, ranged pack reads, blob decoding,
    whole-blob loads with every copy tried, and the CPU limiter."""

    cpu: trio.CapacityLimiter
    backend: Any

    @property
    def index(self) -> Any: ...

    def decode_blobs(self, type: BlobType, pack_id: bytes, start: int, raw: bytes | memoryview,
                     blobs: Blobs) -> list[Any]: ...

    async def load_blob(self, type: BlobType, blob_id: bytes) -> bytes: ...

    async def cpu_run(self, fn: Callable[..., Any], *args: object) -> Any: ...


def _same(plain: bytes, packed_ratio: float | None) -> bytes:
    return plain


def packed_ratio(loc: BlobLocation) -> float | None:
    """A compressed blob's zstd frame size over its plaintext size (None: not compressed)."""
    if not loc.uncompressed_length:
        return None
    return (loc.length - OVERHEAD) / loc.uncompressed_length


def close_enough(start: int, end: int, loc: BlobLocation) -> bool:
    """Whether a read of [start, end) may grow to take in ``loc`` (any side, any order)."""
    return (start - MAX_GAP <= loc.offset <= end + MAX_GAP
            and max(end, loc.offset + loc.length) - min(start, loc.offset) <= MAX_SPAN)


def _checked(pack_id: bytes, raw: bytes, length: int) -> bytes:
    if len(raw) != length:
        raise DamagedPack(f"pack {pack_id.hex()}: short read (truncated pack)")
    return raw


async def read_range(repo: PackReader, pack_id: bytes, start: int, end: int) -> bytes:
    raw = await repo.backend.load(Handle(FileType.PACK, pack_id.hex()), end - start, start)
    return _checked(pack_id, raw, end - start)


def read_range_blocking(repo: PackReader, pack_id: bytes, start: int, end: int) -> bytes:
    """``read_range`` in a worker thread, for a backend with a ``blocking_load``."""
    raw = repo.backend.blocking_load(Handle(FileType.PACK, pack_id.hex()), end - start, start)
    return _checked(pack_id, raw, end - start)


def _decode_all(repo: PackReader, type: BlobType, pack_id: bytes, start: int, blobs: Blobs,
                raw: bytes, prepare: Prepare) -> list[Any]:
    return [r if isinstance(r, RepofsError) else prepare(r, packed_ratio(loc))
            for (_, loc), r in zip(blobs, repo.decode_blobs(type, pack_id, start, raw, blobs))]


async def _retry_failed(repo: PackReader, type: BlobType, blobs: Blobs, results: list[Any],
                        prepare: Prepare) -> None:
    """Load every blob whose place in ``results`` holds an error again with
    ``load_blob`` (which tries its other copies); where that fails too the error stays."""
    for i, result in enumerate(results):
        if isinstance(result, RepofsError):
            try:
                whole = await repo.load_blob(type, blobs[i][0])
                results[i] = await repo.cpu_run(prepare, whole, packed_ratio(blobs[i][1]))
            except RepofsError as exc:
                results[i] = exc


async def fetch_range(repo: PackReader, type: BlobType, pack_id: bytes, start: int, end: int,
                      blobs: Blobs, prepare: Prepare = _same) -> list[Any]:
    """``prepare(plaintext, packed_ratio)`` of every blob, in order, from one read of [start, end); a
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
    await _retry_failed(repo, type, blobs, results, prepare)
    return results


Done = Callable[[list[Any]], None]
"""Takes the results of a range: per blob, in order, ``prepare(plaintext, ratio)`` or the
RepofsError that loading it ended with."""


class Decoder:
    """Decodes the blobs of ranges, in worker threads, for one nursery. A range comes
    read already, or is read by the thread that decodes it (``submit_unread``, for a
    backend with a ``blocking_load``: no trip through the loop between the two).

    A thread takes range after range while any wait, so it never sits idle waiting
    for the event loop to hand it the next one (the hand-over costs the most when the
    machine is busy); at most ``threads`` run at once, each holding a token of the
    repository's ``cpu`` limiter while it drains. Results come back into the loop
    through the trio token: ``done(results)`` is called there, after failed blobs were
    tried again from their other copies (``load_blob``).

    Once ``close`` is called, or the nursery is cancelled, threads finish the range in
    hand and take no other; ranges still queued or in hand are dropped without their
    ``done``, so close only when nothing waits for one.
    """

    def __init__(self, repo: PackReader, type: BlobType, prepare: Prepare,
                 nursery: trio.Nursery, threads: int) -> None:
        self.repo = repo
        self.type = type
        self.prepare = prepare
        self.threads = threads
        self._nursery = nursery
        self._token = trio.lowlevel.current_trio_token()
        self._queue: collections.deque[tuple[bytes, int, int, Blobs, bytes | None, Done]] = collections.deque()
        self._running = 0  # threads started and not yet returned
        self._closed = False
        self._ended = trio.Event()
        nursery.start_soon(self._guard)

    def submit(self, pack_id: bytes, start: int, blobs: Blobs, raw: bytes, done: Done) -> None:
        """Decode ``blobs`` of ``raw`` (read from ``start`` of the pack), then ``done``."""
        self._queue_range(pack_id, start, start + len(raw), blobs, raw, done)

    def submit_unread(self, pack_id: bytes, start: int, end: int, blobs: Blobs, done: Done) -> None:
        """Read [start, end) of the pack with the backend's ``blocking_load``, decode
        ``blobs`` of it, then ``done``; a failed read fails every blob, as in ``failed``."""
        self._queue_range(pack_id, start, end, blobs, None, done)

    def _queue_range(self, pack_id: bytes, start: int, end: int, blobs: Blobs, raw: bytes | None,
                     done: Done) -> None:
        if self._closed:
            return
        self._queue.append((pack_id, start, end, blobs, raw, done))
        if self._running < self.threads:
            self._running += 1
            self._nursery.start_soon(self._run)

    def failed(self, blobs: Blobs, error: RepofsError, done: Done) -> None:
        """The read of ``blobs`` failed with ``error``: try each blob on its own, then ``done``."""
        self._nursery.start_soon(self._finish, blobs, [error] * len(blobs), done)

    def close(self) -> None:
        """Take no more ranges; the decoder's tasks in the nursery end."""
        self._ended.set()

    async def _guard(self) -> None:
        """Keeps the decoder open until ``close`` or until the nursery is cancelled."""
        try:
            await self._ended.wait()
        finally:
            self._closed = True
            self._queue.clear()

    async def _run(self) -> None:
        try:
            await self.repo.cpu_run(self._drain)
        finally:
            self._running -= 1
        # A range queued after the thread found the queue empty, before it returned.
        if self._queue and not self._closed and self._running < self.threads:
            self._running += 1
            self._nursery.start_soon(self._run)

    def _drain(self) -> None:
        """In a worker thread: decode queued ranges until none is left."""
        queue = self._queue
        while not self._closed:
            try:
                pack_id, start, end, blobs, raw, done = queue.popleft()
            except IndexError:
                return
            results: list[Any]
            try:
                if raw is None:
                    raw = read_range_blocking(self.repo, pack_id, start, end)
            except RepofsError as exc:
                results = [exc] * len(blobs)
            else:
                results = _decode_all(self.repo, self.type, pack_id, start, blobs, raw, self.prepare)
            del raw
            try:
                self._token.run_sync_soon(self._deliver, blobs, results, done)
            except trio.RunFinishedError:
                return

    def _deliver(self, blobs: Blobs, results: list[Any], done: Done) -> None:
        """In the loop, outside any task: pass on results, or retry their failed blobs.
        It must not raise (trio would crash); ``done`` only stores the results."""
        if self._closed:
            return
        for result in results:
            if isinstance(result, RepofsError):
                self._nursery.start_soon(self._finish, blobs, results, done)
                return
        done(results)

    async def _finish(self, blobs: Blobs, results: list[Any], done: Done) -> None:
        await _retry_failed(self.repo, self.type, blobs, results, self.prepare)
        done(results)
