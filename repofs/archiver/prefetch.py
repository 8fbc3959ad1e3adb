"""Loading the parent snapshot's trees ahead of the walk, many at a time.

Tree blobs sit together in tree packs. Instead of one ranged read and one decryption per
tree, a batch of wanted trees is grouped by pack into runs of neighbouring blobs; each run is
one read, and the whole batch is decrypted in one worker-thread call. The plaintexts go into
the tree cache, where the walk (and the listing threads, which take only what is cached)
find them. A batch also asks for the trees below its trees, ``depth`` levels down, so the
walk can list several folders in one thread call.
"""

from __future__ import annotations

import re

import trio

from ..backend.base import FileType, Handle
from ..cache.blobcache import BlobCache
from ..errors import RepofsError
from ..repo.index import BlobLocation, BlobType
from ..repo.repository import Repository

# A run of neighbouring blobs is read at once when the gaps in it stay below this; a run is
# also what one thread call decodes, so it stays short enough for the budget below to bite.
MAX_GAP = 64 << 10
MAX_RUN = 1 << 20
# Trees loaded ahead of the walk, at most, in bytes of the cache (the walk drops each tree
# once it has listed its folder). Without it the whole parent snapshot's trees could be
# decoded at the start: 33 MiB for 5,000 folders.
AHEAD_BYTES = 16 << 20
_SUBTREE = re.compile(rb'"subtree":"([0-9a-f]{64})"')


def subtrees(raw: bytes) -> list[bytes]:
    """Subtree ids named in a tree blob's JSON (a name cannot hold these unescaped quotes)."""
    return [bytes.fromhex(m.decode()) for m in _SUBTREE.findall(raw)]


class TreePrefetcher:
    """Fills ``cache`` with trees of ``repo`` in background tasks of ``nursery``; at most
    ``loads`` batches at a time. Failures are left for the walk to meet and report."""

    def __init__(self, repo: Repository, cache: BlobCache, nursery: trio.Nursery, loads: int = 4) -> None:
        self.repo = repo
        self.cache = cache
        self._nursery = nursery
        self._limiter = trio.CapacityLimiter(loads)
        self._asked: set[bytes] = set()

    def want(self, tree_ids: list[bytes], depth: int = 1) -> None:
        """Load these trees (and ``depth - 1`` levels below them) unless cached or asked."""
        todo = [t for t in tree_ids
                if t not in self._asked and self.cache.get_cached((BlobType.TREE, t)) is None]
        if todo:
            self._asked.update(todo)
            self._nursery.start_soon(self._load, todo, depth)

    async def _load(self, tree_ids: list[bytes], depth: int) -> None:
        runs: list[tuple[bytes, list[tuple[bytes, BlobLocation]]]] = []
        by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
        for t in tree_ids:
            locations = self.repo.index.lookup(t, BlobType.TREE)
            if locations:
                by_pack.setdefault(locations[0].pack_id, []).append((t, locations[0]))
        for pack_id, blobs in by_pack.items():
            blobs.sort(key=lambda b: b[1].offset)
            run = [blobs[0]]
            for blob in blobs[1:]:
                start, last = run[0][1].offset, run[-1][1]
                if (blob[1].offset - (last.offset + last.length) <= MAX_GAP
                        and blob[1].offset + blob[1].length - start <= MAX_RUN):
                    run.append(blob)
                else:
                    runs.append((pack_id, run))
                    run = [blob]
            runs.append((pack_id, run))
        found: list[bytes] = []
        async with self._limiter:
            for i, (pack_id, run) in enumerate(runs):
                if self.cache.used >= AHEAD_BYTES:
                    # Far enough ahead: the rest may be asked for again when the walk nears.
                    self._asked.difference_update(t for _, later in runs[i:] for t, _ in later)
                    break
                start = run[0][1].offset
                end = run[-1][1].offset + run[-1][1].length
                try:
                    data = await self.repo.backend.load(Handle(FileType.PACK, pack_id.hex()), end - start, start)
                    plains = await self.repo.cpu_run(self._decode, pack_id, run, data, start)
                except RepofsError:
                    continue
                for (tree_id, _), plain in zip(run, plains):
                    self.cache.put((BlobType.TREE, tree_id), plain)
                    if depth > 1:
                        found.extend(subtrees(plain))
        if found:
            self.want(found, depth - 1)

    def _decode(self, pack_id: bytes, run: list[tuple[bytes, BlobLocation]], data: bytes,
                start: int) -> list[bytes]:
        plains = self.repo.decode_blobs(BlobType.TREE, pack_id, start, data, run)
        for plain in plains:
            if isinstance(plain, RepofsError):
                raise plain
        return plains  # type: ignore[return-value]
