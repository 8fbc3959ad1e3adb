"""The blob index: C scanner against a json.loads reference, tables, restic as oracle."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from restic_util import backup, init_repo, needs_restic, restic

from repofs.errors import IntegrityError
from repofs.repo.index import BlobLocation, BlobType, Index, IndexBuilder, encode_index

ROOT = Path(__file__).resolve().parent.parent
U32 = 2**32 - 1

Record = tuple[bytes, int, bytes, int, int, "int | None"]  # id, type, pack, offset, length, ulen


# -- reference decoder ---------------------------------------------------------------------


class Malformed(ValueError):
    """The reference decoder's verdict on a malformed document."""


class _Int(str):
    """A JSON integer kept as its text, so '-0' and '1e3' stay distinguishable."""


class _Float(str):
    pass


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs in order, repeated keys included."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fields(obj: Any, what: str) -> list[tuple[str, Any]]:
    if not isinstance(obj, _Obj):
        raise Malformed(f"{what} is not an object")
    return obj


def _known(key: str, names: tuple[str, ...]) -> str | None:
    """Go matches field names case-insensitively; we do that for ASCII only."""
    folded = key.lower() if key.isascii() else None
    return folded if folded in names else None


def _ref_id(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or not all(c in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"invalid id {value!r}")
    return bytes.fromhex(value)


def _ref_u32(value: Any) -> int:
    if not isinstance(value, _Int) or value.startswith("-") or int(value) > U32:
        raise ValueError(f"invalid number {value!r}")
    return int(value)


def _ref_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, _Obj):
        raise Malformed(f"{what} is not an array")
    return value


def _ref_blob(obj: Any) -> tuple[bytes, int, int, int, int | None]:
    got: dict[str, Any] = {}
    for key, value in _fields(obj, "blob"):
        name = _known(key, ("id", "type", "offset", "length", "uncompressed_length"))
        if name == "id":
            got[name] = _ref_id(value)
        elif name == "type":
            if value not in ("data", "tree"):
                raise ValueError(f"unknown blob type {value!r}")
            got[name] = 0 if value == "data" else 1
        elif name is not None:
            got[name] = _ref_u32(value)
    missing = {"id", "type", "offset", "length"} - got.keys()
    if missing:
        raise ValueError(f"blob without {sorted(missing)}")
    return got["id"], got["type"], got["offset"], got["length"], got.get("uncompressed_length") or None


def _ref_packs(value: Any) -> list[Record]:
    records: list[Record] = []
    for pack in _ref_list(value, "pack list"):
        pack_id = None
        blobs: list[tuple[bytes, int, int, int, int | None]] = []
        for key, v in _fields(pack, "pack"):
            name = _known(key, ("id", "blobs"))
            if name == "id":
                pack_id = _ref_id(v)
            elif name == "blobs":
                blobs = [_ref_blob(b) for b in _ref_list(v, "blob list")]
        if pack_id is None:
            raise ValueError("pack without id")
        records += [(i, t, pack_id, o, n, u) for i, t, o, n, u in blobs]
    return records


def decode_index_reference(data: bytes) -> tuple[list[bytes], set[Record]]:
    """(supersedes, entries) of an index file by json.loads; ValueError when malformed.

    Implements the rules of ``_index.c`` (restic 0.14's reading) in plain Python, except
    that it cannot see escapes inside ids and types (json.loads decodes them; restic and
    the scanner reject them), so the generators below never put escapes there.
    """
    doc = json.loads(
        data.decode("utf-8"),
        object_pairs_hook=_Obj,
        parse_int=_Int,
        parse_float=_Float,
        parse_constant=_reject_constant,
    )
    if isinstance(doc, list) and not isinstance(doc, _Obj):
        return [], set(_ref_packs(doc))  # the legacy form
    supersedes: list[bytes] = []
    records: list[Record] = []
    for key, value in _fields(doc, "index"):
        name = _known(key, ("supersedes", "packs"))
        if name == "supersedes":
            supersedes = [_ref_id(v) for v in _ref_list(value, "supersedes")]
        elif name == "packs":
            records = _ref_packs(value)
    return supersedes, set(records)


