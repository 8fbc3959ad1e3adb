"""Tree nodes from the file system, field for field as restic 0.14 fills them.

From ``lstat`` (or ``fstat`` of an opened file): Go mode bits, the three times in the local
zone (atime is mtime unless ``--with-atime``), uid/gid and their names, inode, device id,
size and link count for files, link count and target for symlinks, link count and ``st_rdev``
for devices, and the extended attributes of everything but symlinks.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import time

from ..model import tree
from ..model.gotime import NS, Timestamp
from ..model.tree import Node

_users: dict[int, str] = {}
_groups: dict[int, str] = {}
_NO_XATTRS = (errno.ENOTSUP, errno.ENODATA)


def user_name(uid: int) -> str:
    """The name of a user id, or "" (cached, as restic caches it)."""
    name = _users.get(uid)
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OverflowError):
            name = ""
        _users[uid] = name
    return name


def group_name(gid: int) -> str:
    name = _groups.get(gid)
    if name is None:
        try:
            name = grp.getgrgid(gid).gr_name
        except (KeyError, OverflowError):
            name = ""
        _groups[gid] = name
    return name


# Zone offsets change on quarter hours (of UTC) in every zone of the tz database since the
# 1970s; a quarter hour with one offset at both ends has it throughout.
_QUARTER = 900
_offsets: dict[int, int] = {}


def _offset(sec: int) -> int:
    try:
        return time.localtime(sec).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return 0


def local_offset(ns: int) -> int:
    """The local zone's offset from UTC, in seconds, at ``ns`` since the epoch."""
    sec = ns // NS
    quarter = sec // _QUARTER
    offset = _offsets.get(quarter)
    if offset is None:
        offset = _offset(quarter * _QUARTER)
        if offset != _offset(quarter * _QUARTER + _QUARTER - 1):
            return _offset(sec)  # the offset changes within this quarter hour
        if len(_offsets) >= 1 << 16:
            _offsets.clear()
        _offsets[quarter] = offset
    return offset


def local_time(ns: int) -> Timestamp:
    """A file time as Go's ``time.Unix`` gives it: in the machine's local zone."""
    return Timestamp(ns, local_offset(ns))


def _same_time(t: Timestamp, ns: int) -> bool:
    return t.ns == ns and t.offset == local_offset(ns)


def xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    """Extended attributes in the order the kernel lists them; none where unsupported.
    An attribute that cannot be read is left out, as restic does."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return ()
        raise
    out = []
    for name in names:
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


def node_from_stat(name: bytes, path: bytes, st: os.stat_result, with_atime: bool = False,
                   content: tuple[bytes, ...] | None = None, size: int | None = None,
                   attrs: tuple[tuple[str, bytes], ...] | None = None) -> Node:
    """The node restic records for ``path`` (named ``name`` in its tree) with status ``st``;
    ``content`` is a file's list of data blobs when already known, ``size`` the bytes read
    from it when that differs from ``st``, ``attrs`` its extended attributes when read already.

    Raises OSError when the link target or the extended attributes cannot be read.
    """
    mode = st.st_mode
    kind = tree.node_type_from_posix(mode)
    mtime = local_time(st.st_mtime_ns)
    atime = local_time(st.st_atime_ns) if with_atime else mtime
    links = device = 0
    target = None
    if kind != tree.FILE:
        size = 0
    if kind == tree.FILE:
        size = st.st_size if size is None else size
        links = st.st_nlink
    elif kind == tree.SYMLINK:
        target = os.fsdecode(os.readlink(path))
        links = st.st_nlink
    elif kind in (tree.DEV, tree.CHARDEV):
        device = st.st_rdev
        links = st.st_nlink
    return tree.new_node(
        name=name,
        type=kind,
        mode=tree.go_mode_from_posix(mode),
        mtime=mtime,
        atime=atime,
        ctime=local_time(st.st_ctime_ns),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        inode=st.st_ino,
        device_id=st.st_dev,
        size=size,
        links=links,
        linktarget=target,
        extended_attributes=() if kind == tree.SYMLINK else attrs if attrs is not None else xattrs(path),
        device=device,
        content=content,
    )


def unchanged_file_node(name: bytes, path: bytes, st: os.stat_result, previous: Node,
                        with_atime: bool = False) -> Node:
    """The node of a file whose content is ``previous``'s: ``node_from_stat`` with the
    parent's content list, or ``previous`` itself when every field would be the same
    (then nothing is built, and comparing the two later is an identity check).

    Raises OSError when the extended attributes cannot be read.
    """
    attrs = xattrs(path)
    if (previous.name == name and previous.type == tree.FILE and previous.size == st.st_size
            and previous.mode == tree.go_mode_from_posix(st.st_mode)
            and _same_time(previous.mtime, st.st_mtime_ns)
            and _same_time(previous.atime, st.st_atime_ns if with_atime else st.st_mtime_ns)
            and _same_time(previous.ctime, st.st_ctime_ns)
            and previous.uid == st.st_uid and previous.gid == st.st_gid
            and previous.inode == st.st_ino and previous.device_id == st.st_dev
            and previous.links == st.st_nlink and previous.extended_attributes == attrs
            and previous.user == user_name(st.st_uid) and previous.group == group_name(st.st_gid)
            and previous.content is not None and previous.subtree is None and previous.device == 0
            and previous.linktarget is None and previous.linktarget_raw is None and not previous.error):
        return previous
    return node_from_stat(name, path, st, with_atime, tuple(previous.content or ()), attrs=attrs)


def file_changed(st: os.stat_result, previous: Node | None, check_ctime: bool = True,
                 check_inode: bool = True) -> bool:
    """restic's test whether a file may differ from ``previous`` (its node in the parent
    snapshot): type, size, mtime, and unless told otherwise ctime and inode."""
    if previous is None or previous.type != tree.FILE:
        return True
    if st.st_size != previous.size or st.st_mtime_ns != previous.mtime.ns:
        return True
    if check_ctime and st.st_ctime_ns != previous.ctime.ns:
        return True
    return check_inode and st.st_ino != previous.inode


def same_node(a: Node, b: Node) -> bool:
    """restic's ``Node.Equals``: every recorded field, times as instants, extended
    attributes as a set."""
    if a is b:
        return True
    return (
        a.name == b.name and a.type == b.type and a.mode == b.mode
        and a.mtime.ns == b.mtime.ns and a.atime.ns == b.atime.ns and a.ctime.ns == b.ctime.ns
        and a.uid == b.uid and a.gid == b.gid and a.user == b.user and a.group == b.group
        and a.inode == b.inode and a.device_id == b.device_id and a.size == b.size
        and a.links == b.links and (a.linktarget or "") == (b.linktarget or "")
        and a.device == b.device and a.content == b.content and a.subtree == b.subtree
        and a.error == b.error
        and len(a.extended_attributes) == len(b.extended_attributes)
        and dict(a.extended_attributes) == dict(b.extended_attributes)
    )


def is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def renamed(node: Node, name: bytes) -> Node:
    return node if node.name == name else node.replace(name=name)
