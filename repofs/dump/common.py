"""The dump pipeline: walk a tree, pick nodes, fetch their blobs ahead, write in order.

Four stages run concurrently in one nursery, joined by bounded channels:

1. the walker (``treewalk``) streams ``(path, node)`` in restic's order, in batches,
   fetching the trees of folders ahead of it;
2. the planner picks nodes (``Selection``), refuses hostile names, turns each picked
   node into an ``Entry`` and each data blob into a ``Chunk`` of a ``Job``: neighbouring
   blobs of one pack (across files) share a job, which is one ranged backend read;
3. readers read each job's range (a local repository's is read by the decoding thread
   itself), and a ``fetch.Decoder`` checks, decrypts and decompresses every blob and
   lets the format prepare it (zip deflates), in threads under the repository's ``cpu``
   limiter; a blob that fails is tried again from its other copies (``load_blob``);
4. the writer takes entries in order, waits for their chunks, and hands header and data
   bytes to ``Output``; it starts a job itself if it gets to one not yet started.

Channels are closed with plain ``with``: an async close checkpoints, and a cancellation
arriving there would hide the error that ended the stage.

Memory is bounded by a byte budget: a job's size is taken from it before the job
starts, the writer gives it back when the job's last chunk is written. The chunks of
a job are contiguous in the stream, so when the writer gets to a job not yet started,
every job before it has given its share back and this one fits.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from ..errors import IntegrityError, NotFound, RepofsError
from ..fdio import Buffer
from ..fetch import Decoder, PackReader, close_enough, read_range
from ..model import tree as nodes
from ..model.tree import Node
from ..patterns import PatternList
from ..repo.index import BlobLocation, BlobType
from ..tuning import tuned
from ..walk import NodeBatch, walk_batches
from .output import Output

__all__ = ["ArchiveFormat", "Buffer", "Chunk", "DumpStats", "Entry", "Job", "RawFormat",
           "Selection", "check_name", "dump", "dump_file", "link_target"]

AHEAD = 16 << 20  # bytes of blobs fetched ahead of the writer
# A job this large starts at once, before the writer asks for it. Every job is a trip
# through a thread and back into the loop: with 2 MiB instead of 512 KiB a tar of the large
# benchmark snapshot took 4.07-4.15 s instead of 4.32-4.40 (alternating runs).
MIN_JOB = 2 << 20
BATCH = 256  # items handed to the writer at once
NODES_AHEAD = 4  # batches
ITEMS_AHEAD = 64  # batches
# Decoder threads come back from C needing the GIL while the loop thread runs Python almost
# all the time (see repofs.tuning). With 0.2 ms instead of 5 a tar of the large benchmark
# snapshot took 7.3-8.2 s instead of 7.9-9.0 (alternating runs); shorter was no better. The
# mount and the backup showed no difference and keep the default.
SWITCH_INTERVAL = 0.0002

Warn = Callable[[str], None]


# -- entries, jobs, formats ----------------------------------------------------------------


class Job:
    """One ranged read of a pack and the blobs in it; ``pieces`` once ``done`` is set."""

    __slots__ = ("pack_id", "start", "end", "blobs", "where", "plain", "refs", "done", "pieces")

    def __init__(self, pack_id: bytes, start: int) -> None:
        self.pack_id = pack_id
        self.start = start
        self.end = start
        self.blobs: list[tuple[bytes, BlobLocation]] = []
        self.where: dict[bytes, int] = {}  # blob id -> index in blobs
        self.plain = 0
        self.refs = 0  # chunks not yet written
        self.done = trio.Event()
        self.pieces: list[Any] | None = None

    @property
    def cost(self) -> int:
        return max(self.end - self.start, self.plain)

    def complete(self, pieces: list[Any]) -> None:
        self.pieces = pieces
        self.done.set()


Chunk = tuple[Job, int]
"""A blob of an entry's content: the job reading it and its place in the job's blobs.
A plain tuple: there is one per blob, made and taken apart in the hottest loops."""


@dataclass(slots=True)
class Entry:
    """One archive member: ``path`` is relative (no leading or trailing slash). The
    chunks of its content follow it in the stream to the writer."""

    path: bytes
    node: Node
    size: int = 0
    link_to: bytes | None = None


class ArchiveFormat(Protocol):
    """Turns entries and blob plaintexts into output bytes; ``prepare`` runs in worker
    threads (any order), everything else in the writer (entry order)."""

    name: str
    hardlinks: bool

    def accepts(self, node: Node) -> bool: ...

    def prepare(self, plain: bytes, packed_ratio: float | None) -> Any:
        """What the writer needs of a blob; ``packed_ratio`` is its zstd frame's size over
        its plaintext's in the repository (None when stored uncompressed): a hint of how
        well it compresses."""

    def begin(self, entry: Entry) -> Sequence[Buffer]: ...

    def piece(self, piece: Any) -> Sequence[Buffer]: ...

    def end(self, entry: Entry) -> Sequence[Buffer]: ...

    def finish(self) -> Sequence[Buffer]: ...


class RawFormat:
    """The bytes of one file, nothing around them."""

    name = "raw"
    hardlinks = False

    def accepts(self, node: Node) -> bool:
        return node.type == nodes.FILE

    def prepare(self, plain: bytes, packed_ratio: float | None) -> bytes:
        return plain

    def begin(self, entry: Entry) -> Sequence[Buffer]:
        return ()

    def piece(self, piece: bytes) -> Sequence[Buffer]:
        return (piece,)

    def end(self, entry: Entry) -> Sequence[Buffer]:
        return ()

    def finish(self) -> Sequence[Buffer]:
        return ()


def link_target(node: Node) -> bytes:
    """A symlink's target as bytes (the raw form when the node has one)."""
    if node.linktarget_raw is not None:
        return node.linktarget_raw
    return (node.linktarget or "").encode("utf-8", "surrogateescape")


