"""The narrow interfaces consumers depend on instead of the whole Repository."""

from __future__ import annotations

from typing import Protocol

from .index import BlobType


class BlobLoader(Protocol):
    async def load_blob(self, type: BlobType, blob_id: bytes) -> bytes:
        """A blob's checked plaintext."""
