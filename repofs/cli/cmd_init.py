"""``repofs init``: create a new repository."""

from __future__ import annotations

from typing import Any

import click

from ..backend.location import open_backend
from ..chunker.polynomial import random_polynomial
from ..repo.repository import Repository
from .context import GlobalOptions, repository_location
from .main import cli, global_options, run, take_globals


@cli.command("init")
@click.option("--repository-version", type=click.Choice(["1", "2", "latest", "stable"]), default="stable",
              show_default=True, help="Repository format version (2 compresses).")
@global_options
def init_cmd(repository_version: str, **kwargs: Any) -> None:
    """Create a new repository."""
    opts = take_globals(kwargs)
    version = 1 if repository_version == "1" else 2
    location = repository_location(opts)
    password = opts.password("enter password for new repository: ")
    run(opts, _init, opts, location, password, version)


async def _init(opts: GlobalOptions, location: str, password: bytes, version: int) -> None:
    backend = open_backend(location)
    repo = await Repository.create(backend, password, version, random_polynomial())
    if opts.json:
        click.echo(f'{{"message_type":"initialized","id":"{repo.config.id}","repository":"{location}"}}')
    elif not opts.quiet:
        click.echo(f"created restic repository {repo.config.id[:10]} at {location}\n\n"
                   "Please note that knowledge of your password is required to access\n"
                   "the repository. Losing your password means that your data is\n"
                   "irrecoverably lost.")
