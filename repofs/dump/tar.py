"""PAX tar members for snapshot nodes, written without seeking.

Every member is a 512-byte ustar header, preceded by a PAX extended header when a
value does not fit ustar: long or non-ASCII paths and link targets, user and group
names, sub-second mtimes, large ids and sizes, extended attributes
(``SCHILY.xattr.NAME``, as GNU tar and bsdtar read them) and POSIX ACLs
(``SCHILY.acl.access``/``SCHILY.acl.default``, as GNU tar ``--acls`` reads them).

Names that are not UTF-8 go into PAX records as raw bytes without ``hdrcharset``:
GNU tar takes them as they are and warns about ``hdrcharset``; Python's tarfile
falls back to its own encoding.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Sequence

from ..model import tree as nodes
from ..model.gotime import NS, Timestamp
from ..model.tree import Node, posix_mode
from .common import Buffer, Entry, link_target

BLOCK = 512
END_OF_ARCHIVE = bytes(2 * BLOCK)

_TYPEFLAG = {
    nodes.FILE: b"0",
    nodes.SYMLINK: b"2",
    nodes.CHARDEV: b"3",
    nodes.DEV: b"4",
    nodes.DIR: b"5",
    nodes.FIFO: b"6",
}
HARDLINK = b"1"
PAX_HEADER = b"x"

_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
_CHKSUM_BLANK = b" " * 8
_PAX_NAME = b"././@PaxHeader"

# ACL entry tags of Linux's system.posix_acl_* xattr values.
_ACL_TAGS = {0x01: "user", 0x02: "user", 0x04: "group", 0x08: "group", 0x10: "mask", 0x20: "other"}
_ACL_QUALIFIED = (0x02, 0x08)
_ACL_XATTRS = {"system.posix_acl_access": b"SCHILY.acl.access",
               "system.posix_acl_default": b"SCHILY.acl.default"}


def padding(size: int) -> bytes:
    """Zeros that fill the last block of a member's data."""
    return bytes(-size % BLOCK)


def _number(value: int, width: int) -> bytes | None:
    """A ustar numeric field (octal, NUL-terminated), or None when it does not fit."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return None


def _base256(value: int, width: int) -> bytes:
    """GNU's binary form of a numeric field, for values octal cannot hold."""
    if value < 0:
        value += 256 ** width
    out = value.to_bytes(width, "big")
    return bytes([out[0] | 0x80]) + out[1:]


def _pax_time(ts: Timestamp) -> bytes:
    sign = b"-" if ts.ns < 0 else b""
    secs, frac = divmod(abs(ts.ns), NS)
    if not frac:
        return sign + b"%d" % secs
    return sign + (b"%d.%09d" % (secs, frac)).rstrip(b"0")


def pax_record(key: bytes, value: bytes) -> bytes:
    """One ``"LEN KEY=VALUE\\n"`` record; LEN counts the whole record, itself included."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + len(str(len(body)))
    if len(str(length)) + len(body) != length:
        length += 1
    return b"%d" % length + body


def _escape_xattr_name(name: str) -> bytes:
    """GNU tar's keyword escaping: '%' and '=' cannot appear raw in a record key."""
    return name.encode("utf-8", "surrogateescape").replace(b"%", b"%25").replace(b"=", b"%3D")


def acl_text(value: bytes) -> str | None:
    """The short text form (``user::rw-,group::r--,other::r--``) of a binary POSIX ACL
    xattr value, with numeric ids; None when the value is not one."""
    if len(value) < 4 or (len(value) - 4) % 8 or struct.unpack_from("<I", value)[0] != 2:
        return None
    parts = []
    for tag, perm, ident in struct.iter_unpack("<HHI", value[4:]):
        kind = _ACL_TAGS.get(tag)
        if kind is None:
            return None
        who = str(ident) if tag in _ACL_QUALIFIED else ""
        bits = "".join(c if perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))
        parts.append(f"{kind}:{who}:{bits}")
    return ",".join(parts)


def _text_field(value: bytes, width: int, key: bytes, pax: list[tuple[bytes, bytes]]) -> bytes:
    """A name field: plain ASCII that fits goes in the header, anything else in a record."""
    if len(value) < width and value.isascii():
        return value
    pax.append((key, value))
    return value[:width - 1]


