"""Snapshot records: restic 0.14 as the oracle for bytes, --json output and filters."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repofs.errors import IntegrityError
from repofs.model import gojson, gotime
from repofs.model.gotime import NS, Timestamp
from repofs.model.snapshot import (
    Snapshot,
    decode_snapshot,
    encode_snapshot,
    latest,
    matches,
    split_tags,
    to_json_dict,
)
from restic_util import backup, init_repo, needs_restic, restic, snapshots_json

TRICKY_HOST = 'h<o>&st\u2028 é"\\\x01'


def go_compact(text: bytes) -> bytes:
    """Go's json.Compact: drop the whitespace outside strings, keep strings as written.

    ``restic cat snapshot`` prints the snapshot through json.MarshalIndent, which
    is json.Marshal (the stored bytes) plus indentation.
    """
    out = bytearray()
    in_string = escaped = False
    for byte in text:
        if in_string:
            out.append(byte)
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
            out.append(byte)
        elif byte not in b" \t\r\n":
            out.append(byte)
    return bytes(out)


@dataclass
class Repo:
    path: Path
    src1: Path
    src2: Path
    first: str
    retagged: str
    other: str
    stored: dict[str, bytes]  # snapshot ID -> the bytes restic stored


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("snap")
    src1, src2 = base / "src1", base / "src2"
    for src in (src1, src2):
        src.mkdir()
        (src / "f").write_bytes(src.name.encode())
    path = init_repo(base / "repo")
    india = {"TZ": "Asia/Kolkata"}
    host = ["--host", TRICKY_HOST]
    first = backup(
        path, src1, *host, "--tag", "x<y", "--tag", "日本", "--exclude", "*.tmp",
        "--exclude", "a&b", env=india,
    )  # fmt: skip
    second = backup(path, src1, *host, "--tag", "x<y", env=india)  # parent: first
    other = backup(path, src2, "--host", "plain")
    restic(path, "tag", "--add", "added", second)  # rewrites it; "original" = second
    (retagged,) = set(os.listdir(path / "snapshots")) - {first, other}
    stored = {
        sid: go_compact(restic(path, "cat", "snapshot", sid)) for sid in (first, retagged, other)
    }
    return Repo(path, src1, src2, first, retagged, other, stored)


def load_all(r: Repo) -> dict[str, Snapshot]:
    return {sid: decode_snapshot(raw, bytes.fromhex(sid)) for sid, raw in r.stored.items()}


@needs_restic
def test_restic_snapshot_bytes_round_trip(repo: Repo) -> None:
    snaps = load_all(repo)
    for sid, snap in snaps.items():
        raw = repo.stored[sid]
        assert encode_snapshot(snap) == raw
        assert not raw.endswith(b"\n")
    first, retagged, other = snaps[repo.first], snaps[repo.retagged], snaps[repo.other]
    assert first.hostname == TRICKY_HOST
    assert first.time.offset == 19_800  # +05:30
    assert first.tags == ["x<y", "日本"]
    assert first.excludes == ["*.tmp", "a&b"]
    assert first.paths == [str(repo.src1)]
    assert first.parent is None
    assert retagged.parent == bytes.fromhex(repo.first)
    assert retagged.original is not None and retagged.original != retagged.id
    assert retagged.tags == ["x<y", "added"]
    assert other.time.offset == 0 and other.tags == []
    assert b'"time":"' + gotime.format(first.time).encode() + b'"' in encode_snapshot(first)


@needs_restic
def test_restic_snapshots_json(repo: Repo) -> None:
    printed = restic(repo.path, "snapshots", "--json")
    snaps = load_all(repo)
    order = [s["id"] for s in json.loads(printed)]
    assert gojson.dumps([to_json_dict(snaps[sid]) for sid in order]) + b"\n" == printed


FILTERS = [
    ((TRICKY_HOST,), (), ()),
    (("plain", "nope"), (), ()),
    ((), ("x<y,added",), ()),
    ((), ("日本", "added"), ()),
    ((), (" x<y , 日本 ",), ()),
    ((), ("",), ()),
    ((TRICKY_HOST, "plain"), ("x<y", ""), ("SRC1",)),
    ((), (), ("SRC2", "SRC1")),
]


@needs_restic
@pytest.mark.parametrize(("hosts", "tags", "paths"), FILTERS)
def test_restic_filters(repo: Repo, hosts: tuple[str, ...], tags: tuple[str, ...], paths: tuple[str, ...]) -> None:
    real_paths = [{"SRC1": str(repo.src1), "SRC2": str(repo.src2)}[p] for p in paths]
    args = [a for h in hosts for a in ("--host", h)]
    args += [a for t in tags for a in ("--tag", t)]
    args += [a for p in real_paths for a in ("--path", p)]
    expected = {s["id"] for s in snapshots_json(repo.path, *args)}
    snaps = load_all(repo)
    got = {sid for sid, s in snaps.items() if matches(s, hosts, tags, real_paths)}
    assert got == expected


# Pure tests ------------------------------------------------------------------


def make(**kw: object) -> Snapshot:
    fields: dict[str, object] = {"time": Timestamp(0), "tree": b"\x01" * 32}
    fields.update(kw)
    return Snapshot(**fields)  # type: ignore[arg-type]


def test_encode_minimal_and_full() -> None:
    assert encode_snapshot(make()) == (
        b'{"time":"1970-01-01T00:00:00Z","tree":"' + b"01" * 32 + b'","paths":[]}'
    )
    full = make(
        parent=b"\x02" * 32, paths=["/a"], hostname="h", username="u", uid=1000, gid=100,
        excludes=["e"], tags=["t"], original=b"\x03" * 32,
    )  # fmt: skip
    assert list(json.loads(encode_snapshot(full))) == [
        "time", "parent", "tree", "paths", "hostname", "username", "uid", "gid", "excludes",
        "tags", "original",
    ]  # fmt: skip


def test_decode_ignores_newer_fields() -> None:
    raw = (
        b'{"time":"2024-01-02T03:04:05.5+01:00","tree":"' + b"ab" * 32 + b'","paths":null,'
        b'"hostname":"h","program_version":"restic 0.17.0","summary":{"files_new":1}}'
    )
    snap = decode_snapshot(raw, b"\x09" * 32)
    assert snap.paths == [] and snap.hostname == "h" and snap.id == b"\x09" * 32
    assert snap.time == gotime.parse("2024-01-02T03:04:05.5+01:00")
    assert b"program_version" not in encode_snapshot(snap)


@pytest.mark.parametrize(
    "bad", [b"", b"[]", b'{"time":"2024-01-02T03:04:05Z"}', b'{"tree":"abc"}', b'{"tree":"' + b"0" * 64 + b'","time":"x"}']
)
def test_decode_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_snapshot(bad)


def test_to_json_dict_appends_ids() -> None:
    snap = make(id=bytes(range(32)))
    d = to_json_dict(snap)
    assert list(d)[-2:] == ["id", "short_id"]
    assert d["id"] == bytes(range(32)).hex() and d["short_id"] == "00010203"


def test_split_tags() -> None:
    assert split_tags("a, b ,c") == ["a", "b", "c"]
    assert split_tags("") == [""]


def test_matches_semantics() -> None:
    s = make(hostname="h1", tags=["a", "b"], paths=["/x", "/y"])
    untagged = make(hostname="h2")
    assert matches(s) and matches(untagged)
    assert matches(s, hosts=["h0", "h1"]) and not matches(s, hosts=["h0"])
    assert matches(s, tags=["a,b"]) and not matches(s, tags=["a,c"])
    assert matches(s, tags=["c", "b"])  # groups are alternatives
    assert matches(untagged, tags=[""]) and not matches(s, tags=[""])
    assert matches(s, paths=["/y", "/x"]) and not matches(s, paths=["/x", "/z"])


def test_latest() -> None:
    old = make(time=Timestamp(1 * NS), hostname="h")
    new = make(time=Timestamp(2 * NS, 3600), hostname="h")
    other = make(time=Timestamp(3 * NS), hostname="o")
    assert latest([old, new, other], hosts=["h"]) is new
    assert latest([new, old]) is new
    assert latest([old, new, other]) is other
    assert latest([old], hosts=["x"]) is None
    tie = make(time=Timestamp(2 * NS), hostname="h")
    assert latest([new, tie], hosts=["h"]) is tie  # restic keeps the last one seen


ids = st.binary(min_size=32, max_size=32)
strings = st.lists(st.text(max_size=8), max_size=3)
snapshots = st.builds(
    Snapshot,
    time=st.builds(
        Timestamp,
        st.integers(min_value=-62_135_596_800 * NS + 86_400 * NS, max_value=253_402_300_800 * NS - 86_400 * NS),
        st.integers(min_value=-1439, max_value=1439).map(lambda m: m * 60),
    ),
    parent=st.none() | ids,
    tree=ids,
    paths=strings,
    hostname=st.text(max_size=8),
    username=st.text(max_size=8),
    uid=st.integers(min_value=0, max_value=2**32 - 1),
    gid=st.integers(min_value=0, max_value=2**32 - 1),
    excludes=strings,
    tags=strings,
    original=st.none() | ids,
)


@given(snapshots)
def test_round_trip(snap: Snapshot) -> None:
    raw = encode_snapshot(snap)
    assert decode_snapshot(raw) == snap
    assert encode_snapshot(decode_snapshot(raw)) == raw
