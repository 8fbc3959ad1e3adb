"""A repository made by `repofs init` is one restic backs up into and checks clean."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import make_varied_tree, run_repofs
from restic_util import needs_restic, restic


@needs_restic
@pytest.mark.parametrize("version", [1, 2])
def test_init_then_restic_backup_and_check(tmp_path: Path, version: int) -> None:
    repo = tmp_path / "repo"
    out = run_repofs("-r", repo, "init", "--repository-version", str(version)).stdout.decode()
    assert "created restic repository" in out
    config = json.loads(restic(repo, "cat", "config"))
    assert config["version"] == version
    assert int(config["chunker_polynomial"], 16).bit_length() == 54  # degree 53
    # restic's layout and permissions
    assert stat.S_IMODE(os.stat(repo / "keys").st_mode) == 0o700
    assert len(os.listdir(repo / "data")) == 256
    assert stat.S_IMODE(os.stat(repo / "config").st_mode) == 0o400

    src = make_varied_tree(tmp_path / "src")
    restic(repo, "backup", ".", cwd=src)
    restic(repo, "check", "--read-data")
    ours = json.loads(run_repofs("-r", repo, "snapshots", "--json").stdout)
    assert ours == json.loads(restic(repo, "snapshots", "--json"))
    assert run_repofs("-r", repo, "ls", "-l", "latest").stdout == restic(repo, "ls", "-l", "latest")


@needs_restic
def test_init_refuses_existing_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_repofs("-r", repo, "init")
    keys = sorted(os.listdir(repo / "keys"))
    proc = run_repofs("-r", repo, "init", check=False)
    assert proc.returncode == 1
    assert b"already exists" in proc.stderr
    assert sorted(os.listdir(repo / "keys")) == keys


def test_password_from_file_and_command(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    pwfile = tmp_path / "pw"
    pwfile.write_text("s3cret\n")
    run_repofs("-r", repo, "init", "--password-file", pwfile, env={"RESTIC_PASSWORD": ""})
    run_repofs("snapshots", env={"RESTIC_PASSWORD": "", "RESTIC_REPOSITORY": str(repo),
                                 "RESTIC_PASSWORD_COMMAND": "echo s3cret"})
    run_repofs("snapshots", "-r", repo, env={"RESTIC_PASSWORD": "", "REPOFS_PASSWORD": "s3cret"})
    proc = run_repofs("-r", repo, "snapshots", env={"RESTIC_PASSWORD": "wrong"}, check=False)
    assert proc.returncode == 1
