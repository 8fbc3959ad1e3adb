"""The mount's top folders: Go time layouts and the path-template layout (no FUSE needed)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repofs.fuse.inodes import ROOT_INODE, InodeTable
from repofs.fuse.layout import (Layout, MetaDir, SnapshotDir, build_layout, check_time_template,
                                expand, static_prefix, tag_filename)
from repofs.fuse.timefmt import RFC3339, format_layout
from repofs.model import gotime
from repofs.model.gotime import NS, Timestamp
from repofs.model.snapshot import Snapshot

# Go's reference time, Mon Jan 2 15:04:05 2006 at UTC-7.
REFERENCE = gotime.parse("2006-01-02T15:04:05-07:00")

# Layout pieces that render the reference time as themselves.
SELF_RENDERING = ["2006", "06", "01", "1", "Jan", "January", "02", "2", "Mon", "Monday", "15",
                  "03", "3", "04", "4", "05", "5", "PM", "-0700", "-07:00", "-07", "002", ".000"]


def ts(text: str) -> Timestamp:
    return gotime.parse(text)


# -- Go time layouts --------------------------------------------------------------------

@pytest.mark.parametrize("layout, when, expected", [
    (RFC3339, "2026-11-26T10:44:12.304692584Z", "2026-11-26T10:44:12Z"),
    (RFC3339, "2022-03-04T05:06:07.5+02:00", "2022-03-04T05:06:07+02:00"),
    (RFC3339, "1999-12-31T23:59:59-09:30", "1999-12-31T23:59:59-09:30"),
    ("2006-01-02_15-04-05", "2022-03-04T05:06:07Z", "2022-03-04_05-06-07"),
    ("Jan _2 15:04:05.000", "2022-03-04T05:06:07.0891Z", "Mar  4 05:06:07.089"),
    ("Jan _2 15:04:05.999", "2022-03-04T05:06:07.0891Z", "Mar  4 05:06:07.089"),
    ("05.99", "2022-03-04T05:06:07.0001Z", "07"),
    ("15:04:05.999999999", "2022-03-04T05:06:07Z", "05:06:07"),
    ("15:04:05,000000", "2022-03-04T05:06:07.123456789Z", "05:06:07,123456"),
    ("Monday, 02-Jan-06 15:04:05 MST", "2022-03-04T05:06:07Z", "Friday, 04-Mar-22 05:06:07 UTC"),
    ("3:04PM", "2022-03-04T00:06:07Z", "12:06AM"),
    ("03:04pm", "2022-03-04T13:06:07Z", "01:06pm"),
    ("Z07:00|Z0700|Z07|-07|-0700", "2022-03-04T13:06:07Z", "Z|Z|Z|+00|+0000"),
    ("-07:00:00 Z070000", "2022-03-04T13:06:07-03:30", "-03:30:00 -033000"),
    ("__2 002", "2022-02-01T00:00:00Z", " 32 032"),
    ("_2006 January", "2022-02-01T00:00:00Z", "_2022 February"),
    ("JanX Mon-x Janx", "2022-02-01T00:00:00Z", "FebX Tue-x Janx"),
    ("Janet Money", "2022-02-01T00:00:00Z", "Janet Money"),
    ("/x/%", "2022-02-01T00:00:00Z", "/x/%"),
])
def test_go_layouts(layout: str, when: str, expected: str) -> None:
    assert format_layout(ts(when), layout) == expected


def test_mst_without_a_zone_name_is_numeric() -> None:
    # A zone offset that is not the local one has no name: Go writes -0700 instead.
    assert format_layout(ts("2022-03-04T05:06:07+05:45"), "MST") == "+0545"


@given(st.lists(st.tuples(st.sampled_from(SELF_RENDERING), st.sampled_from(["", " ", ":", "T", "/"])),
                min_size=1, max_size=8))
def test_reference_time_renders_each_layout_as_itself(pieces: list[tuple[str, str]]) -> None:
    layout = "".join(p + sep for p, sep in pieces)
    assert format_layout(REFERENCE, layout) == layout


@given(st.integers(min_value=-30_000_000_000, max_value=200_000_000_000),
       st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_rfc3339_layout_matches_the_json_time_codec(seconds: int, offset_minutes: int) -> None:
    when = Timestamp(seconds * NS + 123, offset_minutes * 60)
    assert format_layout(when, RFC3339) == gotime.format(Timestamp(seconds * NS, offset_minutes * 60))


# -- path templates -----------------------------------------------------------------------

def snap(n: int, when: str, host: str = "alpha", tags: tuple[str, ...] = (), user: str = "ann") -> Snapshot:
    return Snapshot(time=ts(when), tree=bytes(32), hostname=host, username=user, tags=list(tags),
                    paths=["/src"], id=hashlib.sha256(bytes([n])).digest())


def flatten(layout: Layout) -> dict[str, str]:
    """Every entry as path -> 'dir', 'snap <short id>' or '-> target'."""
    out: dict[str, str] = {}

    def walk(prefix: str, folder: MetaDir) -> None:
        for name, item in folder.children.items():
            path = f"{prefix}/{name}" if prefix else name
            if isinstance(item, MetaDir):
                out[path] = "dir"
                walk(path, item)
            elif isinstance(item, SnapshotDir):
                out[path] = "snap " + (item.snapshot.id or b"").hex()[:8]
            else:
                out[path] = "-> " + item.target
    walk("", layout.root)
    return out


def test_default_layout() -> None:
    a = snap(1, "2022-03-04T05:06:07Z", "alpha", ("first", "all"))
    b = snap(2, "2022-03-05T05:06:07Z", "beta", ("all",))
    ia, ib = a.id.hex()[:8], b.id.hex()[:8]  # type: ignore[union-attr]
    got = flatten(build_layout([b, a]))
    assert got == {
        "ids": "dir", f"ids/{ia}": f"snap {ia}", f"ids/{ib}": f"snap {ib}",
        "snapshots": "dir", "snapshots/2022-03-04T05:06:07Z": f"snap {ia}",
        "snapshots/2022-03-05T05:06:07Z": f"snap {ib}", "snapshots/latest": "-> 2022-03-05T05:06:07Z",
        "hosts": "dir", "hosts/alpha": "dir", "hosts/alpha/2022-03-04T05:06:07Z": f"snap {ia}",
        "hosts/alpha/latest": "-> 2022-03-04T05:06:07Z", "hosts/beta": "dir",
        "hosts/beta/2022-03-05T05:06:07Z": f"snap {ib}", "hosts/beta/latest": "-> 2022-03-05T05:06:07Z",
        "tags": "dir", "tags/first": "dir", "tags/first/2022-03-04T05:06:07Z": f"snap {ia}",
        "tags/first/latest": "-> 2022-03-04T05:06:07Z", "tags/all": "dir",
        "tags/all/2022-03-04T05:06:07Z": f"snap {ia}", "tags/all/2022-03-05T05:06:07Z": f"snap {ib}",
        "tags/all/latest": "-> 2022-03-05T05:06:07Z",
    }


def test_empty_repository_still_has_the_top_folders() -> None:
    assert flatten(build_layout([])) == {"ids": "dir", "snapshots": "dir", "hosts": "dir", "tags": "dir"}


def test_clashing_names_get_suffixes_in_time_order_and_latest_is_the_newest() -> None:
    early = snap(1, "2022-03-04T05:06:07.1Z")
    late = snap(2, "2022-03-04T05:06:07.9Z")
    same = snap(3, "2022-03-04T05:06:07.9Z")  # equal times: the later one in id order wins
    got = flatten(build_layout([same, late, early], ["snapshots/%T"]))
    order = sorted([late, same], key=lambda s: s.id)  # type: ignore[arg-type, return-value]
    assert got["snapshots/2022-03-04T05:06:07Z"] == "snap " + early.id.hex()[:8]  # type: ignore[union-attr]
    assert got["snapshots/2022-03-04T05:06:07Z-1"] == "snap " + order[0].id.hex()[:8]  # type: ignore[union-attr]
    assert got["snapshots/2022-03-04T05:06:07Z-2"] == "snap " + order[1].id.hex()[:8]  # type: ignore[union-attr]
    assert got["snapshots/latest"] == "-> 2022-03-04T05:06:07Z-2"


def test_custom_templates() -> None:
    s = snap(7, "2022-03-04T05:06:07Z", "h/x", ("a/b", "", ".."), user="bob")
    got = flatten(build_layout([s], ["by-user/%u/%h/%i", "long/%I", "t/%t", "%T"], "2006/01/02"))
    sid = s.id.hex()  # type: ignore[union-attr]
    assert got["by-user/bob/h/x/" + sid[:8]] == "snap " + sid[:8]
    assert got["long/" + sid] == "snap " + sid[:8]
    assert {p for p in got if p.startswith("t/")} == {"t/a_b", "t/_", "t/__"}
    assert got["2022/03/04"] == "snap " + sid[:8]
    assert got["latest"] == "-> 2022/03/04"
    assert not any(p.endswith("/latest") for p in got)


def test_time_folders_nest_and_latest_points_inside() -> None:
    s = snap(1, "2022-03-04T05:06:07Z")
    got = flatten(build_layout([s], ["snapshots/%T"], "2006/01/02"))
    assert got["snapshots/2022/03/04"] == "snap " + s.id.hex()[:8]  # type: ignore[union-attr]
    assert got["snapshots/latest"] == "-> 2022/03/04"


def test_untagged_snapshots_have_no_tag_path() -> None:
    assert expand("tags/%t/%T", snap(1, "2022-03-04T05:06:07Z"), "T") == ([], None)
    assert expand("ids/%i", snap(1, "2022-03-04T05:06:07Z"), "T")[1] is None
    assert expand("x/%T/y", snap(1, "2022-03-04T05:06:07Z"), "T") == (["x/T/y"], None)
    assert expand("x/%%/%q", snap(1, "2022-03-04T05:06:07Z"), "T") == (["x/%/q"], None)


def test_static_prefix_and_tag_names() -> None:
    assert static_prefix("foo/bar/%T") == "foo/bar"
    assert static_prefix("foo/x%h/%T") == "foo"
    assert static_prefix("%T") == ""
    assert static_prefix("plain/path") == ""
    assert [tag_filename(t) for t in ["", ".", "..", "a/b/c", "ok"]] == ["_", "_", "__", "a_b_c", "ok"]


@pytest.mark.parametrize("bad", ["", "/2006", "2006/"])
def test_bad_time_templates(bad: str) -> None:
    with pytest.raises(ValueError):
        check_time_template(bad)


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["a", "b"]),
                          st.lists(st.sampled_from(["x", "y", ""]), max_size=2)), max_size=12))
def test_every_snapshot_appears_once_per_path_and_links_resolve(items: list[tuple[int, str, list[str]]]) -> None:
    snaps = [snap(i, gotime.format(Timestamp(t * NS)), host, tuple(tags))
             for i, (t, host, tags) in enumerate(items)]
    layout = build_layout(snaps)
    got = flatten(layout)
    for folder in ("snapshots", "ids"):
        shown = sorted(v for p, v in got.items() if p.startswith(folder + "/") and v.startswith("snap"))
        assert shown == sorted("snap " + s.id.hex()[:8] for s in snaps)  # type: ignore[union-attr]
    for path, value in got.items():
        if value.startswith("-> "):
            target = path.rpartition("/")[0] + "/" + value[3:]
            assert got[target].startswith("snap")
            newest = max(t for p, t in _times(got, snaps) if p.rpartition("/")[0] == path.rpartition("/")[0])
            assert _time_of(got[target], snaps) == newest


def _times(got: dict[str, str], snaps: list[Snapshot]) -> list[tuple[str, int]]:
    return [(p, _time_of(v, snaps)) for p, v in got.items() if v.startswith("snap")]


def _time_of(value: str, snaps: list[Snapshot]) -> int:
    (s,) = [s for s in snaps if "snap " + s.id.hex()[:8] == value]  # type: ignore[union-attr]
    return s.time.ns


# -- inode table --------------------------------------------------------------------------

def test_inode_table_counts_and_forgets() -> None:
    table: InodeTable[str] = InodeTable("root")
    a = table.ino_for(("p", b"a"), lambda: "A")
    assert a != ROOT_INODE and table.get(a) == "A" and table.count(a) == 0
    assert table.ino_for(("p", b"a"), lambda: "other") == a  # same key, same inode
    table.remember(a)
    table.remember(a, 2)
    assert not table.forget(a, 2)
    assert table.get(a) == "A"
    assert table.forget(a, 1)
    with pytest.raises(KeyError):
        table.get(a)
    b = table.ino_for(("p", b"a"), lambda: "A again")
    assert b != a and b > a  # numbers are never reused
    table.discard_unused(b)
    assert b not in table
    assert not table.forget(ROOT_INODE, 5) and table.get(ROOT_INODE) == "root"
    c = table.ino_for("c", lambda: "C")
    table.remember(c)
    table.discard_unused(c)  # counted: stays
    assert table.get(c) == "C"
    table.forget_all()
    assert len(table) == 1 and c not in table