def _show(path: bytes) -> str:
    return os.fsdecode(path) or "/"


def check_name(parent: bytes, node: Node) -> None:
    """Refuse names that would escape or confuse an archive path, and link targets no
    archive can hold. Raises IntegrityError naming the folder."""
    name = node.name
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise IntegrityError(f"{_show(parent)}: refusing a node named {name!r}: a file name "
                             "cannot be empty, '.' or '..', or contain '/' or NUL (damaged or "
                             "hostile tree)")
    if node.type == nodes.SYMLINK and b"\0" in link_target(node):
        raise IntegrityError(f"{_show(parent + b'/' + name)}: refusing a symlink whose target "
                             "contains NUL (damaged or hostile tree)")


# -- selection -----------------------------------------------------------------------------


def _within(path: bytes, folder: bytes) -> bool:
    return folder == b"/" or path == folder or path.startswith(folder + b"/")


class Selection:
    """Which nodes go out: those at or below one of ``targets`` (absolute paths in the
    dumped tree; ``b"/"`` for everything), not matching ``excludes`` and, when there
    are ``includes``, matching one of them. Folders above a picked node are picked too
    (they come out first, once), so every member has its parents before it."""

    def __init__(self, targets: Sequence[bytes] = (b"/",), includes: PatternList | None = None,
                 excludes: PatternList | None = None) -> None:
        tops = sorted(set(targets))
        self.targets = [t for t in tops if not any(o != t and _within(t, o) for o in tops)]
        self.includes = includes or PatternList(())
        self.excludes = excludes or PatternList(())
        self._everything = self.targets == [b"/"] and not self.includes and not self.excludes

    def decide(self, path: bytes, node: Node) -> tuple[bool, bool]:
        """(write this node, walk into it) for the node at ``path`` (``/a/b``)."""
        is_dir = node.type == nodes.DIR
        if self._everything:
            return True, is_dir
        if any(_within(path, t) for t in self.targets):
            text = os.fsdecode(path)
            if self.excludes and self.excludes.match(text):
                return False, False
            if self.includes:
                matched, child = self.includes.match_with_child(text)
                return matched, child and is_dir
            return True, is_dir
        return False, is_dir and any(t.startswith(path + b"/") for t in self.targets)

    def descend(self, path: bytes, node: Node) -> bool:
        return self.decide(path, node)[1]


# -- the pipeline --------------------------------------------------------------------------


