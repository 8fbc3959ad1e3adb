"""Tar and zip encoders on their own: read back by Python's tarfile/zipfile and GNU tar."""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repofs.dump import tar
from repofs.dump import zip as zipfmt
from repofs.dump.common import Entry
from repofs.model import tree as nodes
from repofs.model.gotime import GO_ZERO, NS, Timestamp
from repofs.model.tree import MODE_DIR, MODE_SETGID, MODE_SETUID, MODE_STICKY, MODE_SYMLINK, Node


def ts(secs: float, frac_ns: int = 0) -> Timestamp:
    return Timestamp(int(secs) * NS + frac_ns)


def tar_stream(members: Sequence[tuple[Entry, bytes]]) -> bytes:
    fmt = tar.TarFormat()
    out = bytearray()
    for entry, data in members:
        out += b"".join(fmt.begin(entry))
        if data:
            out += b"".join(fmt.piece(fmt.prepare(data, None)))
        out += b"".join(fmt.end(entry))
    out += b"".join(fmt.finish())
    return bytes(out)


def read_tar(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8",
                      errors="surrogateescape") as tf:
        return tf.getmembers()


def file_entry(path: bytes, data: bytes, **kw: object) -> tuple[Entry, bytes]:
    fields: dict[str, object] = {"mode": 0o644, **kw}
    node = Node(name=os.path.basename(path), type=nodes.FILE, size=len(data), **fields)  # type: ignore[arg-type]
    return Entry(path, node, size=len(data)), data


# -- tar -------------------------------------------------------------------------------------


def test_pax_record_lengths_count_themselves() -> None:
    for n in range(0, 1200, 7):
        rec = tar.pax_record(b"k", b"v" * n)
        length, _, _ = rec.partition(b" ")
        assert int(length) == len(rec)
        assert rec.endswith(b"v" * n + b"\n")


def test_tar_members_round_trip_through_tarfile() -> None:
    long_name = b"/".join([b"d" * 60] * 5) + b"/file.txt"
    members = [
        (Entry(b"dir", Node(name=b"dir", type=nodes.DIR, mode=MODE_DIR | MODE_STICKY | 0o1777,
                            mtime=ts(1_600_000_000, 123_456_789))), b""),
        file_entry(b"dir/plain.txt", b"hello\n", uid=1000, gid=100, user="alice", group="users",
                   mtime=ts(1_600_000_001)),
        file_entry(long_name, b"x" * 1000, mtime=ts(1_600_000_002, 5)),
        file_entry("Grüße-日本.txt".encode(), b"", user="ü" * 40, group="g" * 40),
        file_entry(b"bad-\xff\xfe", b"raw name"),
        file_entry(b"big-ids", b"1", uid=3_000_000, gid=2**32 - 2),
        (Entry(b"setuid", Node(name=b"setuid", type=nodes.FILE, mode=MODE_SETUID | 0o755), size=2), b"#!"),
        (Entry(b"old", Node(name=b"old", type=nodes.FILE, mtime=Timestamp(-1_500_000_000)), size=0), b""),
        (Entry(b"link", Node(name=b"link", type=nodes.SYMLINK, mode=MODE_SYMLINK | 0o777,
                             linktarget="t" * 150)), b""),
        (Entry(b"hard", Node(name=b"hard", type=nodes.FILE), link_to=b"dir/plain.txt"), b""),
        (Entry(b"cdev", Node(name=b"cdev", type=nodes.CHARDEV, device=(1 << 8) | 3)), b""),
        (Entry(b"bdev", Node(name=b"bdev", type=nodes.DEV, device=(7 << 8) | 200)), b""),
        (Entry(b"fifo", Node(name=b"fifo", type=nodes.FIFO, mode=0o600)), b""),
        (Entry(b"xattrs", Node(name=b"xattrs", type=nodes.FILE, extended_attributes=(
            ("user.plain", b"v\x00\xff"), ("user.a=b%c", b"odd name")))), b""),
    ]
    got = {m.name.encode("utf-8", "surrogateescape"): m for m in read_tar(tar_stream(members))}
    d = got[b"dir"]
    assert d.isdir() and d.mode == 0o1777 and d.pax_headers["mtime"] == "1600000000.123456789"
    p = got[b"dir/plain.txt"]
    assert (p.size, p.uid, p.gid, p.uname, p.gname, p.mtime) == (6, 1000, 100, "alice", "users", 1_600_000_001)
    assert got[long_name].size == 1000 and float(got[long_name].pax_headers["mtime"]) == pytest.approx(1_600_000_002)
    u = got["Grüße-日本.txt".encode()]
    assert (u.uname, u.gname) == ("ü" * 40, "g" * 40)
    assert b"bad-\xff\xfe" in got
    assert (got[b"big-ids"].uid, got[b"big-ids"].gid) == (3_000_000, 2**32 - 2)
    assert got[b"setuid"].mode == 0o4755
    assert got[b"old"].pax_headers["mtime"] == "-1.5"
    assert got[b"link"].issym() and got[b"link"].linkname == "t" * 150
    assert got[b"hard"].islnk() and got[b"hard"].linkname == "dir/plain.txt" and got[b"hard"].size == 0
    assert got[b"cdev"].ischr() and (got[b"cdev"].devmajor, got[b"cdev"].devminor) == (1, 3)
    assert got[b"bdev"].isblk() and (got[b"bdev"].devmajor, got[b"bdev"].devminor) == (7, 200)
    assert got[b"fifo"].isfifo() and got[b"fifo"].mode == 0o600
    pax = got[b"xattrs"].pax_headers
    assert pax["SCHILY.xattr.user.plain"].encode("utf-8", "surrogateescape") == b"v\x00\xff"
    assert "SCHILY.xattr.user.a%3Db%25c" in pax


