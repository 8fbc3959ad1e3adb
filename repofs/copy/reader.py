"""Reading wanted blobs out of the source repository, pack by pack.

``SourceReader`` finds where each blob is stored, groups the blobs of a pack into ranged
reads (``plan_runs``), and hands every opened blob (plaintext, zstd frame) to a function
that runs in a worker thread under the operation's CPU limiter: a batch of about ``BATCH``
bytes per call, one batch at a time, so that little besides the reads is held at once. A
read that fails its checks (a damaged or missing pack) falls back to loading its blobs one
by one from any other copy the source's index lists, as ``Repository.load_blob`` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import trio

from ..backend.base import FileNotFound, FileType, Handle
from ..errors import DamagedPack, IntegrityError
from ..repo.crypto import Key
from ..repo.index import BlobType
from ..repo.repository import Repository
from .blobs import ReadRun, Wanted, open_blob, plan_runs

T = TypeVar("T")
PerBlob = Callable[[Wanted, "bytes | None", "bytes | None"], T]

BATCH = 1 << 20  # bytes of blobs opened per worker-thread call


@dataclass
class ReadStats:
    """What the source was asked for."""

    requests: int = 0
    bytes_read: int = 0
    packs: int = 0
    fallbacks: int = 0


class SourceReader:
    """Ranged reads from ``src`` (its index loaded); CPU work runs under ``src.cpu``."""

    def __init__(self, src: Repository, warn: Callable[[str], None] = lambda text: None) -> None:
        self.src = src
        self.warn = warn
        self.stats = ReadStats()
        self._packs_seen: set[bytes] = set()
        # One batch is opened at a time. Most of the work on a batch of small blobs holds
        # the GIL, so a second thread at it would only fight over the GIL; and one large
        # blob in flight at a time bounds memory. Reads, uploads and the packer's
        # hashing run beside it.
        self._lane = trio.Lock()

    def locate(self, blob_id: bytes, blob_type: BlobType) -> tuple[bytes, Wanted]:
        """The pack and entry of a blob's first stored copy."""
        locations = self.src.index.lookup(blob_id, blob_type)
        if not locations:
            raise IntegrityError(f"{blob_type.json_name} blob {blob_id.hex()} is missing from the source "
                                 "repository's index (run `restic check` on it)")
        loc = locations[0]
        return loc.pack_id, Wanted.at(blob_id, blob_type, loc)

    def plan(self, blobs: Iterable[tuple[bytes, BlobType]]) -> list[ReadRun]:
        """The reads for ``blobs``: grouped by pack (packs in order of first mention)."""
        by_pack: dict[bytes, list[Wanted]] = {}
        for blob_id, blob_type in blobs:
            pack_id, wanted = self.locate(blob_id, blob_type)
            by_pack.setdefault(pack_id, []).append(wanted)
        runs: list[ReadRun] = []
        for pack_id, wanted in by_pack.items():
            runs.extend(plan_runs(pack_id, wanted))
        return runs

    async def fetch(self, run: ReadRun, per_blob: PerBlob[T], consume: Callable[[list[T]], Awaitable[None]],
                    need_plain: bool = True) -> None:
        """``per_blob(wanted, plaintext, frame)`` of every blob of ``run`` in a worker
        thread, a batch of about ``BATCH`` bytes per call; ``consume`` takes each batch's
        results in order, in the trio thread. Without ``need_plain`` the plaintext of a
        compressed blob is None (its frame is checked all the same)."""
        try:
            data = await self.src.backend.load(Handle(FileType.PACK, run.pack_id.hex()), run.length, run.start)
            if len(data) != run.length:
                raise DamagedPack(f"pack {run.pack_id.hex()}: short read at offset {run.start} (truncated pack)")
        except (DamagedPack, FileNotFound) as exc:
            await self._fallback(run, per_blob, consume, exc)
            return
        self.stats.requests += 1
        self.stats.bytes_read += len(data)
        if run.pack_id not in self._packs_seen:
            self._packs_seen.add(run.pack_id)
            self.stats.packs += 1
        view = memoryview(data)
        done = 0
        for batch in _batches(run.blobs):
            try:
                async with self._lane:
                    results = await self.src.cpu_run(_open_batch, self.src.key, run, view, batch, per_blob,
                                                     need_plain)
            except DamagedPack as exc:
                await self._fallback(ReadRun(run.pack_id, run.start, run.end, run.blobs[done:]),
                                     per_blob, consume, exc)
                return
            done += len(batch)
            await consume(results)

    async def _fallback(self, run: ReadRun, per_blob: PerBlob[T],
                        consume: Callable[[list[T]], Awaitable[None]], exc: Exception) -> None:
        self.warn(f"{exc}; loading the blobs from other copies")
        self.stats.fallbacks += 1
        for b in run.blobs:
            plain = await self.src.load_blob(b.type, b.id)
            await consume([await self.src.cpu_run(per_blob, b, plain, None)])


def _batches(blobs: list[Wanted]) -> list[list[Wanted]]:
    out: list[list[Wanted]] = []
    size = BATCH
    for b in blobs:
        if size >= BATCH:
            out.append([])
            size = 0
        out[-1].append(b)
        size += b.length
    return out


def _open_batch(key: Key, run: ReadRun, view: memoryview, batch: list[Wanted], per_blob: PerBlob[T],
                need_plain: bool) -> list[T]:
    # Every blob is checked before ``per_blob`` sees any: a damaged one leaves the batch
    # untouched for the fallback.
    opened = [(b, *open_blob(key, b, run.pack_id, view[b.offset - run.start:b.end - run.start], need_plain))
              for b in batch]
    return [per_blob(b, plain, frame) for b, plain, frame in opened]


async def fetch_all(reader: SourceReader, runs: Iterable[ReadRun], per_blob: PerBlob[T],
                    consume: Callable[[list[T]], Awaitable[None]], workers: int, need_plain: bool = True) -> None:
    """Fetch every run with ``workers`` tasks; ``consume`` takes the results batch by batch in
    the trio thread, and may wait, which holds its worker back."""
    send, recv = trio.open_memory_channel[ReadRun](0)

    async def work(runs_in: trio.MemoryReceiveChannel[ReadRun]) -> None:
        async with runs_in:
            async for run in runs_in:
                await reader.fetch(run, per_blob, consume, need_plain)

    async with trio.open_nursery() as nursery:
        async with recv:
            for _ in range(workers):
                nursery.start_soon(work, recv.clone())
        async with send:
            for run in runs:
                await send.send(run)
