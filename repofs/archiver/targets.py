"""The top of a snapshot: which paths go where, as restic 0.14 arranges its targets.

Each target is placed at its path: ``/a/b/src`` becomes the nodes ``a`` -> ``b`` -> ``src``,
where ``a`` and ``b`` carry the metadata of the real folders (FORMAT.md §7.1). A relative
target hangs from the root by its own components (``../x/y`` becomes ``x`` -> ``y``), and
``.`` (or any target made of ``..`` only) is replaced by its entries. Two different targets
with the same top name in different places get ``name-1``, ``name-2``... Paths are bytes.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from ..errors import UsageError


def clean(path: bytes) -> bytes:
    """Go's ``filepath.Clean``."""
    out = posixpath.normpath(path)
    if out.startswith(b"//"):
        out = b"/" + out.lstrip(b"/")
    return out


def base(path: bytes) -> bytes:
    """Go's ``filepath.Base``."""
    if not path:
        return b"."
    path = path.rstrip(b"/")
    if not path:
        return b"/"
    return path[path.rfind(b"/") + 1:]


def dirname(path: bytes) -> bytes:
    """Go's ``filepath.Dir``."""
    return clean(path[:path.rfind(b"/") + 1])


def join(*parts: bytes) -> bytes:
    """Go's ``filepath.Join``: join the non-empty parts, then clean."""
    parts = tuple(p for p in parts if p)
    return clean(b"/".join(parts)) if parts else b""


def components(path: bytes, include_relative: bool = False) -> list[bytes]:
    """The names along ``path``; a relative path counts from ``/`` unless
    ``include_relative`` (then leading ``..`` are kept)."""
    if not path.startswith(b"/") and not include_relative:
        path = join(b"/", path)
    path = clean(path)
    out = []
    while True:
        parent = dirname(path)
        if path == parent:
            break
        out.append(base(path))
        path = parent
    out.reverse()
    return out


def root_directory(target: bytes) -> bytes:
    """The folder that holds the first component of ``target``."""
    if target.startswith(b"/"):
        return b"/"
    rel = b"."
    for comp in components(clean(target), include_relative=True):
        if comp == b"..":
            rel = join(rel, comp)
    return rel


@dataclass
class TargetTree:
    """A leaf (``path`` set) is saved whole from ``path``; an inner node takes its own
    metadata from ``info_path`` and holds ``nodes`` by name."""

    nodes: dict[bytes, TargetTree] = field(default_factory=dict)
    path: bytes = b""
    info_path: bytes = b""
    root: bytes = b""

    @property
    def leaf(self) -> bool:
        return bool(self.path)

    def add(self, target: bytes) -> None:
        comps = components(target)
        if not comps:
            raise UsageError(f"invalid target {os.fsdecode(target)!r}: no path components")
        name = orig = comps[0]
        root = root_directory(target)
        sub = TargetTree(root=root)
        i = 0
        while name in self.nodes:
            i += 1
            other = self.nodes[name]
            if other.root == root:
                sub = other
                break
            name = orig + b"-%d" % i
        if len(comps) > 1:
            subroot = join(root, orig)
            sub._add(target, subroot, comps[1:])
            sub.info_path = subroot
        else:
            sub.path = target
        self.nodes[name] = sub

    def _add(self, target: bytes, root: bytes, comps: list[bytes]) -> None:
        name = comps[0]
        if len(comps) == 1:
            node = self.nodes.get(name)
            if node is None:
                self.nodes[name] = TargetTree(path=target)
            elif node.path:
                raise UsageError(f"path is already set for target {os.fsdecode(target)!r}")
            else:
                node.path = target
            return
        node = self.nodes.setdefault(name, TargetTree())
        subroot = join(root, name)
        node.info_path = subroot
        node._add(target, subroot, comps[1:])

    def unroll(self) -> None:
        """A leaf that also has children (targets ``/a`` and ``/a/b``) becomes an inner node
        whose entries are the folder's entries."""
        if self.path and self.nodes:
            for entry in os.listdir(self.path):
                full = join(self.path, entry)
                node = self.nodes.get(entry)
                if node is None:
                    self.nodes[entry] = TargetTree(path=full)
                elif not node.path:
                    node.path = full
                elif node.path != full:
                    raise UsageError(f"targets collide at {os.fsdecode(full)!r}")
            self.info_path = self.info_path or self.path
            self.path = b""
        for node in self.nodes.values():
            node.unroll()


def resolve_relative(targets: list[bytes]) -> list[bytes]:
    """Replace targets without components (``.``, ``../..``) by their sorted entries."""
    out = []
    for target in targets:
        target = clean(target)
        if components(target):
            out.append(target)
            continue
        out.extend(join(target, name) for name in sorted(os.listdir(target)))
    return out


def build(targets: list[bytes]) -> TargetTree:
    """The target tree for ``targets`` (duplicates dropped)."""
    tree = TargetTree()
    seen = set()
    for target in resolve_relative(targets):
        target = clean(target)
        if target in seen:
            continue
        seen.add(target)
        tree.add(target)
    tree.unroll()
    return tree
