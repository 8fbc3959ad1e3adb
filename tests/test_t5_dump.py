"""`repofs dump` against restic: archives extracted with GNU tar and zipfile must give what
`restic restore` gives; single files must equal `restic dump` byte for byte."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from conftest import RepoFixture, make_varied_tree, run_repofs
from restic_util import PASSWORD, backup, init_repo, needs_restic, restic, restic_env

from repofs.backend.base import FileType, Handle
from repofs.backend.local import LocalBackend
from repofs.model.gotime import NS, Timestamp
from repofs.model.ids import hash_id
from repofs.model.snapshot import Snapshot, encode_snapshot
from repofs.model.tree import MODE_DIR, Node, encode_tree
from repofs.repo.index import BlobType, encode_index
from repofs.repo.pack import PackEntry, encode_header
from repofs.repo.repository import Repository

pytestmark = needs_restic


# -- looking at extracted trees ------------------------------------------------------------------


def _user_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names) if n.startswith("user.")}


def describe(root: Path, *, owners: bool = True, times: bool = True) -> dict[bytes, tuple[Any, ...]]:
    """Everything restore and extraction must agree on, per relative path (raw bytes)."""
    out: dict[bytes, tuple[Any, ...]] = {}
    first_of_inode: dict[int, bytes] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            extra: Any = None
            if stat.S_ISREG(kind):
                with open(full, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    extra = (extra, first_of_inode.setdefault(st.st_ino, rel))
            elif stat.S_ISLNK(kind):
                extra = os.readlink(full)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                (st.st_uid, st.st_gid) if owners else None,
                st.st_mtime_ns if times and not stat.S_ISLNK(kind) else None,
                extra,
                _user_xattrs(full),
            )
    return out


def restore(repo: Path, target: Path, *args: str) -> Path:
    restic(repo, "restore", "latest", "--target", str(target), *args)
    return target


def extract_tar(archive: bytes, target: Path) -> Path:
    target.mkdir()
    proc = subprocess.run(["tar", "--xattrs", "-xpf", "-", "-C", str(target)], input=archive,
                          capture_output=True)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    return target


def dump(repo: Path, *args: str | bytes, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run_repofs("-r", repo, "dump", *args, check=check)  # type: ignore[arg-type]


# -- restic-made repositories --------------------------------------------------------------------


def test_tar_extracts_to_what_restic_restores(restic_repo: RepoFixture, tmp_path: Path) -> None:
    want = describe(restore(restic_repo.path, tmp_path / "restored"))
    got = describe(extract_tar(dump(restic_repo.path, "latest", "/").stdout, tmp_path / "tar"))
    assert got == want
    assert b"fifo" in got and b"hardlink-to-hello" in got


def _zip_mtime(info: zipfile.ZipInfo) -> int | None:
    extra = info.extra
    while len(extra) >= 4:
        tag, size = struct.unpack_from("<HH", extra)
        if tag == 0x5455:
            return struct.unpack_from("<i", extra, 5)[0]
        extra = extra[4 + size:]
    return None


def _zip_name(info: zipfile.ZipInfo) -> bytes:
    """The raw member name: UTF-8 when flagged, else the bytes zipfile decoded as cp437."""
    if info.flag_bits & 0x800:
        return info.orig_filename.encode("utf-8", "surrogateescape")
    return info.orig_filename.encode("cp437")


def test_zip_reads_as_what_restic_restores(restic_repo: RepoFixture, tmp_path: Path) -> None:
    restored = restore(restic_repo.path, tmp_path / "restored")
    proc = dump(restic_repo.path, "--archive", "zip", "latest", "/")
    assert b"fifo: skipping a fifo" in proc.stderr
    want = {}
    for rel, (kind, mode, _, mtime, extra, _) in describe(restored).items():
        if stat.S_ISFIFO(kind):
            continue
        content: Any = extra
        if stat.S_ISREG(kind):
            content = (restored / os.fsdecode(rel)).read_bytes()
        elif stat.S_ISLNK(kind):
            content = os.fsencode(extra)
        seconds = os.lstat(restored / os.fsdecode(rel)).st_mtime_ns // NS
        want[rel] = (kind, mode, content, seconds)
    got = {}
    with zipfile.ZipFile(io.BytesIO(proc.stdout)) as zf:
        assert zf.testzip() is None
        for info in zf.infolist():
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            name = _zip_name(info)
            content = None if stat.S_ISDIR(kind) else zf.read(info)
            got[name.rstrip(b"/")] = (kind, stat.S_IMODE(mode), content, _zip_mtime(info))
            if stat.S_ISREG(kind) and info.file_size:
                assert info.compress_type == zipfile.ZIP_DEFLATED
    for rel, value in want.items():
        if stat.S_ISLNK(value[0]):
            want[rel] = value[:3] + (got.get(rel, (None,) * 4)[3],)  # restic sets no symlink times
    assert got == want


@pytest.mark.parametrize("path", ["/big.bin", "/docs/hello.txt", "/empty", "/Grüße-日本/naïve café.txt",
                                  "/docs/note-01.txt"])
def test_single_file_equals_restic_dump(restic_repo: RepoFixture, path: str) -> None:
    theirs = restic(restic_repo.path, "dump", "latest", path)
    ours = dump(restic_repo.path, "latest", path).stdout
    assert ours == theirs
    assert len(ours) == (restic_repo.source / path.lstrip("/")).stat().st_size


def test_single_file_with_raw_name_and_subfolder_spec(restic_repo: RepoFixture, tmp_path: Path) -> None:
    raw = b"/bad-\xff\xfe-utf8"
    assert dump(restic_repo.path, "latest", raw).stdout == restic(restic_repo.path, "dump", "latest", raw)
    assert dump(restic_repo.path, "latest:docs", "hello.txt").stdout == b"hello world\n"
    out = tmp_path / "out.bin"
    dump(restic_repo.path, "--target", str(out), restic_repo.snapshot_ids[0][:8], "/big.bin")
    assert out.read_bytes() == (restic_repo.source / "big.bin").read_bytes()


def _names(archive: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:", errors="surrogateescape") as tf:
        return tf.getnames()


def test_folders_and_several_paths(restic_repo: RepoFixture) -> None:
    names = _names(dump(restic_repo.path, "latest", "/docs/deep/", "Grüße-日本", "/docs/deep/deeper").stdout)
    assert names == ["Grüße-日本", "Grüße-日本/naïve café.txt", "docs", "docs/deep", "docs/deep/deeper",
                     "docs/deep/deeper/bottom.txt"]
    assert _names(dump(restic_repo.path, "latest:docs", "/deep").stdout) == [
        "deep", "deep/deeper", "deep/deeper/bottom.txt"]
    whole = _names(dump(restic_repo.path, "--host", "alpha", "latest", "/").stdout)
    assert "docs/added-later.txt" not in whole and "docs/hello.txt" in whole
    assert "docs/added-later.txt" in _names(dump(restic_repo.path, "latest", "/").stdout)


def test_missing_path_is_an_error(restic_repo: RepoFixture) -> None:
    proc = dump(restic_repo.path, "latest", "/docs/nope", check=False)
    assert proc.returncode == 1 and b"no such file or directory" in proc.stderr and proc.stdout == b""


@pytest.mark.parametrize("args", [["--exclude", "*.txt"], ["--exclude", "/docs/deep", "--exclude", "big*"],
                                  ["-e", "note-0?.txt", "-e", "!note-01.txt"]])
def test_exclude_filters_like_restic_restore(restic_repo: RepoFixture, tmp_path: Path, args: list[str]) -> None:
    want = describe(restore(restic_repo.path, tmp_path / "restored", *args))
    got = describe(extract_tar(dump(restic_repo.path, *args, "latest", "/").stdout, tmp_path / "tar"))
    assert got == want


@pytest.mark.parametrize("args", [["--include", "*.txt"], ["--include", "/docs/deep"], ["-i", "hello*"]])
def test_include_filters_like_restic_restore(restic_repo: RepoFixture, tmp_path: Path, args: list[str]) -> None:
    want = describe(restore(restic_repo.path, tmp_path / "restored", *args), times=False)
    got = describe(extract_tar(dump(restic_repo.path, *args, "latest", "/").stdout, tmp_path / "tar"), times=False)
    # restic makes the folders on the way with mode 0700; we write them with their metadata.
    assert {k: v for k, v in got.items() if not stat.S_ISDIR(v[0])} == \
        {k: v for k, v in want.items() if not stat.S_ISDIR(v[0])}
    assert set(got) == set(want)


def test_bad_pattern_is_a_usage_error(restic_repo: RepoFixture) -> None:
    proc = dump(restic_repo.path, "--exclude", "[", "latest", "/", check=False)
    assert proc.returncode == 1 and b"invalid pattern" in proc.stderr


def _read_some_then_close(args: list[str | os.PathLike[str]], nbytes: int) -> subprocess.Popen[bytes]:
    env = restic_env()
    proc = subprocess.Popen([sys.executable, "-m", "repofs", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(nbytes)) == nbytes
    proc.stdout.close()
    proc.wait(timeout=120)
    return proc


@pytest.mark.parametrize("what", [["latest", "/"], ["--archive", "zip", "latest", "/"], ["latest", "/big.bin"]])
def test_reader_closing_early_ends_quietly(restic_repo: RepoFixture, what: list[str]) -> None:
    proc = _read_some_then_close(["-r", restic_repo.path, "--quiet", "dump", *what], 1)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode in (0, -signal.SIGPIPE), err
    assert err == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_write_error_is_reported(restic_repo: RepoFixture) -> None:
    proc = dump(restic_repo.path, "--target", "/dev/full", "latest", "/", check=False)
    assert proc.returncode == 1 and proc.stderr == b"repofs: cannot write the output: no space left on device\n"


def test_archive_to_a_terminal_is_refused(restic_repo: RepoFixture) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "repofs", "-r", restic_repo.path, "dump", "latest", "/"],
                              stdout=follower, stderr=subprocess.PIPE, env=restic_env(), timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 1 and b"stdout is a terminal" in proc.stderr


# -- damage ------------------------------------------------------------------------------------


def _copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for dirpath, _, files in os.walk(dst):
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o600)
    return dst


def test_damaged_pack_fails_naming_the_file(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo = _copy_repo(restic_repo.path, tmp_path / "repo")
    packs = sorted((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest = packs[-1]  # holds the chunks of big.bin
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0x55
    biggest.write_bytes(bytes(data))
    for args in (["latest", "/"], ["--archive", "zip", "latest", "/"], ["latest", "/big.bin"]):
        proc = dump(repo, *args, check=False)
        assert proc.returncode != 0, args
        assert b"/big.bin" in proc.stderr and b"damaged pack" in proc.stderr, proc.stderr
        assert b"Traceback" not in proc.stderr
    # What comes before the damage is written; the archive is not passed off as complete.
    assert len(dump(repo, "latest", "/", check=False).stdout) < 9 << 20


def test_missing_pack_fails_naming_the_file(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo = _copy_repo(restic_repo.path, tmp_path / "repo")
    biggest = max((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.unlink()
    proc = dump(repo, "latest", "/big.bin", check=False)
    assert proc.returncode != 0 and b"/big.bin" in proc.stderr and b"missing" in proc.stderr


def test_truncated_pack_fails_naming_the_file(restic_repo: RepoFixture, tmp_path: Path) -> None:
    """The read comes back short (the decoding thread reads a local pack itself)."""
    repo = _copy_repo(restic_repo.path, tmp_path / "repo")
    biggest = max((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    os.truncate(biggest, biggest.stat().st_size // 2)
    for args in (["latest", "/"], ["latest", "/big.bin"]):
        proc = dump(repo, *args, check=False)
        assert proc.returncode != 0, args
        assert b"/big.bin" in proc.stderr and b"truncated pack" in proc.stderr, proc.stderr
        assert b"Traceback" not in proc.stderr


# -- a richer restic-made snapshot ---------------------------------------------------------------


# user::rw-, user:1000:r-x, group::r--, mask::r-x, other::r-- as Linux stores it.
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in [
    (0x01, 6, 0xFFFFFFFF), (0x02, 5, 1000), (0x04, 4, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)])


@pytest.fixture(scope="module")
def rich_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Devices, paths and link targets over 100 bytes, ids over ustar's range, odd xattr
    names, hard links across folders, sub-second times, setgid and sticky folders."""
    base = tmp_path_factory.mktemp("rich")
    src = make_varied_tree(base / "src", seed=5)
    try:
        os.mknod(src / "cdev", 0o640 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(src / "bdev", 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    except PermissionError:
        pass
    deep = src / ("l" * 100) / ("m" * 100) / ("n" * 100)
    deep.mkdir(parents=True)
    (deep / ("f" * 200)).write_text("deep\n")
    os.symlink("/".join(["t" * 60] * 5), src / "long-link")
    (src / "ids").write_text("ids\n")
    if os.geteuid() == 0:
        os.chown(src / "ids", 3_000_000, 3_000_001)
    odd = src / "odd-xattrs"
    odd.write_text("x\n")
    try:
        os.setxattr(odd, "user.a=b%c", b"v=1")
        os.setxattr(odd, "user.empty", b"")
    except OSError:
        pass
    acl = src / "acl-file"
    acl.write_text("acl\n")
    try:
        os.setxattr(acl, "system.posix_acl_access", ACL)
    except OSError:
        pass
    (src / "other").mkdir()
    (src / "sg").mkdir(mode=0o2775)
    os.chmod(src / "sg", 0o2775)
    (src / "sticky").mkdir()
    os.chmod(src / "sticky", 0o1777)
    os.link(src / "docs" / "deep" / "deeper" / "bottom.txt", src / "other" / "hl2")
    os.link(src / "docs" / "deep" / "deeper" / "bottom.txt", src / "other" / "hl3")
    os.utime(src / "ids", ns=(1_700_000_000_123_456_789, 1_600_000_000_987_654_321))
    for d in (deep, src / "other", src / "docs" / "deep"):
        os.utime(d, ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))
    repo = init_repo(base / "repo", version=2)
    backup(repo, src)
    return repo


def test_rich_snapshot_tar_extracts_to_what_restic_restores(rich_repo: Path, tmp_path: Path) -> None:
    want = describe(restore(rich_repo, tmp_path / "restored"))
    got = describe(extract_tar(dump(rich_repo, "latest", "/").stdout, tmp_path / "tar"))
    assert got == want
    assert b"other/hl3" in got


def test_rich_snapshot_acls_come_back_with_gnu_tar_acls(rich_repo: Path, tmp_path: Path) -> None:
    restored = restore(rich_repo, tmp_path / "restored")
    try:
        want = os.getxattr(restored / "acl-file", "system.posix_acl_access")
    except OSError:
        pytest.skip("no POSIX ACLs here")
    target = tmp_path / "tar"
    target.mkdir()
    subprocess.run(["tar", "--xattrs", "--acls", "-xpf", "-", "-C", str(target)], check=True,
                   input=dump(rich_repo, "latest", "/").stdout)
    assert os.getxattr(target / "acl-file", "system.posix_acl_access") == want == ACL


def test_rich_snapshot_zip_holds_the_same_bytes(rich_repo: Path, tmp_path: Path) -> None:
    restored = restore(rich_repo, tmp_path / "restored")
    proc = dump(rich_repo, "-a", "zip", "latest", "/")
    with zipfile.ZipFile(io.BytesIO(proc.stdout)) as zf:
        for info in zf.infolist():
            path = restored / os.fsdecode(_zip_name(info))
            mode = info.external_attr >> 16
            if stat.S_ISREG(mode):
                assert zf.read(info) == path.read_bytes(), info.filename
            elif stat.S_ISLNK(mode):
                assert zf.read(info).decode() == os.readlink(path)


# -- snapshots written by repofs (at the lowest level) --------------------------------------------


async def _write_snapshot(repo_path: Path, blobs: list[tuple[bytes, BlobType]], root: bytes) -> None:
    backend = LocalBackend(str(repo_path))
    repo = await Repository.open(backend, PASSWORD.encode())
    body = bytearray()
    entries = []
    for plain, btype in blobs:
        sealed = repo.key.seal(plain)
        entries.append(PackEntry(hash_id(plain), btype, len(body), len(sealed)))
        body += sealed
    header = repo.key.seal(encode_header(entries))
    pack = bytes(body) + header + struct.pack("<I", len(header))
    pack_id = hash_id(pack)
    await backend.save(Handle(FileType.PACK, pack_id.hex()), pack)
    await repo.save_unpacked(FileType.INDEX, encode_index(
        [(pack_id, [(e.id, e.type, e.offset, e.length, None) for e in entries])]))
    snap = Snapshot(time=Timestamp(1_700_000_000 * NS), tree=root, paths=["/crafted"], hostname="crafted")
    await repo.save_unpacked(FileType.SNAPSHOT, encode_snapshot(snap))
    await backend.close()


def _craft(repo_path: Path, names: list[bytes], content: bytes = b"payload\n") -> None:
    """A snapshot: /sub holding one file per name, all with ``content``."""
    data_id = hash_id(content)
    files = [Node(name=n, type="file", mode=0o644, mtime=Timestamp(1_700_000_000 * NS), size=len(content),
                  content=(data_id,)) for n in names]
    sub = encode_tree(files)
    root = encode_tree([Node(name=b"sub", type="dir", mode=MODE_DIR | 0o755, subtree=hash_id(sub),
                             mtime=Timestamp(1_700_000_000 * NS))])
    blobs = [(content, BlobType.DATA), (sub, BlobType.TREE), (root, BlobType.TREE)]
    trio.run(_write_snapshot, repo_path, blobs, hash_id(root))


@pytest.mark.parametrize("version", [1, 2])
def test_repofs_made_snapshot_dumps_like_restic_restores(tmp_path: Path, version: int) -> None:
    repo = init_repo(tmp_path / "repo", version=version)
    _craft(repo, [b"a.txt", "ü.txt".encode(), b"raw-\xff"])
    restic(repo, "check", "--read-data")
    want = describe(restore(repo, tmp_path / "restored"), owners=False)
    got = describe(extract_tar(dump(repo, "latest", "/").stdout, tmp_path / "tar"), owners=False)
    assert got == want
    assert dump(repo, "latest", "/sub/a.txt").stdout == b"payload\n"


@pytest.mark.parametrize("name", [b"../evil", b"..", b".", b"a/b", b"/abs", b"", b"nul\x00byte"])
@pytest.mark.parametrize("archive", ["tar", "zip"])
def test_hostile_names_are_refused(tmp_path: Path, name: bytes, archive: str) -> None:
    repo = init_repo(tmp_path / "repo")
    _craft(repo, [b"fine", name])
    out = tmp_path / "out"
    proc = dump(repo, "--archive", archive, "--target", str(out), "latest", "/", check=False)
    assert proc.returncode == 1, proc.stderr
    assert b"/sub: refusing a node named" in proc.stderr
    assert b"Traceback" not in proc.stderr
    if archive == "tar" and out.stat().st_size:
        with tarfile.open(out, mode="r:", errors="surrogateescape") as tf:
            try:
                names = tf.getnames()
            except tarfile.ReadError:
                names = []
        assert all(".." not in n.split("/") and not n.startswith("/") for n in names)


# -- the pipeline in-process ---------------------------------------------------------------------


async def _dump_bytes(repo_path: Path, tmp_path: Path, fmt_name: str, ahead: int) -> bytes:
    from repofs.dump.common import Selection
    from repofs.dump.common import dump as dump_tree
    from repofs.dump.tar import TarFormat
    from repofs.dump.zip import ZipFormat

    backend = LocalBackend(str(repo_path))
    repo = await Repository.open(backend, PASSWORD.encode())
    snap = max(await repo.load_snapshots(), key=lambda s: s.time.ns)
    await repo.load_index()
    out = tmp_path / f"{fmt_name}-{ahead}"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        fmt = TarFormat() if fmt_name == "tar" else ZipFormat()
        stats = await dump_tree(repo, snap.tree, Selection(), fmt, fd, ahead=ahead)
    finally:
        os.close(fd)
        await backend.close()
    assert stats.budget_peak <= max(ahead, 9 << 20)
    return out.read_bytes()


@pytest.mark.parametrize("fmt_name", ["tar", "zip"])
async def test_output_does_not_depend_on_the_budget(restic_repo: RepoFixture, tmp_path: Path, fmt_name: str) -> None:
    """A budget smaller than any job runs one job at a time; the bytes stay the same."""
    outputs = {ahead: await _dump_bytes(restic_repo.path, tmp_path, fmt_name, ahead)
               for ahead in (1, 100_000, 64 << 20)}
    assert outputs[1] == outputs[100_000] == outputs[64 << 20]


class _HoldBigReads:
    """A backend whose reads of ``hold`` bytes or more wait until every other task is
    blocked, so everything that can run ahead of such a read has."""

    blocking_load = None  # every read goes through ``load``

    def __init__(self, inner: LocalBackend, hold: int) -> None:
        self._inner = inner
        self._hold = hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        if length >= self._hold:
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        return await self._inner.load(h, length, offset)


async def test_writer_starts_a_job_the_planner_holds_while_the_channel_is_full(tmp_path: Path) -> None:
    """A slow read (a.bin) holds the budget; meanwhile the planner fills the writer's
    channel with the chunks of the tiny files, all one job, and when that job is complete
    it cannot start (no budget) nor hand the rest over (channel full). Once a.bin is
    written the writer gets to that job and must start it itself instead of waiting."""
    from repofs.dump.common import MIN_JOB

    repo_path = init_repo(tmp_path / "repo")
    mtime = Timestamp(1_700_000_000 * NS)
    big, last = os.urandom(MIN_JOB + (88 << 10)), os.urandom(1000)
    tiny = [b"%05d" % i + os.urandom(11) for i in range(700)]

    def file(name: bytes, content: bytes) -> Node:
        return Node(name=name, type="file", mode=0o644, mtime=mtime, size=len(content), content=(hash_id(content),))

    root = encode_tree([file(b"a.bin", big)] + [file(b"f%04d" % i, c) for i, c in enumerate(tiny)]
                       + [file(b"z.bin", last)])
    # The tiny blobs first, then a.bin's (far from them, so its own job) and z.bin's.
    blobs = [(c, BlobType.DATA) for c in tiny] + [(big, BlobType.DATA), (last, BlobType.DATA),
                                                  (root, BlobType.TREE)]
    await _write_snapshot(repo_path, blobs, hash_id(root))

    from repofs.dump.common import Selection
    from repofs.dump.common import dump as dump_tree
    from repofs.dump.tar import TarFormat

    backend = LocalBackend(str(repo_path))
    repo = await Repository.open(_HoldBigReads(backend, MIN_JOB), PASSWORD.encode())  # type: ignore[arg-type]
    await repo.load_index()
    out = tmp_path / "out.tar"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with trio.fail_after(60):
            await dump_tree(repo, hash_id(root), Selection(), TarFormat(), fd, ahead=1)
    finally:
        os.close(fd)
        await backend.close()
    with tarfile.open(out, mode="r:") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]
    assert got == {"a.bin": big, "z.bin": last, **{"f%04d" % i: c for i, c in enumerate(tiny)}}