def member_header(entry: Entry) -> bytes:
    """The header block(s) of one member: an optional PAX header, then the ustar header.

    Most members need no PAX record: a short ASCII name, whole-second times, owner
    fields that fit. Those take a short path with the owner's and the mode's fields
    from small caches; everything else goes through ``_general_header``. Both give
    the same bytes.
    """
    node = entry.node
    typeflag = _FAST_TYPEFLAG.get(node.type)
    if typeflag is None or entry.link_to is not None or node.extended_attributes:
        return _general_header(entry)
    name = entry.path
    if typeflag == b"5":
        name += b"/"
    if len(name) >= 100 or not name.isascii():
        return _general_header(entry)
    mtime = node.mtime
    secs, frac = divmod(mtime.ns, NS)
    atime = node.atime
    if frac or not 0 <= secs < _MAX_OCTAL_12 or (
            atime.ns and (atime.ns != mtime.ns or atime.offset != mtime.offset)):
        return _general_header(entry)
    linkname = b""
    size = 0
    if typeflag == b"0":
        size = entry.size
        if size >= _MAX_OCTAL_12:
            return _general_header(entry)
    elif typeflag == b"2":
        linkname = link_target(node)
        if len(linkname) >= 100 or not linkname.isascii():
            return _general_header(entry)
    owner = _owner_fields(node.uid, node.gid, node.user, node.group)
    if owner is None:
        return _general_header(entry)
    mode = _mode_field(node.type, node.mode)
    block = _USTAR.pack(name, mode, owner[0], owner[1], b"%011o\0" % size, b"%011o\0" % secs,
                        _CHKSUM_BLANK, typeflag, linkname, b"ustar\0", b"00", owner[2], owner[3],
                        b"", b"", b"", b"")
    return block[:148] + b"%06o\0 " % _checksum(block) + block[156:]


_FAST_TYPEFLAG = {nodes.FILE: b"0", nodes.DIR: b"5", nodes.SYMLINK: b"2"}
_MAX_OCTAL_12 = 8 ** 11
_MAX_OCTAL_8 = 8 ** 7
_CACHE_LIMIT = 4096
_owners: dict[tuple[int, int, str, str], tuple[bytes, bytes, bytes, bytes] | None] = {}
_modes: dict[tuple[str, int], bytes] = {}


