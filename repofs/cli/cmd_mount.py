"""``repofs mount``: serve the repository's snapshots as a read-only file system."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from ..backend.base import FileType
from ..errors import Interrupted, UsageError
from ..fuse.layout import DEFAULT_PATH_TEMPLATES, DEFAULT_TIME_TEMPLATE, check_time_template
from ..fuse.mount import DEFAULT_CACHE_MIB, MountConfig, serve
from ..fuse.vfs import VfsConfig
from .cmd_snapshots import filter_options
from .context import GlobalOptions, open_repository, repository_location
from .main import cli, global_options, run, take_globals


@cli.command("mount")
@filter_options
@click.option("--allow-other", is_flag=True, help="Let other users see the mount too.")
@click.option("--no-default-permissions", is_flag=True,
              help="With --allow-other: do not check file modes, everyone may read everything.")
@click.option("--owner-root", is_flag=True, help="Show every file and folder as owned by root.")
@click.option("--cache-size", type=click.IntRange(min=8), default=DEFAULT_CACHE_MIB, show_default=True,
              metavar="MIB", help="Memory for decrypted blobs and folders, in MiB.")
@click.option("--path-template", "path_templates", multiple=True, metavar="TEMPLATE",
              help="Where snapshots appear (repeatable; %i %I %u %h %t %T). "
                   "Default: " + ", ".join(DEFAULT_PATH_TEMPLATES) + ".")
@click.option("--time-template", default=DEFAULT_TIME_TEMPLATE, show_default=True, metavar="TEMPLATE",
              help="How %T shows a snapshot's time, as a Go time layout.")
@click.option("--refresh-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="Re-read the snapshot list at most this often.")
@click.argument("mountpoint", type=click.Path(file_okay=False))
@global_options
def mount_cmd(hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...],
              allow_other: bool, no_default_permissions: bool, owner_root: bool, cache_size: int,
              path_templates: tuple[str, ...], time_template: str, refresh_interval: float,
              mountpoint: str, **kwargs: Any) -> None:
    """Mount the repository at MOUNTPOINT, read-only, until Ctrl-C or `fusermount3 -u`.

    Snapshots appear as folders under snapshots/, ids/, hosts/ and tags/, each with a
    `latest` link to the newest one. New snapshots show up within the refresh interval.
    """
    opts = take_globals(kwargs)
    try:
        check_time_template(time_template)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = MountConfig(
        mountpoint=mountpoint,
        cache_bytes=cache_size << 20,
        allow_other=allow_other,
        default_permissions=not no_default_permissions,
        fsname=f"repofs:{repository_location(opts)}",
        vfs=VfsConfig(path_templates=path_templates or DEFAULT_PATH_TEMPLATES,
                      time_template=time_template, hosts=hosts, tags=tags, paths=paths,
                      owner_root=owner_root, refresh_interval=refresh_interval),
    )
    run(opts, _mount, opts, config)


async def _mount(opts: GlobalOptions, config: MountConfig) -> int:
    def ready() -> None:
        if not opts.quiet:
            print(f"serving the repository at {config.mountpoint} (read-only)\n"
                  f"browse it from another terminal; press Ctrl-C here or run "
                  f"`fusermount3 -u {config.mountpoint}` to unmount", flush=True)

    async with open_repository(opts, read_ahead=(FileType.SNAPSHOT, FileType.INDEX)) as repo:
        stopped_by = await serve(repo, config, ready)
    if not opts.quiet:
        print(f"unmounted {config.mountpoint}", file=sys.stderr, flush=True)
    if stopped_by == signal.SIGINT:
        return Interrupted.exit_code
    return 0
