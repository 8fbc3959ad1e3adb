"""``repofs copy``: copy snapshots from another repository into this one, like `restic copy`."""

from __future__ import annotations

import contextlib
import ctypes
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any

import click
import trio

from ..backend.base import FileType
from ..backend.location import open_backend
from ..copy import CopyRequest, CopyResult, CopyStats, copy_snapshots
from ..model import gojson
from ..model.ids import short
from ..model.snapshot import Snapshot
from ..repo.index import BlobType
from ..repo.lock import locked
from ..repo.packer import DEFAULT_PACK_SIZE, check_pack_size
from ..repo.repository import Repository
from ..repo.saver import Compression
from ..ui.output import local_time
from ..ui.progress import format_bytes, format_seconds, go_float
from .cmd_snapshots import filter_options
from .context import GlobalOptions, repository_location
from .from_repo import SourceOptions, from_repo_options
from .main import cli, global_options, run, take_globals

REFRESH = 0.2
M_MMAP_THRESHOLD = -3  # mallopt parameters of glibc's malloc.h
M_ARENA_MAX = -8


@cli.command("copy")
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@from_repo_options
@filter_options
@click.option("--rechunk", is_flag=True,
              help="When the repositories' chunker polynomials differ, cut file contents again "
                   "with this repository's chunker (trees are rewritten), so the copy deduplicates "
                   "with backups made here.")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be copied; write nothing.")
@click.option("--compression", default="auto", envvar="RESTIC_COMPRESSION", show_default=True,
              metavar="auto|off|max", help="Compression of data blobs (destination version 2).")
@click.option("--pack-size", type=int, default=0, envvar="RESTIC_PACK_SIZE", metavar="MIB",
              help="Target pack size in MiB (default 16).")
@global_options
def copy_cmd(snapshot_ids: tuple[str, ...], hosts: tuple[str, ...], tags: tuple[str, ...],
             paths: tuple[str, ...], rechunk: bool, dry_run: bool, compression: str, pack_size: int,
             **kwargs: Any) -> None:
    """Copy snapshots from the --from-repo repository into this one (-r): all of them, those
    the filters match, or those named ([SNAPSHOT]...: ids, short ids, `latest`). Snapshots
    copied before are skipped; only blobs this repository lacks are read and stored.

    Exit status: 0 on success, 1 on errors, 130 when interrupted (what was stored stays
    valid; running the copy again goes on where it stopped).
    """
    source = SourceOptions.take(kwargs)
    opts = take_globals(kwargs)
    request = CopyRequest(snapshot_ids, hosts, tags, paths, rechunk, dry_run, Compression.parse(compression),
                          check_pack_size(pack_size) if pack_size else DEFAULT_PACK_SIZE)
    source.location()
    repository_location(opts)
    source.password()
    opts.password()
    _return_big_buffers()
    run(opts, _copy, opts, source, request)


