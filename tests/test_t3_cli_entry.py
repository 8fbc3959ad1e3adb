"""The executable's head start: the key derivation begins before the imports, from what the
command line and the environment say, and the repository opening takes its result; a wrong
guess only costs the time, never the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import RepoFixture, run_repofs
from restic_util import PASSWORD
from repofs.backend.local import LocalBackend
from repofs.cli.entry import guess_password, local_path, option_value, start_key_derivation
from repofs.repo import scrypt as scrypt_module
from repofs.repo.repository import Repository


@pytest.fixture(autouse=True)
def no_derivation_left() -> None:
    scrypt_module._ahead.clear()


@pytest.mark.parametrize("args, value", [
    (["-r", "/a", "snapshots"], "/a"),
    (["-r/a", "snapshots"], "/a"),
    (["--repo", "/a", "ls"], "/a"),
    (["--repo=/a", "ls"], "/a"),
    (["ls", "latest", "-r", "/a"], "/a"),  # global options also come after the command
    (["-r", "/a", "ls", "--repo", "/b"], "/b"),  # the last one counts, as with click
    (["ls", "--", "-r", "/a"], None),  # after --, only arguments
    (["--from-repo", "/a", "copy"], None),
    (["-r"], None),
])
def test_option_value(args: list[str], value: str | None) -> None:
    assert option_value(args, "--repo", "-r") == value


def test_password_guess_in_the_command_lines_order(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(b"from the file\n")
    env = {"RESTIC_PASSWORD": "from env"}
    assert guess_password([], env) == b"from env"
    assert guess_password(["-p", str(pw_file)], env) == b"from the file"
    assert guess_password([], {**env, "RESTIC_PASSWORD_FILE": str(pw_file)}) == b"from the file"
    assert guess_password(["--password-command", "echo x"], env) == b""  # not run ahead of time
    assert guess_password([], {**env, "RESTIC_PASSWORD_COMMAND": "echo x"}) == b""
    assert guess_password([], {}) == b""  # a prompt would ask


@pytest.mark.parametrize("location, path", [("/srv/repo", "/srv/repo"), ("local:/srv/repo", "/srv/repo"),
                                            ("rest:http://host/", ""), ("sftp:host:/repo", ""),
                                            ("relative/repo", "relative/repo")])
def test_only_local_repositories(location: str, path: str) -> None:
    assert local_path(location) == path


async def test_the_repository_opening_takes_the_derivation(restic_repo: RepoFixture) -> None:
    assert start_key_derivation(["-r", str(restic_repo.path), "dump", "latest", "/x"], {"RESTIC_PASSWORD": PASSWORD})
    (key_path,) = (restic_repo.path / "keys").iterdir()
    doc = json.loads(key_path.read_bytes())
    (started,) = scrypt_module._ahead
    assert started[0] == PASSWORD.encode() and started[2:] == (doc["N"], doc["r"], doc["p"], 64)
    repo = await Repository.open(LocalBackend(str(restic_repo.path)), PASSWORD.encode())
    assert repo.version == restic_repo.version
    assert not scrypt_module._ahead


@pytest.mark.parametrize("args, env", [
    (["-r", "{repo}", "--help"], {"RESTIC_PASSWORD": PASSWORD}),
    (["-r", "{repo}", "snapshots"], {}),
    (["-r", "rest:http://localhost:1/", "snapshots"], {"RESTIC_PASSWORD": PASSWORD}),
])
def test_nothing_started_without_a_local_repository_and_password(restic_repo: RepoFixture, args: list[str],
                                                                   env: dict[str, str]) -> None:
    args = [a.format(repo=restic_repo.path) for a in args]
    assert not start_key_derivation(args, env)
    assert not scrypt_module._ahead


def test_guesses_through_the_command_line(restic_repo: RepoFixture, tmp_path: Path) -> None:
    """A password file named after the command wins over the environment, ahead of time as
    later; a wrong password derived ahead still ends as a wrong password."""
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD)
    proc = run_repofs("snapshots", "--json", "-r", restic_repo.path, "--password-file", pw_file,
                      env={"RESTIC_PASSWORD": "not it"})
    assert len(json.loads(proc.stdout)) == len(restic_repo.snapshot_ids)
    proc = run_repofs("-r", restic_repo.path, "snapshots", env={"RESTIC_PASSWORD": "not it"}, check=False)
    assert proc.returncode == 1 and proc.stderr == b"repofs: wrong password or no key found\n"


def test_not_a_repository_still_says_so(tmp_path: Path) -> None:
    proc = run_repofs("-r", tmp_path / "nothing", "snapshots", check=False)
    assert proc.returncode != 0 and proc.stderr.count(b"\n") == 1 and b"Traceback" not in proc.stderr
