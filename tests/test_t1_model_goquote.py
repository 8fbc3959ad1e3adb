"""Go strconv quoting of node names: fixed vectors and round trips."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from repofs.model.goquote import quote, unquote

# Raw name -> what Go's strconv.Quote writes between the quotes (FORMAT.md §7.4,
# and the Go rules for the rest).
VECTORS = [
    (b"", ""),
    (b"hello.txt", "hello.txt"),
    (b"bad-\xff\xfe-utf8.txt", "bad-\\xff\\xfe-utf8.txt"),
    (b"tab\there\x01.txt", "tab\\there\\x01.txt"),
    ("nbsp\u00a0x.txt".encode(), "nbsp\\u00a0x.txt"),
    (b'a"b\\\\c<d>&e.txt', 'a\\"b\\\\\\\\c<d>&e.txt'),
    ("Grüße-日本.txt".encode(), "Grüße-日本.txt"),
    (b"\x07\x08\x0c\n\r\t\x0b", "\\a\\b\\f\\n\\r\\t\\v"),
    (b"\x00\x1f\x7f", "\\x00\\x1f\\x7f"),
    ("\u2028\u200b\u00ad".encode(), "\\u2028\\u200b\\u00ad"),
    ("\U000e0001".encode(), "\\U000e0001"),  # a format character above U+FFFF
    ("😀\u0301".encode(), "😀\u0301"),  # symbol and combining mark are printable
    (b"\xed\xa0\x80", "\\xed\\xa0\\x80"),  # an encoded surrogate is invalid UTF-8
    (b"\xe6\x97x", "\\xe6\\x97x"),  # truncated sequence: one escape per byte
    (b"\xc0\xaf", "\\xc0\\xaf"),  # overlong encoding
    (b"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"),  # above U+10FFFF
    ("\ufffd".encode(), "\ufffd"),  # a real U+FFFD is printable
    ("\u3000".encode(), "\\u3000"),  # ideographic space is Zs, not printable
]


@pytest.mark.parametrize(("raw", "quoted"), VECTORS)
def test_quote_vectors(raw: bytes, quoted: str) -> None:
    assert quote(raw) == quoted
    assert unquote(quoted) == raw


def test_unquote_accepts_other_go_spellings() -> None:
    assert unquote("\\101\\377") == b"A\xff"  # octal escapes are raw bytes
    assert unquote("\\u00e9\\U0001F600") == "é😀".encode()
    assert unquote("\\xFF") == b"\xff"
    assert unquote("é") == "é".encode()


@pytest.mark.parametrize(
    "bad", ["\\", "x\\", "\\q", "\\x4", "\\xzz", "\\u12", "\\ud800", "\\U00110000", "\\400", "\\'"]
)
def test_unquote_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(ValueError):
        unquote(bad)


@given(st.binary(max_size=64))
@example(b"\xff" * 3)
def test_round_trip_bytes(raw: bytes) -> None:
    assert unquote(quote(raw)) == raw


@given(st.text(max_size=32))
def test_round_trip_text(text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    assert unquote(quote(raw)) == raw


@given(st.binary(max_size=64))
def test_quoted_form_is_printable(raw: bytes) -> None:
    quoted = quote(raw)
    body = quoted.replace("\\\\", "").replace('\\"', "")
    assert '"' not in body
    for ch in quoted:
        assert ch == " " or unicodedata.category(ch)[0] in "LMNPS"


@given(st.text(alphabet=st.characters(blacklist_characters='"\\'), max_size=32))
def test_unescaped_printable_text_is_unchanged(text: str) -> None:
    printable = all(ch == " " or unicodedata.category(ch)[0] in "LMNPS" for ch in text)
    assert (quote(text.encode("utf-8", "surrogatepass")) == text) == printable