def _return_big_buffers() -> None:
    """Have glibc map every allocation from 256 KiB up on its own, and keep two arenas.

    A copy moves megabyte-sized buffers through several threads. By default glibc raises its
    mmap threshold to the size of the largest block freed, so later buffers land in
    per-thread heaps that do not shrink: that doubles the peak memory of a copy.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 256 << 10)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # not glibc


async def _copy(opts: GlobalOptions, source: SourceOptions, request: CopyRequest) -> None:
    progress = CopyProgress(json=opts.json, quiet=opts.quiet, dry_run=request.dry_run)
    async with _open_both(opts, source) as (src, dst), trio.open_nursery() as nursery:
        nursery.start_soon(progress.run)
        try:
            result = await copy_snapshots(src, dst, request, progress, progress.stats)
        finally:
            nursery.cancel_scope.cancel()
    progress.finish(result)


@asynccontextmanager
async def _open_both(opts: GlobalOptions, source: SourceOptions) -> AsyncIterator[tuple[Repository, Repository]]:
    """Source and destination, opened and locked at the same time (a key derivation and a
    lock's settling wait each); the source locked unless --no-lock, the destination always,
    as restic does. Each is held by a task of its own until the body ends."""
    async with trio.open_nursery() as holders:
        repos: dict[str, Repository] = {}

        async def start(role: str, location: str, password: bytes, lock: bool) -> None:
            repos[role] = await holders.start(_hold, location, password, lock)

        async with trio.open_nursery() as starting:
            starting.start_soon(start, "src", source.location(), source.password(), not opts.no_lock)
            starting.start_soon(start, "dst", repository_location(opts), opts.password(), True)
        try:
            yield repos["src"], repos["dst"]
        finally:
            holders.cancel_scope.cancel()


async def _hold(location: str, password: bytes, lock: bool,
                task_status: trio.TaskStatus[Repository] = trio.TASK_STATUS_IGNORED) -> None:
    """Open a repository, lock it if asked, hand it over, and keep it until cancelled."""
    backend = open_backend(location)
    try:
        repo = await Repository.open(backend, password, read_ahead=(FileType.SNAPSHOT, FileType.INDEX))
        async with locked(repo) if lock else contextlib.nullcontext():
            task_status.started(repo)
            await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await backend.close()


class CopyProgress:
    """The copy's reporter: snapshot lines, a status line on a terminal, the summary."""

    def __init__(self, *, json: bool = False, quiet: bool = False, dry_run: bool = False,
                 stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.json = json
        self.quiet = quiet
        self.dry_run = dry_run
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.stats = CopyStats()
        self.start = time.monotonic()
        self._bar: Any = None
        self._bar_phase = ""

    def _print(self, text: str) -> None:
        if not (self.quiet or self.json):
            if self._bar is not None:
                self._bar.write(text, file=self.out)
            else:
                print(text, file=self.out, flush=True)

    # -- events from the copy -------------------------------------------------------------

    def snapshot(self, snap: Snapshot, existing: Snapshot | None) -> None:
        sid = short(snap.id or b"")
        if existing is not None:
            self._print(f"skipping source snapshot {sid}, was already copied to snapshot "
                        f"{short(existing.id or b'')}")
        else:
            verb = "would copy" if self.dry_run else "copy"
            self._print(f"{verb} snapshot {sid} of [{', '.join(snap.paths)}] at {local_time(snap.time)}"
                        f"{' from ' + snap.hostname if snap.hostname else ''}")

    def saved(self, snap: Snapshot, new_id: bytes) -> None:
        self._print(f"snapshot {short(new_id)} saved (copy of {short(snap.id or b'')})")

    def warning(self, text: str) -> None:
        self._close_bar()
        print(f"repofs: warning: {text}", file=self.err, flush=True)

    # -- status line ----------------------------------------------------------------------

    @property
    def shows_status(self) -> bool:
        if self.quiet or self.json:
            return False
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    async def run(self) -> None:
        """Refresh the status line until cancelled."""
        if not self.shows_status:
            await trio.sleep_forever()
        try:
            while True:
                await trio.sleep(REFRESH)
                self.update()
        finally:
            self._close_bar()

    def update(self) -> None:
        """One bar per phase: bytes of the blobs copied (or of the files cut again) of those
        known so far, with the rate; blobs, files or trees as the postfix."""
        from tqdm import tqdm  # only on a terminal: keep the import off the plain path

        s = self.stats
        if s.phase in ("snapshots", "index", "done"):
            return
        if self._bar is not None and self._bar_phase != s.phase:
            self._close_bar()
        if s.phase == "rechunk":
            total, done, count = s.rechunk_total, s.rechunked_bytes, f"{s.rechunked_files} files"
        else:
            total, done = s.planned_bytes, s.bytes_done
            count = f"{s.blobs_done}/{s.planned_blobs} blobs, {s.trees_read} trees read"
        count += f", {s.snapshots - s.skipped} snapshot{'s' if s.snapshots - s.skipped != 1 else ''}"
        if self._bar is None:
            self._bar_phase = s.phase
            self._bar = tqdm(total=total or None, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                             file=self.out, leave=False, dynamic_ncols=True, mininterval=0, desc=s.phase,
                             bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}, {rate_fmt}] {postfix}")
        bar = self._bar
        bar.total = total or None
        bar.n = done
        bar.set_postfix_str(count, refresh=False)
        bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- the end --------------------------------------------------------------------------

    def finish(self, result: CopyResult) -> None:
        self._close_bar()
        s = result.stats
        duration = time.monotonic() - self.start
        if self.json:
            doc: dict[str, Any] = {
                "message_type": "summary",
                "dry_run": self.dry_run,
                "snapshots_selected": s.snapshots,
                "snapshots_copied": len(result.copied),
                "snapshots_skipped": s.skipped,
                "tree_blobs": s.blobs[BlobType.TREE],
                "data_blobs": s.blobs[BlobType.DATA],
                "bytes_copied": s.bytes_done,
                "data_added": s.stored,
                "rechunked": result.rechunked,
                "rechunked_files": s.rechunked_files,
                "rechunked_bytes": s.rechunked_bytes,
                "packs_read": s.read.packs,
                "read_requests": s.read.requests,
                "bytes_read": s.read.bytes_read,
                "total_duration": go_float(round(duration, 3)),
                "snapshots": [{"source": snap.id.hex() if snap.id else None,
                               "copy": new_id.hex() if new_id else None, "existing": None}
                              for snap, new_id in result.copied]
                             + [{"source": snap.id.hex() if snap.id else None, "copy": None,
                                 "existing": old.id.hex() if old.id else None}
                                for snap, old in result.skipped],
            }
            print(gojson.dumps(doc).decode(), file=self.out, flush=True)
            return
        verb = "would copy" if self.dry_run else "copied"
        n = len(result.copied)
        self._print(f"\n{verb} {n} snapshot{'s' if n != 1 else ''}"
                    + (f", {s.skipped} already in the destination" if s.skipped else ""))
        if not n:
            return
        self._print(f"  {s.blobs[BlobType.TREE]} tree blobs, {s.blobs[BlobType.DATA]} data blobs, "
                    f"{format_bytes(s.bytes_done)}"
                    + ("" if self.dry_run else f" ({format_bytes(s.stored)} stored)"))
        if result.rechunked:
            self._print(f"  {s.rechunked_files} files cut again, {format_bytes(s.rechunked_bytes)}")
        if s.read.requests:
            self._print(f"  read {format_bytes(s.read.bytes_read)} from {s.read.packs} source packs "
                        f"in {s.read.requests} requests")
        self._print(f"  in {format_seconds(int(duration))}")
