"""repofs mount for real: a child process serves restic-made repositories through FUSE, and
what the mount shows is compared with `restic restore` of the same snapshot.

Every test mounts in a temporary folder and cleans up whatever happens: unmount with
fusermount3 (lazily if need be), then end the child. Skipped, not failed, where FUSE is
missing.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import repofs
from conftest import RepoFixture
from restic_util import RESTIC, backup, init_repo, restic, restic_env

FUSERMOUNT = shutil.which("fusermount3")
MOUNT_DEADLINE = 30.0
EXIT_DEADLINE = 30.0
SOURCE_ROOT = str(Path(repofs.__file__).resolve().parents[1])


def _fuse_missing() -> str | None:
    if FUSERMOUNT is None:
        return "fusermount3 is not installed"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible to this user"
    if RESTIC is None:
        return "restic binary not installed"
    return None


pytestmark = [pytest.mark.fuse, pytest.mark.skipif(_fuse_missing() is not None,
                                                   reason=_fuse_missing() or "")]


def wait_for(condition, what: str, deadline: float, proc: subprocess.Popen | None = None) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds; fail when ``deadline`` seconds pass or the child dies."""
    end = time.monotonic() + deadline
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the mount exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Mount:
    """``repofs mount`` in a child process."""

    def __init__(self, repo: Path, mountpoint: Path, *args: str) -> None:
        self.repo = repo
        self.path = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.log = mountpoint.parent / (mountpoint.name + ".log")
        env = restic_env({"PYTHONPATH": SOURCE_ROOT})
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "repofs", "-r", str(repo), "mount", str(mountpoint), *args],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.ismount(mountpoint), f"{mountpoint} to be mounted", MOUNT_DEADLINE, self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def unmount(self) -> int:
        """fusermount3 -u, then the child's exit code."""
        subprocess.run([FUSERMOUNT, "-u", str(self.path)], check=True)  # type: ignore[list-item]
        return self.wait()

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the mount did not exit:\n{self.output()}")

    def cleanup(self) -> None:
        """Whatever state things are in: unmount lazily, end the child."""
        if os.path.ismount(self.path):
            subprocess.run([FUSERMOUNT, "-u", "-z", str(self.path)], check=False,  # type: ignore[list-item]
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mount(repo: Path, mountpoint: Path, *args: str) -> Iterator[Mount]:
    m = Mount(repo, mountpoint, *args)
    try:
        yield m
        if m.proc.poll() is None:
            code = m.unmount()
            assert code == 0, m.output()
        assert not os.path.ismount(mountpoint)
        assert not list((repo / "locks").iterdir()), "the lock was not released"
    finally:
        m.cleanup()


@pytest.fixture(scope="module")
def served(restic_repo: RepoFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    """The fixture repository mounted once for the read-only checks of this module."""
    yield from mount(restic_repo.path, tmp_path_factory.mktemp("mnt") / "m")


@pytest.fixture(scope="module")
def restored(restic_repo: RepoFixture, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`restic restore` of the newest snapshot."""
    target = tmp_path_factory.mktemp("restored")
    restic(restic_repo.path, "restore", restic_repo.snapshot_ids[1], "--target", str(target))
    return target


def copy_repo(src: Path, dst: Path) -> Path:
    """A writable copy, without the locks of mounts still serving the original."""
    shutil.copytree(src, dst, ignore=lambda folder, names: names if folder.endswith("locks") else [])
    for root, dirs, files in os.walk(dst):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o700)
    return dst


def tree_of(root: Path) -> dict[bytes, os.stat_result]:
    """lstat of everything below ``root``, by relative path."""
    base = os.fsencode(root)
    out = {}
    for folder, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, base)] = os.lstat(path)
    return out


def xattrs(path: bytes) -> dict[str, bytes]:
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}


def digest(path: bytes | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def compare_trees(mounted: Path, restored: Path) -> int:
    """Everything restic restores, as the mount shows it; returns the number of entries."""
    ours, theirs = tree_of(mounted), tree_of(restored)
    assert sorted(ours) == sorted(theirs)
    m_base, r_base = os.fsencode(mounted), os.fsencode(restored)
    for rel, st in theirs.items():
        got = ours[rel]
        where = os.fsdecode(rel)
        assert stat.S_IFMT(got.st_mode) == stat.S_IFMT(st.st_mode), where
        assert got.st_mode == st.st_mode, where
        assert (got.st_uid, got.st_gid) == (st.st_uid, st.st_gid), where
        assert got.st_mtime_ns == st.st_mtime_ns, where
        m_path, r_path = os.path.join(m_base, rel), os.path.join(r_base, rel)
        assert xattrs(m_path) == xattrs(r_path), where
        if stat.S_ISLNK(st.st_mode):
            assert os.readlink(m_path) == os.readlink(r_path), where
        elif stat.S_ISREG(st.st_mode):
            assert got.st_size == st.st_size and got.st_nlink == st.st_nlink, where
            assert digest(m_path) == digest(r_path), where
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            assert got.st_rdev == st.st_rdev, where
    # Hard links: the same groups of names share an inode on both sides.
    def groups(tree: dict[bytes, os.stat_result]) -> set[frozenset[bytes]]:
        by_ino: dict[int, set[bytes]] = {}
        for rel, st in tree.items():
            if stat.S_ISREG(st.st_mode):
                by_ino.setdefault(st.st_ino, set()).add(rel)
        return {frozenset(g) for g in by_ino.values()}
    assert groups(ours) == groups(theirs)
    return len(theirs)


def snapshot_dir(m: Mount, snapshot_id: str) -> Path:
    return m.path / "ids" / snapshot_id[:8]


# -- what the mount shows -----------------------------------------------------------------

def test_snapshot_equals_restic_restore(served: Mount, restored: Path, restic_repo: RepoFixture) -> None:
    entries = compare_trees(snapshot_dir(served, restic_repo.snapshot_ids[1]), restored)
    assert entries > 40
    hello = snapshot_dir(served, restic_repo.snapshot_ids[1]) / "docs" / "hello.txt"
    link = snapshot_dir(served, restic_repo.snapshot_ids[1]) / "hardlink-to-hello"
    assert hello.stat().st_ino == link.stat().st_ino and hello.stat().st_nlink == 2
    assert stat.S_ISFIFO((snapshot_dir(served, restic_repo.snapshot_ids[1]) / "fifo").lstat().st_mode)


def test_layout_equals_restic_mount(served: Mount, restic_repo: RepoFixture, tmp_path: Path) -> None:
    """The top folders, names and latest links, against `restic mount` of the same repository."""
    theirs_mnt = tmp_path / "restic-mnt"
    theirs_mnt.mkdir()
    proc = subprocess.Popen([RESTIC, "-r", str(restic_repo.path), "--no-cache", "--no-lock", "mount",  # type: ignore[list-item]
                             str(theirs_mnt)], env=restic_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.ismount(theirs_mnt), "restic mount", MOUNT_DEADLINE, proc)

        def top(root: Path) -> dict[str, str]:
            out = {}
            for kind in ("ids", "snapshots", "hosts", "tags"):
                stack = [root / kind]
                while stack:
                    folder = stack.pop()
                    for entry in sorted(os.listdir(folder)):
                        path = folder / entry
                        rel = str(path.relative_to(root))
                        if path.is_symlink():
                            out[rel] = "-> " + os.readlink(path)
                        elif kind in ("hosts", "tags") and rel.count("/") == 1:
                            out[rel] = "dir"
                            stack.append(path)
                        else:
                            out[rel] = "snapshot mtime %d" % path.stat().st_mtime
            return out
        assert top(served.path) == top(theirs_mnt)
    finally:
        subprocess.run([FUSERMOUNT, "-u", "-z", str(theirs_mnt)], check=False)  # type: ignore[list-item]
        proc.terminate()
        proc.wait(timeout=EXIT_DEADLINE)


def test_find_and_ls(served: Mount, restored: Path, restic_repo: RepoFixture) -> None:
    snap = snapshot_dir(served, restic_repo.snapshot_ids[1])

    def run(*args: str | Path) -> str:
        return subprocess.run(list(map(str, args)), check=True, stdout=subprocess.PIPE).stdout.decode(
            errors="surrogateescape")
    # Same names and types, from find.
    assert sorted(run("find", snap, "-mindepth", "1", "-printf", "%P %y %m %U %G\\n").splitlines()) == sorted(
        run("find", restored, "-mindepth", "1", "-printf", "%P %y %m %U %G\\n").splitlines())
    # ls -l agrees on every line but folders (whose sizes are those of the file system).
    def ls(root: Path) -> list[str]:
        out = run("ls", "-lAR", "--time-style=+%s", root).replace(str(root), "ROOT").splitlines()
        return [line for line in out if not line.startswith(("d", "total"))]
    assert ls(snap) == ls(restored)
    # find over the whole mount, every snapshot under every path: no loops, no errors.
    proc = subprocess.run(["find", str(served.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0 and proc.stderr == b""
    assert len(proc.stdout.splitlines()) > 6 * 40


def test_cat_and_random_reads(served: Mount, restored: Path, restic_repo: RepoFixture) -> None:
    big = snapshot_dir(served, restic_repo.snapshot_ids[1]) / "big.bin"
    want = (restored / "big.bin").read_bytes()
    assert subprocess.run(["cat", str(big)], stdout=subprocess.PIPE, check=True).stdout == want
    rng = random.Random(7)
    fd = os.open(big, os.O_RDONLY)
    try:
        # Out of the page cache (cat filled it), so that the reads reach the mount.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for _ in range(200):
            off = rng.randrange(len(want) + 100)
            size = rng.choice([1, 100, 4096, 65536, 1 << 20])
            assert os.pread(fd, size, off) == want[off:off + size]
    finally:
        os.close(fd)


def test_parallel_readers(served: Mount, restored: Path, restic_repo: RepoFixture) -> None:
    snap = snapshot_dir(served, restic_repo.snapshot_ids[1])
    files = [p for p, st in tree_of(restored).items() if stat.S_ISREG(st.st_mode)]
    jobs = [os.fsencode("big.bin")] * 4 + files

    def check(rel: bytes) -> bool:
        return digest(os.path.join(os.fsencode(snap), rel)) == digest(os.path.join(os.fsencode(restored), rel))

    def listing() -> int:
        return sum(len(files) for _, _, files in os.walk(snapshot_dir(served, restic_repo.snapshot_ids[0])))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(check, jobs))
        assert pool.submit(listing).result() > 30
    assert all(results)


def make_many_files(root: Path, seed: int) -> int:
    """Folders of small and mid-sized files, some nested, a few large ones, links: the
    shape tar meets in a home folder. Returns the bytes written."""
    rng = random.Random(seed)
    text = b" ".join(rng.choice([b"alpha", b"beta", b"gamma", b"delta", b"mount"]) for _ in range(40000))
    written = 0
    for d in range(14):
        folder = root / f"d{d:02d}"
        if d % 4 == 3:
            folder = folder / "nested" / f"n{d}"
        folder.mkdir(parents=True)
        for k in range(rng.randrange(3, 50)):
            kind = rng.random()
            if kind < 0.1:
                data = b""
            elif kind < 0.6:
                data = rng.randbytes(rng.randrange(1, 4096))
            elif kind < 0.95:
                data = text[:rng.randrange(10_000, 200_000)] + rng.randbytes(64)
            else:
                data = rng.randbytes(rng.randrange(1, 3) << 20)
            (folder / f"f{k:03d}").write_bytes(data)
            written += len(data)
        os.symlink("f000", folder / "link")
    os.link(root / "d00" / "f001", root / "d01" / "hardlink")
    return written


def test_tar_of_a_snapshot_reads_what_restic_restores(tmp_path: Path) -> None:
    """tar opens a snapshot's files in tree order, so the mount asks for the next files'
    blobs across folders ahead of it; with a small cache much of that is evicted and
    fetched again. Every byte tar gets must still be the file's."""
    src = tmp_path / "src"
    assert make_many_files(src, seed=5) > 8 << 20
    repo = init_repo(tmp_path / "repo", version=2)
    snapshot_id = backup(repo, src)
    restored = tmp_path / "restored"
    restic(repo, "restore", snapshot_id, "--target", str(restored))
    want = tree_of(restored)
    for m in mount(repo, tmp_path / "mnt", "--cache-size", "8"):
        snap = snapshot_dir(m, snapshot_id)
        proc = subprocess.run(["tar", "-cf", "-", "-C", str(snap), "."], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False, timeout=300)
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
        seen: set[bytes] = set()
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            for member in tar:
                rel = os.path.normpath(os.fsencode(member.name))
                if rel == b".":
                    continue
                seen.add(rel)
                r_path = os.path.join(os.fsencode(restored), rel)
                if member.isfile():
                    with open(r_path, "rb") as f:
                        assert tar.extractfile(member).read() == f.read(), member.name  # type: ignore[union-attr]
                elif member.islnk():
                    assert os.path.samefile(r_path, os.path.join(os.fsencode(restored), os.fsencode(
                        os.path.normpath(member.linkname)))), member.name
                elif member.issym():
                    assert os.fsencode(member.linkname) == os.readlink(r_path), member.name
                else:
                    assert member.isdir() and stat.S_ISDIR(want[rel].st_mode), member.name
        assert seen == set(want)
        assert "ERROR" not in m.output() and "Traceback" not in m.output(), m.output()


def test_special_files_and_owners(tmp_path: Path) -> None:
    """Devices, fifos, owners and mode bits of a repository made by `repofs init`, backed
    up by restic."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "owned").write_text("someone else's\n")
    os.chown(src / "owned", 1234, 5678)
    (src / "setgid-dir").mkdir(mode=0o2750)
    os.chmod(src / "setgid-dir", 0o2750)
    os.symlink("owned", src / "link")
    os.lchown(src / "link", 4321, 8765)
    os.mkfifo(src / "pipe", 0o640)
    is_root = os.geteuid() == 0
    if is_root:
        os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(src / "loop", 0o660 | stat.S_IFBLK, os.makedev(7, 42))
    os.utime(src / "owned", ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    repo = tmp_path / "repo"
    proc = subprocess.run([sys.executable, "-m", "repofs", "-r", str(repo), "init"],
                          env=restic_env({"PYTHONPATH": SOURCE_ROOT}), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    snapshot_id = backup(repo, src)
    restored = tmp_path / "restored"
    restic(repo, "restore", snapshot_id, "--target", str(restored))
    for m in mount(repo, tmp_path / "mnt"):
        compare_trees(m.path / "snapshots" / "latest", restored)
        if is_root:
            assert (m.path / "snapshots" / "latest" / "null").lstat().st_rdev == os.makedev(1, 3)
        owned = (m.path / "snapshots" / "latest" / "owned").stat()
        # restic 0.14 stores the mtime as atime too; the mount shows what is stored.
        assert (owned.st_uid, owned.st_gid, owned.st_mtime_ns, owned.st_atime_ns) == (
            1234, 5678, 1_500_000_000_987_654_321, 1_500_000_000_987_654_321)


# -- life of the mount ----------------------------------------------------------------------

def test_new_snapshot_appears_while_mounted(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo = copy_repo(restic_repo.path, tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "new.txt").write_bytes(b"new\n" * 5000)
    for m in mount(repo, tmp_path / "mnt", "--refresh-interval", "0.5"):
        assert len(os.listdir(m.path / "ids")) == 2
        new_id = backup(repo, src, "--no-lock", "--host", "gamma")
        wait_for(lambda: new_id[:8] in os.listdir(m.path / "ids"), "the new snapshot", 20.0, m.proc)
        assert (m.path / "hosts" / "gamma" / "latest" / "new.txt").read_bytes() == b"new\n" * 5000
        assert os.readlink(m.path / "snapshots" / "latest") == os.readlink(m.path / "hosts" / "gamma" / "latest")


def test_damaged_pack_gives_eio_and_the_mount_stays_up(restic_repo: RepoFixture, tmp_path: Path,
                                                       restored: Path) -> None:
    repo = copy_repo(restic_repo.path, tmp_path / "repo")
    blob = _first_blob_of(repo, restic_repo.snapshot_ids[1], "big.bin")
    pack, offset, length = _where(repo, blob)
    raw = bytearray(pack.read_bytes())
    raw[offset + length // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    for m in mount(repo, tmp_path / "mnt"):
        snap = snapshot_dir(m, restic_repo.snapshot_ids[1])
        for _ in range(3):
            with pytest.raises(OSError) as failed:
                (snap / "big.bin").read_bytes()
            assert failed.value.errno == errno.EIO
        assert (snap / "docs" / "hello.txt").read_bytes() == (restored / "docs" / "hello.txt").read_bytes()
        assert os.path.ismount(m.path) and m.proc.poll() is None
        lines = [line for line in m.output().splitlines() if blob[:16] in line]
        assert len(lines) == 1 and "big.bin" in lines[0]


def _first_blob_of(repo: Path, snapshot_id: str, name: str) -> str:
    """The first content blob of a file at the top of a snapshot."""
    root = json.loads(restic(repo, "cat", "snapshot", snapshot_id))["tree"]
    (node,) = [n for n in json.loads(restic(repo, "cat", "blob", root))["nodes"] if n["name"] == name]
    return str(node["content"][0])


def _where(repo: Path, blob: str) -> tuple[Path, int, int]:
    for index_id in restic(repo, "list", "index").decode().split():
        doc = json.loads(restic(repo, "cat", "index", index_id))
        for pack in doc["packs"]:
            for b in pack["blobs"]:
                if b["id"] == blob:
                    return repo / "data" / pack["id"][:2] / pack["id"], b["offset"], b["length"]
    raise AssertionError(f"blob {blob} is in no index")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signals_unmount_and_release_the_lock(restic_repo: RepoFixture, tmp_path: Path,
                                              signum: signal.Signals, code: int) -> None:
    repo = copy_repo(restic_repo.path, tmp_path / "repo")
    m = Mount(repo, tmp_path / "mnt", "--allow-other")
    try:
        assert len(list((repo / "locks").iterdir())) == 1
        options = [line.split()[3] for line in Path("/proc/mounts").read_text().splitlines()
                   if line.split()[1] == str(m.path)]
        assert options and {"ro", "allow_other", "default_permissions"} <= set(options[0].split(","))
        # restic probes a lock's holder with SIGHUP: the mount must take no notice.
        m.proc.send_signal(signal.SIGHUP)
        assert sorted(os.listdir(m.path / "hosts")) == ["alpha", "beta"]
        assert os.path.ismount(m.path) and m.proc.poll() is None
        # Busy: a reader holds a file open while the signal arrives. The unmount is lazy;
        # the file stays open but can no longer be served.
        busy = os.open(m.path / "snapshots" / "latest" / "docs" / "hello.txt", os.O_RDONLY)
        try:
            assert os.read(busy, 5) == b"hello"
            m.proc.send_signal(signum)
            assert m.wait() == code, m.output()
        finally:
            try:
                os.close(busy)
            except OSError as exc:
                assert exc.errno == errno.ENOTCONN
        assert not os.path.ismount(m.path)
        assert not list((repo / "locks").iterdir())
    finally:
        m.cleanup()


def test_refuses_a_missing_mountpoint(restic_repo: RepoFixture, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "repofs", "-r", str(restic_repo.path), "mount",
                           str(tmp_path / "nope")], env=restic_env({"PYTHONPATH": SOURCE_ROOT}),
                          capture_output=True, check=False)
    assert proc.returncode == 1 and b"does not exist" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "repofs", "-r", str(restic_repo.path), "mount",
                          "--time-template", "/2006", str(tmp_path)], env=restic_env({"PYTHONPATH": SOURCE_ROOT}),
                         capture_output=True, check=False)
    assert bad.returncode != 0 and b"time template" in bad.stderr
