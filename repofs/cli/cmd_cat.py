"""``repofs cat``: print the internal objects of a repository, like `restic cat`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..backend.base import CONFIG, FileType, Handle
from ..errors import NotFound, UsageError
from ..repo.index import BlobType
from ..repo.repository import Repository
from ..select import find_snapshot, split_spec
from ..trees import TreeLoader
from .context import GlobalOptions, open_repository
from .main import cli, global_options, run, take_globals

TYPES = ("config", "masterkey", "key", "index", "snapshot", "pack", "blob", "tree")
# What each type reads of all the files of a kind, read ahead while the password is checked.
READ_AHEAD = {"blob": (FileType.INDEX,), "tree": (FileType.SNAPSHOT, FileType.INDEX)}


def go_indent(obj: Any) -> bytes:
    """json.MarshalIndent(obj, "", "  ") as Go writes it: HTML characters escaped."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8", "surrogatepass")


@cli.command("cat")
@click.argument("type", type=click.Choice(TYPES))
@click.argument("ident", required=False)
@global_options
def cat_cmd(type: str, ident: str | None, **kwargs: Any) -> None:
    """Print an object: config, masterkey, key ID, index ID, snapshot ID, pack ID, blob ID,
    or tree SNAPSHOT[:PATH]."""
    opts = take_globals(kwargs)
    if type not in ("config", "masterkey") and not ident:
        raise UsageError(f"cat {type} needs an id")
    run(opts, _cat, opts, type, ident or "")


async def _cat(opts: GlobalOptions, type: str, ident: str) -> None:
    async with open_repository(opts, read_ahead=READ_AHEAD.get(type, ())) as repo:
        data = await _object(repo, type, ident)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


async def _object(repo: Repository, type: str, ident: str) -> bytes:
    if type == "config":
        return go_indent(json.loads(repo.key.open(await repo.backend.load(CONFIG)))) + b"\n"
    if type == "masterkey":
        return go_indent(repo.key.to_json()) + b"\n"
    if type == "key":
        key_id = await repo.find_id(FileType.KEY, ident)
        raw = await repo.backend.load(Handle(FileType.KEY, key_id.hex()))
        return go_indent(json.loads(raw)) + b"\n"
    if type == "index":
        index_id = await repo.find_id(FileType.INDEX, ident)
        return await repo.load_unpacked(FileType.INDEX, index_id) + b"\n"  # restic prints a newline more
    if type == "snapshot":
        if ident == "latest":
            snap_id = find_snapshot(await repo.load_snapshots(), ident).id
        else:
            snap_id = await repo.find_id(FileType.SNAPSHOT, ident)
        return go_indent(json.loads(await repo.load_unpacked(FileType.SNAPSHOT, snap_id))) + b"\n"
    if type == "pack":
        return await repo.backend.load(Handle(FileType.PACK, (await repo.find_id(FileType.PACK, ident)).hex()))
    await repo.load_index()
    if type == "blob":
        blob_id = _full_id(ident)
        for btype in (BlobType.TREE, BlobType.DATA):
            if repo.index.has(blob_id, btype):
                return await repo.load_blob(btype, blob_id)
        raise NotFound(f"blob {ident} not found")
    snap_spec, sub = split_spec(ident)
    snap = find_snapshot(await repo.load_snapshots(), snap_spec)
    trees = TreeLoader(repo)
    tree_id = await trees.subtree(snap.tree, sub)
    return go_indent(json.loads(await trees.raw(tree_id))) + b"\n"


def _full_id(ident: str) -> bytes:
    if len(ident) == 64:
        try:
            return bytes.fromhex(ident)
        except ValueError:
            pass
    raise UsageError(f"{ident!r} is not a full blob id (64 hex characters)")