def scan(docs: list[bytes]) -> tuple[list[list[bytes]], Index]:
    builder = IndexBuilder()
    sups = [builder.add_file(bytes(32), d) for d in docs]
    return sups, builder.finish()


def same(got: list[Record], want: set[Record]) -> bool:
    """``got`` lists exactly the records of ``want``, each once."""
    return len(got) == len(set(got)) and set(got) == want


def records_of(index: Index) -> list[Record]:
    out = []
    for t in BlobType:
        for blob_id, loc in index.iter_blobs(t):
            out.append((blob_id, int(t), loc.pack_id, loc.offset, loc.length, loc.uncompressed_length))
    return out


# -- document generator ----------------------------------------------------------------------

WS = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n", "  "])
KNOWN = {"supersedes", "packs", "id", "blobs", "type", "offset", "length", "uncompressed_length"}


@st.composite
def json_string(draw: st.DrawFn, text: str) -> str:
    """``text`` as a JSON string literal with a random mix of raw characters and escapes."""
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "/": "\\/"}
    for ch in text:
        mode = draw(st.integers(0, 3))
        if ch in '"\\' or ord(ch) < 0x20 or mode == 0:
            if ch in short and draw(st.booleans()):
                out.append(short[ch])
            elif ord(ch) > 0xFFFF:
                hi, lo = divmod(ord(ch) - 0x10000, 0x400)
                out.append(f"\\u{0xD800 + hi:04x}\\u{0xDC00 + lo:04X}")
            else:
                out.append(f"\\u{ord(ch):04x}" if draw(st.booleans()) else f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@st.composite
def key_text(draw: st.DrawFn, name: str) -> str:
    """A known key in random ASCII case, possibly with escapes (Go still matches it)."""
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in name) if draw(st.booleans()) else name
    return draw(json_string(cased))


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def unknown_value(draw: st.DrawFn, value: Any = None) -> str:
    value = draw(json_values) if value is None else value
    ws = lambda: draw(WS)
    if isinstance(value, dict):
        items = [f"{ws()}{draw(json_string(k))}{ws()}:{draw(unknown_value(v))}" for k, v in value.items()]
        return "{" + ",".join(items) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + draw(unknown_value(v)) + ws() for v in value) + ws() + "]"
    if isinstance(value, str):
        return draw(json_string(value))
    return json.dumps(value)


unknown_key = st.text(max_size=10).filter(lambda k: not (k.isascii() and k.lower() in KNOWN))


@st.composite
def json_object(draw: st.DrawFn, members: list[tuple[str, str]], decoys: list[tuple[int, tuple[str, str]]] = ()) -> str:
    """An object of ``members`` (encoded key, encoded value) plus unknown ones, shuffled.

    Each decoy (i, member) is put somewhere before members[i]: a repeated key whose
    value the later one replaces.
    """
    unknown = [(draw(json_string(draw(unknown_key))), draw(unknown_value())) for _ in range(draw(st.integers(0, 2)))]
    items = list(enumerate(members)) + [(-1, m) for m in unknown]
    items = list(draw(st.permutations(items)))
    for target, decoy in decoys:
        pos = [tag for tag, _ in items].index(target)
        items.insert(draw(st.integers(0, pos)), (-2, decoy))
    ws = lambda: draw(WS)
    body = ",".join(f"{ws()}{k}{ws()}:{ws()}{v}{ws()}" for _, (k, v) in items)
    return "{" + body + ws() + "}"


def hex_id(draw: st.DrawFn, raw: bytes) -> str:
    text = raw.hex()
    return '"' + (text.upper() if draw(st.integers(0, 5)) == 0 else text) + '"'


def json_array(draw: st.DrawFn, encoded: list[str]) -> str:
    return "[" + ",".join(draw(WS) + e + draw(WS) for e in encoded) + draw(WS) + "]"


def maybe(draw: st.DrawFn) -> bool:
    return draw(st.integers(0, 7)) == 0


