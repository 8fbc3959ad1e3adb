"""Go ``strconv.Quote`` and its inverse, without the surrounding quotes.

restic stores node names Go-quoted, so names that are not valid UTF-8 survive
the trip through JSON. The rules, per UTF-8 character of the raw name:

* a byte that does not start a valid UTF-8 sequence -> ``\\xHH``;
* ``"`` -> ``\\"`` and ``\\`` -> ``\\\\``;
* printable characters (Unicode categories L, M, N, P, S, and the ASCII space)
  -> themselves;
* ``\\a \\b \\f \\n \\r \\t \\v`` -> those escapes;
* other characters below U+0020, and U+007F -> ``\\xHH``;
* any other character -> ``\\uHHHH``, or ``\\UHHHHHHHH`` above U+FFFF.

Hex digits are lower case. Printability comes from Python's ``unicodedata``,
whose Unicode version may be newer than the Go that wrote a tree; characters
assigned in between quote differently. That only changes bytes, never names:
``unquote`` reads both forms.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["quote", "unquote"]

# ASCII that quotes as itself: printable, minus '"' and '\'.
_ASCII_PLAIN = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_NAMED = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


@lru_cache(maxsize=4096)
def _escape_char(ch: str) -> str:
    """The quoted form of one character of a correctly decoded name."""
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: one byte of invalid UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if ch == " " or unicodedata.category(ch)[0] in "LMNPS":
        return ch
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quote(raw: bytes) -> str:
    """``raw`` Go-quoted, without the surrounding double quotes."""
    if _ASCII_PLAIN.fullmatch(raw):
        return raw.decode("ascii")
    # Python's strict UTF-8 decoder rejects exactly what Go's does, and
    # surrogateescape keeps every rejected byte as one surrogate.
    text = raw.decode("utf-8", "surrogateescape")
    return "".join([_escape_char(ch) for ch in text])


_SIMPLE = {
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
    "\\": 0x5C,
    '"': 0x22,
}
_HEX = re.compile(r"[0-9a-fA-F]+")


def _utf8(text: str) -> bytes:
    # A str from JSON may hold lone surrogates ("\ud800"); Go's JSON decoder
    # turns those into U+FFFD.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return re.sub("[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


def unquote(s: str) -> bytes:
    """The raw bytes of a Go-quoted string (without its double quotes).

    ``\\xHH`` and three-digit octal escapes are raw bytes; ``\\u``/``\\U``
    escapes are code points, stored as UTF-8. Raises ValueError on a malformed
    escape; unlike Go, a raw ``"`` or newline is accepted.
    """
    if "\\" not in s:
        return _utf8(s)
    out = bytearray()
    pos = 0
    end = len(s)
    while True:
        nxt = s.find("\\", pos)
        if nxt < 0:
            out += _utf8(s[pos:])
            return bytes(out)
        out += _utf8(s[pos:nxt])
        if nxt + 1 >= end:
            raise ValueError(f"bad Go-quoted string {s!r}: trailing backslash")
        kind = s[nxt + 1]
        pos = nxt + 2
        simple = _SIMPLE.get(kind)
        if simple is not None:
            out.append(simple)
            continue
        if kind in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[kind]
            digits = s[pos : pos + width]
            if len(digits) != width or not _HEX.fullmatch(digits):
                raise ValueError(f"bad Go-quoted string {s!r}: bad \\{kind} escape")
            value = int(digits, 16)
            pos += width
            if kind == "x":
                out.append(value)
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError(f"bad Go-quoted string {s!r}: invalid code point")
            else:
                out += chr(value).encode("utf-8")
            continue
        if "0" <= kind <= "7":
            digits = s[nxt + 1 : nxt + 4]
            if len(digits) != 3 or any(not "0" <= d <= "7" for d in digits):
                raise ValueError(f"bad Go-quoted string {s!r}: bad octal escape")
            value = int(digits, 8)
            if value > 0xFF:
                raise ValueError(f"bad Go-quoted string {s!r}: octal escape too large")
            out.append(value)
            pos = nxt + 4
            continue
        raise ValueError(f"bad Go-quoted string {s!r}: unknown escape \\{kind}")
