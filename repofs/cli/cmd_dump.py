"""``repofs dump``: files as raw bytes, folders and snapshots as tar or zip archives."""

from __future__ import annotations

import os
import posixpath
import sys
from typing import Any

import click

from ..backend.base import FileType
from ..dump.common import ArchiveFormat, Selection, dump, dump_file
from ..dump.output import OutputError
from ..dump.tar import TarFormat
from ..errors import UsageError
from ..model import tree as nodes
from ..patterns import PatternList, parse_all
from ..select import find_snapshot, split_spec
from ..trees import TreeLoader
from .cmd_snapshots import filter_options
from .context import GlobalOptions, open_repository
from .main import cli, global_options, run, take_globals

ARCHIVES = ("tar", "zip")


def archive_format(name: str) -> ArchiveFormat:
    """The writer for ``--archive``; zip's (and its compressor's) module loads only for zip."""
    if name == "zip":
        from ..dump.zip import ZipFormat

        return ZipFormat()
    return TarFormat()


@cli.command("dump")
@click.option("-a", "--archive", type=click.Choice(ARCHIVES), default="tar", show_default=True,
              help="Archive format for folders and several paths.")
@click.option("-t", "--target", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("-e", "--exclude", "excludes", multiple=True, metavar="PATTERN",
              help="Leave out what matches PATTERN (repeatable).")
@click.option("-i", "--include", "includes", multiple=True, metavar="PATTERN",
              help="Put in only what matches PATTERN, with its folders (repeatable).")
@filter_options
@click.argument("snapshot")
@click.argument("targets", metavar="PATH...", nargs=-1, required=True)
@global_options
def dump_cmd(archive: str, target: str | None, excludes: tuple[str, ...], includes: tuple[str, ...],
             hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...], snapshot: str,
             targets: tuple[str, ...], **kwargs: Any) -> None:
    """Write PATH of SNAPSHOT to stdout: a file as its raw bytes; a folder (`/` for the whole
    snapshot) or several paths as a tar or zip archive. SNAPSHOT is an id, a short id,
    `latest` (with --host/--tag/--path), optionally with `:subfolder`."""
    opts = take_globals(kwargs)
    selection = Selection([_normalise(t) for t in targets], _patterns(includes), _patterns(excludes))
    run(opts, _dump, opts, snapshot, selection, archive, target, (hosts, tags, paths))


def _patterns(texts: tuple[str, ...]) -> PatternList:
    return PatternList(parse_all(texts))


def _normalise(path: str) -> bytes:
    """``docs/`` or ``/docs/./x/..`` as ``/docs``; ``/`` stays ``/``."""
    return os.fsencode(posixpath.normpath("/" + path)).replace(b"//", b"/")


def _warn(opts: GlobalOptions) -> Any:
    def warn(message: str) -> None:
        if not opts.quiet:
            click.echo(f"repofs: warning: {message}", err=True)
    return warn


def _open_target(target: str | None, archive: bool) -> tuple[int, bool]:
    """The file descriptor to write to, and whether we opened it."""
    if target is None or target == "-":
        fd = sys.stdout.fileno()
        if archive and os.isatty(fd):
            raise UsageError("stdout is a terminal; redirect the output or use --target FILE")
        return fd, False
    try:
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666), True
    except OSError as exc:
        raise OutputError(f"{target}: {exc.strerror.lower() if exc.strerror else exc}") from None


async def _dump(opts: GlobalOptions, spec: str, selection: Selection, archive: str, target: str | None,
                filters: tuple[tuple[str, ...], ...]) -> None:
    ident, sub = split_spec(spec)
    async with open_repository(opts, read_ahead=(FileType.SNAPSHOT, FileType.INDEX)) as repo:
        snap = find_snapshot(await repo.load_snapshots(), ident, *filters)
        await repo.load_index()
        trees = TreeLoader(repo)
        tree_id = await trees.subtree(snap.tree, sub)
        found = [await trees.resolve(tree_id, os.fsdecode(t)) for t in selection.targets]
        single = found[0] if len(found) == 1 else None
        raw = single is not None and single.type == nodes.FILE
        fd, opened = _open_target(target, archive=not raw)
        try:
            if raw:
                assert single is not None
                await dump_file(repo, selection.targets[0], single, fd)
            else:
                await dump(repo, tree_id, selection, archive_format(archive), fd, warn=_warn(opts))
        finally:
            if opened:
                os.close(fd)