ids = st.binary(min_size=32, max_size=32)
# a few ids from a tiny pool, so documents repeat blobs and packs and share buckets
pooled_ids = st.one_of(ids, st.sampled_from([bytes([i]) * 32 for i in range(3)] + [b"\x00\x01" + bytes([i]) * 30 for i in range(3)]))
u32 = st.one_of(st.integers(0, 300), st.integers(0, U32))


@st.composite
def blob_json(draw: st.DrawFn) -> tuple[str, tuple[bytes, int, int, int, int | None]]:
    blob_id, type_ = draw(pooled_ids), draw(st.integers(0, 1))
    offset, length = draw(u32), draw(u32)
    ulen = draw(st.one_of(st.none(), st.just(0), u32))
    fields = [
        ("id", lambda: hex_id(draw, blob_id), lambda: hex_id(draw, draw(ids))),
        ("type", lambda: '"data"' if type_ == 0 else '"tree"', lambda: draw(st.sampled_from(['"data"', '"tree"']))),
        ("offset", lambda: str(offset), lambda: str(draw(u32))),
        ("length", lambda: str(length), lambda: str(draw(u32))),
    ]
    if ulen is not None:
        fields.append(("uncompressed_length", lambda: str(ulen), lambda: str(draw(u32))))
    members = [(draw(key_text(name)), real()) for name, real, _ in fields]
    decoys = [(i, (draw(key_text(name)), other())) for i, (name, _, other) in enumerate(fields) if maybe(draw)]
    return draw(json_object(members, decoys)), (blob_id, type_, offset, length, ulen or None)


@st.composite
def pack_json(draw: st.DrawFn) -> tuple[str, list[Record]]:
    pack_id = draw(pooled_ids)
    blobs = draw(st.lists(blob_json(), max_size=4))
    members = [(draw(key_text("id")), hex_id(draw, pack_id))]
    decoys = [(0, (draw(key_text("id")), hex_id(draw, draw(ids))))] if maybe(draw) else []
    if blobs or draw(st.booleans()):
        members.append((draw(key_text("blobs")), json_array(draw, [b for b, _ in blobs])))
        if maybe(draw):
            other = draw(st.lists(blob_json(), max_size=2))
            decoys.append((1, (draw(key_text("blobs")), draw(st.sampled_from(["null", json_array(draw, [b for b, _ in other])])))))
    elif draw(st.booleans()):
        members.append((draw(key_text("blobs")), "null"))
    records = [(i, t, pack_id, o, n, u) for _, (i, t, o, n, u) in blobs]
    return draw(json_object(members, decoys)), records


@st.composite
def index_json(draw: st.DrawFn) -> tuple[bytes, list[bytes], set[Record]]:
    """A valid index document, its supersedes list and its entries."""
    packs = draw(st.lists(pack_json(), max_size=4))
    pack_list = json_array(draw, [p for p, _ in packs])
    records = {r for _, rs in packs for r in rs}
    if draw(st.integers(0, 4)) == 0:
        return (draw(WS) + pack_list + draw(WS)).encode(), [], records
    supersedes = draw(st.lists(ids, max_size=3))
    members: list[tuple[str, str]] = []
    decoys: list[tuple[int, tuple[str, str]]] = []
    if packs or draw(st.booleans()):
        members.append((draw(key_text("packs")), pack_list))
        if maybe(draw):
            other = draw(st.lists(pack_json(), max_size=2))
            decoys.append((0, (draw(key_text("packs")), draw(st.sampled_from(["null", json_array(draw, [p for p, _ in other])])))))
    if supersedes or draw(st.booleans()):
        members.append((draw(key_text("supersedes")), json_array(draw, [hex_id(draw, i) for i in supersedes])))
        if maybe(draw):
            decoys.append((len(members) - 1, (draw(key_text("supersedes")), json_array(draw, [hex_id(draw, draw(ids))]))))
    return (draw(WS) + draw(json_object(members, decoys)) + draw(WS)).encode(), supersedes, records


