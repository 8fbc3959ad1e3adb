"""User-facing errors: each class carries a one-line message and an exit code.

Only the CLI boundary turns these into output. Anything else that escapes is a bug
and keeps its traceback.
"""

from __future__ import annotations


class RepofsError(Exception):
    """Base of every error that is the user's or the repository's, not ours."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RepofsError):
    """Options that do not fit together or are missing."""


class NotARepository(RepofsError):
    """The location holds no restic repository."""


class UnsupportedRepository(RepofsError):
    """A repository version or feature repofs does not know."""


class WrongPassword(RepofsError):
    """No key file opens with the given password."""


class NotFound(RepofsError):
    """A snapshot, blob, file or path that does not exist."""


class SnapshotNotFound(NotFound):
    pass


class AmbiguousId(RepofsError):
    """A short id that matches more than one object."""


class IntegrityError(RepofsError):
    """Stored bytes that fail a MAC, a hash, or a structural check."""


class DamagedPack(IntegrityError):
    pass


class RepoLocked(RepofsError):
    """Another process holds a conflicting lock."""


class BackendError(RepofsError):
    """The storage failed (permissions, full disk, I/O)."""


class Interrupted(RepofsError):
    """Ctrl-C or a termination signal."""

    exit_code = 130
