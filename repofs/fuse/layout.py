"""The top of the mount: folders of snapshots made from path and time templates.

restic's mount shows each snapshot under paths made from templates (``snapshots/%T``,
``ids/%i``, ``hosts/%h/%T``, ``tags/%t/%T``): ``%T`` is the snapshot time formatted with the
time template, ``%i``/``%I`` the short/long id, ``%u`` the user, ``%h`` the host, ``%t`` each
tag in turn (a snapshot without tags has no ``%t`` path). When a template ends with ``%T``
its folder also gets a ``latest`` symlink to the newest snapshot, and snapshots whose names
clash get ``-1``, ``-2``... appended in time order. Folders before the first ``%`` pattern
exist even when no snapshot fills them.

``build_layout`` is a pure function of the snapshot list, so a refresh builds a new layout
and the file system swaps it in.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..model.ids import short
from ..model.snapshot import Snapshot
from .timefmt import RFC3339, format_layout

DEFAULT_PATH_TEMPLATES = ("ids/%i", "snapshots/%T", "hosts/%h/%T", "tags/%t/%T")
DEFAULT_TIME_TEMPLATE = RFC3339
LATEST = "latest"
_VERBS = "iIuhtT"


@dataclass
class MetaDir:
    """A folder of the layout: names of sub-folders, snapshot folders and links."""

    children: dict[str, MetaDir | SnapshotDir | SnapshotLink] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotDir:
    """A folder showing the root tree of ``snapshot``."""

    snapshot: Snapshot


@dataclass(frozen=True)
class SnapshotLink:
    """A relative symlink (``latest``) to ``target``, a sibling snapshot folder."""

    target: str
    snapshot: Snapshot


@dataclass
class Layout:
    """Every folder of the layout by its path (``""`` is the root, others have no slash
    at either end)."""

    dirs: dict[str, MetaDir]

    @property
    def root(self) -> MetaDir:
        return self.dirs[""]


def check_time_template(template: str) -> None:
    """restic's rules for ``--time-template``; ValueError when broken."""
    if not template:
        raise ValueError("the time template must not be empty")
    if template.startswith("/") or template.endswith("/"):
        raise ValueError("the time template must not start or end with '/'")


def tag_filename(tag: str) -> str:
    """A tag as a file name: ``_`` for an empty tag or ``.``, ``__`` for ``..``, and
    every slash replaced by ``_``."""
    if tag in ("", "."):
        return "_"
    if tag == "..":
        return "__"
    return tag.replace("/", "_")


def expand(template: str, snap: Snapshot, time_text: str) -> tuple[list[str], str | None]:
    """The paths ``template`` gives ``snap`` and, when it ends with ``%T``, the time text
    left off as a suffix (None otherwise). No paths when it uses ``%t`` and there are no
    tags."""
    outs = [""]
    i = 0
    trailing_time = False
    while i < len(template):
        c = template[i]
        if c != "%" or i + 1 >= len(template):
            outs = [o + c for o in outs]
            i += 1
            continue
        verb = template[i + 1]
        i += 2
        if verb == "T":
            if i >= len(template):
                trailing_time = True
            else:
                outs = [o + time_text for o in outs]
        elif verb == "t":
            if not snap.tags:
                return [], None
            outs = [o + tag_filename(tag) for tag in snap.tags for o in outs]
        else:
            sid = snap.id or b""
            repl = {"i": short(sid), "I": sid.hex(), "u": snap.username,
                    "h": snap.hostname}.get(verb, verb)
            outs = [o + repl for o in outs]
    return outs, (time_text if trailing_time else None)


def static_prefix(template: str) -> str:
    """The folder a template always fills: the part before the last slash that precedes
    its first pattern ("" when there is none)."""
    i = 0
    while i < len(template) - 1:
        if template[i] == "%" and template[i + 1] in _VERBS:
            head = template[:i]
            return _clean(head[:head.rfind("/")]) if "/" in head else ""
        i += 1 if template[i] != "%" else 2
    return ""


def _clean(path: str) -> str:
    cleaned = posixpath.normpath("/" + path).strip("/")
    return "" if cleaned == "." else cleaned


class _Builder:
    def __init__(self) -> None:
        self.dirs: dict[str, MetaDir] = {"": MetaDir()}
        self.taken: set[str] = {""}

    def folder(self, path: str) -> MetaDir | None:
        """The folder at ``path``, made with its parents; None if a file is in the way."""
        found = self.dirs.get(path)
        if found is not None:
            return found
        if path in self.taken:
            return None
        parent_path, _, name = path.rpartition("/")
        parent = self.folder(parent_path)
        if parent is None:
            return None
        made = parent.children[name] = MetaDir()
        self.dirs[path] = made
        self.taken.add(path)
        return made

    def place(self, path: str, item: SnapshotDir | SnapshotLink) -> bool:
        """Put ``item`` at ``path`` if it is free; a link may replace a link."""
        if not path or path in self.dirs:
            return False
        parent_path, _, name = path.rpartition("/")
        parent = self.folder(parent_path)
        if parent is None:
            return False
        if path in self.taken and not (isinstance(item, SnapshotLink)
                                       and isinstance(parent.children.get(name), SnapshotLink)):
            return False
        parent.children[name] = item
        self.taken.add(path)
        return True

    def unique(self, base: str) -> str:
        path = base
        n = 0
        while path in self.taken:
            n += 1
            path = f"{base}-{n}"
        return path


def build_layout(snapshots: Sequence[Snapshot], path_templates: Sequence[str] = DEFAULT_PATH_TEMPLATES,
                 time_template: str = DEFAULT_TIME_TEMPLATE) -> Layout:
    """The folders for ``snapshots``; later snapshots win ``latest`` on equal times."""
    b = _Builder()
    for template in path_templates:
        prefix = static_prefix(template)
        if prefix:
            b.folder(prefix)
    newest: dict[str, int] = {}
    for snap in sorted(snapshots, key=lambda s: (s.time.ns, s.id or b"")):
        time_text = format_layout(snap.time, time_template)
        for template in path_templates:
            paths, suffix = expand(template, snap, time_text)
            for raw in paths:
                path = b.unique(_clean(raw + (suffix or "")))
                if not b.place(path, SnapshotDir(snap)):
                    continue
                if suffix is None:
                    continue
                folder = _clean(raw)
                link = _clean(folder + "/" + LATEST)
                if newest.get(folder, snap.time.ns) <= snap.time.ns:
                    target = posixpath.relpath("/" + path, "/" + folder) if folder else path
                    if b.place(link, SnapshotLink(target, snap)):
                        newest[folder] = snap.time.ns
    return Layout(b.dirs)
