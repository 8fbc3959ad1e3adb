"""The ``repofs`` executable: start deriving the key, then import and run the command line.

Opening a repository spends most of its start-up in two places that do not depend on each
other: importing repofs with trio, click and cryptography (~0.3 s), and scrypt on the
password (0.1-0.3 s for restic's key files). Before the imports, this module reads the
repository location and the password the way the command line will (``-r``/``--repo``,
``-p``/``--password-file``, the RESTIC_* and REPOFS_* variables) and, for a local repository,
starts scrypt for its first key file in a background thread (``scrypt.derive_ahead``); the
key check later takes that result when its arguments are the same.

It is a guess and nothing more: whatever it misreads (a password command, an option value
that looks like ``-r``, a remote repository), the command derives the key itself, and errors
are reported by the command, never here.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Mapping, Sequence

from ..arenas import limit_arenas
from ..repo.scrypt import derive_ahead

KEY_DIGEST_SIZE = 64  # what KeyFile.user_key derives


def option_value(args: Sequence[str], long: str, short: str = "") -> str | None:
    """The last value given to ``long``/``short`` in ``args`` (``--repo X``, ``--repo=X``,
    ``-r X``, ``-rX``), as click reads it, or None; nothing after ``--``."""
    value = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg == long or (short and arg == short):
            if i + 1 < len(args):
                value = args[i + 1]
            i += 1
        elif arg.startswith(long + "="):
            value = arg[len(long) + 1:]
        elif short and arg.startswith(short) and not arg.startswith("--"):
            value = arg[len(short):]
        i += 1
    return value


def _is_id(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _env(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        if env.get(name):
            return env[name]
    return ""


def guess_password(args: Sequence[str], env: Mapping[str, str]) -> bytes:
    """The password a file or the environment gives, in resolve_password's order; empty when
    it would come from a command or a prompt."""
    path = option_value(args, "--password-file", "-p") or _env(env, "RESTIC_PASSWORD_FILE", "REPOFS_PASSWORD_FILE")
    if option_value(args, "--password-command") or _env(env, "RESTIC_PASSWORD_COMMAND",
                                                              "REPOFS_PASSWORD_COMMAND"):
        return b""
    if path:
        with open(path, "rb") as f:
            return f.read().strip()
    return _env(env, "RESTIC_PASSWORD", "REPOFS_PASSWORD").encode()


def local_path(location: str) -> str:
    """The folder of a local repository location, or "" for another backend."""
    scheme, sep, rest = location.partition(":")
    if sep and scheme == "local":
        return rest
    if sep and scheme in {"rest", "sftp", "s3", "b2", "azure", "gs", "swift", "rclone"}:
        return ""
    return location


def start_key_derivation(args: Sequence[str], env: Mapping[str, str]) -> bool:
    """Start scrypt for the first key file of the repository ``args`` and ``env`` name, with
    the password they give; whether it was started."""
    if any(a in ("-h", "--help", "--version") for a in args):
        return False
    folder = local_path(option_value(args, "--repo", "-r") or _env(env, "RESTIC_REPOSITORY", "REPOFS_REPOSITORY"))
    if not folder:
        return False
    password = guess_password(args, env)
    if not password:
        return False
    keys = os.path.join(folder, "keys")
    with os.scandir(keys) as entries:  # the order the local backend lists them in
        first = next((e.name for e in entries if _is_id(e.name) and e.is_file()), None)
    if first is None:
        return False
    with open(os.path.join(keys, first), "rb") as f:
        doc = json.loads(f.read())
    derive_ahead(password, base64.b64decode(doc["salt"]), int(doc["N"]), int(doc["r"]), int(doc["p"]),
                 KEY_DIGEST_SIZE)
    return True


def main() -> None:
    limit_arenas()  # before the first thread
    try:
        start_key_derivation(sys.argv[1:], os.environ)
    except Exception:  # noqa: BLE001  # a guess only: the command meets the same problem and says so
        pass
    from .main import main as run_command_line

    run_command_line()
