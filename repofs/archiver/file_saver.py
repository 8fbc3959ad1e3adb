"""Reading files into data blobs, ``--read-concurrency`` files at a time.

Each reader task works through the queue of files. In a worker thread it opens a file (with
``O_NOATIME`` where allowed, ``O_NOFOLLOW``), records its node from ``fstat``, then reads a
block at a time and cuts it with the content-defined chunker; every chunk is hashed there,
claimed with the blob saver, and, when small, sealed right away. Small files go through one
thread call in batches, read whole by ``_readfiles`` with one release of the GIL per batch.
Large new chunks are sealed by separate tasks on the CPU limiter while the reader goes on, at
most ``cpu + 1`` in flight, which bounds memory whatever the file sizes. A file's node is
complete when all its new blobs are in packs.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import trio

from ..chunker import Chunker
from ..model.ids import hash_id
from ..model.tree import Node
from ..repo.index import BlobType
from ..repo.packer import SealedBlob
from ..repo.saver import BlobSaver
from . import _readfiles
from .future import FutureNode
from .listing import ItemError
from .nodes import node_from_stat
from .report import ItemStats, Reporter

READ_SIZE = 2 << 20
MIN_READ = 64 << 10
SEAL_IN_READER = 64 << 10
BATCH_FILES = 64
WHOLE_MAX = READ_SIZE  # files up to this size (by lstat) are read whole
QUEUE = 2 * BATCH_FILES
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


class FileStatus(NamedTuple):
    """What ``_readfiles`` reports of a file's ``fstat``, under ``os.stat_result``'s names."""

    st_mode: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_size: int
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_rdev: int


@dataclass(slots=True)
class Chunk:
    id: bytes
    data: bytes
    new: bool
    sealed: SealedBlob | None = None


class FileReader:
    """Thread-side work on one open file; one per reader task, reused from file to file."""

    def __init__(self, polynomial: int, saver: BlobSaver, with_atime: bool) -> None:
        self.chunker = Chunker(polynomial)
        self.saver = saver
        self.with_atime = with_atime
        self.fd = -1
        self.expected = -1  # the size fstat gave, -1 for a stream
        self.consumed = 0
        self.failed: ItemError | None = None  # a read error held back for the next call

    def open(self, name: bytes, path: bytes) -> os.stat_result:
        """Open ``path`` and return its status. Raises ItemError."""
        try:
            try:
                fd = os.open(path, _OPEN_FLAGS | _NOATIME)
            except PermissionError:
                if not _NOATIME:
                    raise
                fd = os.open(path, _OPEN_FLAGS)  # O_NOATIME needs ownership
        except OSError as exc:
            raise ItemError.from_os("open", path, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ItemError(f"file {os.fsdecode(path)} changed type, refusing to archive")
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError as exc:
            os.close(fd)
            raise ItemError.from_os("stat", path, exc) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.chunker.reset()
        self.consumed = 0
        self.expected = st.st_size
        return st

    def node(self, name: bytes, path: bytes, st: os.stat_result, chunks: list[Chunk] | None = None) -> Node:
        """The file's node from ``fstat``; complete when ``chunks`` are all of its content."""
        try:
            if chunks is None:
                return node_from_stat(name, path, st, self.with_atime)
            return node_from_stat(name, path, st, self.with_atime, tuple(c.id for c in chunks),
                                  sum(len(c.data) for c in chunks))
        except OSError as exc:
            raise ItemError.from_os("listxattr", path, exc) from None

    def attach(self, fd: int) -> None:
        """Read an already open file (standard input) instead of opening one."""
        self.fd = fd
        self.chunker.reset()
        self.consumed = 0
        self.expected = -1

    def _read_size(self) -> int:
        """How much to ask for: a read allocates what it asks for, so a small file gets a
        small buffer (its size plus one byte, to notice growth), then a small one to see EOF."""
        if self.expected < 0:
            return READ_SIZE
        left = self.expected - self.consumed
        return min(READ_SIZE, max(left + 1, MIN_READ))

    def read(self, path: bytes) -> tuple[list[Chunk], bool]:
        """The chunks completed by the next block, and whether the file ended."""
        saver = self.saver
        out: list[Chunk] = []
        got = 0
        eof = False
        if self.failed is not None:
            error, self.failed = self.failed, None
            raise error
        while got < READ_SIZE:
            try:
                data = os.read(self.fd, self._read_size())
            except OSError as exc:
                error = ItemError.from_os("read", path, exc)
                if out:
                    # Chunks claimed in this call must reach the caller: fail on the next.
                    self.failed = error
                    return out, False
                raise error from None
            if not data:
                last = self.chunker.finish()
                pieces = [last] if last else []
                eof = True
            else:
                got += len(data)
                self.consumed += len(data)
                pieces = self.chunker.feed(data)
            for piece in pieces:
                blob_id = hash_id(piece)
                new = saver.reserve(BlobType.DATA, blob_id)
                sealed = None
                if new and len(piece) <= SEAL_IN_READER:
                    sealed = saver.seal(BlobType.DATA, piece, blob_id)
                out.append(Chunk(blob_id, piece, new, sealed))
            if eof:
                break
        return out, eof

    def chunk_whole(self, data: bytes) -> list[Chunk]:
        """The chunks of a whole file's content, each claimed and, when small, sealed."""
        if len(data) < self.chunker.min_size:
            pieces = [data] if data else []  # restic never cuts before the minimum size
        else:
            self.chunker.reset()
            pieces = self.chunker.feed(data)
            last = self.chunker.finish()
            if last:
                pieces.append(last)
        saver = self.saver
        out = []
        for piece in pieces:
            blob_id = hash_id(piece)
            new = saver.reserve(BlobType.DATA, blob_id)
            sealed = saver.seal(BlobType.DATA, piece, blob_id) if new and len(piece) <= SEAL_IN_READER else None
            out.append(Chunk(blob_id, piece, new, sealed))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.chunker.reset()
        self.consumed = 0
        self.failed = None


