"""Pick snapshots the way restic's commands do: ids, short ids, `latest`, filters."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import NotFound, SnapshotNotFound
from .model.ids import find_by_prefix
from .model.snapshot import Snapshot, matches


def filter_snapshots(snapshots: Sequence[Snapshot], hosts: Sequence[str] = (),
                     tags: Sequence[str] = (), paths: Sequence[str] = ()) -> list[Snapshot]:
    return [s for s in snapshots if matches(s, hosts, tags, paths)]


def split_spec(spec: str) -> tuple[str, str]:
    """``ID:subfolder`` into the id part and the path inside the snapshot."""
    ident, _, sub = spec.partition(":")
    return ident, sub


def find_snapshot(snapshots: Sequence[Snapshot], ident: str, hosts: Sequence[str] = (),
                  tags: Sequence[str] = (), paths: Sequence[str] = ()) -> Snapshot:
    """``latest`` (newest matching the filters) or a full or unique short id."""
    if ident == "latest":
        chosen = filter_snapshots(snapshots, hosts, tags, paths)
        if not chosen:
            raise SnapshotNotFound("no snapshot found (latest)" + _filters(hosts, tags, paths))
        return max(chosen, key=lambda s: s.time.ns)
    by_id = {s.id: s for s in snapshots if s.id is not None}
    try:
        return by_id[find_by_prefix(ident, by_id, what="snapshot")]
    except NotFound:
        raise SnapshotNotFound(f"no snapshot matches {ident!r}") from None


def _filters(hosts: Sequence[str], tags: Sequence[str], paths: Sequence[str]) -> str:
    parts = [f"{n} {', '.join(v)}" for n, v in (("host", hosts), ("tag", tags), ("path", paths)) if v]
    return " matching " + "; ".join(parts) if parts else ""
