"""`repofs backup` against restic as the oracle: same trees, same blobs, restic checks and
restores what repofs wrote, and the options behave as restic's do."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import make_varied_tree
from restic_util import PASSWORD, RESTIC, init_repo, needs_restic, restic, restic_env

pytestmark = needs_restic


def repofs(*args: str | os.PathLike[str], cwd: Path | None = None, check: bool = True,
           input: bytes | None = None, prefix: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "RESTIC_PASSWORD": PASSWORD, "TZ": "UTC", **(env or {})}
    proc = subprocess.run([*prefix, sys.executable, "-m", "repofs", *map(os.fspath, args)], cwd=cwd, env=env,
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"repofs {args!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc


def new_repo(path: Path, version: int = 2) -> Path:
    """A repository made by `repofs init`: its key is cheaper to open than the keys restic
    calibrates, which keeps the many runs here quick. Tests that need restic-made
    repositories say so and use ``init_repo``."""
    repofs("-r", path, "init", "--repository-version", str(version))
    return path


def summary(out: bytes) -> dict[str, Any]:
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    (found,) = [x for x in lines if x["message_type"] == "summary"]
    return found


def snapshots(repo: Path) -> list[dict[str, Any]]:
    return list(json.loads(restic(repo, "snapshots", "--json")))


def snapshot_by_short(repo: Path, short_id: str) -> dict[str, Any]:
    (found,) = [s for s in snapshots(repo) if s["id"].startswith(short_id)]
    return found


def backup_both(repo: Path, args: list[str], cwd: Path | None = None, restic_args: list[str] = (),
                env: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Back up with repofs, then with restic (given extra arguments); both summaries."""
    ours = summary(repofs("-r", repo, "backup", "--json", *args, cwd=cwd, env=env).stdout)
    theirs = summary(restic(repo, "backup", "--json", *restic_args, *args, cwd=cwd, env=env))
    return ours, theirs


def tree_of(repo: Path, summary_doc: dict[str, Any]) -> str:
    return snapshot_by_short(repo, summary_doc["snapshot_id"])["tree"]


def check_ok(repo: Path, *args: str) -> None:
    assert "no errors were found" in restic(repo, "check", *args).decode()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_varied_tree(tmp_path_factory.mktemp("t6src") / "src")


# -- identical trees, mutual dedup, restic check ----------------------------------------------


def _child(repo: Path, tree_id: str, name: str) -> str:
    """The subtree id of folder ``name`` in tree ``tree_id``."""
    nodes = json.loads(restic(repo, "cat", "blob", tree_id))["nodes"]
    (node,) = [n for n in nodes if n["name"] == name]
    return node["subtree"]


@pytest.mark.parametrize(("version", "absolute"), [(1, False), (2, True)], ids=["v1-dot", "v2-abs"])
def test_same_tree_as_restic(tmp_path: Path, source: Path, version: int, absolute: bool) -> None:
    repo = init_repo(tmp_path / "repo", version=version)
    args = [str(source)] if absolute else ["."]
    # restic re-reads everything (--force) and must find every blob stored already.
    ours, theirs = backup_both(repo, args, cwd=source, restic_args=["--force"])
    if absolute:
        # The folders above the source hold their real metadata; in a busy /tmp they may
        # change between the two runs, so compare the path's names and the source's subtree.
        ours_tree, theirs_tree = (tree_of(repo, x) for x in (ours, theirs))
        for name in source.parts[1:]:
            ours_tree, theirs_tree = (_child(repo, t, name) for t in (ours_tree, theirs_tree))
        assert ours_tree == theirs_tree
    else:
        assert tree_of(repo, ours) == tree_of(repo, theirs)
        assert theirs["data_blobs"] == 0 and theirs["tree_blobs"] == 0
    assert theirs["data_blobs"] == 0
    assert ours["files_new"] == theirs["files_new"] > 30
    assert ours["dirs_new"] == theirs["dirs_new"]
    assert ours["total_bytes_processed"] == theirs["total_bytes_processed"]
    snap = snapshot_by_short(repo, ours["snapshot_id"])
    assert snap["paths"] == [str(source)]
    check_ok(repo, "--read-data")


