"""Start-up: a command imports its own module and what it uses, not every command's; --help
still lists them all; errors found while files are read ahead read as before."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RepoFixture, run_repofs
from restic_util import PASSWORD

COMMANDS = sorted(p.stem[4:] for p in (Path(__file__).parent.parent / "repofs" / "cli").glob("cmd_*.py"))

# Modules no reading command needs: other commands' machinery and the heavy libraries behind it.
NOT_FOR_READING = ("pyfuse3", "httpx", "tqdm", "isal", "zipfile", "tarfile", "hypothesis",
                   "repofs.archiver", "repofs.fuse", "repofs.copy", "repofs.dump")


# Runs the command line like `python -m repofs`, then names every module loaded on the way out.
SHOW_MODULES = """
import atexit, sys
atexit.register(lambda: print("MODULES", *sorted(sys.modules), file=sys.stderr))
from repofs.cli.entry import main
main()
"""


def imported(*args: str | os.PathLike[str]) -> set[str]:
    """The modules a repofs run has loaded when it exits."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "RESTIC_PASSWORD": PASSWORD, "TZ": "UTC"}
    proc = subprocess.run([sys.executable, "-c", SHOW_MODULES, *map(os.fspath, args)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "MODULES " in err, err[-2000:]
    return set(err.split("MODULES ", 1)[1].split())


def test_help_lists_every_command_with_its_help() -> None:
    out = run_repofs("--help").stdout.decode()
    listed = dict(re.findall(r"^  (\w+)\s+(\S.*)$", out.split("Commands:")[1], re.MULTILINE))
    assert sorted(listed) == COMMANDS and len(COMMANDS) >= 8
    assert all(len(text) > 5 for text in listed.values()), listed


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_its_help(command: str) -> None:
    assert f"Usage: repofs {command} " in run_repofs(command, "--help").stdout.decode()


@pytest.mark.parametrize("args", [["snapshots"], ["ls", "latest"], ["cat", "config"]],
                         ids=["snapshots", "ls", "cat"])
def test_reading_commands_import_only_what_they_use(restic_repo: RepoFixture, args: list[str]) -> None:
    mods = imported("-r", restic_repo.path, *args)
    assert f"repofs.cli.cmd_{args[0]}" in mods
    heavy = {m for m in mods if m.split(".")[0] in NOT_FOR_READING or m.startswith(NOT_FOR_READING)}
    assert not heavy, heavy
    others = {m for m in mods if m.startswith("repofs.cli.cmd_")} - {f"repofs.cli.cmd_{args[0]}",
                                                                       "repofs.cli.cmd_snapshots"}
    assert not others, others


@pytest.mark.parametrize("args", [["snapshots"], ["ls", "latest"], ["cat", "tree", "latest"],
                                  ["dump", "latest", "/docs/hello.txt"]],
                         ids=["snapshots", "ls", "cat-tree", "dump"])
def test_wrong_password_one_line(restic_repo: RepoFixture, args: list[str]) -> None:
    """Files are read ahead while the password is tried; a wrong one still says just that."""
    proc = run_repofs("-r", restic_repo.path, *args, env={"RESTIC_PASSWORD": "not it"}, check=False)
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode() == "repofs: wrong password or no key found\n"