def test_split_device_matches_os() -> None:
    for major, minor in [(1, 3), (7, 200), (259, 65536), (4095, 1 << 19)]:
        assert tar.split_device(os.makedev(major, minor)) == (major, minor)


def test_acl_xattrs_become_schily_acl_records() -> None:
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in [
        (0x01, 6, 0xFFFFFFFF), (0x02, 4, 1000), (0x04, 4, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF),
        (0x20, 0, 0xFFFFFFFF)])
    assert tar.acl_text(value) == "user::rw-,user:1000:r--,group::r--,mask::r-x,other::---"
    assert tar.acl_text(b"junk") is None
    node = Node(name=b"f", extended_attributes=(("system.posix_acl_access", value),))
    header = tar.member_header(Entry(b"f", node))
    assert b"SCHILY.acl.access=user::rw-,user:1000:r--" in header
    assert b"SCHILY.xattr.system.posix_acl_access" not in header


_name_bytes = st.binary(min_size=1, max_size=300).filter(lambda b: b"/" not in b and b"\0" not in b)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(_name_bytes, min_size=1, max_size=4, unique=True),
       mtime=st.integers(min_value=-(2**40), max_value=2**40), uid=st.integers(0, 2**32 - 1),
       data=st.binary(max_size=1500))
def test_tar_round_trip_properties(names: list[bytes], mtime: int, uid: int, data: bytes) -> None:
    members = [(Entry(n, Node(name=n, type=nodes.FILE, mode=0o640, uid=uid, gid=uid,
                              mtime=Timestamp(mtime)), size=len(data)), data) for n in names]
    stream = tar_stream(members)
    assert len(stream) % tar.BLOCK == 0
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
        got = tf.getmembers()
        assert [m.name.encode("utf-8", "surrogateescape") for m in got] == names
        for m in got:
            assert (m.size, m.uid, m.gid, m.mode) == (len(data), uid, uid, 0o640)
            assert tf.extractfile(m).read() == data  # type: ignore[union-attr]
            assert round(float(m.pax_headers.get("mtime", m.mtime)) * NS) == pytest.approx(mtime, abs=2**11)