def test_damaged_tree_fails_naming_the_folder(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo_path = _copy_repo(restic_repo.path, tmp_path / "repo")

    async def locate() -> tuple[bytes, int]:
        from repofs.trees import TreeLoader

        backend = LocalBackend(str(repo_path))
        repo = await Repository.open(backend, PASSWORD.encode())
        snap = max(await repo.load_snapshots(), key=lambda s: s.time.ns)
        await repo.load_index()
        deep = await TreeLoader(repo).subtree(snap.tree, "docs/deep")
        loc = repo.index.lookup(deep, BlobType.TREE)[0]
        await backend.close()
        return loc.pack_id, loc.offset + 20

    pack_id, offset = trio.run(locate)
    pack = repo_path / "data" / pack_id.hex()[:2] / pack_id.hex()
    data = bytearray(pack.read_bytes())
    data[offset] ^= 0x55
    pack.write_bytes(bytes(data))
    proc = dump(repo_path, "latest", "/", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"repofs: /docs/deep: tree blob") and b"damaged pack" in proc.stderr
    assert b"docs/deep/deeper" not in proc.stdout


def test_a_damaged_copy_is_replaced_by_an_intact_one(tmp_path: Path) -> None:
    """The same data blob in two packs: with the copy the index lists first damaged, the
    dump reads the other one and succeeds."""
    repo_path = init_repo(tmp_path / "repo")
    content = os.urandom(50_000)
    _craft(repo_path, [b"a.bin"], content)
    _craft(repo_path, [b"a.bin"], content)

    async def first_copy() -> tuple[bytes, int, int]:
        backend = LocalBackend(str(repo_path))
        repo = await Repository.open(backend, PASSWORD.encode())
        await repo.load_index()
        copies = repo.index.lookup(hash_id(content), BlobType.DATA)
        await backend.close()
        assert len(copies) == 2
        return copies[0].pack_id, copies[0].offset, copies[0].length

    pack_id, offset, length = trio.run(first_copy)
    pack = repo_path / "data" / pack_id.hex()[:2] / pack_id.hex()
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    data[offset + length // 2] ^= 0x55
    pack.write_bytes(bytes(data))
    assert dump(repo_path, "latest", "/sub/a.bin").stdout == content
    with tarfile.open(fileobj=io.BytesIO(dump(repo_path, "latest", "/").stdout), mode="r:") as tf:
        member = tf.extractfile("sub/a.bin")
        assert member is not None and member.read() == content
