"""``repofs snapshots``: list snapshots like `restic snapshots`."""

from __future__ import annotations

from typing import Any

import click

from ..backend.base import FileType
from ..model import gojson
from ..model.snapshot import to_json_dict
from ..select import filter_snapshots, find_snapshot
from ..ui.output import snapshot_table
from .context import GlobalOptions, open_repository
from .main import cli, global_options, run, take_globals


def filter_options(fn: Any) -> Any:
    """--host/--tag/--path as restic's snapshot filters take them."""
    fn = click.option("--path", "paths", multiple=True, metavar="PATH",
                      help="Only snapshots that include PATH (repeatable).")(fn)
    fn = click.option("--tag", "tags", multiple=True, metavar="TAG[,TAG]",
                      help="Only snapshots with all of these tags (repeat for OR).")(fn)
    fn = click.option("-H", "--host", "hosts", multiple=True, metavar="HOST",
                      help="Only snapshots of HOST (repeatable).")(fn)
    return fn


@cli.command("snapshots")
@filter_options
@click.argument("ids", nargs=-1)
@global_options
def snapshots_cmd(hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
                  ids: tuple[str, ...], **kwargs: Any) -> None:
    """List snapshots."""
    opts = take_globals(kwargs)
    run(opts, _snapshots, opts, hosts, tags, paths, ids)


async def _snapshots(opts: GlobalOptions, hosts: tuple[str, ...], tags: tuple[str, ...],
                     paths: tuple[str, ...], ids: tuple[str, ...]) -> None:
    async with open_repository(opts, read_ahead=(FileType.SNAPSHOT,)) as repo:
        snapshots = await repo.load_snapshots()
    chosen = filter_snapshots(snapshots, hosts, tags, paths)
    if ids:
        chosen = [find_snapshot(chosen, i) for i in ids]
    if opts.json:
        click.echo(gojson.dumps([to_json_dict(s) for s in chosen]).decode())
    else:
        click.echo(snapshot_table(chosen))
