"""The backup's pure pieces: target layout, excludes, nodes, change detection, output format."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repofs.archiver import targets
from repofs.archiver import nodes
from repofs.archiver.nodes import file_changed, node_from_stat, same_node, unchanged_file_node
from repofs.archiver.scanner import Totals
from repofs.archiver.select import Selector, parse_size, read_pattern_files
from repofs.archiver.snapshot import find_parent
from repofs.errors import UsageError
from repofs.model import tree
from repofs.model.gotime import Timestamp
from repofs.model.snapshot import Snapshot
from repofs.ui.progress import BackupProgress, format_bytes, format_seconds, go_float


@pytest.mark.parametrize(("path", "relative", "want"), [
    (b"/", False, []),
    (b"/a/b/c", False, [b"a", b"b", b"c"]),
    (b"a/b", False, [b"a", b"b"]),
    (b"../x/y", False, [b"x", b"y"]),
    (b"../x/y", True, [b"..", b"x", b"y"]),
    (b".", False, []),
    (b"//a//b/", False, [b"a", b"b"]),
])
def test_components(path: bytes, relative: bool, want: list[bytes]) -> None:
    assert targets.components(path, relative) == want


@pytest.mark.parametrize(("path", "want"), [(b"/a/b", b"/"), (b"src", b"."), (b"../../x", b"../.."),
                                            (b"a/../../b", b"..")])
def test_root_directory(path: bytes, want: bytes) -> None:
    assert targets.root_directory(path) == want


def test_target_tree_layout(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    for d in (b"a/b/c", b"a/x", b"other/c"):
        os.makedirs(base + b"/" + d)
    t = targets.build([base + b"/a/b/c", base + b"/a/x", base + b"/other/c"])
    node = t
    for comp in targets.components(base):
        node = node.nodes[comp]
        assert not node.leaf
    assert sorted(node.nodes) == [b"a", b"other"]
    a = node.nodes[b"a"]
    assert a.info_path == base + b"/a" and sorted(a.nodes) == [b"b", b"x"]
    assert a.nodes[b"x"].path == base + b"/a/x"
    assert a.nodes[b"b"].nodes[b"c"].path == base + b"/a/b/c"


def test_same_name_from_different_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.makedirs("w/src")
    os.makedirs("src")
    t = targets.build([b"src", os.fsencode(tmp_path / "w" / "src")])
    assert b"src" in t.nodes and t.nodes[b"src"].path == b"src"
    # Two targets named "src" in different folders: the second becomes "src-1".
    monkeypatch.chdir(tmp_path / "w")
    t2 = targets.build([b"src", b"../src"])
    assert sorted(t2.nodes) == [b"src", b"src-1"]
    assert (t2.nodes[b"src"].path, t2.nodes[b"src-1"].path) == (b"src", b"../src")


def test_dot_is_replaced_by_its_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for n in ("b", "a"):
        Path(n).write_text(n)
    t = targets.build([b"."])
    assert sorted(t.nodes) == [b"a", b"b"] and t.nodes[b"a"].path == b"a"


def test_nested_targets_unroll(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    os.makedirs(base + b"/a/b")
    (tmp_path / "a" / "f").write_text("x")
    t = targets.build([base + b"/a", base + b"/a/b"])
    a = t
    for comp in targets.components(base + b"/a"):
        a = a.nodes[comp]
    assert not a.leaf and sorted(a.nodes) == [b"b", b"f"]


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "c"]), max_size=6), st.booleans())
def test_clean_matches_go_semantics(parts: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(parts)
    cleaned = targets.clean(path.encode())
    assert not cleaned.endswith(b"/") or cleaned == b"/"
    assert b"//" not in cleaned and b"/./" not in cleaned
    assert targets.clean(cleaned) == cleaned
    if absolute:
        assert cleaned.startswith(b"/") and b"/../" not in cleaned + b"/"


def test_selector_negation_and_case() -> None:
    s = Selector(excludes=["*.txt", "!keep.txt"], iexcludes=["*.JPG"])
    assert not s.by_name(b"/d/a.txt")
    assert s.by_name(b"/d/keep.txt")
    assert not s.by_name(b"/d/photo.jpg") and not s.by_name(b"/d/PHOTO.Jpg")
    assert s.by_name(b"/d/a.md")


def test_selector_tag_files(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "CACHEDIR.TAG").write_bytes(b"nope")
    s = Selector(exclude_caches=True)
    base = os.fsencode(tmp_path)
    assert not s.by_name(base + b"/c/data")
    assert s.by_name(base + b"/c/CACHEDIR.TAG")
    assert s.by_name(base + b"/bad/data")
    assert any("invalid" in w for w in s.warnings())


def test_selector_size(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 2048)
    s = Selector(exclude_larger_than=parse_size("1k"))
    assert not s.by_stat(b"/x/big", os.lstat(tmp_path / "big"))
    assert s.by_stat(b"/x", os.lstat(tmp_path))


@pytest.mark.parametrize(("text", "want"), [("10", 10), ("2k", 2048), ("3M", 3 << 20), ("1g", 1 << 30),
                                            ("5b", 5), ("1T", 1 << 40)])
def test_parse_size(text: str, want: int) -> None:
    assert parse_size(text) == want


def test_parse_size_rejects() -> None:
    for bad in ("", "k", "1.5m", "x1"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_pattern_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXT", "log")
    f = tmp_path / "p"
    f.write_text("\ufeff# comment\n\n  *.o  \n*.$EXT\n${EXT}s/\ncost$$\n")
    assert read_pattern_files([str(f)]) == ["*.o", "*.log", "logs/", "cost$"]


def _st(**kw: int) -> os.stat_result:
    base = dict(st_mode=stat.S_IFREG | 0o644, st_ino=5, st_dev=1, st_nlink=1, st_uid=0, st_gid=0,
                st_size=10, st_atime=0, st_mtime=0, st_ctime=0)
    base.update(kw)
    fields = [base[k] for k in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
                                "st_atime", "st_mtime", "st_ctime")]
    ns = {"st_mtime_ns": kw.get("mtime_ns", 1000), "st_ctime_ns": kw.get("ctime_ns", 2000),
          "st_atime_ns": 0}
    return os.stat_result(fields + [0, 0, 0, ns["st_atime_ns"], ns["st_mtime_ns"], ns["st_ctime_ns"]])


def test_file_changed_rules() -> None:
    prev = tree.Node(name=b"f", type=tree.FILE, size=10, inode=5, mtime=Timestamp(1000, 0),
                     ctime=Timestamp(2000, 0), content=())
    assert not file_changed(_st(), prev)
    assert file_changed(_st(), None)
    assert file_changed(_st(st_size=11), prev)
    assert file_changed(_st(mtime_ns=1001), prev)
    assert file_changed(_st(ctime_ns=2001), prev)
    assert not file_changed(_st(ctime_ns=2001), prev, check_ctime=False)
    assert file_changed(_st(st_ino=6), prev)
    assert not file_changed(_st(st_ino=6), prev, check_inode=False)
    assert file_changed(_st(), tree.Node(name=b"f", type=tree.DIR))


def test_node_from_stat_like_restic(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    os.symlink("f", tmp_path / "l")
    st_f = os.lstat(f)
    node = node_from_stat(b"f", os.fsencode(f), st_f)
    assert node.type == "file" and node.size == 3 and node.links == 1 and node.inode == st_f.st_ino
    assert node.atime == node.mtime and node.mtime.ns == st_f.st_mtime_ns
    assert node.mode == stat.S_IMODE(st_f.st_mode)
    assert node.content is None
    link = node_from_stat(b"l", os.fsencode(tmp_path / "l"), os.lstat(tmp_path / "l"))
    assert link.linktarget == "f" and link.extended_attributes == () and link.mode & tree.MODE_SYMLINK
    folder = node_from_stat(b"d", os.fsencode(tmp_path), os.lstat(tmp_path))
    assert folder.links == 0 and folder.size == 0 and folder.mode & tree.MODE_DIR
    with_atime = node_from_stat(b"f", os.fsencode(f), st_f, with_atime=True)
    assert with_atime.atime.ns == st_f.st_atime_ns
    assert same_node(node, node)
    assert same_node(node, with_atime) == (st_f.st_atime_ns == st_f.st_mtime_ns)


@pytest.fixture(params=["CET-1CEST,M3.5.0,M10.5.0/3", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
                        "NST3:30NDT,M3.2.0,M11.1.0", "UTC0"])
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local zone with daylight saving time (whole, half hour, odd offset) or none."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    nodes._offsets.clear()
    yield request.param
    monkeypatch.undo()
    time.tzset()
    nodes._offsets.clear()


def _offset_changes(start: int, end: int) -> list[int]:
    """The seconds at which the local zone's offset changes between ``start`` and ``end``."""
    out = []
    for day in range(start, end, 86400):
        lo, hi = day, day + 86400
        if time.localtime(lo).tm_gmtoff == time.localtime(hi).tm_gmtoff:
            continue
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if time.localtime(mid).tm_gmtoff == time.localtime(lo).tm_gmtoff:
                lo = mid
            else:
                hi = mid
        out.append(hi)
    return out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the zone holds for all
