"""JSON bytes exactly as Go's ``encoding/json`` writes them.

restic hashes its JSON (tree IDs), so the bytes must match Go's, not just the
values. Go differs from Python's ``json`` in a few places that matter here:

* compact output, no spaces;
* ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026``;
* U+2028 and U+2029 are written as ``\\u2028`` and ``\\u2029``;
* backspace and form feed are ``\\u0008`` and ``\\u000c`` (Python: ``\\b``, ``\\f``);
* any other non-ASCII character is written raw, as UTF-8;
* invalid UTF-8 in a Go string becomes the six ASCII characters ``\\ufffd``, one
  per bad byte. A Python ``str`` cannot hold invalid UTF-8; it holds lone
  surrogates instead (``os.fsdecode`` maps each bad byte to one surrogate), so
  every surrogate code point is written as ``\\ufffd``. That is lossy, as it is
  in Go.

Objects are written in the dict's insertion order: callers build dicts in Go
struct field order. (Go sorts the keys of *maps*; callers that model a Go map
must sort it themselves.)
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["dumps"]

_encode = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
).encode

# Cheap test: does the output need any fix-up at all? False positives (such as
# an escaped backslash followed by "b") are harmless: the fix-up is exact.
_MAYBE = re.compile("[<>&\u2028\u2029\ud800-\udfff]|\\\\[bf]")
# Exact fix-up: escape pairs are consumed as a whole so that "\\\\b" (an escaped
# backslash, then the letter b) is never mistaken for "\\b".
_FIX = re.compile("\\\\.|[<>&\u2028\u2029\ud800-\udfff]")
_REPLACE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
    "\\b": "\\u0008",
    "\\f": "\\u000c",
}


def _fix(match: re.Match[str]) -> str:
    text = match.group()
    if "\ud800" <= text <= "\udfff":
        return "\\ufffd"
    return _REPLACE.get(text, text)


def dumps(obj: Any) -> bytes:
    """``obj`` (dicts, lists, tuples, str, int, bool, None) as Go JSON bytes.

    No trailing newline; callers add one where restic writes one.
    """
    text = _encode(obj)
    if _MAYBE.search(text):
        text = _FIX.sub(_fix, text)
    return text.encode("utf-8")