@pytest.mark.parametrize("version", [1, 2])
def test_repofs_made_repository(tmp_path: Path, source: Path, version: int) -> None:
    repo = tmp_path / "repo"
    repofs("-r", repo, "init", "--repository-version", str(version))
    repofs("-r", repo, "backup", ".", cwd=source)
    check_ok(repo, "--read-data")
    # restic reading the same files with our polynomial cuts the same chunks.
    theirs = summary(restic(repo, "backup", "--json", "--force", ".", cwd=source))
    assert theirs["data_blobs"] == 0 and theirs["tree_blobs"] == 0


def test_large_file_same_blobs_restic_first(tmp_path: Path) -> None:
    """restic stores a large file first; repofs, reading it again, adds no data blob."""
    data = bytearray()
    seed = 7
    while len(data) < 21 << 20:
        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        block = seed.to_bytes(8, "little") * 8192
        data += block if seed % 3 else os.urandom(65536)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(data))
    repo = init_repo(tmp_path / "repo")
    theirs = summary(restic(repo, "backup", "--json", "big.bin", cwd=tmp_path))
    ours = summary(repofs("-r", repo, "backup", "--json", "--force", "big.bin", cwd=tmp_path).stdout)
    assert theirs["data_blobs"] >= 3
    assert ours["data_blobs"] == 0 and ours["tree_blobs"] == 0
    assert tree_of(repo, ours) == tree_of(repo, theirs)


def _compare_restored(src: Path, dst: Path) -> None:
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for name in dirs + files:
            a, b = Path(root) / name, dst / rel / name
            sa, sb = os.lstat(a), os.lstat(b)
            assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), a
            assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), a
            if stat.S_ISLNK(sa.st_mode):
                assert os.readlink(a) == os.readlink(b)
                continue
            assert sa.st_mtime_ns == sb.st_mtime_ns, a
            if stat.S_ISREG(sa.st_mode):
                assert a.read_bytes() == b.read_bytes(), a
            if not stat.S_ISFIFO(sa.st_mode):
                assert {x: os.getxattr(a, x) for x in os.listxattr(a)} == \
                    {x: os.getxattr(b, x) for x in os.listxattr(b)}, a


