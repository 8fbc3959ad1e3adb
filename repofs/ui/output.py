"""Text and JSON shapes of restic's output: snapshot tables, ls lines, Go mode strings."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..model import gotime
from ..model.ids import short
from ..model.snapshot import Snapshot

if TYPE_CHECKING:
    from ..model.tree import Node

_TYPE_LETTERS = "dalTLDpSugct?"  # Go's FileMode.String, bits 31 down to 19


# A snapshot's nodes share few modes and few seconds: `ls -l` of 108k entries spent a fifth
# of its time building these strings again and again.
@functools.lru_cache(maxsize=1024)
def go_mode_string(mode: int) -> str:
    """Go's FileMode.String(): type letters (or '-') then rwxrwxrwx."""
    letters = "".join(c for i, c in enumerate(_TYPE_LETTERS) if mode & (1 << (31 - i)))
    perms = "".join(c if mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (letters or "-") + perms


def local_time(ts: gotime.Timestamp) -> str:
    """'2006-01-02 15:04:05' in this machine's zone, as restic shows times."""
    return _local_second(ts.ns // gotime.NS)


@functools.lru_cache(maxsize=4096)
def _local_second(seconds: int) -> str:
    utc = _EPOCH + timedelta(seconds=seconds)
    try:
        t = utc.astimezone()
    except (OverflowError, ValueError):  # Go's zero time west of UTC: a year 0 Python lacks
        t = utc
    # Go pads the year to four digits (0001 for its zero time); strftime does not.
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def snapshot_table(snapshots: Sequence[Snapshot]) -> str:
    rows = [("ID", "Time", "Host", "Tags", "Paths")]
    extra: list[list[tuple[str, ...]]] = []
    for s in snapshots:
        paths = list(s.paths or [""])
        rows.append((short(s.id or b""), local_time(s.time), s.hostname, ",".join(s.tags), paths[0]))
        extra.append([("", "", "", "", p) for p in paths[1:]])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    widths[2] = max(widths[2], 10)
    widths[3] = max(widths[3], 10)

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4]

    body = []
    for r, more in zip(rows[1:], extra):
        body.append(line(r))
        body.extend(line(m) for m in more)
    header = line(rows[0])
    rule = "-" * max(len(x) for x in [header, *body])
    n = len(snapshots)
    return "\n".join([header, rule, *body, rule, f"{n} snapshots"])


def ls_long(node: Node, path: str) -> str:
    """One line of `restic ls -l`."""
    size = node.size if node.type == "file" else 0
    line = (f"{go_mode_string(node.mode)} {node.uid:5d} {node.gid:5d} {size:6d} "
            f"{local_time(node.mtime)} {path}")
    if node.type == "symlink":
        line += f" -> {node.linktarget or ''}"
    return line


def ls_json(node: Node, path: str) -> dict:
    """The object `restic ls --json` prints for one node."""
    doc: dict = {"name": os.fsdecode(node.name), "type": node.type, "path": path,
                 "uid": node.uid, "gid": node.gid}
    if node.type == "file":
        doc["size"] = node.size
    doc["mode"] = node.mode
    doc["permissions"] = go_mode_string(node.mode)
    doc["mtime"] = gotime.format(node.mtime)
    doc["atime"] = gotime.format(node.atime)
    doc["ctime"] = gotime.format(node.ctime)
    doc["struct_type"] = "node"
    return doc
