"""``repofs backup``: save files and folders as a new snapshot, like `restic backup`."""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
import trio

from ..archiver.archiver import ArchiverOptions, EmptySnapshot
from ..archiver.scanner import Totals, count
from ..archiver.select import Selector, parse_size, read_pattern_files
from ..archiver.snapshot import BackupRequest, absolute_paths, backup, find_parent
from ..archiver.targets import resolve_relative
from ..backend.base import FileType
from ..errors import RepofsError, UsageError
from ..model.gotime import NS, Timestamp, now_local
from ..model.ids import short
from ..model.snapshot import split_tags
from ..repo.packer import DEFAULT_PACK_SIZE, check_pack_size
from ..repo.saver import Compression
from ..select import find_snapshot
from ..ui.progress import BackupProgress
from .context import GlobalOptions, open_repository
from .main import cli, global_options, run, take_globals

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
EXIT_INCOMPLETE = 3


@dataclass
class BackupConfig:
    """Everything the command line decided, before anything async happens."""

    targets: list[bytes]
    time: Timestamp
    hostname: str
    tags: list[str]
    excludes: list[str]
    iexcludes: list[str]
    exclude_if_present: list[str] = field(default_factory=list)
    exclude_caches: bool = False
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    parent: str = ""
    force: bool = False
    stdin_name: bytes | None = None
    dry_run: bool = False
    compression: Compression = Compression.AUTO
    pack_size: int = DEFAULT_PACK_SIZE
    verbosity: int = 0
    options: ArchiverOptions = field(default_factory=ArchiverOptions)