def test_restic_restores_a_repofs_snapshot(tmp_path: Path, source: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    ours = summary(repofs("-r", repo, "backup", "--json", ".", cwd=source).stdout)
    target = tmp_path / "restored"
    restic(repo, "restore", ours["snapshot_id"], "--target", target)
    _compare_restored(source, target)
    assert (target / "empty").stat().st_size == 0
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert os.getxattr(target / "docs" / "hello.txt", "user.comment") == b"greeting\x00\xff"
    # Hard links come back as hard links.
    assert os.stat(target / "hardlink-to-hello").st_ino == os.stat(target / "docs" / "hello.txt").st_ino
    assert (target / os.fsdecode(b"bad-\xff\xfe-utf8")).read_bytes() == b"invalid utf-8 name\n"


# -- the second backup reads nothing unchanged ---------------------------------------------------

_IN_ACCESS, _IN_OPEN, _IN_ISDIR = 0x1, 0x20, 0x40000000


class OpenWatch:
    """Names of files opened under a folder tree while it is watched (inotify)."""

    def __init__(self, top: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip("inotify is not available")
        self.dirs: dict[int, Path] = {}
        for root, _, _ in os.walk(top):
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(root), _IN_OPEN | _IN_ACCESS)
            assert wd >= 0, ctypes.get_errno()
            self.dirs[wd] = Path(root)

    def opened(self) -> set[Path]:
        out = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                wd, mask, _cookie, size = (int.from_bytes(data[pos + i:pos + i + 4], "little") for i in (0, 4, 8, 12))
                name = data[pos + 16:pos + 16 + size].rstrip(b"\0")
                pos += 16 + size
                if name and not mask & _IN_ISDIR:
                    out.add(self.dirs[wd] / os.fsdecode(name))

    def close(self) -> None:
        os.close(self.fd)


def test_second_backup_reads_no_unchanged_file(tmp_path: Path) -> None:
    src = make_varied_tree(tmp_path / "src", seed=3)
    for twin in ("twin-a", "twin-b", "twin-a/inner"):  # empty folders: one tree for all three
        (src / twin).mkdir()
    repo = new_repo(tmp_path / "repo")
    first = summary(repofs("-r", repo, "backup", "--json", src).stdout)
    changed = src / "docs" / "note-05.txt"
    with open(changed, "ab") as f:
        f.write(b"more")
    watch = OpenWatch(src)
    try:
        second = summary(repofs("-r", repo, "backup", "--json", src).stdout)
        opened = watch.opened()
        assert opened == {changed}
        forced = summary(repofs("-r", repo, "backup", "--json", "--force", src).stdout)
        assert len(watch.opened()) == first["files_new"]  # every file, by each of its names
    finally:
        watch.close()
    assert second["files_changed"] == 1 and second["files_new"] == 0
    assert second["dirs_new"] == 0 and second["dirs_changed"] + second["dirs_unmodified"] == first["dirs_new"]
    assert second["files_unmodified"] == first["files_new"] - 1
    assert second["data_blobs"] == 1
    assert forced["files_new"] == first["files_new"] and forced["data_blobs"] == 0
    snaps = {s["short_id"]: s for s in snapshots(repo)}
    assert snaps[second["snapshot_id"]]["parent"].startswith(first["snapshot_id"])
    assert "parent" not in snaps[forced["snapshot_id"]]


# -- excludes: the same choices as restic's ---------------------------------------------------------


@pytest.fixture(scope="module")
def exclude_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    top = tmp_path_factory.mktemp("t6excl")
    src = top / "src"
    for d in ("docs", "docs/keep", "cache", "build", "Mixed"):
        (src / d).mkdir(parents=True)
    for f in ("docs/a.txt", "docs/b.md", "docs/keep/c.txt", "build/out.o", "Mixed/UP.TXT", "Mixed/low.txt",
              "cache/data"):
        (src / f).write_text(f * 40)
    (src / "big.dat").write_bytes(b"x" * 5000)
    (src / "cache" / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55 rest")
    (src / "build" / ".nobackup").write_bytes(b"")
    patterns = top / "patterns"
    patterns.write_text("# comment\n\n  *.md  \n$T6_EXT\n")
    return src, new_repo(top / "repo")


@pytest.mark.parametrize("options", [
    ["--exclude", "docs/*", "--exclude", "!docs/a.txt"],
    ["--exclude", "docs", "--exclude", "!docs/a.txt"],
    ["--exclude", "*.txt", "--exclude", "!**/keep/*"],
    ["--iexclude", "*.txt"],
    ["--exclude-larger-than", "2k"],
    ["--exclude-caches", "--exclude-if-present", ".nobackup"],
    ["--exclude-file", "PATTERNS"],
], ids=["negate-files", "folder-stays-out", "double-star", "iexclude", "larger-than", "tag-files", "file"])
def test_excludes_match_restic(exclude_case: tuple[Path, Path], options: list[str]) -> None:
    src, repo = exclude_case
    options = [str(src.parent / "patterns") if o == "PATTERNS" else o for o in options]
    ours, theirs = backup_both(repo, options + ["."], cwd=src, restic_args=["--force"], env={"T6_EXT": "*.o"})
    listing = restic(repo, "ls", ours["snapshot_id"]).decode().splitlines()[1:]
    if "--exclude-caches" in options:
        assert "/cache/CACHEDIR.TAG" in listing and "/cache/data" not in listing
        assert "/build/.nobackup" in listing and "/build/out.o" not in listing
    if "--exclude-file" in options:
        assert "/build/out.o" not in listing and "/docs/b.md" not in listing and "/docs/a.txt" in listing
    if options[:2] == ["--exclude", "docs/*"]:
        assert "/docs/a.txt" in listing and "/docs/b.md" not in listing and "/docs/keep" not in listing
    if options[:2] == ["--exclude", "docs"]:
        assert not any(p.startswith("/docs") for p in listing)
    snaps = {s["short_id"]: s for s in snapshots(repo)}
    assert snaps[ours["snapshot_id"]]["tree"] == snaps[theirs["snapshot_id"]]["tree"]
    assert snaps[ours["snapshot_id"]].get("excludes") == snaps[theirs["snapshot_id"]].get("excludes")


# -- dry run, stdin, labels, output -------------------------------------------------------------------


def _files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())


def test_dry_run_writes_nothing(tmp_path: Path, source: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    before = _files(repo)
    proc = repofs("-r", repo, "backup", "--dry-run", "--json", source)
    doc = summary(proc.stdout)
    assert doc["dry_run"] is True and doc["data_blobs"] > 0 and doc["files_new"] > 30
    assert _files(repo) == before
    text = repofs("-r", repo, "backup", "-n", source).stdout.decode()
    assert "Would add to the repository:" in text and "saved" not in text
    assert _files(repo) == before


@pytest.mark.parametrize("name", ["stdin", "dir/sub/data.bin"])
def test_stdin(tmp_path: Path, name: str) -> None:
    repo = new_repo(tmp_path / "repo")
    data = os.urandom(3 << 20) + b"tail"
    args = ["backup", "--json", "--stdin", "--stdin-filename", name, "--time", "2021-03-04 05:06:07"]
    ours = summary(repofs("-r", repo, *args, input=data).stdout)
    theirs = summary(restic(repo, *args, input=data))
    assert theirs["data_blobs"] == 0  # restic finds our blobs
    ours_snap = snapshot_by_short(repo, ours["snapshot_id"])
    assert ours_snap["paths"] == ["/" + name]
    assert ours_snap["time"] == "2021-03-04T05:06:07Z"
    if "/" not in name:  # nested folders carry the current time, so only flat trees match
        assert ours_snap["tree"] == tree_of(repo, theirs)
    assert restic(repo, "dump", ours["snapshot_id"], "/" + name) == data


def test_labels_parent_and_time(tmp_path: Path, source: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    first = summary(repofs("-r", repo, "backup", "--json", "--tag", "a,b", "--tag", "c", "--host", "h1",
                           "--time", "2020-05-06 07:08:09", source).stdout)
    # A snapshot newer than --time is not a parent; another host's is not either.
    repofs("-r", repo, "backup", "--host", "h2", source)
    second = summary(repofs("-r", repo, "backup", "--json", "--host", "h1", source).stdout)
    early = summary(repofs("-r", repo, "backup", "--json", "--host", "h1", "--time", "2019-01-01 00:00:00",
                           source).stdout)
    chosen = summary(repofs("-r", repo, "backup", "--json", "--host", "h2", "--parent", first["snapshot_id"],
                            source).stdout)
    snaps = {s["short_id"]: s for s in snapshots(repo)}
    s1 = snaps[first["snapshot_id"]]
    assert s1["tags"] == ["a", "b", "c"] and s1["hostname"] == "h1" and s1["time"] == "2020-05-06T07:08:09Z"
    assert s1["username"] == "root" or os.getuid() != 0
    assert snaps[second["snapshot_id"]]["parent"] == s1["id"]
    assert second["files_unmodified"] == first["files_new"]
    assert "parent" not in snaps[early["snapshot_id"]]
    assert snaps[chosen["snapshot_id"]]["parent"] == s1["id"]


def test_text_and_json_output_like_restic(tmp_path: Path, source: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    ours = repofs("-r", repo, "backup", source).stdout.decode().splitlines()
    theirs = restic(repo, "backup", source).decode().splitlines()
    shape = [line.split(":")[0].split(" ")[0] for line in ours]
    assert shape[1:] == [line.split(":")[0].split(" ")[0] for line in theirs][1:]
    assert ours[0] == "no parent snapshot found, will read all files"
    assert theirs[0].startswith("using parent snapshot")
    assert ours[-1].startswith("snapshot ") and ours[-1].endswith(" saved")
    # JSON: the same keys in the summary, and every line is restic-shaped.
    ours_json = repofs("-r", repo, "backup", "--json", "-v", source).stdout
    theirs_json = restic(repo, "backup", "--json", "-v", source)
    mine, other = summary(ours_json), summary(theirs_json)
    assert list(mine) == list(other)
    kinds = {json.loads(x)["message_type"] for x in ours_json.splitlines()}
    assert kinds <= {"status", "verbose_status", "summary"} and "verbose_status" in kinds
    verbose = [json.loads(x) for x in ours_json.splitlines() if b"verbose_status" in x]
    theirs_verbose = [json.loads(x) for x in theirs_json.splitlines() if b"verbose_status" in x]
    assert sorted(v["item"] for v in verbose) == sorted(v["item"] for v in theirs_verbose)
    assert {tuple(v) for v in verbose} == {tuple(v) for v in theirs_verbose}


# -- a file that cannot be read ---------------------------------------------------------------------------


def _without_dac() -> tuple[str, ...]:
    """Run as root without the capabilities that let root read any file, so that a mode-000
    file fails to open with EACCES, as it does for a normal user."""
    setpriv = shutil.which("setpriv")
    if os.getuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to make a file unreadable")
    probe = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot drop capabilities here")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search")


@pytest.fixture
def unreadable_source(tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "ok.txt").write_text("fine\n")
    (src / "sub" / "also-ok").write_text("fine too\n")
    (src / "secret").write_text("nobody reads me\n")
    os.chmod(src / "secret", 0)
    (src / "closed").mkdir()
    (src / "closed" / "inside").write_text("x")
    os.chmod(src / "closed", 0)
    yield src
    os.chmod(src / "closed", 0o755)


def test_unreadable_file_gives_exit_3(tmp_path: Path, unreadable_source: Path) -> None:
    prefix = _without_dac()
    src = unreadable_source
    repo = init_repo(tmp_path / "repo")
    proc = repofs("-r", repo, "backup", "--json", ".", cwd=src, check=False, prefix=prefix)
    assert proc.returncode == 3, proc.stderr
    errors = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith(b"{")]
    assert {e["item"] for e in errors} == {str(src / "secret"), str(src / "closed")}
    assert all(e["message_type"] == "error" and e["during"] == "archival" and e["error"]["Err"] == 13
               for e in errors)
    assert b"Warning: at least one source file could not be read" in proc.stderr
    listing = restic(repo, "ls", summary(proc.stdout)["snapshot_id"]).decode().splitlines()
    assert "/ok.txt" in listing and "/sub/also-ok" in listing and "/secret" not in listing
    assert "/closed" not in listing
    # restic itself gives the same exit code and leaves out the same entries.
    theirs = subprocess.run([*prefix, RESTIC, "-r", repo, "--no-cache", "backup", "--json", "."], cwd=src,
                            env=restic_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert theirs.returncode == 3
    assert tree_of(repo, summary(theirs.stdout)) == tree_of(repo, summary(proc.stdout))
    text = repofs("-r", repo, "backup", src, check=False, prefix=prefix)
    assert text.returncode == 3
    assert f"error: open {src}/secret: permission denied".encode() in text.stderr


def test_missing_targets(tmp_path: Path, source: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    proc = repofs("-r", repo, "backup", tmp_path / "nope", source / "docs")
    assert b"does not exist, skipping" in proc.stderr
    proc = repofs("-r", repo, "backup", tmp_path / "nope", check=False)
    assert proc.returncode == 1 and b"all target directories/files do not exist" in proc.stderr
    proc = repofs("-r", repo, "backup", "--exclude", "docs", "docs", cwd=source, check=False)
    assert proc.returncode == 1 and b"unable to save snapshot: snapshot is empty" in proc.stderr
    listed = tmp_path / "list"
    listed.write_text(f"# a comment\n{source}/docs/note-0*\n\n{source}/empty\n")
    doc = summary(repofs("-r", repo, "backup", "--json", "--files-from", listed).stdout)
    assert doc["files_new"] == 11  # note-00 to note-09, and empty
    assert len(snapshot_by_short(repo, doc["snapshot_id"])["paths"]) == 11


async def test_tree_prefetcher_loads_whole_snapshots(tmp_path: Path, source: Path) -> None:
    """The parent snapshot's trees come in batches per pack run, decoded as load_blob would."""
    import trio

    from repofs.archiver.prefetch import TreePrefetcher, subtrees
    from repofs.backend.local import LocalBackend
    from repofs.cache.blobcache import BlobCache
    from repofs.repo.index import BlobType
    from repofs.repo.repository import Repository

    repo_path = new_repo(tmp_path / "repo")
    doc = summary(repofs("-r", repo_path, "backup", "--json", ".", cwd=source).stdout)
    repo = await Repository.open(LocalBackend(str(repo_path)), PASSWORD.encode())
    root = bytes.fromhex(snapshot_by_short(repo_path, doc["snapshot_id"])["tree"])
    await repo.load_index()
    cache = BlobCache(16 << 20)
    async with trio.open_nursery() as nursery:
        TreePrefetcher(repo, cache, nursery).want([root], depth=10)
    todo, seen = [root], 0
    while todo:
        tree_id = todo.pop()
        raw = cache.get_cached((BlobType.TREE, tree_id))
        assert raw == await repo.load_blob(BlobType.TREE, tree_id)
        todo.extend(subtrees(raw))
        seen += 1
    assert seen == doc["dirs_new"] + 1  # every folder and the root


async def test_tree_prefetcher_stops_at_its_budget(tmp_path: Path, source: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``AHEAD_BYTES`` of cached trees it loads no more, and what it left may be asked
    for again once the walk has dropped trees from the cache."""
    import trio

    from repofs.archiver import prefetch
    from repofs.backend.local import LocalBackend
    from repofs.cache.blobcache import BlobCache
    from repofs.repo.index import BlobType
    from repofs.repo.repository import Repository

    repo_path = new_repo(tmp_path / "repo")
    doc = summary(repofs("-r", repo_path, "backup", "--json", ".", cwd=source).stdout)
    repo = await Repository.open(LocalBackend(str(repo_path)), PASSWORD.encode())
    root = bytes.fromhex(snapshot_by_short(repo_path, doc["snapshot_id"])["tree"])
    await repo.load_index()
    monkeypatch.setattr(prefetch, "MAX_RUN", 1)  # one tree per run: the budget is met early
    monkeypatch.setattr(prefetch, "AHEAD_BYTES", 1)
    cache = BlobCache(16 << 20)
    async with trio.open_nursery() as nursery:
        fetcher = prefetch.TreePrefetcher(repo, cache, nursery)
        fetcher.want([root], depth=10)
    assert len(cache) == 1  # the root, then the budget was spent
    children = prefetch.subtrees(cache.get_cached((BlobType.TREE, root)))  # type: ignore[arg-type]
    assert children
    cache.discard((BlobType.TREE, root))  # the walk listed the root
    async with trio.open_nursery() as nursery:
        fetcher._nursery = nursery
        fetcher.want(children[:1])
    assert cache.get_cached((BlobType.TREE, children[0])) is not None