def test_gnu_tar_lists_what_we_write(tmp_path: Path) -> None:
    long_dir = b"x" * 120
    members = [
        (Entry(long_dir, Node(name=long_dir, type=nodes.DIR, mode=MODE_DIR | 0o755)), b""),
        file_entry(long_dir + b"/" + b"y" * 200, b"data", mtime=ts(1_700_000_000, 250_000_000)),
        (Entry(b"link", Node(name=b"link", type=nodes.SYMLINK, linktarget="z" * 300)), b""),
        (Entry(b"x", Node(name=b"x", type=nodes.FILE, extended_attributes=(("user.k", b"v"),))), b""),
    ]
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_stream(members))
    out = subprocess.run(["tar", "--xattrs", "--full-time", "-tvvf", archive], capture_output=True, check=True)
    assert out.stderr == b""
    lines = out.stdout.decode().splitlines()
    assert any(("y" * 200) in line and "2023-11-14 22:13:20.25" in line for line in lines), lines
    assert any(line.endswith("link -> " + "z" * 300) for line in lines)
    target = tmp_path / "x"
    target.mkdir()
    subprocess.run(["tar", "--xattrs", "-xpf", archive, "-C", target], check=True, capture_output=True)
    assert (target / ("x" * 120) / ("y" * 200)).read_bytes() == b"data"
    assert os.stat(target / ("x" * 120) / ("y" * 200)).st_mtime_ns == 1_700_000_000_250_000_000
    assert os.readlink(target / "link") == "z" * 300
    try:
        assert os.getxattr(target / "x", "user.k") == b"v"
    except OSError:
        pytest.skip("no user xattrs on this file system")


# The fast path of member_header against the general one: the same bytes for any entry.
# An entry is drawn with values the fast path takes (short ASCII names, whole seconds,
# small ids, a few owners so that its caches hit), then up to two of its fields are
# drawn again from values at or past an edge where it must hand over (100-byte names,
# 8**7 ids, 8**11 seconds and sizes, non-ASCII or 32-byte owner names, sub-seconds,
# atime, xattrs, hard links, other node types).

_ascii_part = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/"),
                      min_size=1, max_size=30).map(str.encode)
_any_part = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)
_plain_paths = st.one_of(st.lists(_ascii_part, min_size=1, max_size=4).map(b"/".join),
                         st.integers(95, 101).map(lambda n: b"d" * n))
_odd_paths = st.one_of(st.lists(_any_part, min_size=1, max_size=3).map(b"/".join),
                       st.lists(_ascii_part, min_size=4, max_size=8).map(b"/".join).filter(lambda p: len(p) >= 99),
                       st.text(min_size=1, max_size=30).filter(lambda t: not t.isascii())
                       .map(lambda t: t.encode("utf-8", "surrogatepass")))
_plain_ids = st.one_of(st.sampled_from([0, 1000, 8**7 - 1]), st.integers(0, 8**7 - 1))
_odd_ids = st.one_of(st.sampled_from([8**7, 2**21 + 1, 2**32 - 1]), st.integers(0, 2**32 - 1), st.integers(-3, -1))
_plain_owners = st.one_of(st.sampled_from(["", "root", "alice"]), st.just("u" * 31),
                          st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=31))
_odd_owners = st.one_of(st.sampled_from(["u" * 32, "b\udcffd", "ü"]), st.text(max_size=40))
_zones = st.sampled_from([0, 3600, -18_000, 19_800])
_plain_times = st.builds(lambda secs, zone: Timestamp(secs * NS, zone),
                         st.one_of(st.integers(0, 2**33), st.sampled_from([0, 8**11 - 1])), _zones)
_odd_times = st.one_of(
    st.just(GO_ZERO),
    st.builds(lambda secs, frac, zone: Timestamp(secs * NS + frac, zone),
              st.one_of(st.sampled_from([8**11, -1]), st.integers(-(2**40), 2**40)),
              st.one_of(st.just(0), st.integers(1, NS - 1)), _zones),
    st.builds(lambda secs, frac, zone: Timestamp(secs * NS + frac, zone), st.integers(0, 2**33),
              st.integers(1, NS - 1), _zones))
_plain_sizes = st.one_of(st.integers(0, 10**6), st.just(8**11 - 1), st.integers(0, 8**11 - 1))
_odd_sizes = st.one_of(st.just(8**11), st.integers(8**11, 2**45))


