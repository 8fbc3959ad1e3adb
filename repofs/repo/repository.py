"""Repository: a backend opened with a key, loading and saving files and blobs."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

import trio

from ..backend.base import CONFIG, Backend, FileNotFound, FileType, Handle
from ..errors import DamagedPack, IntegrityError, NotARepository, NotFound, RepofsError, WrongPassword
from ..model.ids import find_by_prefix, hash_id, parse_id
from ..model.snapshot import Snapshot, decode_snapshot
from . import compress
from .config import Config
from .crypto import Key, MacError
from .index import BlobLocation, BlobType, Index, IndexBuilder
from .keyfile import KeyFile, new_key_file
from .pack import EAGER_TAIL, HEADER_LEN_SIZE, PackEntry, decode_header, header_length

# What the C decoder's error codes mean, worded as decode_blob words them.
_FAILURES = {1: "MAC mismatch (damaged pack)", 2: "zstd: the frame does not decode to its recorded length",
             3: "content does not match its id (damaged pack)", 4: "outside the range read (damaged index)"}

T = TypeVar("T")

# At most this many bytes of files are read ahead while the password's key is derived.
READ_AHEAD_BYTES = 32 << 20


class Repository:
    """An open repository. Blocking CPU work (crypto, zstd, hashing) runs in threads under
    ``cpu``; backend requests are bounded by the backend itself."""

    def __init__(self, backend: Backend, key: Key, config: Config,
                 cpu: trio.CapacityLimiter | None = None,
                 read_ahead: dict[Handle, bytes] | None = None) -> None:
        self.backend = backend
        self.key = key
        self.config = config
        self.cpu = cpu or trio.CapacityLimiter(os.cpu_count() or 1)
        self._index: Index | None = None
        self._index_ids: frozenset[bytes] = frozenset()  # the index files _index was built from
        self._read_ahead = read_ahead if read_ahead is not None else {}

    # -- opening and creating ---------------------------------------------------------

    @classmethod
    async def open(cls, backend: Backend, password: bytes, *,
                   read_ahead: Collection[FileType] = ()) -> Repository:
        """Try the password on every key file, then read the config with the master key.

        The key derivation (scrypt) takes a while. Meanwhile the files of the ``read_ahead``
        types are listed and read, raw (no key needed), for load_unpacked to take instead of
        reading them again. A file's name is the hash of its content, so what was read early
        is still right whenever a later listing names that file, before a lock or after it.
        """
        try:
            sealed_config = await backend.load(CONFIG)
        except FileNotFound:
            raise NotARepository(f"{backend.location}: not a repository (no config file)") from None
        names = [n for n, _ in await backend.list(FileType.KEY)]
        if not names:
            raise NotARepository(f"{backend.location}: not a repository (no key files)")
        cpu = trio.CapacityLimiter(os.cpu_count() or 1)
        early: dict[Handle, bytes] = {}
        error: RepofsError | None = None
        async with trio.open_nursery() as nursery:
            if read_ahead:
                nursery.start_soon(_read_files, backend, read_ahead, early)
            try:
                master = await _find_master_key(backend, names, password, cpu)
            except RepofsError as exc:
                error = exc  # raised below as itself, not inside the nursery's exception group
            nursery.cancel_scope.cancel()
        if error is not None:
            raise error
        try:
            plain = master.open(sealed_config)
        except MacError:
            raise IntegrityError("config: MAC mismatch; the config or the key file is damaged") from None
        return cls(backend, master, Config.decode(plain), cpu, early)

    @classmethod
    async def create(cls, backend: Backend, password: bytes, version: int, polynomial: int) -> Repository:
        """A new, empty repository with a fresh master key and one key file."""
        config = Config.new(version, polynomial)
        master = Key.random()
        keyfile = await trio.to_thread.run_sync(new_key_file, password, master)
        await backend.create()
        await backend.save(Handle(FileType.KEY, hash_id(keyfile).hex()), keyfile)
        await backend.save(CONFIG, master.seal(config.encode()))
        return cls(backend, master, config)

    # -- helpers -----------------------------------------------------------------------

    async def cpu_run(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.cpu)

    @property
    def version(self) -> int:
        return self.config.version

    # -- unpacked files: snapshots, indexes, locks --------------------------------------

    async def list_ids(self, type: FileType) -> list[bytes]:
        return [parse_id(name) for name, _ in await self.backend.list(type)]

    async def find_id(self, type: FileType, prefix: str) -> bytes:
        """The full id of a file of ``type`` from a unique prefix."""
        if len(prefix) == 64:
            try:
                return parse_id(prefix)
            except ValueError:
                pass
        return find_by_prefix(prefix, await self.list_ids(type), what=type.value.rstrip("s"))

    def _open_unpacked(self, h: Handle, raw: bytes) -> bytes:
        if hash_id(raw).hex() != h.name:
            raise IntegrityError(f"{h}: content does not match its name (damaged file)")
        try:
            plain = self.key.open(raw)
        except MacError:
            raise IntegrityError(f"{h}: MAC mismatch (damaged file)") from None
        try:
            return compress.decode_unpacked(plain, self.version)
        except IntegrityError as exc:
            raise IntegrityError(f"{h}: {exc}") from None

    async def load_unpacked(self, type: FileType, id_: bytes) -> bytes:
        """The JSON of an index, snapshot or lock file, hash- and MAC-checked."""
        h = Handle(type, id_.hex())
        raw = self._read_ahead.pop(h, None)
        if raw is None:
            raw = await self.backend.load(h)
        return await self.cpu_run(self._open_unpacked, h, raw)

    async def save_unpacked(self, type: FileType, doc: bytes) -> bytes:
        """Store JSON as an unpacked file; returns its id."""
        return await self._save_sealed(type, lambda: compress.encode_unpacked(doc, self.version))

    async def save_unpacked_parts(self, type: FileType, parts: Iterable[bytes]) -> bytes:
        """``save_unpacked`` of JSON made piece by piece (a large index), consumed and
        compressed in a worker thread without ever holding the whole document."""
        return await self._save_sealed(type, lambda: compress.encode_unpacked_parts(parts, self.version))

    async def _save_sealed(self, type: FileType, plaintext: Callable[[], bytes]) -> bytes:
        """Make ``plaintext()`` and encrypt it in a worker thread, store it under its hash."""
        raw = await self.cpu_run(lambda: self.key.seal(plaintext()))
        id_ = hash_id(raw)
        await self.backend.save(Handle(type, id_.hex()), raw)
        return id_

    async def load_snapshot(self, id_: bytes) -> Snapshot:
        return decode_snapshot(await self.load_unpacked(FileType.SNAPSHOT, id_), id_)

    async def load_snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first (as restic lists them)."""
        ids = await self.list_ids(FileType.SNAPSHOT)
        out: list[Snapshot] = []

        async def one(i: bytes) -> None:
            out.append(await self.load_snapshot(i))

        async with trio.open_nursery() as nursery:
            for i in ids:
                nursery.start_soon(one, i)
        out.sort(key=lambda s: (s.time.ns, s.id))
        return out

    # -- index ---------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        if self._index is None:
            raise RuntimeError("index not loaded")
        return self._index

    async def load_index(self) -> Index:
        """Load and merge every index file (snapshots should be listed before this). When the
        index files are the ones already loaded, the loaded index stands: a file's name is the
        hash of its content."""
        ids = await self.list_ids(FileType.INDEX)
        if self._index is not None and self._index_ids == frozenset(ids):
            return self._index
        builder = IndexBuilder()
        send, recv = trio.open_memory_channel[tuple[bytes, bytes]](2)

        async def fetch(chunk: Iterable[bytes], out: trio.MemorySendChannel) -> None:
            async with out:
                for i in chunk:
                    await out.send((i, await self.load_unpacked(FileType.INDEX, i)))

        async with trio.open_nursery() as nursery:
            workers = max(1, self.backend.connections)
            async with send:
                for w in range(workers):
                    nursery.start_soon(fetch, ids[w::workers], send.clone())
            async with recv:
                async for index_id, doc in recv:
                    await self.cpu_run(builder.add_file, index_id, doc)  # errors name the file
        index = await self.cpu_run(builder.finish)
        if self.version < 2 and index.any_compressed():
            raise IntegrityError("index lists compressed blobs in a version 1 repository")
        self._index = index
        self._index_ids = frozenset(ids)
        return index

    # -- blobs ---------------------------------------------------------------------------

    def decode_blob(self, blob_id: bytes, type: BlobType, loc: BlobLocation | PackEntry,
                    pack_id: bytes, sealed: bytes | memoryview) -> bytes:
        """Plaintext of one sealed blob: MAC, decrypt, decompress, check its SHA-256."""
        where = f"{type.name.lower()} blob {blob_id.hex()[:16]} in pack {pack_id.hex()[:16]}"
        try:
            plain = self.key.open(sealed)
        except MacError:
            raise DamagedPack(f"{where}: MAC mismatch (damaged pack)") from None
        if loc.uncompressed_length is not None:
            try:
                plain = compress.decompress(plain, loc.uncompressed_length)
            except IntegrityError as exc:
                raise DamagedPack(f"{where}: {exc}") from None
        if hash_id(plain) != blob_id:
            raise DamagedPack(f"{where}: content does not match its id (damaged pack)")
        return plain

    def decode_blobs(self, type: BlobType, pack_id: bytes, start: int, raw: bytes | memoryview,
                     blobs: Sequence[tuple[bytes, BlobLocation]]) -> list[bytes | DamagedPack]:
        """``decode_blob`` for blobs of ``raw``, read from ``start`` of the pack: per blob its
        plaintext or the DamagedPack it failed with. With the C sealer the whole range is
        decoded in one call that releases the GIL once (CPU work: call from a worker thread
        unless the range is small)."""
        native = self.key.native
        if native is None:
            view = memoryview(raw)
            out: list[bytes | DamagedPack] = []
            for blob_id, loc in blobs:
                rel = loc.offset - start
                try:
                    out.append(self.decode_blob(blob_id, type, loc, pack_id, view[rel:rel + loc.length]))
                except DamagedPack as exc:
                    out.append(exc)
            return out
        got = native.open_blobs(raw, [(loc.offset - start, loc.length,
                                       -1 if loc.uncompressed_length is None else loc.uncompressed_length, blob_id)
                                      for blob_id, loc in blobs])
        return [r if isinstance(r, bytes) else DamagedPack(
                    f"{type.name.lower()} blob {blob_id.hex()[:16]} in pack {pack_id.hex()[:16]}: {_FAILURES[r]}")
                for (blob_id, _), r in zip(blobs, got)]

    async def load_blob(self, type: BlobType, blob_id: bytes) -> bytes:
        """A blob's plaintext; every stored copy is tried before giving up."""
        locations = self.index.lookup(blob_id, type)
        if not locations:
            raise NotFound(f"{type.name.lower()} blob {blob_id.hex()} is not in the index")
        error: Exception | None = None
        for loc in locations:
            try:
                sealed = await self.backend.load(Handle(FileType.PACK, loc.pack_id.hex()),
                                                 loc.length, loc.offset)
                if len(sealed) != loc.length:
                    raise DamagedPack(f"pack {loc.pack_id.hex()}: short read (truncated pack)")
                return await self.cpu_run(self.decode_blob, blob_id, type, loc, loc.pack_id, sealed)
            except FileNotFound:
                error = DamagedPack(f"pack {loc.pack_id.hex()} is listed in the index but missing")
            except DamagedPack as exc:
                error = exc
        assert error is not None
        raise error

    async def load_pack_header(self, pack_id: bytes, size: int | None = None) -> list[PackEntry]:
        """A pack's header entries, read from its tail (one request for small headers)."""
        h = Handle(FileType.PACK, pack_id.hex())
        name = pack_id.hex()
        if size is None:
            size = await self.backend.stat(h)
        tail_len = min(EAGER_TAIL, size)
        tail = await self.backend.load(h, tail_len, size - tail_len) if size else b""
        hlen = header_length(tail, size, name)
        if hlen + HEADER_LEN_SIZE > len(tail):
            tail = await self.backend.load(h, hlen + HEADER_LEN_SIZE, size - hlen - HEADER_LEN_SIZE)
        sealed = tail[len(tail) - HEADER_LEN_SIZE - hlen:len(tail) - HEADER_LEN_SIZE]
        try:
            plain = await self.cpu_run(self.key.open, sealed)
        except MacError:
            raise DamagedPack(f"pack {name}: header MAC mismatch (damaged pack)") from None
        entries = decode_header(plain, name, self.version)
        if entries and entries[-1].offset + entries[-1].length != size - hlen - HEADER_LEN_SIZE:
            raise DamagedPack(f"pack {name}: header does not account for the pack's size")
        return entries

    async def save_key(self, password: bytes) -> bytes:
        """Add a key file for ``password``; returns its id."""
        raw = await trio.to_thread.run_sync(new_key_file, password, self.key)
        id_ = hash_id(raw)
        await self.backend.save(Handle(FileType.KEY, id_.hex()), raw)
        return id_


