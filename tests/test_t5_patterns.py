"""Include/exclude patterns: restic's matching rules, with `restic restore` as the oracle."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from restic_util import backup, init_repo, needs_restic, restic

from repofs.patterns import BadPattern, PatternList, parse, split_path


@pytest.mark.parametrize("pattern,path,expected", [
    ("/home", "/home", True),
    ("/home", "/home/user/file", True),
    ("/home", "/srv/home", False),
    ("home", "/srv/home", True),
    ("home", "/srv/home/x/y", True),
    ("home", "/homes", False),
    ("user/*.txt", "/home/user/a.txt", True),
    ("user/*.txt", "/home/user/sub/a.txt", False),
    ("*.txt", "/a.txt/inside", True),
    ("*", "/", False),
    ("/*", "/anything", True),
    ("?", "/ab", False),
    ("??", "/ab", True),
    ("?", "/é", True),
    ("[a-c]x", "/bx", True),
    ("[^a-c]x", "/bx", False),
    ("[^a-c]x", "/dx", True),
    ("[c-a]x", "/bx", False),
    ("[\\]]", "/]", True),
    ("a]", "/a]", True),
    ("\\*", "/*", True),
    ("\\*", "/x", False),
    ("**", "/a/b/c", True),
    ("/a/**/c", "/a/c", True),
    ("/a/**/c", "/a/b/x/c", True),
    ("/a/**/c", "/b/a/c", False),
    ("/a/**", "/a/b", True),
    ("**/foo", "/x/y/foo", True),
    ("a/**/b/**/c", "/a/1/b/2/3/c", True),
    ("a/**/b/**/c", "/a/1/c/2/b", False),
    ("/docs//deep/", "/docs/deep/x", True),
    ("/docs/./x/../deep", "/docs/deep", True),
    ("/", "/anything", True),
])
def test_match(pattern: str, path: str, expected: bool) -> None:
    assert parse(pattern).match(path) is expected


@pytest.mark.parametrize("pattern", ["[", "[]", "[]a]", "[a-", "[a-]", "[-a]", "x\\", "[^]", "[\\"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(BadPattern, match="invalid pattern"):
        parse(pattern)


def test_empty_patterns_are_skipped_in_lists() -> None:
    assert not PatternList(["", ""])
    with pytest.raises(BadPattern):
        parse("!")


@pytest.mark.parametrize("pattern,path,child", [
    ("/a/b/c", "/a", True),
    ("/a/b/c", "/a/b", True),
    ("/a/b/c", "/x", False),
    ("/a/b/c", "/a/x", False),
    ("/a/**/c", "/a/x/y", True),
    ("/a/**/c", "/b", False),
    ("c", "/anything", True),
])
def test_child_may_match(pattern: str, path: str, child: bool) -> None:
    assert parse(pattern).child_may_match(path) is child


def test_negation_takes_back_earlier_matches() -> None:
    pats = PatternList(["*.txt", "!keep.txt"])
    assert pats.match("/a/drop.txt")
    assert not pats.match("/a/keep.txt")
    assert PatternList(["!keep.txt", "*.txt"]).match("/a/keep.txt")


def test_split_path() -> None:
    assert split_path("/a/b") == ["/", "a", "b"]
    assert split_path("a/b") == ["a", "b"]
    assert split_path("/") == ["/"]


_glob_alphabet = st.text(alphabet="ab*?", max_size=6)
_names = st.text(alphabet="ab", min_size=1, max_size=6)


@given(_glob_alphabet.filter(bool), _names)
def test_simple_globs_agree_with_fnmatch(glob: str, name: str) -> None:
    # Without classes or escapes, Go's filepath.Match on one component is fnmatch.
    assert parse(glob).match("/" + name) == fnmatch.fnmatchcase(name, glob)


_components = st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=5)


@given(_components, _components)
def test_anchored_literal_is_a_prefix_test(pattern: list[str], path: list[str]) -> None:
    expected = path[:len(pattern)] == pattern
    assert parse("/" + "/".join(pattern)).match("/" + "/".join(path)) is expected


@given(_components, _components)
def test_unanchored_literal_is_a_window_test(pattern: list[str], path: list[str]) -> None:
    n = len(pattern)
    expected = any(path[i:i + n] == pattern for i in range(len(path) - n + 1))
    assert parse("/".join(pattern)).match("/" + "/".join(path)) is expected


@given(st.lists(st.text(alphabet="xyz", min_size=1, max_size=2), max_size=4))
def test_double_star_spans_any_depth(middle: list[str]) -> None:
    path = "/" + "/".join(["a", *middle, "b"])
    assert parse("/a/**/b").match(path)
    assert parse("a/**/b").match("/pre" + path)


# -- restic as the oracle ---------------------------------------------------------------------

LAYOUT = ["docs/a.txt", "docs/b.md", "docs/deep/c.txt", "docs/deep/deeper/d.txt", "src/x.py",
          "src/deep/y.py", "src/deep/z.txt", "top.txt", "Grüße/ü.txt", "emptydir/"]
PATTERNS = ["*.txt", "/docs", "deep", "/docs/deep", "docs/*.md", "**/deeper", "/src/**/*.txt",
            "[a-c].txt", "?.py", "/*.txt", "deep/*", "ü.txt", "emptydir"]


@pytest.fixture(scope="module")
def pattern_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("patterns")
    src = base / "src"
    for rel in LAYOUT:
        p = src / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(rel)
    repo = init_repo(base / "repo")
    backup(repo, src)
    return repo


def _all_paths() -> list[str]:
    out = set()
    for rel in LAYOUT:
        parts = rel.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            out.add("/" + "/".join(parts[:i]))
    return sorted(out)


def _is_dir(path: str) -> bool:
    return any(rel.startswith(path[1:] + "/") for rel in LAYOUT)


def _restored(target: Path) -> set[str]:
    found = set()
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            found.add("/" + os.path.relpath(os.path.join(root, name), target))
    return found


def _predict(patterns: PatternList, include: bool) -> set[str]:
    """What restic's restorer keeps: walk from the top, ask the filter at each node."""
    kept: set[str] = set()
    for path in _all_paths():
        parents = ["/" + "/".join(path[1:].split("/")[:i]) for i in range(1, path.count("/"))]
        if include:
            walk_in = all(patterns.match_with_child(p)[1] for p in parents)
            if walk_in and patterns.match(path):
                kept.add(path)
                kept.update(parents)  # the restorer creates the folders on the way
        elif not any(patterns.match(p) for p in [*parents, path]):
            kept.add(path)
    return kept


@needs_restic
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("mode", ["exclude", "include"])
def test_restic_restore_agrees(pattern_repo: Path, tmp_path: Path, pattern: str, mode: str) -> None:
    restic(pattern_repo, "restore", "latest", "--target", str(tmp_path), f"--{mode}", pattern)
    got = _restored(tmp_path)
    want = _predict(PatternList([pattern]), include=mode == "include")
    if mode == "include":
        # restic creates empty folders it walked into only when they match themselves.
        got = {p for p in got if not _is_dir(p) or p in want}
    assert got == want
