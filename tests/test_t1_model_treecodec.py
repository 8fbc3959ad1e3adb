"""The C tree codec against the Python reference codec it must equal, byte for byte."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from repofs.errors import IntegrityError
from repofs.model import _treecodec, gotime, tree
from repofs.model.gotime import NS, Timestamp
from repofs.model.tree import Node, decode_tree, encode_tree
from test_t1_model_tree import TRICKY_NAMES, node_lists, nodes


def reference(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", tree.decode_tree_reference(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "error", None


def fast(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_tree(data)
    except IntegrityError:
        return "error", None


@given(node_lists)
def test_encode_equals_reference(ns: list[Node]) -> None:
    assert encode_tree(ns) == tree.encode_tree_reference(ns)


@given(node_lists)
def test_decode_equals_reference(ns: list[Node]) -> None:
    blob = tree.encode_tree_reference(ns)
    assert fast(blob) == reference(blob)


def test_plain_nodes_take_the_fast_path() -> None:
    """Nodes as restic writes them are decoded without the Python fallback."""
    ns = [
        Node(b"dir", "dir", mode=0o20000000755, mtime=Timestamp(1_700_000_000 * NS + 5, 3600),
             subtree=b"\x01" * 32, uid=1000, user="u"),
        Node(b"f<&>", "file", mode=0o644, size=3, content=(b"\x02" * 32,), inode=7, links=2),
        Node(b"l", "symlink", linktarget="f", mtime=gotime.GO_ZERO),
        Node("Grüße".encode(), "file", content=()),
    ]
    blob = tree.encode_tree_reference(ns)
    calls = []
    fallback = tree._node_from_json_bytes

    def counting(raw: bytes) -> Node:
        calls.append(raw)
        return fallback(raw)

    _treecodec.configure(Node, Timestamp, gotime.GO_ZERO, counting, tree._node_json,
                         tree.goquote.unquote, tree.goquote.quote)
    try:
        assert _treecodec.decode(blob) == sorted(ns, key=lambda n: n.name)
        assert calls == []
        escaped = Node(b"a\\b")
        assert _treecodec.decode(tree.encode_tree_reference([escaped])) == [escaped]
        assert calls == []  # Go-quoted names are unquoted without the node fallback
        xattr = Node(b"x", extended_attributes=(("user.a", b"1"),))
        assert _treecodec.decode(tree.encode_tree_reference([xattr])) == [xattr]
        assert len(calls) == 1
    finally:
        _treecodec.configure(Node, Timestamp, gotime.GO_ZERO, fallback, tree._node_json,
                             tree.goquote.unquote, tree.goquote.quote)


def test_tricky_names_and_times() -> None:
    far = [Timestamp(t, o) for t in (-62_135_596_800 * NS, 253_402_300_799 * NS + 999, 0, -1, 1)
           for o in (0, 59, -59, 3600, -37_800)]
    ns = [Node(name, mtime=far[i % len(far)], atime=far[(i + 3) % len(far)], ctime=gotime.GO_ZERO)
          for i, name in enumerate(TRICKY_NAMES)]
    blob = encode_tree(ns)
    assert blob == tree.encode_tree_reference(ns)
    assert decode_tree(blob) == tree.decode_tree_reference(blob)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
FIELDS = list(Node.__dataclass_fields__) + ["unknown", "nodes"]


@st.composite
def perturbed_documents(draw: st.DrawFn) -> bytes:
    """Trees as JSON with fields dropped, nulled, retyped, repeated or unknown,
    written with different escaping and spacing."""
    objs = [json.loads(tree._node_json(n)) for n in draw(st.lists(nodes, max_size=4))]
    for obj in objs:
        for _ in range(draw(st.integers(0, 3))):
            key = draw(st.sampled_from(FIELDS))
            action = draw(st.sampled_from(["drop", "null", "value"]))
            if action == "drop":
                obj.pop(key, None)
            else:
                obj[key] = None if action == "null" else draw(json_values)
    doc: dict[str, Any] = {"nodes": objs}
    if draw(st.booleans()):
        doc = {draw(st.text(max_size=3)): draw(json_values), **doc}
    ensure_ascii = draw(st.booleans())
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    try:
        text = json.dumps(doc, ensure_ascii=ensure_ascii, separators=seps)
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates need ensure_ascii
        return json.dumps(doc, ensure_ascii=True, separators=seps).encode()


@settings(max_examples=400)
@given(perturbed_documents())
def test_perturbed_documents_decode_like_reference(data: bytes) -> None:
    assert fast(data) == reference(data)


@settings(max_examples=400)
@given(node_lists, st.data())
def test_damaged_bytes_decode_like_reference(ns: list[Node], data: st.DataObject) -> None:
    blob = bytearray(tree.encode_tree_reference(ns))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob)))
        kind = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b'"\\{}[]:,0123456789-.eE+nulltrufase \t\n\x00\x1f\x80\xc3\xff'))
        if kind == "set" and pos < len(blob):
            blob[pos] = byte
        elif kind == "insert":
            blob.insert(pos, byte)
        elif pos < len(blob):
            del blob[pos]
    assume(b"NaN" not in blob and b"Infinity" not in blob)  # nan != nan
    assert fast(bytes(blob)) == reference(bytes(blob))


@pytest.mark.parametrize("doc", [
    b'{"nodes":[{"name":"a","mode":1.5}]}',
    b'{"nodes":[{"name":"a","mode":1e3}]}',
    b'{"nodes":[{"name":"a","size":123456789012345678901234567890}]}',
    b'{"nodes":[{"name":"a","uid":-0}]}',
    b'{"nodes":[{"n\\u0061me":"a"}]}',
    b'{"nodes":[{"name":"\\ud800"}]}',
    b'{"nodes":[{"name":"\\ud83d\\ude00"}]}',
    b'{"nodes":[{"name":"a","user":"\\udc80x"}]}',
    b'{"nodes":[{"name":"a","content":["' + b"AB" * 32 + b'"]}]}',
    b'{"nodes":[{"name":"a","subtree":"' + b"ab" * 31 + b'"}]}',
    b'{"nodes":[{"name":"a","mtime":"2024-02-30T00:00:00Z"}]}',
    b'{"nodes":[{"name":"a","mtime":"2024-02-29T23:59:59.1234567891Z"}]}',
    b'{"nodes":[{"name":"a","mtime":"2024-02-29T23:59:59+24:00"}]}',
    b'{"nodes":[{"name":"a","mtime":"0000-01-01T00:00:00-23:59"}]}',
    b'{"nodes":[{"name":"a","extended_attributes":[]}]}',
    b'{"nodes":[{"name":"a","linktarget":""}]}',
    b'{"nodes":[{"name":"a","name":"b"}]}',
    b'{"nodes":[],"nodes":null}',
    b'{"nodes":{}}',
    b'{"nodes":"x"}',
    b'{"nodes":[1]}',
    b'{"nodes":[]} x',
    b' \n{"nodes":null}\n ',
    b'{"nodes":[{"name":"a","mode":NaN}]}',
    b'{"nodes":[{"name":"a\x01"}]}',
    b'{"nodes":[{"name":"a\xff"}]}',
    b'{"nodes":[{"name":"a","x":' + b"[" * 600 + b"]" * 600 + b"}]}",
])
def test_edge_documents_decode_like_reference(doc: bytes) -> None:
    expected = reference(doc)
    got = fast(doc)
    if "NaN" in doc.decode("utf-8", "replace"):
        assert got[0] == expected[0] == "ok"
    else:
        assert got == expected


def test_decode_reads_buffers() -> None:
    blob = encode_tree([Node(b"a", content=())])
    assert decode_tree(memoryview(blob)) == decode_tree(bytearray(blob)) == [Node(b"a", content=())]


def test_encode_falls_back_for_unusual_values() -> None:
    odd = [Node(b"a", mode=True), Node(b"b", content=[b"\x01" * 32]),  # type: ignore[arg-type]
           Node(b"c", linktarget_raw=b"\xff"), Node(b"d", size=2**70),
           Node(b"e", mtime=Timestamp(gotime.GO_ZERO.ns, 0))]
    assert encode_tree(odd) == tree.encode_tree_reference(odd)


@given(nodes, nodes, st.sets(st.sampled_from(list(Node.__dataclass_fields__))))
def test_replace_equals_dataclasses_replace(a: Node, b: Node, fields: set[str]) -> None:
    changes = {f: getattr(b, f) for f in fields}
    assert a.replace(**changes) == dataclasses.replace(a, **changes)


def test_replace_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError):
        Node(b"a").replace(colour="red")