# -- property tests ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index_json())
def test_scanner_matches_reference_and_model(doc: tuple[bytes, list[bytes], set[Record]]) -> None:
    data, supersedes, records = doc
    assert decode_index_reference(data) == (supersedes, records)
    (got_sup,), index = scan([data])
    assert got_sup == supersedes
    assert same(records_of(index), records)
    assert len(index) == len({(r[0], r[1]) for r in records})
    assert sorted(index.pack_ids()) == sorted({r[2] for r in records})  # replaced lists left no packs


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index_json(), st.data())
def test_truncated_documents_are_rejected(doc: tuple[bytes, list[bytes], set[Record]], data: st.DataObject) -> None:
    text = doc[0].strip(b" \t\r\n")
    cut = data.draw(st.integers(0, len(text) - 1))
    builder = IndexBuilder()
    with pytest.raises(IntegrityError, match="at byte"):
        builder.add_file(bytes(32), text[:cut])
    assert len(builder.finish()) == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index_json(), st.data())
def test_garbled_documents_agree_with_reference(doc: tuple[bytes, list[bytes], set[Record]], data: st.DataObject) -> None:
    raw = bytearray(doc[0])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        action = data.draw(st.integers(0, 2))
        if action == 0 and raw:
            raw[at] = data.draw(st.sampled_from(b'{}[]",:0123456789aefnrtu\\- \x00\xff'))
        elif action == 1:
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif raw:
            del raw[at]
    garbled = bytes(raw)
    try:
        expected: tuple[list[bytes], set[Record]] | None = decode_index_reference(garbled)
    except UnicodeDecodeError:
        expected = None  # the scanner, like Go, does not validate UTF-8: no verdict
    except ValueError:
        with pytest.raises(IntegrityError):
            scan([garbled])
        return
    try:
        (sup,), index = scan([garbled])
    except IntegrityError:
        assert expected is None
        return
    if expected is not None:
        assert (sup, set(records_of(index))) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=2), st.integers(0, 1), st.integers(0, 3)), min_size=1, max_size=60), ids)
def test_lookup_in_crowded_buckets(entries: list[tuple[bytes, int, int]], probe_tail: bytes) -> None:
    # ids share their first 30 bytes, so all land in one bucket and differ only at the end
    prefix = b"\xab\xcd" + bytes(28)
    packs = [bytes([p]) * 32 for p in range(4)]
    builder = IndexBuilder()
    expected: dict[tuple[bytes, int], set[BlobLocation]] = {}
    for tail, t, p in entries:
        blob_id = prefix + tail.rjust(2, b"\x00")
        builder.add_pack(packs[p], [(blob_id, BlobType(t), p, 10 + p, None)])
        expected.setdefault((blob_id, t), set()).add(BlobLocation(packs[p], p, 10 + p, None))
    index = builder.finish()
    for (blob_id, t), locs in expected.items():
        got = index.lookup(blob_id, BlobType(t))
        assert len(got) == len(locs) and set(got) == locs
        assert index.has(blob_id, BlobType(t))
    probe = prefix + probe_tail[:2]
    for t in BlobType:
        assert index.has(probe, t) == ((probe, int(t)) in expected)
    assert len(index) == len(expected)
    assert index.count(BlobType.DATA) + index.count(BlobType.TREE) == len(expected)


# -- examples ------------------------------------------------------------------------------


def ident(n: int) -> bytes:
    return n.to_bytes(2, "big") * 16


def test_encode_index_is_restics_format() -> None:
    p, a, b = ident(1), ident(2), ident(3)
    got = encode_index(
        [(p, [(a, BlobType.DATA, 0, 100, None), (b, BlobType.TREE, 100, 50, 80)]), (ident(4), [])],
        supersedes=[ident(5)],
    )
    want = (
        '{"supersedes":["' + ident(5).hex() + '"],"packs":[{"id":"' + p.hex() + '","blobs":['
        '{"id":"' + a.hex() + '","type":"data","offset":0,"length":100},'
        '{"id":"' + b.hex() + '","type":"tree","offset":100,"length":50,"uncompressed_length":80}]}]}\n'
    )
    assert got == want.encode()
    assert encode_index([]) == b'{"packs":[]}\n'
    with pytest.raises(ValueError):
        encode_index([(p, [(a, BlobType.DATA, 0, 2**32, None)])])


