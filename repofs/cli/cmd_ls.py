"""``repofs ls``: list the files of a snapshot like `restic ls`."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..backend.base import FileType
from ..model import gojson
from ..model.snapshot import to_json_dict
from ..model.tree import Node
from ..select import find_snapshot, split_spec
from ..trees import TreeLoader
from ..ui.output import ls_json, ls_long
from ..walk import walk
from .cmd_snapshots import filter_options
from .context import GlobalOptions, open_repository
from .main import cli, global_options, run, take_globals


@cli.command("ls")
@click.option("-l", "--long", "long_", is_flag=True, help="Show details like `ls -l`.")
@click.option("--recursive", is_flag=True, help="Descend into the given folders too.")
@filter_options
@click.argument("snapshot")
@click.argument("dirs", nargs=-1)
@global_options
def ls_cmd(long_: bool, recursive: bool, hosts: tuple[str, ...], tags: tuple[str, ...],
           paths: tuple[str, ...], snapshot: str, dirs: tuple[str, ...], **kwargs: Any) -> None:
    """List files in SNAPSHOT (an id, a short id or `latest`), or in DIRS of it."""
    opts = take_globals(kwargs)
    run(opts, _ls, opts, snapshot, [os.fsencode(d).rstrip(b"/") or b"/" for d in dirs],
        long_, recursive, (hosts, tags, paths))


def _within(path: bytes, folder: bytes) -> bool:
    return folder == b"/" or path == folder or path.startswith(folder + b"/")


class _Selection:
    """restic's rule for `ls SNAPSHOT DIR...`: show what lies in a DIR, descend only on the
    way to a DIR, into a DIR itself, or anywhere inside one with --recursive."""

    def __init__(self, dirs: list[bytes], recursive: bool) -> None:
        self.dirs = dirs
        self.recursive = recursive

    def shows(self, path: bytes) -> bool:
        return not self.dirs or any(_within(path, d) for d in self.dirs)

    def descends(self, path: bytes, node: Node) -> bool:
        if not self.dirs:
            return True
        for d in self.dirs:
            if path == d or _within(d, path):
                return True
            if self.recursive and _within(path, d):
                return True
        return False


async def _ls(opts: GlobalOptions, spec: str, dirs: list[bytes], long_: bool, recursive: bool,
              filters: tuple[tuple[str, ...], ...]) -> None:
    ident, sub = split_spec(spec)
    out = sys.stdout.buffer
    async with open_repository(opts, lock=False, read_ahead=(FileType.SNAPSHOT, FileType.INDEX)) as repo:
        snap = find_snapshot(await repo.load_snapshots(), ident, *filters)
        await repo.load_index()
        trees = TreeLoader(repo)
        tree_id = await trees.subtree(snap.tree, sub)
        sel = _Selection(dirs, recursive)
        if opts.json:
            doc = to_json_dict(snap)
            doc["struct_type"] = "snapshot"
            out.write(gojson.dumps(doc) + b"\n")
        else:
            shown = " ".join(os.fsdecode(d) for d in dirs)
            out.write(f"snapshot {snap.id.hex()[:8]} of [{' '.join(snap.paths)}] filtered by "
                      f"[{shown}] at {_restic_time(snap)}):\n".encode())
        async with walk(repo, tree_id, descend=sel.descends) as batches:
            async for batch in batches:
                for path, node in batch:
                    if not sel.shows(path):
                        continue
                    if opts.json:
                        out.write(gojson.dumps(ls_json(node, os.fsdecode(path))) + b"\n")
                    elif long_:
                        out.write(os.fsencode(ls_long(node, os.fsdecode(path))) + b"\n")
                    else:
                        out.write(path + b"\n")
        out.flush()


def _restic_time(snap: Any) -> str:
    """Go's time.Time.String() of the snapshot time: '2006-01-02 15:04:05.999999999 -0700 MST'."""
    dt = snap.time.to_datetime()
    frac = snap.time.ns % 10**9
    stamp = dt.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    off = dt.strftime("%z")
    zone = "UTC" if snap.time.offset == 0 else dt.strftime("%Z") or off
    return f"{stamp} {off} {zone}"
