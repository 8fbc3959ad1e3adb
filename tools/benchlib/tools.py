"""The two tools under test and the environment both run in.

repofs runs from this checkout (``python -m repofs`` with the checkout first on PYTHONPATH),
restic is whatever ``restic`` is on PATH. Both get the same environment: the password in
RESTIC_PASSWORD, caches (RESTIC_CACHE_DIR, XDG_CACHE_HOME) inside the work folder, LC_ALL
C.UTF-8, and none of the caller's RESTIC_*/REPOFS_* settings. Whether repofs has a command
is asked at run time (``repofs CMD --help``), since commands keep arriving.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PASSWORD = "repofs-bench"


def environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RESTIC_", "REPOFS_")) and k not in ("LANGUAGE", "LC_ALL")}
    env.update({
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_FROM_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": str(work / "cache" / "restic"),
        "XDG_CACHE_HOME": str(work / "cache" / "xdg"),
        "LC_ALL": "C.UTF-8",
    })
    return env


class Tool:
    """One command-line tool: how to call it and which commands it has."""

    def __init__(self, name: str, base: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.base = base
        self.env = env
        self._has: dict[str, bool] = {}

    def __call__(self, repo: Path, *args: str | Path) -> list[str]:
        """The command line for ``args`` on ``repo``."""
        return [*self.base, "-r", str(repo), *map(str, args)]

    def has(self, command: str) -> bool:
        if command not in self._has:
            done = subprocess.run([*self.base, command, "--help"], env=self.env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False)
            self._has[command] = done.returncode == 0
        return self._has[command]

    def version(self) -> str:
        done = subprocess.run([*self.base, "version" if self.name == "restic" else "--version"],
                              env=self.env, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "unknown"


def repofs(work: Path) -> Tool:
    env = environment(work)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return Tool("repofs", [sys.executable, "-m", "repofs"], env)


def restic(work: Path) -> Tool:
    found = shutil.which("restic")
    if not found:
        raise SystemExit("tools/bench: restic is not installed (tools/setup-env installs it)")
    return Tool("restic", [found], environment(work))


def fuse_missing() -> str | None:
    """Why FUSE mounts cannot work here, or None."""
    if not shutil.which("fusermount3"):
        return "fusermount3 not installed"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) and os.geteuid() != 0:
        st = os.stat(shutil.which("fusermount3") or "/")
        if not st.st_mode & 0o4000:
            return "/dev/fuse not usable and fusermount3 not setuid"
    return None


def checkout() -> str:
    """Short commit of the checkout, with ``+changes`` if the work tree differs."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")