async def _find_master_key(backend: Backend, names: Iterable[str], password: bytes,
                           cpu: trio.CapacityLimiter) -> Key:
    """The master key of the first key file the password opens."""
    for name in names:
        raw = await backend.load(Handle(FileType.KEY, name))
        kf = KeyFile.decode(raw, name)
        master = await trio.to_thread.run_sync(kf.open, password, limiter=cpu)
        if master is not None:
            return master
    raise WrongPassword("wrong password or no key found")


async def _read_files(backend: Backend, types: Collection[FileType], into: dict[Handle, bytes]) -> None:
    """Read the files of ``types`` (in that order, up to READ_AHEAD_BYTES) into ``into``, as
    many at once as the backend has connections. Best effort: a file that cannot be listed or
    read is left out, and the read that needs it meets the error itself."""
    wanted: list[Handle] = []
    budget = READ_AHEAD_BYTES
    for type in types:
        try:
            listing = await backend.list(type)
        except RepofsError:
            continue
        for name, size in listing:
            if size <= budget:
                budget -= size
                wanted.append(Handle(type, name))
    queue = iter(wanted)

    async def reader() -> None:
        for h in queue:
            try:
                into[h] = await backend.load(h)
            except RepofsError:
                pass

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, backend.connections)):
            nursery.start_soon(reader)
