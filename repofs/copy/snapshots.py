"""Which source snapshots a copy takes, which of them the destination holds already, and
what a copied snapshot looks like (restic 0.14's rules).

A copy keeps every field of its source snapshot but ``parent`` (meaningless in another
repository) and sets ``original`` to the source's ``original`` or, when it has none, to the
source's id. A source snapshot counts as copied when a destination snapshot whose
``original`` or own id is that persistent id has the same time, tree, host, user, uid, gid,
paths, tags and excludes. The tree is not compared when the trees of the copy were rewritten
(``--rechunk``), as they are whenever the two repositories cut files differently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..model.snapshot import Snapshot
from ..select import filter_snapshots, find_snapshot


def choose(snapshots: Sequence[Snapshot], idents: Sequence[str] = (), hosts: Sequence[str] = (),
           tags: Sequence[str] = (), paths: Sequence[str] = ()) -> list[Snapshot]:
    """The snapshots named (ids, short ids, ``latest`` within the filters), or every one the
    filters match; oldest first, each once."""
    if idents:
        chosen = {id(s): s for s in (find_snapshot(snapshots, i, hosts, tags, paths) for i in idents)}
        found = list(chosen.values())
    else:
        found = filter_snapshots(snapshots, hosts, tags, paths)
    return sorted(found, key=lambda s: (s.time.ns, s.id or b""))


def similar(a: Snapshot, b: Snapshot, compare_tree: bool = True) -> bool:
    """restic's test for "the same snapshot": every field but parent and original."""
    return (a.time.ns == b.time.ns
            and (not compare_tree or a.tree == b.tree)
            and a.hostname == b.hostname and a.username == b.username
            and a.uid == b.uid and a.gid == b.gid
            and len(a.paths) == len(b.paths) and set(a.paths) == set(b.paths)
            and len(a.tags) == len(b.tags) and set(a.tags) == set(b.tags)
            and a.excludes == b.excludes)


def find_copies(chosen: Sequence[Snapshot], destination: Sequence[Snapshot],
                compare_tree: bool = True) -> list[tuple[Snapshot, Snapshot | None]]:
    """Each chosen snapshot with its copy in ``destination``, or None when it has none."""
    by_origin: dict[bytes, list[Snapshot]] = {}
    for d in destination:
        if d.original is not None:
            by_origin.setdefault(d.original, []).append(d)
        if d.id is not None:
            by_origin.setdefault(d.id, []).append(d)
    out: list[tuple[Snapshot, Snapshot | None]] = []
    for s in chosen:
        origin = s.original if s.original is not None else s.id
        candidates = by_origin.get(origin, []) if origin is not None else []
        out.append((s, next((d for d in candidates if similar(d, s, compare_tree)), None)))
    return out


def copied(s: Snapshot, tree: bytes) -> Snapshot:
    """The snapshot to store in the destination for ``s``, its root tree being ``tree``."""
    return dataclasses.replace(s, parent=None, tree=tree,
                               original=s.original if s.original is not None else s.id, id=None)