def test_merge_keeps_every_location_and_drops_exact_duplicates() -> None:
    p1, p2, blob = ident(1), ident(2), ident(3)
    one = encode_index([(p1, [(blob, BlobType.DATA, 0, 100, None)])])
    two = encode_index([(p2, [(blob, BlobType.DATA, 7, 100, None), (blob, BlobType.TREE, 107, 60, 90)])])
    builder = IndexBuilder()
    for doc in (one, two, one):
        assert builder.add_file(ident(9), doc) == []
    index = builder.finish()
    assert sorted(index.lookup(blob, BlobType.DATA), key=lambda loc: loc.offset) == [
        BlobLocation(p1, 0, 100, None),
        BlobLocation(p2, 7, 100, None),
    ]
    assert index.lookup(blob, BlobType.TREE) == [BlobLocation(p2, 107, 60, 90)]
    assert index.lookup(ident(4), BlobType.DATA) == []
    assert not index.has(ident(4), BlobType.TREE)
    assert len(index) == 2  # (blob, data) and (blob, tree)
    assert index.count(BlobType.DATA) == 1 and index.location_count(BlobType.DATA) == 2
    assert sorted(index.pack_ids()) == [p1, p2]
    assert index.any_compressed()
    by_pack = index.blobs_by_pack()
    assert [(i, t, loc.offset) for i, t, loc in by_pack[p2]] == [(blob, BlobType.DATA, 7), (blob, BlobType.TREE, 107)]


def test_location_properties() -> None:
    plain = BlobLocation(ident(1), 0, 132, None)
    packed = BlobLocation(ident(1), 0, 132, 500)
    assert (plain.compressed, plain.plain_length) == (False, 100)
    assert (packed.compressed, packed.plain_length) == (True, 500)


def test_empty_index() -> None:
    index = IndexBuilder().finish()
    assert len(index) == 0 and index.pack_ids() == [] and not index.any_compressed()
    assert index.lookup(ident(1), BlobType.DATA) == [] and list(index.iter_blobs(BlobType.TREE)) == []
    assert index.blobs_by_pack() == {}


def test_legacy_array_form_and_supersedes() -> None:
    pack = [(ident(1), [(ident(2), BlobType.TREE, 0, 40, None)])]
    legacy = b" \n" + encode_index(pack)[len(b'{"packs":') : -2] + b"\n"
    assert legacy.startswith(b" \n[") and legacy.endswith(b"]\n")
    sups, index = scan([legacy, encode_index([], supersedes=[ident(7), ident(8)])])
    assert sups == [[], [ident(7), ident(8)]]
    assert index.lookup(ident(2), BlobType.TREE) == [BlobLocation(ident(1), 0, 40, None)]