class ByteBudget:
    """A semaphore counted in bytes; one request larger than the limit is let through
    alone, so nothing waits forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._lot = trio.lowlevel.ParkingLot()

    def fits(self, n: int) -> bool:
        return not self.used or self.used + n <= self.limit

    async def acquire(self, n: int) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.fits(n):
            await self._lot.park()
        self.used += n
        self.peak = max(self.peak, self.used)

    def release(self, n: int) -> None:
        self.used -= n
        self._lot.unpark_all()


@dataclass
class DumpStats:
    entries: int = 0
    files: int = 0
    bytes_written: int = 0
    jobs: int = 0
    blobs: int = 0
    skipped: int = 0
    budget_peak: int = 0


Source = Callable[[trio.MemorySendChannel[NodeBatch]], Awaitable[None]]


class _Pipeline:
    def __init__(self, repo: PackReader, fmt: ArchiveFormat, ahead: int, warn: Warn) -> None:
        self.repo = repo
        self.fmt = fmt
        self.warn = warn
        self.budget = ByteBudget(ahead)
        self.stats = DumpStats()
        self._pending: Job | None = None  # the job being gathered
        self._ready: list[Job] = []  # gathered, not yet started
        self._items: list[Entry | Chunk] = []  # planned, not yet handed to the writer
        self._last: tuple[bytes, Chunk] | None = None  # previous blob, for repeats
        self._links: dict[tuple[int, int], tuple[bytes, tuple[bytes, ...] | None]] = {}
        self._jobs_send, self._jobs_recv = trio.open_memory_channel[Job](0)
        self._items_send, self._items_recv = trio.open_memory_channel[list[Entry | Chunk]](ITEMS_AHEAD)

    async def run(self, source: Source, selection: Selection, fd: int) -> DumpStats:
        nodes_send, nodes_recv = trio.open_memory_channel[NodeBatch](NODES_AHEAD)
        readers = 2 * self.repo.backend.connections
        with tuned(SWITCH_INTERVAL):
            async with trio.open_nursery() as nursery:
                decoder = Decoder(self.repo, BlobType.DATA, self.fmt.prepare, nursery,
                                  int(self.repo.cpu.total_tokens))
                nursery.start_soon(source, nodes_send)
                nursery.start_soon(self._plan, nodes_recv, selection)
                with self._jobs_recv:
                    for _ in range(readers):
                        nursery.start_soon(self._read, self._jobs_recv.clone(), decoder)
                out = Output(fd, nursery)
                await self._write(out)
                decoder.close()
        self.stats.bytes_written = out.written
        self.stats.budget_peak = self.budget.peak
        return self.stats

    # -- planning ----------------------------------------------------------------------

    async def _plan(self, nodes_recv: trio.MemoryReceiveChannel[NodeBatch], selection: Selection) -> None:
        parents: list[tuple[bytes, Node, bool]] = []  # folders above the current node
        with nodes_recv, self._items_send, self._jobs_send:
            async for batch in nodes_recv:
                for path, node in batch:
                    check_name(path[:len(path) - len(node.name) - 1], node)
                    while parents and not path.startswith(parents[-1][0] + b"/"):
                        parents.pop()
                    write, descend = selection.decide(path, node)
                    if write:
                        for i, (ppath, pnode, done) in enumerate(parents):
                            if not done:
                                await self._add(ppath, pnode)
                                parents[i] = (ppath, pnode, True)
                        await self._add(path, node)
                    if descend and node.subtree is not None:
                        parents.append((path, node, write))
                await self._hand_over()
            await self._flush()
            await self._hand_over()

    async def _add(self, path: bytes, node: Node) -> None:
        if not self.fmt.accepts(node):
            self.stats.skipped += 1
            self.warn(f"{_show(path)}: skipping a {node.type or 'node of unknown type'}; "
                      f"{self.fmt.name} cannot hold it")
            return
        entry = Entry(path[1:], node)
        self.stats.entries += 1
        items = self._items
        if node.type != nodes.FILE:
            items.append(entry)
            if len(items) >= BATCH:
                await self._hand_over()
            return
        self.stats.files += 1
        content = node.content or ()
        if self.fmt.hardlinks and node.links > 1 and node.inode:
            key = (node.device_id, node.inode)
            known = self._links.get(key)
            if known is not None and known[1] == node.content:
                entry.link_to = known[0]
                items.append(entry)
                return
            self._links[key] = (entry.path, node.content)
        lookup = self.repo.index.lookup
        locations = []
        size = 0
        for blob_id in content:
            found = lookup(blob_id, BlobType.DATA)
            if not found:
                raise NotFound(f"{_show(path)}: data blob {blob_id.hex()} is not in the index")
            locations.append(found[0])
            size += found[0].plain_length
        entry.size = size
        items.append(entry)
        for blob_id, loc in zip(content, locations):
            self._chunk(blob_id, loc)
            if self._ready:
                await self._start_ready()
        if len(items) >= BATCH:
            await self._hand_over()

    def _chunk(self, blob_id: bytes, loc: BlobLocation) -> None:
        """Plan one blob of the current entry into the job being gathered; a job that is
        complete (MIN_JOB long, or the blob does not fit it) moves to ``_ready``."""
        last = self._last
        if last is not None and last[0] == blob_id and last[1][0].refs:
            last[1][0].refs += 1  # the same blob again (runs of zeros): decoded once
            self._items.append(last[1])
            return
        job = self._pending
        end = loc.offset + loc.length
        # Blobs of one pack need not come in pack order: any close enough joins the job.
        if job is None or job.pack_id != loc.pack_id or not close_enough(job.start, job.end, loc):
            if job is not None:
                self._ready.append(job)
            job = self._pending = Job(loc.pack_id, loc.offset)
        index = job.where.get(blob_id)
        if index is None:
            index = job.where[blob_id] = len(job.blobs)
            job.blobs.append((blob_id, loc))
            if loc.offset < job.start:
                job.start = loc.offset
            if end > job.end:
                job.end = end
            job.plain += loc.plain_length
            self.stats.blobs += 1
        job.refs += 1
        chunk = (job, index)
        self._items.append(chunk)
        self._last = (blob_id, chunk)
        if job.end - job.start >= MIN_JOB:
            self._ready.append(job)
            self._pending = None

    async def _hand_over(self) -> None:
        """Give the planned items to the writer (which may wait on the channel)."""
        if self._items:
            items, self._items = self._items, []
            await self._items_send.send(items)

    async def _flush(self) -> None:
        """Start the job being gathered too (at the end)."""
        if self._pending is not None:
            self._ready.append(self._pending)
            self._pending = None
        await self._start_ready()

    async def _start_ready(self) -> None:
        """Start the complete jobs in order, each once the budget has room for it."""
        while self._ready:
            job = self._ready[0]
            if not self.budget.fits(job.cost):
                # The budget comes back as the writer writes: it must have what we planned.
                # The job stays in _ready meanwhile: should the writer get to it while the
                # channel is full, it starts the job itself.
                await self._hand_over()
                if not self._ready or self._ready[0] is not job:
                    continue
            await self._start(job)

    async def _start(self, job: Job) -> None:
        """Take ``job`` (gathered or complete, not started) out of the planner's hands,
        take its size from the budget and give it to a reader."""
        if job is self._pending:
            self._pending = None
        else:
            self._ready.remove(job)
        self.stats.jobs += 1
        await self.budget.acquire(job.cost)
        await self._jobs_send.send(job)

    # -- fetching ----------------------------------------------------------------------

    async def _read(self, jobs: trio.MemoryReceiveChannel[Job], decoder: Decoder) -> None:
        """Read each job's range and hand it to the decoder, which completes the job; a
        backend with a ``blocking_load`` leaves the read to the decoder's thread."""
        blocking = self.repo.backend.blocking_load is not None
        with jobs:
            async for job in jobs:
                if blocking:
                    decoder.submit_unread(job.pack_id, job.start, job.end, job.blobs, job.complete)
                    continue
                try:
                    raw = await read_range(self.repo, job.pack_id, job.start, job.end)
                except RepofsError as exc:
                    decoder.failed(job.blobs, exc, job.complete)
                else:
                    decoder.submit(job.pack_id, job.start, job.blobs, raw, job.complete)

    # -- writing -----------------------------------------------------------------------

    async def _write(self, out: Output) -> None:
        """Entries in order, each followed by its chunks."""
        fmt = self.fmt
        add = out.add
        release = self.budget.release
        entry: Entry | None = None
        with self._items_recv:
            async for items in self._items_recv:
                for item in items:
                    if isinstance(item, Entry):
                        if entry is not None:
                            for b in fmt.end(entry):
                                add(b)
                        entry = item
                        for b in fmt.begin(item):
                            add(b)
                    else:
                        job, index = item
                        pieces = job.pieces
                        if pieces is None:
                            if job is self._pending or job in self._ready:
                                await self._start(job)
                            await job.done.wait()
                            pieces = job.pieces
                            assert pieces is not None
                        piece = pieces[index]
                        if isinstance(piece, RepofsError):
                            assert entry is not None
                            raise type(piece)(f"/{_show(entry.path)}: {piece}")
                        for b in fmt.piece(piece):
                            add(b)
                        job.refs -= 1
                        if not job.refs:
                            job.pieces = None
                            release(job.cost)
                    if out.full:
                        await out.flush()
        if entry is not None:
            await out.write(fmt.end(entry))
        await out.write(fmt.finish())
        await out.aclose()


def _ignore(message: str) -> None:
    pass


async def dump(repo: PackReader, tree_id: bytes, selection: Selection,
               fmt: ArchiveFormat, fd: int, *, ahead: int = AHEAD, warn: Warn = _ignore) -> DumpStats:
    """Write the selected nodes below ``tree_id`` to ``fd`` as ``fmt``."""

    async def source(send: trio.MemorySendChannel[NodeBatch]) -> None:
        await walk_batches(repo, tree_id, selection.descend, send)

    return await _Pipeline(repo, fmt, ahead, warn).run(source, selection, fd)


async def dump_file(repo: PackReader, path: bytes, node: Node, fd: int, *,
                    ahead: int = AHEAD) -> DumpStats:
    """Write the content of one file node to ``fd``, nothing else."""

    async def source(send: trio.MemorySendChannel[NodeBatch]) -> None:
        with send:
            await send.send([(path, node)])

    return await _Pipeline(repo, RawFormat(), ahead, _ignore).run(source, Selection([path]), fd)
