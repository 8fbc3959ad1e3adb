"""Go encoding/json byte rules: fixed vectors and properties.

restic itself checks these bytes in test_t1_model_tree.py and
test_t1_model_snapshot.py (names, host names and tags written by restic).
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repofs.model.gojson import dumps

VECTORS = [
    (None, b"null"),
    (True, b"true"),
    (False, b"false"),
    (0, b"0"),
    (-12, b"-12"),
    (2**64 - 1, b"18446744073709551615"),
    ("", b'""'),
    ([], b"[]"),
    ({}, b"{}"),
    ({"b": 1, "a": [1, "x", None]}, b'{"b":1,"a":[1,"x",null]}'),  # insertion order kept
    (("t",), b'["t"]'),
    ("a<b>c&d", b'"a\\u003cb\\u003ec\\u0026d"'),
    ("\u2028\u2029", b'"\\u2028\\u2029"'),
    ("\n\r\t", b'"\\n\\r\\t"'),
    ("\b\f", b'"\\u0008\\u000c"'),
    ("\x00\x01\x1f\x7f", b'"\\u0000\\u0001\\u001f\x7f"'),
    ('"\\', b'"\\"\\\\"'),
    ("\\b\\f", b'"\\\\b\\\\f"'),  # a backslash then b/f: not a backspace escape
    ("\\\b", b'"\\\\\\u0008"'),
    ("Grüße-日本😀\u00a0", "\"Grüße-日本😀\u00a0\"".encode()),
    ("/", b'"/"'),
    # A bad byte in a Go string is written as the escape \ufffd; a surrogate is
    # how a Python str carries such a byte.
    ("bad-\udcff\udcfe", b'"bad-\\ufffd\\ufffd"'),
    ("\ud800x", b'"\\ufffdx"'),
    ("\ufffd", '"\ufffd"'.encode()),  # a real U+FFFD stays raw
]


@pytest.mark.parametrize(("value", "expected"), VECTORS)
def test_vectors(value: object, expected: bytes) -> None:
    assert dumps(value) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_value_round_trip(value: object) -> None:
    assert json.loads(dumps(value)) == value


@given(st.text())
def test_escaping_rules(text: str) -> None:
    out = dumps(text).decode("utf-8")
    assert not re.search("[<>&\u2028\u2029\x00-\x1f]", out)
    # Every escape is one Go writes: \" \\ \n \r \t or \u followed by four hex digits.
    for esc in re.findall(r"\\(u[0-9a-f]{4}|.)", out):
        assert esc in {'"', "\\", "n", "r", "t"} or esc.startswith("u"), esc
    # Characters outside the escaped set appear raw.
    plain = [ch for ch in text if ch >= "\x80" and ch not in "\u2028\u2029"]
    assert all(ch in out for ch in plain if not "\ud800" <= ch <= "\udfff")


@given(st.text(alphabet=st.characters(categories=["Cs"]), max_size=8))
def test_each_surrogate_becomes_one_replacement_escape(text: str) -> None:
    assert dumps(text) == b'"' + b"\\ufffd" * len(text) + b'"'