def test_repeated_keys_last_one_wins() -> None:
    a, b = ident(2).hex(), ident(3).hex()
    p1, p4 = ident(1).hex(), ident(4).hex()
    doc = (
        '{"packs":[{"id":"' + p1 + '","blobs":[{"id":"' + a + '","type":"data","offset":1,"length":40}]}],'
        '"Packs":[{"blobs":[{"ID":"' + b + '","Type":"tree","offset":5,"OFFSET":6,"length":41}],'
        '"id":"' + a + '","Id":"' + p4 + '"}],'
        '"supersedes":["' + a + '"],"supersedes":null}'
    )
    (sups,), index = scan([doc.encode()])
    assert sups == []
    assert records_of(index) == [(ident(3), 1, ident(4), 6, 41, None)]
    assert index.pack_ids() == [ident(4)]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"", "empty document at byte 0"),
        (b"null", "expected '{' or '['"),
        (b'{"packs":[]} x', "unexpected data after the index at byte 13"),
        (b'{"packs":[{"blobs":[]}]}', "pack entry without id"),
        (b'{"packs":[{"id":"%s","blobs":[{"type":"data","offset":0,"length":1}]}]}' % ident(1).hex().encode(), "blob entry without id"),
        (b'{"packs":[{"id":"%s","blobs":[{"id":"%s","type":"Data","offset":0,"length":1}]}]}' % (ident(1).hex().encode(), ident(1).hex().encode()), "unknown blob type"),
        (b'{"packs":[{"id":"%s","blobs":[{"id":"%s","type":"data","offset":-1,"length":1}]}]}' % (ident(1).hex().encode(), ident(1).hex().encode()), "expected an unsigned integer"),
        (b'{"packs":[{"id":"%s","blobs":[{"id":"%s","type":"data","offset":1.0,"length":1}]}]}' % (ident(1).hex().encode(), ident(1).hex().encode()), "expected an unsigned integer"),
        (b'{"packs":[{"id":"%s","blobs":[{"id":"%s","type":"data","offset":4294967296,"length":1}]}]}' % (ident(1).hex().encode(), ident(1).hex().encode()), "does not fit in 32 bits"),
        (b'{"packs":[{"id":"%s","blobs":[{"id":"%s","type":"data","offset":0,"length":null}]}]}' % (ident(1).hex().encode(), ident(1).hex().encode()), "expected an unsigned integer"),
        (b'{"packs":[{"id":"\\u0030%s"}]}' % ident(1).hex()[1:].encode(), "invalid id"),
        (b'{"x":"\x01"}', "control character in string"),
        (b'{"x":"\\x"}', "invalid escape"),
        (b'{"x":[1,]}', "unexpected character"),
        (b'{"x":01}', "expected ',' or '}'"),
        (b'{"x":' + b"[" * 10001 + b"]" * 10001 + b"}", "nesting too deep"),
        (b'{"packs":[null]}', "expected a pack object"),
    ],
)
def test_malformed_documents(doc: bytes, message: str) -> None:
    builder = IndexBuilder()
    with pytest.raises(IntegrityError, match="index " + ident(6).hex() + ": .*" + message.replace("(", r"\(").replace("[", r"\[")):
        builder.add_file(ident(6), doc)


def test_failed_file_leaves_builder_as_it_was() -> None:
    good = encode_index([(ident(1), [(ident(2), BlobType.DATA, 0, 40, None)])])
    bad = encode_index([(ident(3), [(ident(4), BlobType.DATA, 0, 40, None)]), (ident(5), [])])[:-4]
    builder = IndexBuilder()
    builder.add_file(ident(8), good)
    with pytest.raises(IntegrityError):
        builder.add_file(ident(9), bad)
    index = builder.finish()
    assert index.pack_ids() == [ident(1)]
    assert records_of(index) == [(ident(2), 0, ident(1), 0, 40, None)]
    with pytest.raises(RuntimeError):
        builder.add_file(ident(8), good)
    with pytest.raises(RuntimeError):
        builder.finish()


def test_add_pack_checks_its_arguments() -> None:
    builder = IndexBuilder()
    with pytest.raises(ValueError):
        builder.add_pack(ident(1), [(ident(2), BlobType.DATA, -1, 10, None)])
    with pytest.raises(ValueError):
        builder.add_pack(ident(1), [(ident(2), BlobType.DATA, 0, 2**32, None)])
    with pytest.raises(ValueError):
        builder.add_pack(ident(1), [(b"short", BlobType.DATA, 0, 10, None)])
    with pytest.raises(ValueError):
        builder.add_pack(ident(1)[:31], [(ident(2), BlobType.DATA, 0, 10, None)])
    with pytest.raises(ValueError):
        builder.add_pack(ident(1), [(ident(2), 2, 0, 10, None)])
    builder.add_pack(ident(1), [])
    assert builder.finish().pack_ids() == []


def test_many_blobs_against_a_dict() -> None:
    rng = random.Random(5)
    packs: list[tuple[bytes, list[tuple[bytes, BlobType, int, int, int | None]]]] = []
    expected: dict[tuple[bytes, BlobType], set[BlobLocation]] = {}
    known = []
    for _ in range(200):
        pack_id = rng.randbytes(32)
        entries = []
        for k in range(rng.randint(1, 300)):
            blob_id = rng.choice(known) if known and rng.random() < 0.05 else rng.randbytes(32)
            known.append(blob_id)
            t = BlobType(rng.random() < 0.2)
            entry = (blob_id, t, k * 100, 100, rng.choice([None, rng.randint(1, U32)]))
            entries.append(entry)
            expected.setdefault((blob_id, t), set()).add(BlobLocation(pack_id, *entry[2:]))
        packs.append((pack_id, entries))
    docs = [encode_index(packs[i : i + 30]) for i in range(0, len(packs), 30)]
    _, index = scan(docs)
    assert len(index) == len(expected)
    for (blob_id, t), locs in expected.items():
        assert set(index.lookup(blob_id, t)) == locs
    for _ in range(1000):
        assert not index.has(rng.randbytes(32), BlobType.DATA)
    for t in BlobType:
        listed = [blob_id for blob_id, _ in index.iter_blobs(t, chunk=997)]
        assert listed == sorted(listed)
        assert len(listed) == sum(len(v) for (i, tt), v in expected.items() if tt == t)


