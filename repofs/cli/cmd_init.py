"""``repofs init``: create a new repository."""

from __future__ import annotations

from typing import Any

import click

from ..backend.location import open_backend
from ..chunker.polynomial import random_polynomial
from ..errors import UsageError
from ..repo.repository import Repository
from .context import GlobalOptions, repository_location
from .from_repo import SourceOptions, from_repo_options, open_source
from .main import cli, global_options, run, take_globals


@cli.command("init")
@click.option("--repository-version", type=click.Choice(["1", "2", "latest", "stable"]), default="stable",
              show_default=True, help="Repository format version (2 compresses).")
@click.option("--copy-chunker-params", is_flag=True,
              help="Use the chunker polynomial of the --from-repo repository, so that backups "
                   "of the same files to both repositories cut them alike.")
@from_repo_options
@global_options
def init_cmd(repository_version: str, copy_chunker_params: bool, **kwargs: Any) -> None:
    """Create a new repository."""
    source = SourceOptions.take(kwargs)
    opts = take_globals(kwargs)
    if source.given and not copy_chunker_params:
        raise UsageError("a source repository is only used with --copy-chunker-params")
    version = 1 if repository_version == "1" else 2
    location = repository_location(opts)
    if copy_chunker_params:
        source.location()
        source.password()
    password = opts.password("enter password for new repository: ")
    run(opts, _init, opts, location, password, version, source if copy_chunker_params else None)


async def _init(opts: GlobalOptions, location: str, password: bytes, version: int,
                source: SourceOptions | None) -> None:
    polynomial = random_polynomial()
    if source is not None:
        async with open_source(source, lock=False) as src:
            polynomial = src.config.chunker_polynomial
    backend = open_backend(location)
    repo = await Repository.create(backend, password, version, polynomial)
    if opts.json:
        click.echo(f'{{"message_type":"initialized","id":"{repo.config.id}","repository":"{location}"}}')
    elif not opts.quiet:
        click.echo(f"created restic repository {repo.config.id[:10]} at {location}\n\n"
                   "Please note that knowledge of your password is required to access\n"
                   "the repository. Losing your password means that your data is\n"
                   "irrecoverably lost.")
