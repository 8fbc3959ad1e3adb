"""Include/exclude patterns with restic's syntax and matching rules.

A pattern is a slash-separated path whose components are shell globs (Go's
``filepath.Match``: ``*``, ``?``, ``[a-z]``, ``[^a-z]``, ``\\`` escapes), plus ``**``
as a component of its own, standing for any number of components (none included).
A leading ``!`` negates a pattern: a later ``!pattern`` takes back what earlier
patterns matched.

How a pattern meets a path (an absolute path such as ``/home/user/file``):

* A pattern with a leading ``/`` is anchored: its components must match the first
  components of the path. ``/home`` matches ``/home`` and everything below it.
* A pattern without one matches any run of consecutive components anywhere in the
  path: ``user/*.txt`` matches ``/home/user/a.txt`` and ``/home/user/a.txt/x``.

So a pattern that matches a folder matches everything inside it as well. Patterns
are cleaned like paths first (``a//b/`` is ``a/b``). Everything is ``str``; raw
byte paths come in through ``os.fsdecode``, so a ``?`` stands for one character or
one undecodable byte, as it does for restic.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["BadPattern", "Pattern", "PatternList", "parse", "parse_all", "split_path"]

_ROOT = "/"
_GLOB_CHARS = frozenset("\\[]*?")


class BadPattern(UsageError):
    """A pattern Go's ``filepath.Match`` would reject as malformed."""


@dataclass(frozen=True, slots=True)
class _Part:
    """One pattern component: a literal, a compiled glob, or ``**`` (both None)."""

    text: str
    literal: str | None
    glob: re.Pattern[str] | None

    @property
    def is_any_depth(self) -> bool:
        return self.literal is None and self.glob is None

    def matches(self, component: str) -> bool:
        if self.literal is not None:
            return self.literal == component
        assert self.glob is not None
        return self.glob.fullmatch(component) is not None


def split_path(path: str) -> list[str]:
    """Components of a cleaned path; an absolute path starts with the component ``/``."""
    parts = path.split("/")
    if parts[0] == "":
        parts[0] = _ROOT
    return [p for i, p in enumerate(parts) if p or i == 0]


def _clean(pattern: str) -> str:
    """Go's ``filepath.Clean``: no repeated slashes, ``.`` or ``..`` where avoidable."""
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _class_char(glob: str, i: int, whole: str) -> tuple[str, int]:
    """One character of a ``[...]`` class at ``glob[i]`` (escapes undone) and the next index."""
    if i >= len(glob) or glob[i] in "-]":
        raise BadPattern(f"invalid pattern {whole!r}: malformed character class")
    if glob[i] == "\\":
        i += 1
        if i >= len(glob):
            raise BadPattern(f"invalid pattern {whole!r}: malformed character class")
    if i + 1 >= len(glob):
        raise BadPattern(f"invalid pattern {whole!r}: unterminated character class")
    return glob[i], i + 1


def _compile_glob(glob: str, whole: str) -> re.Pattern[str]:
    """A regular expression equivalent to ``filepath.Match(glob, ·)`` on one component."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= len(glob):
                raise BadPattern(f"invalid pattern {whole!r}: trailing backslash")
            out.append(re.escape(glob[i + 1]))
            i += 2
        elif c == "[":
            i += 1
            negated = i < len(glob) and glob[i] == "^"
            if negated:
                i += 1
            ranges: list[str] = []
            first = True
            while True:
                if not first and i < len(glob) and glob[i] == "]":
                    i += 1
                    break
                lo, i = _class_char(glob, i, whole)
                hi = lo
                if glob[i] == "-":
                    hi, i = _class_char(glob, i + 1, whole)
                if lo <= hi:  # an inverted range is legal and matches nothing
                    ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")
                first = False
            body = "".join(ranges)
            if negated:
                out.append(f"[^{body}]" if body else "(?s:.)")
            else:
                out.append(f"[{body}]" if body else "(?!)")
        elif c == "]":
            # Go treats a lone ']' as a literal character.
            out.append(re.escape(c))
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _part(text: str, whole: str) -> _Part:
    if text == "**":
        return _Part(text, None, None)
    if _GLOB_CHARS.isdisjoint(text):
        return _Part(text, text, None)
    return _Part(text, None, _compile_glob(text, whole))


_STAR = _Part("*", None, re.compile("[^/]*", re.DOTALL))


@dataclass(frozen=True, slots=True)
class Pattern:
    """One parsed pattern; ``original`` is the text as given."""

    original: str
    parts: tuple[_Part, ...]
    negated: bool = False

    @property
    def anchored(self) -> bool:
        return bool(self.parts) and self.parts[0].literal == _ROOT

    def match(self, path: str) -> bool:
        """Whether ``path`` (or a folder above it) is what the pattern names."""
        return _match(self.parts, split_path(path))

    def child_may_match(self, path: str) -> bool:
        """Whether something below the folder ``path`` could match: always true for an
        unanchored pattern, otherwise decided by the pattern's leading components."""
        return _child_match(self.parts, split_path(path))


