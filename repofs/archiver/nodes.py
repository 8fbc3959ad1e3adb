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


def local_time(ns: int) -> Timestamp:
    """A file time as Go's ``time.Unix`` gives it: in the machine's local zone."""
    try:
        offset = time.localtime(ns // NS).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        offset = 0
    return Timestamp(ns, offset)


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
                   content: tuple[bytes, ...] | None = None, size: int | None = None) -> Node:
    """The node restic records for ``path`` (named ``name`` in its tree) with status ``st``;
    ``content`` is a file's list of data blobs when already known, ``size`` the bytes read
    from it when that differs from ``st``.

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
        extended_attributes=() if kind == tree.SYMLINK else xattrs(path),
        device=device,
        content=content,
    )


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
