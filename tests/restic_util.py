"""Run the real restic binary as the format oracle in tests.

Tests that need restic mark themselves with ``needs_restic`` so they are skipped,
with a reason, where the binary is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "repofs-test"
RESTIC = shutil.which("restic")

needs_restic = pytest.mark.skipif(RESTIC is None, reason="restic binary not installed")


def restic_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for restic: fixed password, no cache, no user config."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": os.environ.get("RESTIC_CACHE_DIR", ""),
        "TZ": "UTC",
    }
    if not env["RESTIC_CACHE_DIR"]:
        del env["RESTIC_CACHE_DIR"]
    env.update(extra or {})
    return env


def restic(
    repo: str | os.PathLike[str],
    *args: str | bytes | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,  # noqa: A002 - mirrors subprocess
) -> bytes:
    """Run ``restic -r repo --no-cache ARGS`` and return its stdout.

    ``env`` adds to (or overrides) ``restic_env()``. A non-zero exit fails the
    test with restic's stderr.
    """
    assert RESTIC is not None
    cmd: list[Any] = [RESTIC, "-r", os.fspath(repo), "--no-cache", *args]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=restic_env(env),
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"restic {args!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def init_repo(path: Path, *, version: int = 2, env: Mapping[str, str] | None = None) -> Path:
    """A new restic repository at ``path`` (repository format ``version``)."""
    restic(path, "init", "--repository-version", str(version), env=env)
    return path


def backup(repo: Path, source: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Back up ``.`` from inside ``source`` into the local repository ``repo``.

    Returns the new snapshot's full ID (hex).
    """
    out = restic(repo, "backup", "--json", "-q", ".", *args, cwd=source, env=env)
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("message_type") == "summary":
            short_id = str(msg["snapshot_id"])  # restic 0.14 prints the short form
            (full,) = [n for n in os.listdir(repo / "snapshots") if n.startswith(short_id)]
            return full
    raise AssertionError(f"no summary in restic backup output: {out!r}")


def snapshots_json(repo: Path, *args: str) -> list[dict[str, Any]]:
    """``restic snapshots --json``, parsed."""
    return list(json.loads(restic(repo, "snapshots", "--json", *args)))


def cat_blob(repo: Path, blob_id: str) -> bytes:
    """The plaintext of one blob (tree or data), exactly as stored."""
    return restic(repo, "cat", "blob", blob_id)
