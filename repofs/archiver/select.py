"""The exclude options of ``backup``, with restic 0.14's rules.

By path (before ``lstat``): ``--exclude``/``--iexclude`` patterns and the pattern files, where
a later ``!pattern`` takes back an earlier match (an excluded folder is never entered, so what
lies inside it stays excluded), and ``--exclude-if-present``/``--exclude-caches``, which drop
the contents of a folder holding a tag file but keep the tag file itself.

By status: ``--exclude-larger-than`` (folders always pass) and ``--one-file-system`` (entries
on another device than their target are dropped, except the folder a file system is mounted
on). Every check takes an absolute path; all are safe to call from worker threads.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterable, Sequence

from ..errors import UsageError
from ..patterns import PatternList, parse_all
from .targets import clean, dirname, join

CACHEDIR_TAG = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55"


def read_pattern_files(files: Iterable[str]) -> list[str]:
    """Patterns from files: one a line, trimmed; blank lines and ``#`` comments skipped;
    ``$VAR``/``${VAR}`` expanded from the environment (``$$`` is a dollar sign)."""
    out = []
    for name in files:
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read pattern file {name}: {exc.strerror}") from None
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(_expand(line))
    return out


_VAR = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+|\$))")


def _expand(text: str) -> str:
    """Go's ``os.Expand`` with restic's mapping: ``$$`` stays a dollar sign."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        return "$" if name == "$" else os.environ.get(name, "")
    return _VAR.sub(value, text)


def parse_size(text: str) -> int:
    """``--exclude-larger-than``: a number with an optional b/k/m/g/t suffix (powers of 1024)."""
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    if not text:
        raise UsageError("expected size, got empty string")
    unit = units.get(text[-1].lower())
    number = text[:-1] if unit else text
    try:
        return int(number, 10) * (unit or 1)
    except ValueError:
        raise UsageError(f"invalid size {text!r}") from None


class _TagFile:
    """``--exclude-if-present NAME[:HEADER]``."""

    def __init__(self, spec: str) -> None:
        if not spec:
            raise UsageError("name for exclusion tagfile is empty")
        name, colon, header = spec.partition(":")
        if colon and not name:
            raise UsageError("no name for exclusion tagfile provided")
        self.name = os.fsencode(name)
        self.header = os.fsencode(header)
        self._dirs: dict[bytes, bool] = {}
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    def rejects(self, path: bytes) -> bool:
        folder, _, leaf = path.rpartition(b"/")
        if leaf == self.name:
            return False
        with self._lock:
            hit = self._dirs.get(folder)
            if hit is None:
                hit = self._dirs[folder] = self._tagged(folder or b"/")
        return hit

    def _tagged(self, folder: bytes) -> bool:
        tag = join(folder, self.name)
        try:
            os.lstat(tag)
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.warnings.append(f"could not access exclusion tagfile: {exc}")
            return False
        if not self.header:
            return True
        try:
            with open(tag, "rb") as f:
                head = f.read(len(self.header))
        except OSError as exc:
            self.warnings.append(f"could not open exclusion tagfile: {exc}")
            return False
        if head != self.header:
            shown = os.fsdecode(tag)
            if len(head) < len(self.header):
                self.warnings.append(f"invalid (too short) signature in exclusion tagfile {shown!r}")
            else:
                self.warnings.append(f"invalid signature in exclusion tagfile {shown!r}")
            return False
        return True


class _Devices:
    """``--one-file-system``: the device of each target."""

    def __init__(self, targets: Sequence[bytes]) -> None:
        self.devices: dict[bytes, int] = {}
        for t in targets:
            path = clean(os.path.abspath(t))
            self.devices[path] = os.lstat(path).st_dev

    def allowed(self, path: bytes, device: int) -> bool:
        folder = path
        while True:
            dev = self.devices.get(folder)
            if dev is not None:
                return dev == device
            parent = dirname(folder)
            if parent == folder:
                return False
            folder = parent

    def rejects(self, path: bytes, st: os.stat_result) -> bool:
        path = clean(path)
        if self.allowed(path, st.st_dev):
            return False
        if not stat.S_ISDIR(st.st_mode):
            return True
        parent = dirname(path)
        try:  # keep the folder a file system is mounted on
            return not self.allowed(parent, os.lstat(parent).st_dev)
        except OSError:
            return True


class Selector:
    """Decides what a backup includes; ``by_name`` and ``by_stat`` say True to keep."""

    def __init__(self, excludes: Sequence[str] = (), iexcludes: Sequence[str] = (),
                 exclude_if_present: Sequence[str] = (), exclude_caches: bool = False,
                 exclude_larger_than: int | None = None, one_file_system: bool = False,
                 targets: Sequence[bytes] = ()) -> None:
        self.excludes = PatternList(parse_all(excludes))
        self.iexcludes = PatternList(parse_all(p.lower() for p in iexcludes))
        specs = list(exclude_if_present) + ([CACHEDIR_TAG] if exclude_caches else [])
        self.tag_files = [_TagFile(s) for s in specs]
        self.max_size = exclude_larger_than
        self.devices = _Devices(targets) if one_file_system else None

    @property
    def filters_by_stat(self) -> bool:
        return self.max_size is not None or self.devices is not None

    def by_name(self, path: bytes) -> bool:
        if self.iexcludes or self.excludes:
            text = os.fsdecode(path)
            if self.iexcludes and self.iexcludes.match(text.lower()):
                return False
            if self.excludes and self.excludes.match(text):
                return False
        return not any(t.rejects(path) for t in self.tag_files)

    def by_stat(self, path: bytes, st: os.stat_result) -> bool:
        if self.devices is not None and self.devices.rejects(path, st):
            return False
        if self.max_size is not None and not stat.S_ISDIR(st.st_mode) and st.st_size > self.max_size:
            return False
        return True

    def warnings(self) -> list[str]:
        """Tag-file problems met so far (each reported once)."""
        out = []
        for t in self.tag_files:
            out.extend(t.warnings)
            t.warnings.clear()
        return out
