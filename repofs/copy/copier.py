"""One copy, in the order that keeps the destination valid at every moment (FORMAT.md §11):

1. list the snapshots of both repositories (before their indexes), choose the source's,
   and drop those the destination holds already;
2. load both indexes; walk the chosen snapshots' trees, copying the trees the destination
   lacks (or, with ``rechunk``, cut the files again and rewrite the trees);
3. copy the data blobs the destination lacks, pack by pack;
4. upload the last packs and write the last index file;
5. write the snapshots.

Packs are uploaded while the copy runs and an index file follows every few packs (see
``sink``), so an interrupted copy leaves packs and index files but no snapshot that points at
missing blobs, and the next run skips every blob the destination's index lists. On the way
out of a failed or cancelled copy the packs stored so far are indexed too.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from ..backend.base import FileType
from ..model.snapshot import Snapshot, encode_snapshot
from ..repo.index import BlobType
from ..repo.packer import DEFAULT_PACK_SIZE, SealedBlob
from ..repo.repository import Repository
from ..repo.saver import Compression
from .blobs import Wanted
from .planner import TreeWalk
from .reader import SourceReader, fetch_all
from .rechunk import Rechunker
from .report import CopyReporter, CopyStats, QuietReporter
from .sink import BlobSink
from .snapshots import choose, copied, find_copies

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

INDEX_ON_EXIT_SECONDS = 60


@dataclass
class CopyRequest:
    """What to copy and how: snapshot ids (or ``latest``) and restic's filters."""

    snapshots: Sequence[str] = ()
    hosts: Sequence[str] = ()
    tags: Sequence[str] = ()
    paths: Sequence[str] = ()
    rechunk: bool = False
    dry_run: bool = False
    compression: Compression = Compression.AUTO
    pack_size: int = DEFAULT_PACK_SIZE


@dataclass
class CopyResult:
    """The chosen snapshots: each copied one with its new id (None in a dry run), each
    skipped one with the destination snapshot that is its copy."""

    copied: list[tuple[Snapshot, bytes | None]] = field(default_factory=list)
    skipped: list[tuple[Snapshot, Snapshot]] = field(default_factory=list)
    stats: CopyStats = field(default_factory=CopyStats)
    polynomials_differ: bool = False
    rechunked: bool = False


DEDUP_WARNING = ("the source and destination repositories use different chunker polynomials: "
                 "the copied files will not deduplicate with files backed up into the destination "
                 "(use --rechunk, or make destinations with `init --copy-chunker-params`)")


async def copy_snapshots(src: Repository, dst: Repository, request: CopyRequest,
                         reporter: CopyReporter | None = None, stats: CopyStats | None = None) -> CopyResult:
    """Copy the snapshots ``request`` chooses from ``src`` to ``dst`` (both open and locked
    by the caller). Both repositories' CPU work shares one limiter from here on."""
    reporter = reporter or QuietReporter()
    result = CopyResult(stats=stats or CopyStats())
    stats = result.stats
    cpu = trio.CapacityLimiter(os.cpu_count() or 1)
    src.cpu = dst.cpu = cpu

    src_snapshots, dst_snapshots = await _both(src.load_snapshots, dst.load_snapshots)
    chosen = choose(src_snapshots, request.snapshots, request.hosts, request.tags, request.paths)
    result.polynomials_differ = src.config.chunker_polynomial != dst.config.chunker_polynomial
    result.rechunked = request.rechunk and result.polynomials_differ
    stats.snapshots = len(chosen)
    todo: list[Snapshot] = []
    for snap, existing in find_copies(chosen, dst_snapshots, compare_tree=not result.polynomials_differ):
        reporter.snapshot(snap, existing)
        if existing is None:
            todo.append(snap)
        else:
            result.skipped.append((snap, existing))
            stats.skipped += 1
    if not todo:
        stats.phase = "done"
        return result
    if result.polynomials_differ and not result.rechunked:
        reporter.warning(DEDUP_WARNING)

    await _both(src.load_index, dst.load_index)
    reader = SourceReader(src, reporter.warning)
    stats.read = reader.stats
    workers = max(2, src.backend.connections)
    roots = {s.tree: s.tree for s in todo}
    sink: BlobSink | None = None
    try:
        async with trio.open_nursery() as nursery:
            sink = BlobSink(dst, nursery, stats, request.compression, request.pack_size, request.dry_run)
            stats.phase = "trees"
            if result.rechunked:
                rechunker = Rechunker(reader, sink, stats, dst.config.chunker_polynomial, workers,
                                      files=(os.cpu_count() or 1) + 1)
                roots = await rechunker.run(list(roots))
                wanted = rechunker.wanted_data
            else:
                walk = TreeWalk(reader, sink, stats, workers)
                await walk.walk(roots)
                wanted = walk.wanted_data
            stats.phase = "data"
            await copy_data(reader, sink, wanted, stats, workers)
            stats.phase = "index"
            await sink.flush()
    except BaseException:
        if sink is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(INDEX_ON_EXIT_SECONDS):
                try:
                    await sink.save_index()
                except Exception:  # noqa: BLE001, S110  the error on its way out matters more
                    pass
        raise

    stats.phase = "snapshots"
    for snap in todo:
        new_id = None
        if not request.dry_run:
            new_id = await dst.save_unpacked(FileType.SNAPSHOT, encode_snapshot(copied(snap, roots[snap.tree])))
            stats.saved += 1
            reporter.saved(snap, new_id)
        result.copied.append((snap, new_id))
    stats.phase = "done"
    return result


async def copy_data(reader: SourceReader, sink: BlobSink, wanted: dict[bytes, None], stats: CopyStats,
                    workers: int) -> None:
    """Copy the ``wanted`` data blobs pack by pack (in a dry run only count them)."""
    runs = reader.plan((blob_id, BlobType.DATA) for blob_id in wanted)
    for run in runs:
        stats.planned_blobs += len(run.blobs)
        stats.planned_bytes += sum(b.plain_length for b in run.blobs)
    if sink.dry_run:
        await sink.add([(BlobType.DATA, b.plain_length, None) for run in runs for b in run.blobs
                        if sink.claim(BlobType.DATA, b.id)])
        return

    def seal(b: Wanted, plain: bytes | None, frame: bytes | None) -> tuple[Wanted, bool, SealedBlob | None]:
        claimed = sink.claim(BlobType.DATA, b.id)
        return b, claimed, sink.seal(BlobType.DATA, b.id, plain, frame, b.plain_length) if claimed else None

    async def store(results: list[tuple[Wanted, bool, SealedBlob | None]]) -> None:
        await sink.add([(BlobType.DATA, b.plain_length, sealed) for b, claimed, sealed in results if claimed])

    await fetch_all(reader, runs, seal, store, workers, need_plain=not sink.transcoder.reuses(BlobType.DATA))


async def _both(first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]) -> tuple[A, B]:
    """Two loads at the same time; their results in order."""
    a: list[A] = []
    b: list[B] = []

    async def one(fn: Callable[[], Awaitable[T]], out: list[T]) -> None:
        out.append(await fn())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, first, a)
        nursery.start_soon(one, second, b)
    return a[0], b[0]