def parse(text: str) -> Pattern:
    """A pattern from its text; raises BadPattern for malformed globs or an empty pattern."""
    negated = text.startswith("!")
    body = text[1:] if negated else text
    if not body:
        raise BadPattern(f"invalid pattern {text!r}: empty pattern")
    parts = tuple(_part(p, text) for p in split_path(_clean(body)))
    return Pattern(text, parts, negated)


def parse_all(texts: Iterable[str]) -> list[Pattern]:
    """Patterns from texts, skipping empty ones (as restic does)."""
    return [parse(t) for t in texts if t]


def _match(parts: Sequence[_Part], comps: Sequence[str]) -> bool:
    """Whether ``parts`` match a run of ``comps``: from the start if anchored, else anywhere."""
    for pos, part in enumerate(parts):
        if part.is_any_depth:
            # Try '**' as zero, one, two... single-component wildcards.
            head, tail = list(parts[:pos]), list(parts[pos + 1:])
            for n in range(len(comps) - len(parts) + 2):
                if _match(head + [_STAR] * n + tail, comps):
                    return True
            return False
    if not parts:
        return not comps
    if len(parts) > len(comps):
        return False
    if parts[0].literal == _ROOT:
        offsets: Iterable[int] = (0,)
    else:
        # An unanchored pattern never matches the root marker itself.
        first = 1 if comps[0] == _ROOT else 0
        offsets = range(len(comps) - len(parts), first - 1, -1)
    for off in offsets:
        if all(parts[i].matches(comps[off + i]) for i in range(len(parts) - 1, -1, -1)):
            return True
    return False


def _child_match(parts: Sequence[_Part], comps: Sequence[str]) -> bool:
    if not parts or parts[0].literal != _ROOT:
        return True
    cut = next((i for i, p in enumerate(parts) if p.is_any_depth), None)
    if cut is not None and len(comps) >= cut:
        comps = comps[:cut]
    n = min(len(comps), len(parts))
    return _match(parts[:n], comps)


class PatternList:
    """Ordered patterns where a later ``!pattern`` undoes earlier matches, as restic's
    ``--exclude``/``--include`` lists work."""

    def __init__(self, patterns: Iterable[Pattern | str]) -> None:
        self.patterns = [parse(p) if isinstance(p, str) else p for p in patterns if p]
        self._negations = any(p.negated for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def match(self, path: str) -> bool:
        return self.match_with_child(path, children=False)[0]

    def match_with_child(self, path: str, children: bool = True) -> tuple[bool, bool]:
        """(path matches, something below path may match) for the whole list."""
        if not self.patterns:
            return False, False
        comps = split_path(path)
        matched = child = False
        for pat in self.patterns:
            hit = _match(pat.parts, comps)
            if pat.negated:
                matched = matched and not hit
                child = child and not hit
                continue
            matched = matched or hit
            child = child or (_child_match(pat.parts, comps) if children else True)
            if matched and child and not self._negations:
                break
        return matched, child
