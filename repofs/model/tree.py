"""Tree blobs and their nodes, with a JSON codec byte-compatible with restic 0.14.

A tree blob is ``{"nodes":[...]}`` plus a newline; its ID is the SHA-256 of
those bytes, so ``encode_tree`` must write what restic writes: Go field order,
Go's ``omitempty`` rules, Go string escaping, nodes sorted by raw name bytes.

Names are kept as raw bytes (they need not be UTF-8). On the wire they are
Go-quoted (``goquote``) and then JSON-encoded. Link targets, user and group
names, xattr names and errors are plain JSON strings: Go writes each invalid
UTF-8 byte in them as the escape ``\\ufffd``, which reads back as U+FFFD (what
restic restores too). Such a tree decodes fine but re-encodes with a raw
U+FFFD, so only there ``encode_tree(decode_tree(b)) != b``. A ``str`` built
from the file system with ``os.fsdecode`` writes the escape, as restic does.

Modes are Go ``os.FileMode`` values, not POSIX ``st_mode``; ``posix_mode`` and
``go_mode_from_posix`` convert.

The codec here is the reference; ``_treecodec`` (C) does the same for the shapes
restic writes, ~10x faster, and calls back into it for everything else (see
``decode_tree_reference`` / ``encode_tree_reference`` and ``_treecodec.c``).
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError
from . import _treecodec, gojson, goquote, gotime
from .gotime import Timestamp
from .ids import parse_id

__all__ = [
    "Node",
    "new_node",
    "decode_tree",
    "encode_tree",
    "posix_mode",
    "go_mode_from_posix",
    "node_type_from_posix",
]

# Go os.FileMode bits.
MODE_DIR = 1 << 31
MODE_APPEND = 1 << 30
MODE_EXCLUSIVE = 1 << 29
MODE_TEMPORARY = 1 << 28
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_IRREGULAR = 1 << 19
MODE_PERM = 0o777
MODE_TYPE = (
    MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR
)

# Node types.
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
DEV = "dev"
CHARDEV = "chardev"
FIFO = "fifo"
SOCKET = "socket"
IRREGULAR = "irregular"

_POSIX_TYPE = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    DEV: stat.S_IFBLK,
    CHARDEV: stat.S_IFCHR,
    FIFO: stat.S_IFIFO,
    SOCKET: stat.S_IFSOCK,
}
_GO_TYPE = {
    stat.S_IFREG: 0,
    stat.S_IFDIR: MODE_DIR,
    stat.S_IFLNK: MODE_SYMLINK,
    stat.S_IFBLK: MODE_DEVICE,
    stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE,
    stat.S_IFIFO: MODE_NAMED_PIPE,
    stat.S_IFSOCK: MODE_SOCKET,
}
_NODE_TYPE = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFBLK: DEV,
    stat.S_IFCHR: CHARDEV,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCKET,
}


@dataclass(frozen=True, slots=True)
class Node:
    """One entry of a tree, fields in restic's JSON order.

    ``content`` is None for JSON ``null`` (every non-file in restic's trees) and
    a tuple of blob IDs for files (``()`` for an empty file: restic writes
    ``[]``). ``linktarget_raw`` exists in newer restic for link targets that
    are not UTF-8; 0.14 never writes it.
    """

    name: bytes
    type: str = FILE
    mode: int = 0
    mtime: Timestamp = gotime.GO_ZERO
    atime: Timestamp = gotime.GO_ZERO
    ctime: Timestamp = gotime.GO_ZERO
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    inode: int = 0
    device_id: int = 0
    size: int = 0
    links: int = 0
    linktarget: str | None = None
    linktarget_raw: bytes | None = None
    extended_attributes: tuple[tuple[str, bytes], ...] = ()
    device: int = 0
    content: tuple[bytes, ...] | None = None
    subtree: bytes | None = None
    error: str = ""

    @property
    def name_str(self) -> str:
        """The name as a ``str`` (undecodable bytes become surrogates)."""
        return os.fsdecode(self.name)

    def replace(self, **changes: Any) -> Node:
        """A copy with ``changes``: ``dataclasses.replace``, without its cost
        (no ``__init__``, so no checks beyond the field names)."""
        return _treecodec.replace(self, **changes)


_BLANK = Node(b"")


def new_node(**fields: Any) -> Node:
    """``Node(**fields)`` for hot paths: made in C without ``__init__``, which costs
    ~6 us for 21 frozen fields."""
    return _treecodec.replace(_BLANK, **fields)


def _timestamp(value: Any) -> Timestamp:
    return gotime.GO_ZERO if value is None else gotime.parse(value)


def _b64(value: Any) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _node_from_json(obj: dict[str, Any]) -> Node:
    # Go leaves a field at its zero value when it is missing or null.
    get = obj.get
    content = get("content")
    subtree = get("subtree")
    raw_target = get("linktarget_raw")
    return Node(
        name=goquote.unquote(get("name") or ""),
        type=get("type") or "",
        mode=get("mode") or 0,
        mtime=_timestamp(get("mtime")),
        atime=_timestamp(get("atime")),
        ctime=_timestamp(get("ctime")),
        uid=get("uid") or 0,
        gid=get("gid") or 0,
        user=get("user") or "",
        group=get("group") or "",
        inode=get("inode") or 0,
        device_id=get("device_id") or 0,
        size=get("size") or 0,
        links=get("links") or 0,
        linktarget=get("linktarget"),
        linktarget_raw=None if raw_target is None else _b64(raw_target),
        extended_attributes=tuple(
            (x.get("name") or "", _b64(x.get("value"))) for x in get("extended_attributes") or ()
        ),
        device=get("device") or 0,
        content=None if content is None else tuple(parse_id(c) for c in content),
        subtree=None if subtree is None else parse_id(subtree),
        error=get("error") or "",
    )


def _node_from_json_bytes(raw: bytes) -> Node:
    return _node_from_json(json.loads(raw))


def decode_tree_reference(data: bytes) -> list[Node]:
    """``decode_tree`` in Python alone: the specification of the C decoder."""
    doc = json.loads(bytes(data))
    nodes = doc["nodes"] or []
    return [_node_from_json(obj) for obj in nodes]


def decode_tree(data: bytes) -> list[Node]:
    """The nodes of a tree blob, in stored order.

    Unknown fields are ignored and missing ones take their zero value, as in
    Go. Raises IntegrityError when the bytes are not a tree.
    """
    try:
        nodes = _treecodec.decode(data)
        return decode_tree_reference(data) if nodes is None else nodes
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"invalid tree blob: {exc}") from exc


def _node_to_json(node: Node) -> dict[str, Any]:
    obj: dict[str, Any] = {"name": goquote.quote(node.name), "type": node.type}
    if node.mode:
        obj["mode"] = node.mode
    obj["mtime"] = gotime.format(gotime.fix_year(node.mtime))
    obj["atime"] = gotime.format(gotime.fix_year(node.atime))
    obj["ctime"] = gotime.format(gotime.fix_year(node.ctime))
    obj["uid"] = node.uid
    obj["gid"] = node.gid
    if node.user:
        obj["user"] = node.user
    if node.group:
        obj["group"] = node.group
    if node.inode:
        obj["inode"] = node.inode
    if node.device_id:
        obj["device_id"] = node.device_id
    if node.size:
        obj["size"] = node.size
    if node.links:
        obj["links"] = node.links
    if node.linktarget:
        obj["linktarget"] = node.linktarget
    if node.linktarget_raw:
        obj["linktarget_raw"] = base64.b64encode(node.linktarget_raw).decode("ascii")
    if node.extended_attributes:
        obj["extended_attributes"] = [
            {"name": name, "value": base64.b64encode(value).decode("ascii")}
            for name, value in node.extended_attributes
        ]
    if node.device:
        obj["device"] = node.device
    obj["content"] = None if node.content is None else [c.hex() for c in node.content]
    if node.subtree is not None:
        obj["subtree"] = node.subtree.hex()
    if node.error:
        obj["error"] = node.error
    return obj


def _node_json(node: Node) -> bytes:
    return gojson.dumps(_node_to_json(node))


def _sorted_unique(nodes: Iterable[Node]) -> list[Node]:
    ordered = sorted(nodes, key=lambda n: n.name)
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.name == cur.name:
            raise ValueError(f"duplicate name {prev.name!r} in tree")
    return ordered


def encode_tree_reference(nodes: Iterable[Node]) -> bytes:
    """``encode_tree`` in Python alone: the specification of the C encoder."""
    return gojson.dumps({"nodes": [_node_to_json(n) for n in _sorted_unique(nodes)]}) + b"\n"


def encode_tree(nodes: Iterable[Node]) -> bytes:
    """The tree blob restic writes for ``nodes``: sorted by raw name, newline at the end.

    Raises ValueError when two nodes share a name.
    """
    return _treecodec.encode(_sorted_unique(nodes))


_treecodec.configure(Node, Timestamp, gotime.GO_ZERO, _node_from_json_bytes, _node_json,
                     goquote.unquote, goquote.quote)


def posix_mode(node: Node) -> int:
    """``st_mode`` for ``node``: file type from ``node.type``, permission and
    setuid/setgid/sticky bits from its Go mode. Unknown types count as files."""
    mode = _POSIX_TYPE.get(node.type, stat.S_IFREG) | (node.mode & MODE_PERM)
    if node.mode & MODE_SETUID:
        mode |= stat.S_ISUID
    if node.mode & MODE_SETGID:
        mode |= stat.S_ISGID
    if node.mode & MODE_STICKY:
        mode |= stat.S_ISVTX
    return mode


def go_mode_from_posix(st_mode: int) -> int:
    """The Go ``os.FileMode`` restic stores for a POSIX ``st_mode``.

    An unknown file type gets no type bits, as in Go's ``os.Stat`` on Linux.
    """
    mode = (st_mode & MODE_PERM) | _GO_TYPE.get(stat.S_IFMT(st_mode), 0)
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def node_type_from_posix(st_mode: int) -> str:
    """The node ``type`` for a POSIX ``st_mode``.

    An unknown file type counts as a file, as in Go's ``os.Stat`` on Linux.
    """
    return _NODE_TYPE.get(stat.S_IFMT(st_mode), FILE)
