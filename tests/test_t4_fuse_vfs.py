"""The mount's file-system model in-process, over restic-made repositories (no FUSE needed).

Lookup counts, readdir offsets, hard links, reads and read-ahead, damaged packs and the
snapshot refresh are checked here, fast; test_t4_fuse_mount.py mounts for real.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from conftest import RepoFixture
from restic_util import PASSWORD, backup, init_repo
from repofs.backend.local import LocalBackend
from repofs.cache.blobcache import BlobCache
from repofs.fuse.inodes import ROOT_INODE
from repofs.fuse.reader import FileMap
from repofs.fuse.vfs import LONG_TIMEOUT, VFS, Attr, FsError, VfsConfig
from repofs.repo.index import BlobType
from repofs.repo.repository import Repository

CHUNK = 128 << 10


@asynccontextmanager
async def open_vfs(path: Path, cache_mib: int = 64, **config: object) -> AsyncIterator[VFS]:
    backend = LocalBackend(str(path))
    repo = await Repository.open(backend, PASSWORD.encode())
    async with trio.open_nursery() as nursery:
        vfs = VFS(repo, BlobCache(cache_mib << 20), nursery, VfsConfig(**config))  # type: ignore[arg-type]
        await vfs.start()
        yield vfs
        vfs.close()
        nursery.cancel_scope.cancel()


async def resolve(vfs: VFS, path: str) -> Attr:
    """Look up every component of ``path`` from the root as the kernel would, following
    symlinks (``latest``) on the way."""
    parts = [p for p in path.split("/") if p]
    folders = [vfs.getattr(ROOT_INODE)]
    while parts:
        part = parts.pop(0)
        attr = await vfs.lookup(folders[-1].ino, os.fsencode(part))
        if stat.S_ISLNK(attr.mode) and parts:
            parts = [p for p in os.fsdecode(vfs.readlink(attr.ino)).split("/") if p] + parts
            continue
        folders.append(attr)
    return folders[-1]


async def read_all(vfs: VFS, ino: int, chunk: int = CHUNK) -> bytes:
    fh = await vfs.open(ino)
    try:
        out = bytearray()
        while True:
            data = await vfs.read(fh, len(out), chunk)
            if not data:
                return bytes(out)
            out += data
    finally:
        vfs.release(fh)


async def test_top_folders_and_snapshot_names(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        assert [n for n, _ in await vfs.listdir(ROOT_INODE)] == [b"hosts", b"ids", b"snapshots", b"tags"]
        ids = await resolve(vfs, "ids")
        assert sorted(n for n, _ in await vfs.listdir(ids.ino)) == sorted(
            i[:8].encode() for i in restic_repo.snapshot_ids)
        hosts = await resolve(vfs, "hosts")
        assert [n for n, _ in await vfs.listdir(hosts.ino)] == [b"alpha", b"beta"]
        tags = dict(await vfs.listdir((await resolve(vfs, "tags")).ino))
        assert sorted(tags) == [b"all", b"first"]
        all_tag = dict(await vfs.listdir(tags[b"all"].ino))
        assert len(all_tag) == 3 and b"latest" in all_tag
        latest = await resolve(vfs, "snapshots/latest")
        assert stat.S_ISLNK(latest.mode)
        target = vfs.readlink(latest.ino)
        newest = await resolve(vfs, "ids/" + restic_repo.snapshot_ids[1][:8])
        assert (await resolve(vfs, "snapshots/" + os.fsdecode(target))).mtime_ns == newest.mtime_ns
        assert stat.S_ISDIR(newest.mode) and newest.attr_timeout == LONG_TIMEOUT


async def test_tree_matches_the_source(restic_repo: RepoFixture) -> None:
    """Every node of the newest snapshot against the folder it was made from."""
    src = restic_repo.source
    async with open_vfs(restic_repo.path) as vfs:
        top = await resolve(vfs, "ids/" + restic_repo.snapshot_ids[1][:8])
        stack = [(top.ino, src)]
        seen = 0
        while stack:
            ino, folder = stack.pop()
            entries = dict(await vfs.listdir(ino))
            assert sorted(entries) == sorted(os.listdir(os.fsencode(folder)))
            for name, attr in entries.items():
                path = os.path.join(os.fsencode(folder), name)
                st = os.lstat(path)
                seen += 1
                assert attr.mode == st.st_mode, path
                assert (attr.uid, attr.gid) == (st.st_uid, st.st_gid), path
                assert attr.mtime_ns == st.st_mtime_ns, path
                if stat.S_ISDIR(st.st_mode):
                    stack.append((attr.ino, Path(os.fsdecode(path))))
                elif stat.S_ISLNK(st.st_mode):
                    assert vfs.readlink(attr.ino) == os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    assert attr.size == st.st_size and attr.nlink == st.st_nlink, path
                    with open(path, "rb") as f:
                        assert await read_all(vfs, attr.ino) == f.read(), path
        assert seen > 40


async def test_lookup_counts_and_forget(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        docs = await resolve(vfs, "snapshots/latest/docs")
        a = await vfs.lookup(docs.ino, b"hello.txt")
        b = await vfs.lookup(docs.ino, b"hello.txt")
        assert a.ino == b.ino and vfs.inodes.count(a.ino) == 2
        vfs.forget([(a.ino, 1)])
        assert vfs.getattr(a.ino).size == 12
        vfs.forget([(a.ino, 1)])
        with pytest.raises(FsError) as gone:
            vfs.getattr(a.ino)
        assert gone.value.errno == errno.ESTALE
        again = await vfs.lookup(docs.ino, b"hello.txt")
        assert again.ino != a.ino  # a fresh number, never a reused one
        # . and .. count like any lookup.
        dot = await vfs.lookup(docs.ino, b".")
        assert dot.ino == docs.ino and vfs.inodes.count(docs.ino) == 2


async def test_readdir_offsets_are_stable_and_only_accepted_entries_count(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        docs = await resolve(vfs, "snapshots/latest/docs")
        fh = await vfs.opendir(docs.ino)
        # A kernel buffer that takes five entries, then refuses the sixth.
        accepted: list[tuple[bytes, int]] = []
        offered: list[int] = []

        def five(name: bytes, attr: Attr, nxt: int) -> bool:
            offered.append(attr.ino)
            if len(accepted) == 5:
                return False
            accepted.append((name, nxt))
            return True
        vfs.readdir(fh, 0, five)
        assert len(offered) == 6 and offered[-1] not in vfs.inodes
        assert all(vfs.inodes.count(ino) == 1 for ino in offered[2:5])
        # ... and resumes from the last offset it got: nothing skipped, nothing repeated.
        rest: list[tuple[bytes, int]] = []
        vfs.readdir(fh, accepted[-1][1], lambda name, _, nxt: rest.append((name, nxt)) or True)
        full: list[tuple[bytes, int]] = []
        vfs.readdir(fh, 0, lambda name, _, nxt: full.append((name, nxt)) or True)
        assert full[0][0] == b"." and full[1][0] == b".."
        assert [n for n, _ in full[2:]] == sorted(n for n, _ in full[2:])
        assert accepted + rest == full
        vfs.releasedir(fh)
        for name, _ in full[2:5]:
            attr = await vfs.lookup(docs.ino, name)
            assert vfs.inodes.count(attr.ino) == 3  # two listings, then the lookup


async def test_hardlinks_share_an_inode(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        a = await resolve(vfs, "snapshots/latest/docs/hello.txt")
        b = await resolve(vfs, "snapshots/latest/hardlink-to-hello")
        assert a.ino == b.ino and a.nlink == 2
        # The same file in another snapshot folder is another inode.
        other = await resolve(vfs, "ids/" + restic_repo.snapshot_ids[0][:8] + "/docs/hello.txt")
        assert other.ino != a.ino


async def test_hardlinked_names_count_on_one_inode(restic_repo: RepoFixture) -> None:
    """Both names of a hard link, listed or looked up, count on the one inode they share;
    a listing whose buffer refuses one of them leaves the other's count alone."""
    async with open_vfs(restic_repo.path) as vfs:
        top = await resolve(vfs, "ids/" + restic_repo.snapshot_ids[1][:8])
        docs = await vfs.lookup(top.ino, b"docs")
        shown = dict(await vfs.listdir(top.ino))
        link = shown[b"hardlink-to-hello"]
        assert vfs.inodes.count(link.ino) == 1
        fh = await vfs.opendir(docs.ino)
        names: list[bytes] = []

        def until_hello(name: bytes, attr: Attr, nxt: int) -> bool:
            if name == b"hello.txt":
                assert attr.ino == link.ino
                return False
            names.append(name)
            return True
        vfs.readdir(fh, 0, until_hello)
        vfs.releasedir(fh)
        assert vfs.inodes.count(link.ino) == 1 and b"hello.txt" not in names
        hello = await vfs.lookup(docs.ino, b"hello.txt")
        assert hello.ino == link.ino and vfs.inodes.count(link.ino) == 2
        assert not vfs.inodes.forget(link.ino, 1)
        assert vfs.getattr(link.ino).nlink == 2
        assert vfs.inodes.forget(link.ino, 1) and link.ino not in vfs.inodes