_FIELDS = ("kind", "mtime", "atime", "target", "xattrs", "path", "uid", "gid", "user", "group", "size", "link_to")


@st.composite
def _entries(draw: st.DrawFn) -> Entry:
    odd_fields = draw(st.sets(st.sampled_from(_FIELDS), max_size=2))

    def pick(field: str, plain: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
        return draw(odd if field in odd_fields else plain)

    kind = pick("kind", st.sampled_from([nodes.FILE, nodes.DIR, nodes.SYMLINK]),
                st.sampled_from([nodes.CHARDEV, nodes.DEV, nodes.FIFO]))
    mode = draw(st.integers(0, 0o777))
    for flag in draw(st.sets(st.sampled_from([MODE_SETUID, MODE_SETGID, MODE_STICKY]))):
        mode |= flag
    mode |= {nodes.DIR: MODE_DIR, nodes.SYMLINK: MODE_SYMLINK}.get(kind, 0)
    mtime = pick("mtime", _plain_times, _odd_times)
    atime = pick("atime", st.sampled_from([mtime, Timestamp(0)]),
                 st.one_of(st.just(Timestamp(mtime.ns, mtime.offset + 60)), _plain_times, _odd_times))
    fields: dict[str, Any] = {}
    if kind == nodes.SYMLINK:
        target = pick("target", _plain_paths, st.one_of(_odd_paths, st.just(b"")))
        if draw(st.booleans()):
            fields["linktarget_raw"] = target
        else:
            fields["linktarget"] = target.decode("utf-8", "surrogateescape")
    if kind in (nodes.CHARDEV, nodes.DEV):
        fields["device"] = draw(st.integers(0, 2**40))
    fields["extended_attributes"] = pick("xattrs", st.just(()), st.just((("user.k", b"v"),)))
    path = pick("path", _plain_paths, _odd_paths)
    node = Node(name=path.rsplit(b"/", 1)[-1], type=kind, mode=mode, mtime=mtime, atime=atime,
                uid=pick("uid", _plain_ids, _odd_ids), gid=pick("gid", _plain_ids, _odd_ids),
                user=pick("user", _plain_owners, _odd_owners), group=pick("group", _plain_owners, _odd_owners),
                **fields)
    size = pick("size", _plain_sizes, _odd_sizes) if kind == nodes.FILE else 0
    link_to = pick("link_to", st.none(), _plain_paths) if kind == nodes.FILE else None
    return Entry(path, node, size=size, link_to=link_to)


@settings(max_examples=2500, deadline=None)
@given(_entries())
def test_fast_header_equals_the_general_one(entry: Entry) -> None:
    assert tar.member_header(entry) == tar._general_header(entry)


def test_plain_members_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """So that the test above compares two paths, not the general one with itself."""
    plain = [
        file_entry(b"dir/a.txt", b"hello", uid=1000, gid=100, user="alice", group="users", mtime=ts(1_600_000_000),
                   atime=ts(1_600_000_000))[0],
        file_entry(b"setuid", b"", mode=MODE_SETUID | 0o755, atime=ts(1_600_000_000), mtime=ts(1_600_000_000))[0],
        Entry(b"dir", Node(name=b"dir", type=nodes.DIR, mode=MODE_DIR | MODE_STICKY | 0o1777, mtime=ts(1),
                           atime=Timestamp(0))),
        Entry(b"link", Node(name=b"link", type=nodes.SYMLINK, mode=MODE_SYMLINK | 0o777, linktarget="t" * 99,
                            mtime=ts(2), atime=ts(2))),
    ]
    want = [tar._general_header(e) for e in plain]

    def refuse(entry: Entry) -> bytes:
        raise AssertionError(f"{entry.path!r} took the general path")

    monkeypatch.setattr(tar, "_general_header", refuse)
    assert [tar.member_header(e) for e in plain] == want


# -- zip -------------------------------------------------------------------------------------


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_crc32_combine(a: bytes, b: bytes) -> None:
    assert zipfmt.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_long_lengths() -> None:
    zeros = bytes(1 << 20)
    crc = zlib.crc32(b"head")
    want = zlib.crc32(zeros * 9, crc)
    assert zipfmt.crc32_combine(crc, zlib.crc32(zeros * 9), 9 << 20) == want


_blob = st.one_of(st.binary(min_size=1, max_size=5000),
                  st.integers(1, 200_000).map(lambda n: os.urandom(n)),
                  st.integers(1, 300_000).map(lambda n: b"text " * (n // 5 + 1)))


# The deflater zip.py uses (ISA-L) and zlib, the reference for the same stream format.
DEFLATERS = [zlib, zipfmt.isal_zlib]


@pytest.mark.parametrize("module", DEFLATERS, ids=lambda m: m.__name__)
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_blob, st.booleans()), min_size=1, max_size=5))
def test_deflate_pieces_concatenate(module: Any, stored_or_not: list[tuple[bytes, bool]]) -> None:
    """Deflated and stored pieces, in any mix, make one deflate stream."""
    blobs = [b for b, _ in stored_or_not]
    pieces = [zipfmt.stored_piece(b, module=module) if stored else zipfmt.deflate_piece(b, module=module)
              for b, stored in stored_or_not]
    assert [p.crc for p in pieces] == [zlib.crc32(b) for b in blobs]
    stream = b"".join(bytes(p) for piece in pieces for p in piece.parts) + zipfmt.FINAL_BLOCK
    assert sum(p.encoded_size for p in pieces) + 2 == len(stream)
    d = zlib.decompressobj(-15)
    assert d.decompress(stream) + d.flush() == b"".join(blobs)
    assert d.eof and not d.unused_data


@pytest.mark.parametrize("module", DEFLATERS, ids=lambda m: m.__name__)
def test_incompressible_blobs_are_stored(module: Any) -> None:
    data = os.urandom(300_000)
    piece = zipfmt.deflate_piece(data, module=module)
    if module is zlib:
        segments = -(-len(data) // zipfmt.SEGMENT)
        assert piece.encoded_size == len(data) + 5 * segments  # one stored block per segment
    else:
        assert len(data) < piece.encoded_size < len(data) * 1.001  # ISA-L stores them itself
    text = zipfmt.deflate_piece(b"abc" * 100_000, module=module)
    assert text.encoded_size < 10_000
    mixed = zipfmt.deflate_piece(data[:100_000] + b"abc" * 100_000 + data[100_000:200_000], module=module)
    assert mixed.encoded_size < 200_000 + 2 * zipfmt.SEGMENT + 1000  # misjudged at most at the two seams


def test_zip_stores_what_zstd_could_not_shrink() -> None:
    fmt = zipfmt.ZipFormat()
    text = b"abc" * 100_000
    assert fmt.prepare(text, 0.01).encoded_size < 10_000
    assert fmt.prepare(text, None).encoded_size < 10_000  # no hint: deflated
    stored = fmt.prepare(text, 1.0)  # the repository found it incompressible: not tried again
    blocks = -(-len(text) // zipfmt.STORED_BLOCK)
    assert stored.encoded_size == len(text) + 5 * blocks and stored.crc == zlib.crc32(text)


def zip_stream(members: Sequence[tuple[Entry, list[bytes]]], fmt: zipfmt.ZipFormat | None = None) -> bytes:
    fmt = fmt or zipfmt.ZipFormat()
    out = bytearray()
    for entry, blobs in members:
        out += b"".join(bytes(b) for b in fmt.begin(entry))
        for blob in blobs:
            out += b"".join(bytes(b) for b in fmt.piece(fmt.prepare(blob, None)))
        out += b"".join(bytes(b) for b in fmt.end(entry))
    out += b"".join(bytes(b) for b in fmt.finish())
    return bytes(out)


def test_zip_members_round_trip_through_zipfile(tmp_path: Path) -> None:
    blobs = [b"text " * 50_000, os.urandom(100_000), b"tail"]
    members = [
        (Entry(b"dir", Node(name=b"dir", type=nodes.DIR, mode=MODE_DIR | 0o750, mtime=ts(1_600_000_000))), []),
        (Entry(b"dir/file", Node(name=b"file", type=nodes.FILE, mode=MODE_SETUID | 0o755, mtime=ts(1_600_000_003)),
               size=sum(map(len, blobs))), blobs),
        (Entry(b"empty", Node(name=b"empty", type=nodes.FILE, mode=0o600)), []),
        (Entry(b"link", Node(name=b"link", type=nodes.SYMLINK, mode=MODE_SYMLINK | 0o777,
                             linktarget="dir/file")), []),
        (Entry("ünï".encode(), Node(name="ünï".encode(), type=nodes.FILE), size=1), [b"u"]),
        (Entry(b"raw-\xff", Node(name=b"raw-\xff", type=nodes.FILE), size=1), [b"r"]),
    ]
    data = zip_stream(members)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        info = {i.filename: i for i in zf.infolist()}
        assert zf.read("dir/file") == b"".join(blobs)
        assert info["dir/file"].compress_type == zipfile.ZIP_DEFLATED
        assert stat.S_IMODE(info["dir/file"].external_attr >> 16) == 0o4755
        assert info["dir/file"].date_time == (2020, 9, 13, 12, 26, 42)
        assert info["dir/"].is_dir() and stat.S_IMODE(info["dir/"].external_attr >> 16) == 0o750
        assert zf.read("empty") == b""
        assert stat.S_ISLNK(info["link"].external_attr >> 16) and zf.read("link") == b"dir/file"
        assert zf.read("ünï") == b"u"
        assert len(info) == 6
    archive = tmp_path / "a.zip"
    archive.write_bytes(data)
    subprocess.run(["unzip", "-tq", archive], check=True, capture_output=True)


def test_zip64_for_many_members() -> None:
    fmt = zipfmt.ZipFormat()
    members = [(Entry(b"d%05d" % i, Node(name=b"d", type=nodes.DIR)), []) for i in range(70_000)]
    data = zip_stream(members, fmt)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.infolist()) == 70_000


def test_zip64_offsets_and_sizes(tmp_path: Path) -> None:
    """A member past 4 GiB (the zeros before it are a hole in a sparse file) and one larger
    than 4 GiB (the same deflated blob of zeros 520 times)."""
    path = tmp_path / "big.zip"
    fmt = zipfmt.ZipFormat()
    start = 5 << 30
    zeros = bytes(8 << 20)
    piece = fmt.prepare(zeros, None)
    with open(path, "wb") as f:
        f.seek(start)
        fmt.offset = start
        small = Entry(b"small", Node(name=b"small", type=nodes.FILE), size=4)
        for part in (*fmt.begin(small), *fmt.piece(fmt.prepare(b"abcd", None)), *fmt.end(small)):
            f.write(part)
        huge = Entry(b"huge", Node(name=b"huge", type=nodes.FILE), size=520 * len(zeros))
        for part in fmt.begin(huge):
            f.write(part)
        for _ in range(520):
            for part in fmt.piece(piece):
                f.write(part)
        for part in (*fmt.end(huge), *fmt.finish()):
            f.write(part)
    crc = 0
    for _ in range(520):
        crc = zlib.crc32(zeros, crc)
    with zipfile.ZipFile(path) as zf:
        info = {i.filename: i for i in zf.infolist()}
        assert info["small"].header_offset == start
        assert zf.read("small") == b"abcd"
        assert info["huge"].file_size == 520 << 23 and info["huge"].CRC == crc
        with zf.open("huge") as member:
            assert member.read(1 << 20) == bytes(1 << 20)


def test_dos_time_is_wall_clock_of_the_stored_zone() -> None:
    # 2020-09-13T12:26:40Z written at +02:00 is 14:26:40 on the wall clock.
    t, d = zipfmt.dos_time(Timestamp(1_600_000_000 * NS, 7200))
    assert (d >> 9) + 1980 == 2020 and (t >> 11) == 14
    assert zipfmt.dos_time(Timestamp(0)) == (0, (1 << 5) | 1)