@given(sec=st.integers(-(1 << 31), 1 << 33), frac=st.integers(0, 10**9 - 1),
       near_change=st.booleans(), delta=st.integers(-1000, 1000))
def test_local_offset_is_the_zone_offset(zone: str, sec: int, frac: int, near_change: bool, delta: int) -> None:
    changes = _offset_changes(1609459200, 1640995200)  # the year 2021
    assert len(changes) == (0 if zone == "UTC0" else 2)
    if near_change and changes:
        sec = changes[abs(delta) % 2] + delta
    ns = sec * 10**9 + frac
    assert nodes.local_offset(ns) == time.localtime(sec).tm_gmtoff
    assert nodes.local_time(ns).offset == time.localtime(sec).tm_gmtoff


def test_unchanged_file_node_reuses_the_parent_node(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    path, st_f = os.fsencode(f), os.lstat(f)
    content = (b"\1" * 32,)
    previous = node_from_stat(b"f", path, st_f, content=content)
    assert unchanged_file_node(b"f", path, st_f, previous) is previous
    # Anything restic would record differently gives a new node, as node_from_stat makes it.
    for changed in [previous.replace(user="someone-else"), previous.replace(links=2),
                    previous.replace(mtime=Timestamp(previous.mtime.ns, previous.mtime.offset + 3600)),
                    previous.replace(atime=Timestamp(previous.atime.ns + 1, previous.atime.offset)),
                    previous.replace(extended_attributes=(("user.x", b"1"),)),
                    previous.replace(mode=previous.mode ^ 0o100), previous.replace(device_id=0),
                    previous.replace(name=b"g")]:
        got = unchanged_file_node(b"f", path, st_f, changed)
        assert got is not changed and got == previous
    with_atime = node_from_stat(b"f", path, st_f, with_atime=True, content=content)
    assert unchanged_file_node(b"f", path, st_f, with_atime, with_atime=True) is with_atime


def test_find_parent() -> None:
    def snap(t: int, host: str, paths: list[str]) -> Snapshot:
        return Snapshot(time=Timestamp(t, 0), tree=b"\0" * 32, hostname=host, paths=paths, id=bytes([t]) * 32)
    snaps = [snap(1, "h", ["/a"]), snap(2, "h", ["/a", "/b"]), snap(3, "g", ["/a"]), snap(9, "h", ["/a"])]
    assert find_parent(snaps, ["/a"], "h", Timestamp(5, 0)).time.ns == 2
    assert find_parent(snaps, ["/a", "/b"], "h", Timestamp(5, 0)).time.ns == 2
    assert find_parent(snaps, ["/a"], "h", Timestamp(10, 0)).time.ns == 9
    assert find_parent(snaps, ["/c"], "h", Timestamp(10, 0)) is None


@pytest.mark.parametrize(("n", "want"), [(0, "0 B"), (1024, "1024 B"), (1025, "1.001 KiB"),
                                         (9_516_139, "9.075 MiB"), (3 << 30, "3.000 GiB")])
def test_format_bytes_like_restic(n: int, want: str) -> None:
    assert format_bytes(n) == want


def test_format_seconds_and_floats() -> None:
    assert format_seconds(5) == "0:05" and format_seconds(3725) == "1:02:05"
    assert go_float(0.0) == 0 and isinstance(go_float(0.0), int) and go_float(0.25) == 0.25


def test_summary_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import io
    out = io.StringIO()
    p = BackupProgress(stdout=out, stderr=io.StringIO(), totals=Totals())
    f = tree.Node(name=b"f", type=tree.FILE, size=5, content=())
    p.complete_item("/f", None, f, __import__("repofs.archiver.report", fromlist=["ItemStats"]).ItemStats(
        data_blobs=1, data_size=5, data_size_in_repo=60), 0.1)
    p.finish(b"\x12" * 32, dry_run=False)
    text = out.getvalue()
    assert "Files:           1 new,     0 changed,     0 unmodified" in text
    assert "Added to the repository: 5 B   (60 B  stored)" in text
    out = io.StringIO()
    p = BackupProgress(json=True, stdout=out, stderr=io.StringIO(), totals=Totals())
    p.finish(b"\x12" * 32, dry_run=True)
    doc = json.loads(out.getvalue())
    assert doc["snapshot_id"] == "12121212" and doc["dry_run"] is True and doc["message_type"] == "summary"


def test_read_whole_reports_like_os(tmp_path: Path) -> None:
    from repofs.archiver._readfiles import read_whole
    from repofs.archiver.file_saver import FileStatus

    files = {"empty": b"", "small": b"abc", "block": os.urandom(70_000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "grown").write_bytes(b"0123456789")
    os.symlink("small", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    paths = [os.fsencode(tmp_path / n) for n in [*files, "grown", "missing", "link", "fifo"]]
    sizes = [len(d) for d in files.values()] + [4, 0, 3, 0]
    got = read_whole(paths, sizes, True)
    for (op, err, status, data, xattrs), name in zip(got[:3], files):
        assert op is None and data == files[name] and xattrs is False
        st_os = os.stat(tmp_path / name)
        st_c = FileStatus._make(status)  # type: ignore[arg-type]
        assert all(getattr(st_c, f) == getattr(st_os, f) for f in FileStatus._fields)
    assert got[3][0] is None and got[3][3] is None  # more than its listed size: read it as a stream
    assert got[4][:2] == ("open", errno.ENOENT)
    assert got[5][:2] == ("open", errno.ELOOP)  # never follows a link
    assert got[6][0] is None and got[6][3] is None and stat.S_ISFIFO(got[6][2][0])  # and never blocks
    with pytest.raises(ValueError):
        read_whole(paths[:1], [], True)


def test_read_whole_flags_extended_attributes(tmp_path: Path) -> None:
    from repofs.archiver._readfiles import read_whole

    f = tmp_path / "f"
    f.write_bytes(b"x")
    try:
        os.setxattr(f, "user.note", b"1")
    except OSError:
        pytest.skip("no user extended attributes on this file system")
    assert read_whole([os.fsencode(f)], [1], False)[0][4] is True
