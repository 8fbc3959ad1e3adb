"""The repository config: version, id and chunker polynomial (FORMAT.md §4.1)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import IntegrityError, UnsupportedRepository
from ..model import gojson

SUPPORTED_VERSIONS = (1, 2)


@dataclass(frozen=True, slots=True)
class Config:
    version: int
    id: str
    chunker_polynomial: int

    @classmethod
    def new(cls, version: int, polynomial: int) -> Config:
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedRepository(f"repository version {version} is not supported (1 or 2)")
        return cls(version, os.urandom(32).hex(), polynomial)

    @classmethod
    def decode(cls, plaintext: bytes) -> Config:
        try:
            doc = json.loads(plaintext)
            version = int(doc["version"])
            cfg = cls(version, str(doc["id"]), int(doc["chunker_polynomial"], 16))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"config: cannot parse: {exc}") from None
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedRepository(
                f"config: repository version {version} is not supported (repofs reads 1 and 2)")
        return cfg

    def encode(self) -> bytes:
        return gojson.dumps({"version": self.version, "id": self.id,
                             "chunker_polynomial": f"{self.chunker_polynomial:x}"})
