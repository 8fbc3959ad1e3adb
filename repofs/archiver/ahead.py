"""Listing folders ahead of the archiver's walk.

The archiver walks depth first and needs a folder's listing (``lstat`` of every entry, the
parent snapshot's tree decoded) when it enters the folder. Listed on demand, the worker
thread waits while the walk handles entries and the walk waits while the thread lists, so
neither runs alongside the other. ``ListingAhead`` makes the same depth-first walk one step
ahead, in a background task: it lists the folders in the order the archiver will enter them
and hands the listings over through a bounded channel, a few thread calls ahead at most.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..model.tree import Node
from .listing import Entry, ItemError, Kind, Lister, Listing, is_dir_node
from .prefetch import TreePrefetcher

# Folders one listing call may take on besides the one asked for (when their trees in the
# parent snapshot are at hand).
FOLDERS_PER_CALL = 32
# Listing calls done ahead of the walk, at most; each holds up to 1 + FOLDERS_PER_CALL folders.
CALLS_AHEAD = 2

PreviousTree = Callable[[Node | None, bytes], Awaitable[bytes | None]]
CachedTree = Callable[[bytes], bytes | None]


@dataclass(slots=True)
class _Folder:
    name: bytes
    path: bytes
    st: os.stat_result
    previous: Node | None


def unlisted_folders(listing: Listing) -> list[Entry]:
    """The folders below ``listing`` that need a listing call of their own, in the order a
    depth-first walk enters them (folders listed in the same call are walked through)."""
    out: list[Entry] = []
    for e in listing.entries:
        if e.kind is not Kind.DIR or e.listing_error is not None:
            continue
        if e.listing is not None:
            out.extend(unlisted_folders(e.listing))
        else:
            out.append(e)
    return out


class ListingAhead:
    """The listings of one folder and everything below it, in walk order.

    ``start`` launches the background walk in ``nursery``; the archiver calls ``next`` for
    each folder it enters that has no listing yet, and gets its Listing, or the ItemError
    that kept it from being listed. Parent trees come from ``previous_tree``; the prefetcher
    is asked for the trees of the folders to be listed next.
    """

    def __init__(self, lister: Lister, previous_tree: PreviousTree, cached_tree: CachedTree,
                 prefetcher: TreePrefetcher, limiter: trio.CapacityLimiter) -> None:
        self._lister = lister
        self._previous_tree = previous_tree
        self._cached_tree = cached_tree
        self._prefetcher = prefetcher
        self._limiter = limiter
        self._send, self._recv = trio.open_memory_channel[tuple[bytes, Listing | ItemError]](CALLS_AHEAD)

    def start(self, nursery: trio.Nursery, name: bytes, path: bytes, st: os.stat_result,
              previous: Node | None) -> None:
        nursery.start_soon(self._walk, _Folder(name, path, st, previous))

    async def next(self, path: bytes) -> Listing | ItemError:
        """The listing of the next folder the walk enters, which must be ``path``."""
        listed, result = await self._recv.receive()
        if listed != path:
            raise RuntimeError(f"listing ahead went astray: {listed!r} listed, {path!r} entered")
        return result

    async def _walk(self, root: _Folder) -> None:
        async with self._send:
            stack = [root]
            while stack:
                folder = stack.pop()
                raw = await self._previous_tree(folder.previous, folder.path)
                try:
                    listing = await trio.to_thread.run_sync(
                        self._lister.folders, folder.name, folder.path, folder.st, raw, self._cached_tree,
                        FOLDERS_PER_CALL, limiter=self._limiter)
                except ItemError as exc:
                    await self._send.send((folder.path, exc))
                    continue
                todo = unlisted_folders(listing)
                self._prefetcher.want([e.previous.subtree for e in todo  # type: ignore[union-attr, misc]
                                       if is_dir_node(e.previous)], depth=2)
                await self._send.send((folder.path, listing))
                stack.extend(_Folder(e.name, e.path, e.st, e.previous)  # type: ignore[arg-type]
                             for e in reversed(todo))