def test_threads_may_feed_one_builder() -> None:
    rng = random.Random(6)
    docs = [
        encode_index([(rng.randbytes(32), [(rng.randbytes(32), BlobType.DATA, o * 50, 50, None) for o in range(500)]) for _ in range(4)])
        for _ in range(16)
    ]
    builder = IndexBuilder()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda d: builder.add_file(bytes(32), d), docs))
    assert same(records_of(builder.finish()), set(records_of(scan(docs)[1])))


# -- restic as the oracle ------------------------------------------------------------------


@needs_restic
@pytest.mark.parametrize("version", [1, 2])
def test_real_restic_index(tmp_path: Path, version: int) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    rng = random.Random(version)
    for i in range(3):
        (src / f"big{i}").write_bytes(rng.randbytes(700_000 + i))
    (src / "sub" / "small").write_bytes(b"hello\n")
    (src / "twin").write_bytes((src / "big0").read_bytes())
    repo = init_repo(tmp_path / "repo", version=version)
    backup(repo, src)
    (src / "more").write_bytes(rng.randbytes(50_000))
    backup(repo, src)

    builder = IndexBuilder()
    want: set[tuple[bytes, BlobType, BlobLocation]] = set()
    for index_id in restic(repo, "list", "index").decode().split():
        out = restic(repo, "cat", "index", index_id)
        assert out.endswith(b"\n\n")  # the file's own newline, then the one cat prints
        plain = out[:-1]
        assert builder.add_file(bytes.fromhex(index_id), plain) == []
        doc = json.loads(plain)
        packs = []
        for pack in doc["packs"]:
            entries = []
            for b in pack["blobs"]:
                t = BlobType.DATA if b["type"] == "data" else BlobType.TREE
                loc = BlobLocation(bytes.fromhex(pack["id"]), b["offset"], b["length"], b.get("uncompressed_length"))
                want.add((bytes.fromhex(b["id"]), t, loc))
                entries.append((bytes.fromhex(b["id"]), t, loc.offset, loc.length, loc.uncompressed_length))
            packs.append((bytes.fromhex(pack["id"]), entries))
        assert encode_index(packs) == plain  # byte for byte, given restic's order
    index = builder.finish()

    listed = restic(repo, "list", "blobs").decode().split("\n")
    blobs = {(bytes.fromhex(line.split()[1]), BlobType.DATA if line.split()[0] == "data" else BlobType.TREE) for line in listed if line}
    assert blobs and len(index) == len(blobs)
    for blob_id, t in blobs:
        assert index.has(blob_id, t)
    got = {(blob_id, t, loc) for t in BlobType for blob_id, loc in index.iter_blobs(t)}
    assert got == want
    assert index.any_compressed() == (version == 2)
    assert sorted(index.pack_ids()) == sorted(bytes.fromhex(i) for i in restic(repo, "list", "packs").decode().split())


# -- the benchmark keeps working -------------------------------------------------------------


def test_bench_index_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_index.py"), "--blobs", "3000", "--per-file", "1000", "--lookups", "500", "--json"],
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result = json.loads(proc.stdout)
    assert result["blobs"] == 3000 and result["index_files"] == 3 and result["mode"] == "stream"
    assert result["table_bytes_per_blob"] > 46 and result["lookup_hit_us"] > 0
    line = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_index.py"), "--blobs", "500", "--lookups", "100", "--hold-json"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "500 blobs in 1 index files" in line and "bytes/blob" in line