async def test_an_entry_keeps_its_number_while_its_folder_block_lives(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        docs = await resolve(vfs, "snapshots/latest/docs")
        a = await vfs.lookup(docs.ino, b"note-03.txt")
        b = await vfs.lookup(docs.ino, b"note-04.txt")
        assert b.ino == a.ino + 1  # one block, numbered in listing order
        vfs.forget([(a.ino, 1)])
        assert a.ino not in vfs.inodes
        assert (await vfs.lookup(docs.ino, b"note-03.txt")).ino == a.ino
        vfs.forget([(a.ino, 1), (b.ino, 1)])
        again = await vfs.lookup(docs.ino, b"note-03.txt")
        assert again.ino > b.ino


async def test_dotdot_of_a_forgotten_folder_is_stale(restic_repo: RepoFixture) -> None:
    """The kernel may keep an entry after forgetting its folder (NFS export); ``..`` then
    says ESTALE, not an unexpected error."""
    async with open_vfs(restic_repo.path) as vfs:
        top = await resolve(vfs, "ids/" + restic_repo.snapshot_ids[1][:8])
        docs = await vfs.lookup(top.ino, b"docs")
        hello = await vfs.lookup(docs.ino, b"note-05.txt")
        vfs.forget([(docs.ino, 1)])
        assert docs.ino not in vfs.inodes
        with pytest.raises(FsError) as stale:
            await vfs.lookup(hello.ino, b"..")
        assert stale.value.errno == errno.ESTALE
        assert (await vfs.lookup(hello.ino, b".")).ino == hello.ino


async def test_missing_names(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        docs = await resolve(vfs, "snapshots/latest/docs")
        with pytest.raises(FsError) as inside:
            await vfs.lookup(docs.ino, b"nope")
        assert inside.value.errno == errno.ENOENT and inside.value.negative_timeout == LONG_TIMEOUT
        with pytest.raises(FsError) as top:
            await vfs.lookup(ROOT_INODE, b"nope")
        assert top.value.errno == errno.ENOENT and top.value.negative_timeout == 0
        hello = await vfs.lookup(docs.ino, b"hello.txt")
        with pytest.raises(FsError) as notdir:
            await vfs.lookup(hello.ino, b"x")
        assert notdir.value.errno == errno.ENOTDIR


async def test_xattrs(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path) as vfs:
        hello = await resolve(vfs, "snapshots/latest/docs/hello.txt")
        want = dict((os.fsencode(n), os.getxattr(restic_repo.source / "docs" / "hello.txt", n))
                    for n in os.listxattr(restic_repo.source / "docs" / "hello.txt"))
        assert dict((n, vfs.getxattr(hello.ino, n)) for n in vfs.listxattr(hello.ino)) == want
        with pytest.raises(FsError) as missing:
            vfs.getxattr(hello.ino, b"user.nope")
        assert missing.value.errno == errno.ENODATA


async def test_random_reads_and_read_ahead(restic_repo: RepoFixture) -> None:
    data = (restic_repo.source / "big.bin").read_bytes()
    rng = random.Random(4)
    async with open_vfs(restic_repo.path) as vfs:
        big = await resolve(vfs, "snapshots/latest/big.bin")
        assert big.size == len(data)
        fh = await vfs.open(big.ino)
        for _ in range(40):
            off = rng.randrange(len(data) + 10)
            size = rng.choice([1, 4096, CHUNK, 3 << 20])
            assert await vfs.read(fh, off, size) == data[off:off + size]
        vfs.release(fh)
        fmap = FileMap.build(vfs.inodes.get(big.ino).node.content, vfs.repo.index)  # type: ignore[union-attr]
        assert fmap.size == len(data) and fmap.missing is None
        assert len(fmap.ids) >= 2


async def test_sequential_reader_gets_neighbours_in_one_ranged_read(tmp_path: Path) -> None:
    """A sequential read makes one backend request per run of adjacent blobs in one pack,
    not one per blob."""
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(9).randbytes(24 << 20)
    (src / "random.bin").write_bytes(data)
    repo_path = init_repo(tmp_path / "repo", version=2)
    await trio.to_thread.run_sync(lambda: backup(repo_path, src))
    # A cache of 256 MiB gives a read-ahead window (32 MiB) over the whole file, so the
    # first read asks for every blob at once and the count does not depend on timing.
    async with open_vfs(repo_path, cache_mib=256) as vfs:
        node_attr = await resolve(vfs, "snapshots/latest/random.bin")
        content = vfs.inodes.get(node_attr.ino).node.content  # type: ignore[union-attr]
        locs = [vfs.repo.index.lookup(b, BlobType.DATA)[0] for b in content]
        assert len(content) > 10 and len({loc.pack_id for loc in locs}) < len(content) // 4
        before = vfs.fetcher.ranged_reads
        assert await read_all(vfs, node_attr.ino) == data
        assert vfs.fetcher.ranged_reads - before <= len(content) // 2


def _copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o700)
    return dst


async def test_damaged_pack_gives_eio_for_its_files_only(restic_repo: RepoFixture, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    repo_path = _copy_repo(restic_repo.path, tmp_path / "repo")
    async with open_vfs(repo_path) as vfs:
        big = await resolve(vfs, "snapshots/latest/big.bin")
        blob = vfs.inodes.get(big.ino).node.content[0]  # type: ignore[union-attr, index]
        loc = vfs.repo.index.lookup(blob, BlobType.DATA)[0]
        damaged_packs = {loc.pack_id}
    pack = repo_path / "data" / loc.pack_id.hex()[:2] / loc.pack_id.hex()
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + loc.length // 2] ^= 0x55
    pack.write_bytes(bytes(raw))
    caplog.set_level(logging.ERROR, logger="repofs.fuse.vfs")
    async with open_vfs(repo_path) as vfs:
        big = await resolve(vfs, "snapshots/latest/big.bin")
        fh = await vfs.open(big.ino)
        for _ in range(2):
            with pytest.raises(FsError) as failed:
                await vfs.read(fh, 0, CHUNK)
            assert failed.value.errno == errno.EIO
        vfs.release(fh)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "big.bin" in errors[0].getMessage() and blob.hex()[:16] in errors[0].getMessage()
        # Every other file still reads, those with blobs in the same pack included.
        docs = await resolve(vfs, "snapshots/latest/docs")
        same_pack = 0
        for name, attr in await vfs.listdir(docs.ino):
            if not stat.S_ISREG(attr.mode):
                continue
            node = vfs.inodes.get(attr.ino).node  # type: ignore[union-attr]
            assert blob not in (node.content or ())
            packs = {vfs.repo.index.lookup(b, BlobType.DATA)[0].pack_id for b in node.content or ()}
            same_pack += bool(packs & damaged_packs)
            with open(restic_repo.source / "docs" / os.fsdecode(name), "rb") as f:
                assert await read_all(vfs, attr.ino) == f.read()
        assert same_pack > 0


async def test_new_snapshots_appear_after_the_refresh_interval(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo_path = _copy_repo(restic_repo.path, tmp_path / "repo")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "new.txt").write_bytes(b"fresh\n" * 1000)
    async with open_vfs(repo_path, refresh_interval=0.0) as vfs:
        ids = await resolve(vfs, "ids")
        assert len(await vfs.listdir(ids.ino)) == 2
        old_latest = vfs.readlink((await resolve(vfs, "snapshots/latest")).ino)
        new_id = await trio.to_thread.run_sync(lambda: backup(repo_path, src, "--host", "gamma"))
        names = [n for n, _ in await vfs.listdir(ids.ino)]
        assert new_id[:8].encode() in names and len(names) == 3
        latest = await resolve(vfs, "snapshots/latest")
        assert vfs.readlink(latest.ino) != old_latest
        new = await resolve(vfs, "hosts/gamma/latest/sub/new.txt")
        assert await read_all(vfs, new.ino) == b"fresh\n" * 1000


async def test_refresh_waits_for_the_interval(restic_repo: RepoFixture, tmp_path: Path) -> None:
    repo_path = _copy_repo(restic_repo.path, tmp_path / "repo")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    async with open_vfs(repo_path, refresh_interval=3600.0) as vfs:
        await trio.to_thread.run_sync(lambda: backup(repo_path, src))
        assert len(await vfs.listdir((await resolve(vfs, "ids")).ino)) == 2
        await vfs.refresh(force=True)
        assert len(await vfs.listdir((await resolve(vfs, "ids")).ino)) == 3


async def test_filters_and_owner_root(restic_repo: RepoFixture) -> None:
    async with open_vfs(restic_repo.path, hosts=["alpha"], owner_root=True) as vfs:
        ids = await vfs.listdir((await resolve(vfs, "ids")).ino)
        assert [n for n, _ in ids] == [restic_repo.snapshot_ids[0][:8].encode()]
        hello = await resolve(vfs, "snapshots/latest/docs/hello.txt")
        assert (hello.uid, hello.gid) == (0, 0)


def test_evicted_blobs_are_freed() -> None:
    """The cache must not keep what it evicts (lru-dict's popitem leaked every item)."""
    alive = 0

    class Blob(bytes):
        def __init__(self, _: object) -> None:
            nonlocal alive
            alive += 1

        def __del__(self) -> None:
            nonlocal alive
            alive -= 1

    cache = BlobCache(10 * 2000)
    for i in range(200):
        cache.put(("data", i), Blob(b"x" * 1000))
    assert 0 < len(cache) <= 20 and alive == len(cache)


async def test_a_walk_loads_neighbouring_trees_together(tmp_path: Path) -> None:
    """restic stores trees in post-order, so a walk of a snapshot wants the trees lying
    next to each other in a pack: they come in a few ranged reads, not one per folder."""
    src = tmp_path / "src"
    for i in range(8):
        for j in range(8):
            (src / f"d{i}" / f"e{j}").mkdir(parents=True)
            (src / f"d{i}" / f"e{j}" / "f").write_text(f"{i} {j}\n")
    repo_path = init_repo(tmp_path / "repo", version=2)
    snapshot_id = await trio.to_thread.run_sync(lambda: backup(repo_path, src))
    async with open_vfs(repo_path) as vfs:
        top = await resolve(vfs, "ids/" + snapshot_id[:8])
        # The pack's header, which names the neighbours, normally arrives in the
        # background after the first tree; here it is known from the start.
        root_tree = vfs.inodes.get(top.ino).snapshot.tree  # type: ignore[union-attr]
        await vfs.fetcher.load_header(vfs.repo.index.lookup(root_tree, BlobType.TREE)[0].pack_id)
        before = vfs.fetcher.ranged_reads
        folders = 0
        stack = [top.ino]
        while stack:
            entries = await vfs.listdir(stack.pop())
            folders += 1
            stack.extend(a.ino for _, a in entries if stat.S_ISDIR(a.mode))
        assert folders == 1 + 8 + 64
        assert vfs.fetcher.ranged_reads - before < folders // 4
