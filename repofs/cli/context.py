"""Global options shared by every command, and opening the repository they name."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..backend.base import FileType
from ..backend.location import open_backend
from ..errors import RepofsError, UsageError
from ..repo.lock import locked
from ..repo.repository import Repository


@dataclass
class GlobalOptions:
    repo: str = ""
    password_file: str = ""
    password_command: str = ""
    no_lock: bool = False
    json: bool = False
    debug: bool = False
    quiet: bool = False
    _password: bytes | None = field(default=None, repr=False)

    def merge(self, **given: object) -> None:
        """Options repeated after the command name win over those before it."""
        for name, value in given.items():
            if value not in (None, "", False):
                setattr(self, name, value)

    def password(self, prompt: str = "enter password for repository: ") -> bytes:
        if self._password is None:
            self._password = resolve_password(self.password_file, self.password_command, prompt)
        return self._password


def _env(*names: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return ""


def resolve_password(password_file: str, password_command: str, prompt: str, role: str = "") -> bytes:
    """restic's order: command or file (not both), then the environment, then a TTY prompt.

    ``role`` "FROM_" asks for the source repository of copy and init: the variables become
    RESTIC_FROM_PASSWORD_FILE, RESTIC_FROM_PASSWORD_COMMAND and RESTIC_FROM_PASSWORD.
    """
    flag = "--" + role.lower().replace("_", "-")
    password_file = password_file or _env(f"RESTIC_{role}PASSWORD_FILE", f"REPOFS_{role}PASSWORD_FILE")
    password_command = password_command or _env(f"RESTIC_{role}PASSWORD_COMMAND",
                                                f"REPOFS_{role}PASSWORD_COMMAND")
    if password_file and password_command:
        raise UsageError(f"{flag}password-file and {flag}password-command are mutually exclusive")
    if password_command:
        try:
            out = subprocess.run(password_command, shell=True, check=True, stdout=subprocess.PIPE).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise UsageError(f"password command failed: {exc}") from None
        pw = out.strip()
    elif password_file:
        try:
            with open(password_file, "rb") as f:
                pw = f.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read password file {password_file}: {exc.strerror}") from None
    else:
        pw = _env(f"RESTIC_{role}PASSWORD", f"REPOFS_{role}PASSWORD").encode()
        if not pw and sys.stdin.isatty():
            pw = getpass.getpass(prompt).encode()
    if not pw:
        raise UsageError(f"an empty password is not a password; set RESTIC_{role}PASSWORD, "
                         f"{flag}password-file or {flag}password-command")
    return pw


def repository_location(opts: GlobalOptions) -> str:
    loc = opts.repo or _env("RESTIC_REPOSITORY", "REPOFS_REPOSITORY")
    if not loc:
        raise UsageError("please specify a repository with -r/--repo or RESTIC_REPOSITORY")
    return loc


@asynccontextmanager
async def open_repository(opts: GlobalOptions, *, lock: bool = True, exclusive: bool = False,
                          read_ahead: Collection[FileType] = ()) -> AsyncIterator[Repository]:
    """The repository the options name, locked (shared by default) unless --no-lock; the files
    of the ``read_ahead`` types are read while the password is checked (Repository.open), and
    with index files among them, the index is built while the new lock settles."""
    backend = open_backend(repository_location(opts))
    try:
        repo = await Repository.open(backend, opts.password(), read_ahead=read_ahead)

        async def build_index() -> None:
            try:
                await repo.load_index()
            except RepofsError:
                pass  # the command's own load_index meets the error again and reports it

        if lock and not opts.no_lock:
            async with locked(repo, exclusive, build_index if FileType.INDEX in read_ahead else None):
                yield repo
        else:
            yield repo
    finally:
        await backend.close()
