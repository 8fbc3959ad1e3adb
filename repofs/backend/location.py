"""Parse repository locations (``-r``, RESTIC_REPOSITORY) into backends."""

from __future__ import annotations

from ..errors import UsageError
from .base import Backend
from .local import LocalBackend


def open_backend(location: str) -> Backend:
    """A backend for ``location``: a path, ``local:PATH`` or ``rest:URL``."""
    if not location:
        raise UsageError("no repository given: use -r/--repo or set RESTIC_REPOSITORY")
    scheme, sep, rest = location.partition(":")
    if sep and scheme == "local":
        return LocalBackend(rest)
    if sep and scheme == "rest":
        from .rest import RestBackend  # httpx loads only when a REST repository is used

        return RestBackend(rest)
    if sep and scheme in {"sftp", "s3", "b2", "azure", "gs", "swift", "rclone"}:
        raise UsageError(f"{location}: the {scheme} backend is not supported yet")
    return LocalBackend(location)