def _owner_fields(uid: int, gid: int, user: str, group: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The uid, gid, uname and gname fields, or None when one needs a PAX record."""
    key = (uid, gid, user, group)
    try:
        return _owners[key]
    except KeyError:
        pass
    fields: tuple[bytes, bytes, bytes, bytes] | None = None
    uname = user.encode("utf-8", "surrogateescape")
    gname = group.encode("utf-8", "surrogateescape")
    if (0 <= uid < _MAX_OCTAL_8 and 0 <= gid < _MAX_OCTAL_8 and len(uname) < 32 and len(gname) < 32
            and uname.isascii() and gname.isascii()):
        fields = (b"%07o\0" % uid, b"%07o\0" % gid, uname, gname)
    if len(_owners) >= _CACHE_LIMIT:
        _owners.clear()
    _owners[key] = fields
    return fields


def _mode_field(type_: str, go_mode: int) -> bytes:
    key = (type_, go_mode)
    field = _modes.get(key)
    if field is None:
        if len(_modes) >= _CACHE_LIMIT:
            _modes.clear()
        node = Node(name=b"", type=type_, mode=go_mode)
        field = _modes[key] = b"%07o\0" % (posix_mode(node) & 0o7777)
    return field


def _general_header(entry: Entry) -> bytes:
    """``member_header`` for any member, PAX records and all."""
    node = entry.node
    pax: list[tuple[bytes, bytes]] = []
    name = entry.path + (b"/" if node.type == nodes.DIR else b"")
    linkname = b""
    size = 0
    if entry.link_to is not None:
        typeflag = HARDLINK
        linkname = entry.link_to
    else:
        typeflag = _TYPEFLAG[node.type]
        if node.type == nodes.FILE:
            size = entry.size
        elif node.type == nodes.SYMLINK:
            linkname = link_target(node)

    name_field = _text_field(name, 100, b"path", pax)
    link_field = _text_field(linkname, 100, b"linkpath", pax) if linkname else b""
    uname = node.user.encode("utf-8", "surrogateescape")
    gname = node.group.encode("utf-8", "surrogateescape")
    uname_field = _text_field(uname, 32, b"uname", pax) if uname else b""
    gname_field = _text_field(gname, 32, b"gname", pax) if gname else b""

    numbers = []
    for key, value, width in ((b"uid", node.uid, 8), (b"gid", node.gid, 8), (b"size", size, 12)):
        field = _number(value, width)
        if field is None:
            pax.append((key, b"%d" % value))
            field = _base256(value, width)
        numbers.append(field)
    uid_field, gid_field, size_field = numbers

    secs, frac = divmod(node.mtime.ns, NS)
    mtime_field = _number(secs, 12)
    if frac or mtime_field is None:
        pax.append((b"mtime", _pax_time(node.mtime)))
        if mtime_field is None:
            mtime_field = _base256(secs, 12)
    if node.atime != node.mtime and node.atime.ns:
        pax.append((b"atime", _pax_time(node.atime)))

    devmajor = devminor = b""
    if node.type in (nodes.DEV, nodes.CHARDEV) and entry.link_to is None:
        major, minor = split_device(node.device)
        devmajor = _number(major, 8) or _base256(major, 8)
        devminor = _number(minor, 8) or _base256(minor, 8)

    for xname, xvalue in node.extended_attributes:
        acl_key = _ACL_XATTRS.get(xname)
        if acl_key is not None:
            text = acl_text(xvalue)
            if text:
                pax.append((acl_key, text.encode()))
            continue
        pax.append((b"SCHILY.xattr." + _escape_xattr_name(xname), xvalue))

    header = _ustar(name_field, posix_mode(node) & 0o7777, uid_field, gid_field, size_field,
                    mtime_field, typeflag, link_field, uname_field, gname_field, devmajor, devminor)
    if not pax:
        return header
    records = b"".join(pax_record(k, v) for k, v in pax)
    return _pax_header(len(records)) + records + padding(len(records)) + header


@functools.lru_cache(maxsize=1024)
def _pax_header(size: int) -> bytes:
    """The ustar block announcing ``size`` bytes of PAX records (the same for every member)."""
    return _ustar(_PAX_NAME, 0o644, _number(0, 8), _number(0, 8), _number(size, 12) or _base256(size, 12),
                  _number(0, 12), PAX_HEADER, b"", b"", b"", b"", b"")


def _checksum(block: bytes) -> int:
    """Sum of the block's bytes. Adler-32's low half is 1 + the byte sum modulo 65521, and
    the sum of 256 bytes is at most 65280, so two halves give it exactly, and fast."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _ustar(name: bytes, mode: int, uid: bytes | None, gid: bytes | None, size: bytes,
           mtime: bytes | None, typeflag: bytes, linkname: bytes, uname: bytes, gname: bytes,
           devmajor: bytes, devminor: bytes) -> bytes:
    block = _USTAR.pack(name, b"%07o\0" % mode, uid or b"", gid or b"", size, mtime or b"",
                        _CHKSUM_BLANK, typeflag, linkname, b"ustar\0", b"00", uname,
                        gname, devmajor, devminor, b"", b"")
    return block[:148] + b"%06o\0 " % _checksum(block) + block[156:]


def split_device(dev: int) -> tuple[int, int]:
    """Major and minor number of a Linux ``st_rdev`` as restic stores it."""
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return major, minor


class TarFormat:
    """A PAX tar stream: headers and padding around the plaintext of each file."""

    hardlinks = True
    name = "tar"

    def accepts(self, node: Node) -> bool:
        return node.type in _TYPEFLAG

    def prepare(self, plain: bytes, packed_ratio: float | None) -> bytes:
        return plain

    def begin(self, entry: Entry) -> Sequence[Buffer]:
        return (member_header(entry),)

    def piece(self, piece: bytes) -> Sequence[Buffer]:
        return (piece,)

    def end(self, entry: Entry) -> Sequence[Buffer]:
        pad = padding(entry.size) if entry.link_to is None else b""
        return (pad,) if pad else ()

    def finish(self) -> Sequence[Buffer]:
        return (END_OF_ARCHIVE,)
