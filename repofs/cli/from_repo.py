"""The source repository of ``copy`` and ``init --copy-chunker-params``: its options
(``--from-repo``, ``--from-repository-file``, ``--from-password-file``,
``--from-password-command``), their RESTIC_FROM_* variables, and opening it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from ..backend.location import open_backend
from ..errors import UsageError
from ..repo.lock import locked
from ..repo.repository import Repository
from .context import resolve_password

F = TypeVar("F", bound=Callable[..., Any])

SOURCE_NAMES = ("from_repo", "from_repository_file", "from_password_file", "from_password_command")


def from_repo_options(fn: F) -> F:
    """Add the source repository's options to a command."""
    decorators = [
        click.option("--from-repo", metavar="REPOSITORY", default="",
                     help="Source repository (env: RESTIC_FROM_REPOSITORY)."),
        click.option("--from-repository-file", metavar="FILE", default="",
                     help="Read the source repository's location from FILE "
                          "(env: RESTIC_FROM_REPOSITORY_FILE)."),
        click.option("--from-password-file", metavar="FILE", default="",
                     help="Read the source repository's password from FILE "
                          "(env: RESTIC_FROM_PASSWORD_FILE)."),
        click.option("--from-password-command", metavar="CMD", default="",
                     help="Run CMD to get the source repository's password "
                          "(env: RESTIC_FROM_PASSWORD_COMMAND; or RESTIC_FROM_PASSWORD)."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


@dataclass
class SourceOptions:
    """The source repository as the command line and the environment name it."""

    repo: str = ""
    repository_file: str = ""
    password_file: str = ""
    password_command: str = ""
    _password: bytes | None = field(default=None, repr=False)

    @classmethod
    def take(cls, kwargs: dict[str, Any]) -> SourceOptions:
        """Pop the source options ``from_repo_options`` added out of a command's arguments."""
        repo, repo_file, pw_file, pw_cmd = (kwargs.pop(n, "") or "" for n in SOURCE_NAMES)
        return cls(repo, repo_file, pw_file, pw_cmd)

    @property
    def given(self) -> bool:
        """Whether a source was named on the command line (not only in the environment)."""
        return bool(self.repo or self.repository_file)

    def location(self) -> str:
        repo = self.repo or os.environ.get("RESTIC_FROM_REPOSITORY", "")
        repo_file = self.repository_file or os.environ.get("RESTIC_FROM_REPOSITORY_FILE", "")
        if repo and repo_file:
            raise UsageError("--from-repo and --from-repository-file are mutually exclusive")
        if repo_file:
            try:
                with open(repo_file, encoding="utf-8") as f:
                    repo = f.read().strip()
            except OSError as exc:
                raise UsageError(f"cannot read repository file {repo_file}: {exc.strerror}") from None
        if not repo:
            raise UsageError("please specify a source repository location (--from-repo or "
                             "--from-repository-file)")
        return repo

    def password(self) -> bytes:
        if self._password is None:
            self._password = resolve_password(self.password_file, self.password_command,
                                              "enter password for source repository: ", role="FROM_")
        return self._password


@asynccontextmanager
async def open_source(source: SourceOptions, lock: bool = True) -> AsyncIterator[Repository]:
    """The source repository, with a shared lock unless ``lock`` is False."""
    backend = open_backend(source.location())
    try:
        repo = await Repository.open(backend, source.password())
        if lock:
            async with locked(repo):
                yield repo
        else:
            yield repo
    finally:
        await backend.close()
