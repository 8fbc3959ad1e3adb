"""Snapshot records, their JSON codec (restic 0.14 bytes) and restic's filters.

A snapshot file holds compact Go JSON without a trailing newline. Fields newer
restic versions add (``program_version``, ``summary``) are ignored on read and
never written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError
from . import gojson, gotime
from .gotime import Timestamp
from .ids import parse_id, short

__all__ = [
    "Snapshot",
    "decode_snapshot",
    "encode_snapshot",
    "to_json_dict",
    "split_tags",
    "matches",
    "latest",
]


@dataclass(slots=True, kw_only=True)
class Snapshot:
    """One backup run, fields in restic's JSON order.

    ``id`` is the snapshot file's ID (the hash of the stored, encrypted file);
    it is not part of the JSON and is None for a snapshot not yet saved.
    """

    time: Timestamp
    parent: bytes | None = None
    tree: bytes
    paths: list[str] = field(default_factory=list)
    hostname: str = ""
    username: str = ""
    uid: int = 0
    gid: int = 0
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    original: bytes | None = None
    id: bytes | None = None


def _id_or_none(value: Any) -> bytes | None:
    return None if value is None else parse_id(value)


def decode_snapshot(data: bytes, id: bytes | None = None) -> Snapshot:  # noqa: A002
    """A snapshot from its JSON; raises IntegrityError when it is not one."""
    what = f"snapshot {id.hex()}" if id is not None else "snapshot"
    try:
        obj = json.loads(data)
        get = obj.get
        tree = get("tree")
        if tree is None:
            raise ValueError("no tree")
        return Snapshot(
            time=gotime.GO_ZERO if get("time") is None else gotime.parse(get("time")),
            parent=_id_or_none(get("parent")),
            tree=parse_id(tree),
            paths=list(get("paths") or ()),
            hostname=get("hostname") or "",
            username=get("username") or "",
            uid=get("uid") or 0,
            gid=get("gid") or 0,
            excludes=list(get("excludes") or ()),
            tags=list(get("tags") or ()),
            original=_id_or_none(get("original")),
            id=id,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"invalid {what}: {exc}") from exc


def _fields(s: Snapshot) -> dict[str, Any]:
    obj: dict[str, Any] = {"time": gotime.format(s.time)}
    if s.parent is not None:
        obj["parent"] = s.parent.hex()
    obj["tree"] = s.tree.hex()
    obj["paths"] = list(s.paths)
    if s.hostname:
        obj["hostname"] = s.hostname
    if s.username:
        obj["username"] = s.username
    if s.uid:
        obj["uid"] = s.uid
    if s.gid:
        obj["gid"] = s.gid
    if s.excludes:
        obj["excludes"] = list(s.excludes)
    if s.tags:
        obj["tags"] = list(s.tags)
    if s.original is not None:
        obj["original"] = s.original.hex()
    return obj


def encode_snapshot(s: Snapshot) -> bytes:
    """The bytes restic 0.14 stores for ``s`` (no trailing newline)."""
    return gojson.dumps(_fields(s))


def to_json_dict(s: Snapshot) -> dict[str, Any]:
    """What ``restic snapshots --json`` prints for ``s``: its fields, then id and short_id."""
    obj = _fields(s)
    obj["id"] = None if s.id is None else s.id.hex()
    obj["short_id"] = "" if s.id is None else short(s.id)
    return obj


def split_tags(group: str) -> list[str]:
    """One ``--tag`` value as restic reads it: split at commas, blanks stripped."""
    return [t.strip() for t in group.split(",")]


def _has_tags(s: Snapshot, wanted: list[str]) -> bool:
    for tag in wanted:
        if tag == "" and not s.tags:
            return True  # an empty tag selects untagged snapshots
        if tag not in s.tags:
            return False
    return True


def matches(
    s: Snapshot,
    hosts: Sequence[str] = (),
    tags: Sequence[str] = (),
    paths: Sequence[str] = (),
) -> bool:
    """restic's snapshot filter; an empty filter matches everything.

    ``hosts``: the hostname is one of them. ``tags``: each item is a
    comma-separated group whose tags must all be present; groups are alternatives
    (``""`` matches untagged snapshots). ``paths``: each one is among
    ``s.paths``, compared as given (callers make them absolute and clean).
    """
    if hosts and s.hostname not in hosts:
        return False
    if tags and not any(_has_tags(s, split_tags(group)) for group in tags):
        return False
    return all(p in s.paths for p in paths)


def latest(
    snapshots: Iterable[Snapshot],
    hosts: Sequence[str] = (),
    tags: Sequence[str] = (),
    paths: Sequence[str] = (),
) -> Snapshot | None:
    """The newest matching snapshot (the last seen on equal times), or None."""
    best: Snapshot | None = None
    for s in snapshots:
        if matches(s, hosts, tags, paths) and (best is None or s.time.ns >= best.time.ns):
            best = s
    return best
