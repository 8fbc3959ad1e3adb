"""Key files: a password opens the master key through scrypt (FORMAT.md §2)."""

from __future__ import annotations

import base64
import getpass
import json
import os
import socket
from dataclasses import dataclass

from ..errors import IntegrityError
from ..model import gojson, gotime
from .crypto import Key, MacError
from .scrypt import scrypt

SALT_SIZE = 64
# Cost of new keys: N=2^15, r=8 like restic's calibration, one lane (~0.05 s here).
NEW_N, NEW_R, NEW_P = 1 << 15, 8, 1


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The parsed JSON of one file in keys/."""

    n: int
    r: int
    p: int
    salt: bytes
    data: bytes
    username: str = ""
    hostname: str = ""

    @classmethod
    def decode(cls, raw: bytes, name: str) -> KeyFile:
        try:
            doc = json.loads(raw)
            if doc.get("kdf") != "scrypt":
                raise ValueError(f"unknown kdf {doc.get('kdf')!r}")
            kf = cls(int(doc["N"]), int(doc["r"]), int(doc["p"]), base64.b64decode(doc["salt"]),
                     base64.b64decode(doc["data"]), doc.get("username", ""), doc.get("hostname", ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"keys/{name}: cannot parse: {exc}") from None
        if len(kf.salt) != SALT_SIZE:
            raise IntegrityError(f"keys/{name}: salt is {len(kf.salt)} bytes, want {SALT_SIZE}")
        if kf.n < 2 or kf.n & (kf.n - 1) or kf.r < 1 or kf.p < 1:
            raise IntegrityError(f"keys/{name}: impossible scrypt parameters N={kf.n}, r={kf.r}, p={kf.p}")
        return kf

    def user_key(self, password: bytes) -> Key:
        """scrypt: the key this password derives for this file. CPU heavy; call in a thread."""
        return Key.from_user_key(scrypt(password, self.salt, self.n, self.r, self.p, 64))

    def open(self, password: bytes) -> Key | None:
        """The master key if the password fits, else None."""
        try:
            plain = self.user_key(password).open(self.data)
        except MacError:
            return None
        try:
            return Key.from_json(json.loads(plain))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"key file holds a damaged master key: {exc}") from None


def new_key_file(password: bytes, master: Key) -> bytes:
    """The bytes of a new key file that opens ``master`` with ``password``."""
    salt = os.urandom(SALT_SIZE)
    kf = KeyFile(NEW_N, NEW_R, NEW_P, salt, b"")
    sealed = kf.user_key(password).seal(gojson.dumps(master.to_json()))
    return gojson.dumps({
        "created": gotime.format(gotime.now_local()),
        "username": getpass.getuser(),
        "hostname": socket.gethostname(),
        "kdf": "scrypt",
        "N": NEW_N,
        "r": NEW_R,
        "p": NEW_P,
        "salt": base64.b64encode(salt).decode(),
        "data": base64.b64encode(sealed).decode(),
    })