@dataclass(slots=True)
class _Job:
    item: str
    name: bytes
    path: bytes
    previous: Node | None
    future: FutureNode
    size: int  # from lstat: decides whether the file joins a batch of small ones
    fd: int = -1  # an open stream to read instead of ``path``
    meta: Node | None = None  # the stream's node


@dataclass(slots=True)
class _Opened:
    """What a reader thread made of one file: its node and first chunks, or an error."""

    job: _Job
    node: Node | None = None
    chunks: list[Chunk] = field(default_factory=list)
    eof: bool = False  # the whole file was read
    complete: bool = False  # ``node`` holds the content and size already
    error: ItemError | None = None


def read_batch(reader: FileReader, jobs: list[_Job]) -> list[_Opened]:
    """Open and read files one after the other in one worker-thread call. Stops after a file
    that did not end within one block: it stays open in ``reader`` for the caller."""
    whole = 0
    while whole < len(jobs) and jobs[whole].meta is None and jobs[whole].size <= WHOLE_MAX:
        whole += 1
    out = []
    if whole:
        got = _readfiles.read_whole([j.path for j in jobs[:whole]], [j.size for j in jobs[:whole]],
                                    bool(_NOATIME))
        for job, result in zip(jobs, got):
            opened = _read_whole(reader, job, result)
            if opened is None:  # grown since it was listed: read as a stream
                opened = _read_first(reader, job)
                out.append(opened)
                if not opened.eof:
                    return out
            else:
                out.append(opened)
    for job in jobs[whole:]:
        opened = _read_first(reader, job)
        out.append(opened)
        if not opened.eof:
            break
    return out


def _read_whole(reader: FileReader, job: _Job,
                result: tuple[str | None, int, tuple[int, ...] | None, bytes | None, bool]) -> _Opened | None:
    """A file read by ``_readfiles``; None when it must be read as a stream instead."""
    op, err, status, data, has_xattrs = result
    if op is not None:
        return _Opened(job, error=ItemError.from_os(op, job.path, OSError(err, os.strerror(err))))
    assert status is not None
    st = FileStatus._make(status)
    if not stat.S_ISREG(st.st_mode):
        return _Opened(job, error=ItemError(f"file {os.fsdecode(job.path)} changed type, refusing to archive"))
    if data is None:
        return None
    chunks = reader.chunk_whole(data)
    try:
        node = node_from_stat(job.name, job.path, st, reader.with_atime,  # type: ignore[arg-type]
                              tuple(c.id for c in chunks), len(data), attrs=None if has_xattrs else ())
    except OSError as exc:
        # The chunks are claimed already: they must still be stored.
        return _Opened(job, None, chunks, error=ItemError.from_os("listxattr", job.path, exc))
    return _Opened(job, node, chunks, eof=True, complete=True)