def return_freed_buffers() -> None:
    """Have glibc map every buffer of 2 MiB or more on its own, so that freed chunks and
    packs go back to the system at once. By default the threshold grows with the largest
    buffer freed, after which multi-MiB buffers stay in the heap and the peak memory of a
    backup about doubles."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 2 << 20)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def parse_time(text: str) -> Timestamp:
    """``--time``: 'YYYY-MM-DD HH:MM:SS' in the local zone."""
    try:
        local = datetime.strptime(text, TIME_FORMAT)
    except ValueError as exc:
        raise UsageError(f"error in time option: {exc}") from None
    secs = int(time.mktime(local.timetuple()))
    return Timestamp(secs * NS, time.localtime(secs).tm_gmtoff)


def _read_file(name: str) -> bytes:
    """The bytes of a listing file, or of standard input for ``-``."""
    try:
        if name == "-":
            return sys.stdin.buffer.read()
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def _read_lines(name: str) -> list[str]:
    return _read_file(name).decode("utf-8", "surrogateescape").splitlines()


def _warn(text: str) -> None:
    click.echo(text, err=True)


def collect_targets(args: tuple[str, ...], files_from: tuple[str, ...], verbatim: tuple[str, ...],
                    raw: tuple[str, ...]) -> list[bytes]:
    """restic's targets: --files-from lines (globs expanded, # comments), verbatim lines,
    NUL-separated names, then the arguments; missing ones are skipped with a warning."""
    targets: list[str] = []
    for name in files_from:
        for line in _read_lines(name):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            found = sorted(glob.glob(line, include_hidden=True))
            if not found:
                _warn(f"pattern {line!r} does not match any files, skipping")
            targets.extend(found)
    for name in verbatim:
        targets.extend(line for line in _read_lines(name) if line)
    for name in raw:
        targets.extend(_read_raw(name))
    targets.extend(args)
    if not targets:
        raise UsageError("nothing to backup, please specify target files/dirs")
    out = []
    for t in targets:
        path = os.fsencode(t)
        try:
            os.lstat(path)
        except FileNotFoundError:
            _warn(f"{t} does not exist, skipping")
            continue
        except OSError:
            pass
        out.append(path)
    if not out:
        raise UsageError("all target directories/files do not exist")
    return out


def _read_raw(name: str) -> list[str]:
    data = _read_file(name)
    if not data:
        return []
    if not data.endswith(b"\0"):
        raise UsageError("--files-from-raw: trailing zero byte missing")
    names = data[:-1].split(b"\0")
    if any(not n for n in names):
        raise UsageError("--files-from-raw: empty filename in listing")
    return [os.fsdecode(n) for n in names]


@cli.command("backup")
@click.argument("paths", nargs=-1)
@click.option("--parent", metavar="SNAPSHOT", default="",
              help="Use this parent snapshot (default: the newest of this host with the same paths, "
                   "not newer than --time).")
@click.option("-f", "--force", is_flag=True, help="Read every file again (ignore the parent snapshot).")
@click.option("-e", "--exclude", "excludes", multiple=True, metavar="PATTERN",
              help="Exclude a pattern; a later !PATTERN includes again (repeatable).")
@click.option("--iexclude", "iexcludes", multiple=True, metavar="PATTERN",
              help="Like --exclude, ignoring the case of file names.")
@click.option("--exclude-file", "exclude_files", multiple=True, metavar="FILE",
              help="Read exclude patterns from FILE (repeatable).")
@click.option("--iexclude-file", "iexclude_files", multiple=True, metavar="FILE",
              help="Like --exclude-file, ignoring case.")
@click.option("-x", "--one-file-system", is_flag=True, help="Do not cross file system boundaries.")
@click.option("--exclude-if-present", multiple=True, metavar="FILENAME[:HEADER]",
              help="Exclude the contents of folders holding FILENAME (starting with HEADER).")
@click.option("--exclude-caches", is_flag=True, help="Exclude folders marked with a CACHEDIR.TAG file.")
@click.option("--exclude-larger-than", metavar="SIZE", default="",
              help="Exclude files larger than SIZE (suffixes k, m, g, t).")
@click.option("--stdin", "from_stdin", is_flag=True, help="Back up standard input as one file.")
@click.option("--stdin-filename", default="stdin", show_default=True, metavar="NAME",
              help="File name for --stdin.")
@click.option("--tag", "tags", multiple=True, metavar="TAG[,TAG...]", help="Tags for the new snapshot.")
@click.option("-H", "--host", default="", metavar="HOSTNAME", help="Host name recorded in the snapshot.")
@click.option("--hostname", "hostname_old", default="", hidden=True)
@click.option("--files-from", multiple=True, metavar="FILE",
              help="Read the paths to back up from FILE (globs, # comments).")
@click.option("--files-from-verbatim", multiple=True, metavar="FILE", help="Read paths from FILE, as they are.")
@click.option("--files-from-raw", multiple=True, metavar="FILE", help="Read NUL-separated paths from FILE.")
@click.option("--time", "time_text", default="", metavar="TIME",
              help="Time of the snapshot ('2012-11-01 22:08:41'; default: now).")
@click.option("--with-atime", is_flag=True, help="Record access times.")
@click.option("--ignore-inode", is_flag=True, help="Ignore inode changes when looking for changed files.")
@click.option("--ignore-ctime", is_flag=True, help="Ignore ctime changes when looking for changed files.")
@click.option("-n", "--dry-run", is_flag=True, help="Read and chunk, report what would be added, write nothing.")
@click.option("--read-concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Files read at the same time.")
@click.option("--compression", default="auto", envvar="RESTIC_COMPRESSION", show_default=True,
              metavar="auto|off|max", help="Compression of data blobs (repository version 2).")
@click.option("--pack-size", type=int, default=0, envvar="RESTIC_PACK_SIZE", metavar="MIB",
              help="Target pack size in MiB (default 16).")
@click.option("-v", "--verbose", count=True, help="Say more (repeat for every file).")
@global_options
def backup_cmd(paths: tuple[str, ...], parent: str, force: bool, excludes: tuple[str, ...],
               iexcludes: tuple[str, ...], exclude_files: tuple[str, ...], iexclude_files: tuple[str, ...],
               one_file_system: bool, exclude_if_present: tuple[str, ...], exclude_caches: bool,
               exclude_larger_than: str, from_stdin: bool, stdin_filename: str, tags: tuple[str, ...],
               host: str, hostname_old: str, files_from: tuple[str, ...], files_from_verbatim: tuple[str, ...],
               files_from_raw: tuple[str, ...], time_text: str, with_atime: bool, ignore_inode: bool,
               ignore_ctime: bool, dry_run: bool, read_concurrency: int, compression: str,
               pack_size: int, verbose: int, **kwargs: Any) -> None:
    """Create a new snapshot of PATHS (files and folders).

    Exit status: 0 on success, 1 when no snapshot was made, 3 when some files could not be
    read (the snapshot was saved without them).
    """
    opts = take_globals(kwargs)
    if from_stdin:
        for flag, given in (("--files-from", files_from), ("--files-from-verbatim", files_from_verbatim),
                            ("--files-from-raw", files_from_raw)):
            if given:
                raise UsageError(f"--stdin and {flag} cannot be used together")
        if paths:
            raise UsageError("--stdin was specified and files/dirs were listed as arguments")
        targets: list[bytes] = []
    else:
        targets = collect_targets(paths, files_from, files_from_verbatim, files_from_raw)
    all_excludes = list(excludes) + read_pattern_files(exclude_files)
    all_iexcludes = list(iexcludes) + read_pattern_files(iexclude_files)
    cfg = BackupConfig(
        targets=targets,
        time=parse_time(time_text) if time_text else now_local(),
        hostname=host or hostname_old or socket.gethostname(),
        tags=[t for group in tags for t in split_tags(group) if t],
        excludes=list(excludes),
        iexcludes=all_iexcludes,
        exclude_if_present=list(exclude_if_present),
        exclude_caches=exclude_caches,
        exclude_larger_than=parse_size(exclude_larger_than) if exclude_larger_than else None,
        one_file_system=one_file_system,
        parent=parent,
        force=force,
        stdin_name=os.fsencode(stdin_filename) if from_stdin else None,
        dry_run=dry_run,
        compression=Compression.parse(compression),
        pack_size=check_pack_size(pack_size) if pack_size else DEFAULT_PACK_SIZE,
        verbosity=verbose,
        options=ArchiverOptions(read_concurrency, with_atime, ignore_ctime, ignore_inode),
    )
    return_freed_buffers()
    run(opts, _backup, opts, cfg, all_excludes)


async def _backup(opts: GlobalOptions, cfg: BackupConfig, excludes: list[str]) -> int:
    totals = Totals()
    progress = BackupProgress(json=opts.json, verbosity=cfg.verbosity, quiet=opts.quiet, totals=totals)
    stdin = cfg.stdin_name is not None
    progress.verbose("open repository")
    async with open_repository(opts, read_ahead=(FileType.SNAPSHOT, FileType.INDEX)) as repo:
        progress.verbose("lock repository")
        try:
            selector = Selector(excludes, cfg.iexcludes, cfg.exclude_if_present, cfg.exclude_caches,
                                cfg.exclude_larger_than, cfg.one_file_system and not stdin, cfg.targets)
        except OSError as exc:
            raise UsageError(f"cannot read the targets' devices: {exc}") from None
        parent = None
        if not stdin:
            snapshots = await repo.load_snapshots()
            if cfg.parent and not cfg.force:
                try:
                    parent = find_snapshot(snapshots, cfg.parent)
                except RepofsError as exc:
                    raise UsageError(f"invalid id {cfg.parent!r}: {exc}") from None
            elif not cfg.force:
                parent = find_parent(snapshots, absolute_paths(cfg.targets), cfg.hostname, cfg.time)
            if parent is not None and parent.id is not None:
                progress.message(f"using parent snapshot {short(parent.id)}")
            else:
                progress.message("no parent snapshot found, will read all files")
        progress.verbose("load index files")
        await repo.load_index()
        request = BackupRequest(cfg.targets, cfg.time, cfg.hostname, cfg.tags, cfg.excludes, parent,
                                cfg.stdin_name, sys.stdin.fileno() if stdin else 0)
        stop = threading.Event()
        async with trio.open_nursery() as nursery:
            if progress.shows_status and not stdin:
                shown = " ".join(os.fsdecode(t) for t in cfg.targets)
                progress.verbose(f"start scan on [{shown}]")
                scan = functools.partial(count, [os.path.abspath(t) for t in resolve_relative(cfg.targets)],
                                         selector, totals, stop)
                nursery.start_soon(functools.partial(trio.to_thread.run_sync, scan, abandon_on_cancel=True,
                                                     limiter=trio.CapacityLimiter(1)))
            nursery.start_soon(progress.run)
            if not stdin:
                progress.verbose(f"start backup on [{' '.join(os.fsdecode(t) for t in cfg.targets)}]")
            try:
                result = await backup(repo, request, selector, progress, cfg.options, cfg.compression,
                                      cfg.pack_size, cfg.dry_run)
            except* EmptySnapshot as group:
                raise RepofsError(f"unable to save snapshot: {group.exceptions[0]}") from None
            finally:
                stop.set()
                nursery.cancel_scope.cancel()
        for warning in selector.warnings():
            _warn(warning)
        progress.finish(result.id, cfg.dry_run)
        if not cfg.dry_run:
            progress.message(f"snapshot {short(result.id)} saved")
    if progress.errors:
        _warn("Warning: at least one source file could not be read")
        return EXIT_INCOMPLETE
    return 0

