"""The local backend: restic's layout, read-only files, atomic saves, clean errors."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from repofs.backend.base import CONFIG, FileNotFound, FileType, Handle, PermanentError
from repofs.backend.local import LocalBackend
from repofs.model.ids import hash_id


async def test_layout_save_load_list_remove(tmp_path: Path) -> None:
    be = LocalBackend(str(tmp_path / "repo"))
    await be.create()
    data = os.urandom(1000)
    name = hash_id(data).hex()
    h = Handle(FileType.PACK, name)
    await be.save(h, data)
    path = tmp_path / "repo" / "data" / name[:2] / name
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert await be.load(h) == data
    assert await be.load(h, 10, 100) == data[100:110]
    assert await be.load(h, 0, 990) == data[990:]
    assert await be.stat(h) == 1000
    # leftovers of a crashed write and foreign names are not listed
    (path.parent / (name + "-tmp-abc")).write_bytes(b"half")
    (tmp_path / "repo" / "data" / name[:2] / "README").write_bytes(b"x")
    assert await be.list(FileType.PACK) == [(name, 1000)]
    await be.remove(h)
    assert await be.list(FileType.PACK) == []
    with pytest.raises(FileNotFound):
        await be.load(h)
    with pytest.raises(FileNotFound):
        await be.stat(CONFIG)


@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 512 KiB file system (tmpfs), so a full disk is a real ENOSPC."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                          stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


async def test_full_disk_is_a_clean_error(small_fs: Path) -> None:
    be = LocalBackend(str(small_fs / "repo"))
    await be.create()
    with pytest.raises(PermanentError, match="no space left"):
        await be.save(Handle(FileType.PACK, "cd" * 32), os.urandom(1 << 20))
    leftovers = [n for _, _, names in os.walk(small_fs / "repo") for n in names]
    assert leftovers == []


async def test_read_only_file_system_is_a_clean_error(small_fs: Path) -> None:
    be = LocalBackend(str(small_fs / "repo"))
    await be.create()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    with pytest.raises(PermanentError, match="read-only file system"):
        await be.save(Handle(FileType.LOCK, "ab" * 32), b"x")
    assert os.listdir(small_fs / "repo" / "locks") == []