def _read_first(reader: FileReader, job: _Job) -> _Opened:
    """Open a file (or take the stream) and read its first block."""
    st = None
    try:
        if job.meta is not None:
            reader.attach(job.fd)
        else:
            st = reader.open(job.name, job.path)
    except ItemError as exc:
        return _Opened(job, error=exc)
    try:
        chunks, eof = reader.read(job.path)
    except ItemError as exc:
        reader.close()
        return _Opened(job, error=exc)
    try:
        if job.meta is not None:
            node = job.meta
        else:
            assert st is not None
            node = reader.node(job.name, job.path, st, chunks if eof else None)
    except ItemError as exc:
        # The chunks are claimed already: they must still be stored.
        reader.close()
        return _Opened(job, None, chunks, error=exc)
    if eof:
        reader.close()
    return _Opened(job, node, chunks, eof, complete=eof and job.meta is None)


@dataclass(slots=True)
class _FileState:
    job: _Job
    node: Node | None
    start: float
    content: list[bytes] = field(default_factory=list)
    size: int = 0
    stats: ItemStats = field(default_factory=ItemStats)
    pending: int = 0
    read_done: bool = False
    final: bool = False  # ``node`` already holds content and size


class FileSaver:
    """Saves files handed in with ``save``; call ``close`` when no more will come.

    Small files are read in batches (up to ``BATCH_FILES`` files or ``READ_SIZE`` bytes by
    their ``lstat`` size) by one worker-thread call, so a folder of small files costs a few
    thread round trips instead of one or two per file.
    """

    def __init__(self, saver: BlobSaver, polynomial: int, reporter: Reporter, nursery: trio.Nursery,
                 cpu: trio.CapacityLimiter, read_concurrency: int = 2, with_atime: bool = False) -> None:
        self.saver = saver
        self.reporter = reporter
        self._nursery = nursery
        self._cpu = cpu
        self._read = trio.CapacityLimiter(read_concurrency)
        self._slot_count = int(cpu.total_tokens) + 1
        self._slots = trio.Semaphore(self._slot_count)
        self._send, recv = trio.open_memory_channel[_Job](QUEUE)
        self._workers = read_concurrency
        self._workers_done = trio.Event()
        for _ in range(read_concurrency):
            reader = FileReader(polynomial, saver, with_atime)
            nursery.start_soon(self._worker, reader, recv.clone())
        recv.close()

    async def save(self, item: str, name: bytes, path: bytes, previous: Node | None,
                   size: int) -> FutureNode:
        """Queue a file (waits while the queue is full); its node comes later."""
        fut = FutureNode()
        job = _Job(item, name, path, previous, fut, size)
        try:
            # No checkpoint while there is room: a folder's files queue up together and
            # the readers find whole batches.
            self._send.send_nowait(job)
        except trio.WouldBlock:
            await self._send.send(job)
        return fut

    async def save_stream(self, item: str, fd: int, meta: Node) -> FutureNode:
        """Queue an open stream (standard input) whose node is ``meta``."""
        fut = FutureNode()
        await self._send.send(_Job(item, meta.name, b"-", None, fut, READ_SIZE, fd, meta))
        return fut

    async def close(self) -> None:
        """No more files: wait for the readers and for every blob still being sealed."""
        await self._send.aclose()
        await self._workers_done.wait()
        for _ in range(self._slot_count):
            await self._slots.acquire()
        for _ in range(self._slot_count):
            self._slots.release()

    async def _worker(self, reader: FileReader, jobs: trio.MemoryReceiveChannel[_Job]) -> None:
        waiting: deque[_Job] = deque()
        try:
            async with jobs:
                while True:
                    if not waiting:
                        try:
                            waiting.append(await jobs.receive())
                        except trio.EndOfChannel:
                            break
                    batch = self._batch(waiting, jobs)
                    await self._save_batch(reader, batch)
                    waiting.extendleft(reversed(batch))
        finally:
            self._workers -= 1
            if not self._workers:
                self._workers_done.set()

    @staticmethod
    def _batch(waiting: deque[_Job], jobs: trio.MemoryReceiveChannel[_Job]) -> list[_Job]:
        """Jobs for one thread call: small files up to the budget; a large one ends it."""
        batch: list[_Job] = []
        budget = READ_SIZE
        while len(batch) < BATCH_FILES:
            if not waiting:
                try:
                    waiting.append(jobs.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            job = waiting[0]
            if batch and job.size > budget:
                break
            batch.append(waiting.popleft())
            budget -= job.size
            if budget <= 0:
                break
        return batch

    async def _save_batch(self, reader: FileReader, batch: list[_Job]) -> None:
        """Save the files of ``batch`` that one thread call got to; the others are left in
        ``batch`` for the next call."""
        start = trio.current_time()
        for job in batch:
            self.reporter.start_file(job.item)
        try:
            results = await trio.to_thread.run_sync(read_batch, reader, batch, limiter=self._read)
        except BaseException:
            reader.close()
            raise
        del batch[:len(results)]
        for job in batch:
            self.reporter.complete_item(job.item, job.previous, None, ItemStats(), 0.0)
        for opened in results:
            job = opened.job
            state = _FileState(job, opened.node, start)
            for chunk in opened.chunks:
                await self._take(state, chunk)
            if opened.error is not None:
                self._fail(job, opened.error)
                continue
            if not opened.eof:
                await self._read_rest(reader, state)
                continue
            state.final = opened.complete
            state.read_done = True
            if not state.pending:
                self._complete(state)

    async def _read_rest(self, reader: FileReader, state: _FileState) -> None:
        """Go on with a file that did not end in its first block."""
        job = state.job
        try:
            eof = False
            while not eof:
                chunks, eof = await trio.to_thread.run_sync(reader.read, job.path, limiter=self._read)
                for chunk in chunks:
                    await self._take(state, chunk)
        except ItemError as exc:
            self._fail(job, exc)
            return
        finally:
            reader.close()
        state.read_done = True
        if not state.pending:
            self._complete(state)

    async def _take(self, state: _FileState, chunk: Chunk) -> None:
        state.content.append(chunk.id)
        state.size += len(chunk.data)
        self.reporter.complete_blob(len(chunk.data))
        if not chunk.new:
            return
        if chunk.sealed is not None:
            await self.saver.add(chunk.sealed)
            self._count(state, chunk.sealed)
            return
        await self._slots.acquire()
        state.pending += 1
        self._nursery.start_soon(self._seal, state, chunk)

    async def _seal(self, state: _FileState, chunk: Chunk) -> None:
        try:
            sealed = await trio.to_thread.run_sync(self.saver.seal, BlobType.DATA, chunk.data, chunk.id,
                                                   limiter=self._cpu)
            chunk.data = b""
            await self.saver.add(sealed)
            self._count(state, sealed)
        finally:
            self._slots.release()
        state.pending -= 1
        if state.read_done and not state.pending:
            self._complete(state)

    @staticmethod
    def _count(state: _FileState, sealed: SealedBlob) -> None:
        state.stats.data_blobs += 1
        state.stats.data_size += sealed.plain_length
        state.stats.data_size_in_repo += sealed.size_in_repo

    def _complete(self, state: _FileState) -> None:
        job = state.job
        node = state.node
        assert node is not None
        if not state.final:
            node = node.replace(content=tuple(state.content), size=state.size)
        self.reporter.complete_item(job.item, job.previous, node, state.stats,
                                    trio.current_time() - state.start)
        job.future.set(node)

    def _fail(self, job: _Job, exc: ItemError) -> None:
        self.reporter.error(os.fsdecode(job.path), exc)
        self.reporter.complete_item(job.item, job.previous, None, ItemStats(), 0.0)
        job.future.set(None)
