"""The benchmark's data: a seeded, reproducible folder tree, standard library only.

One ``random.Random(seed)`` drives everything, consumed in a fixed order, so a profile and a
seed always give the same names, bytes, modes and times. The tree, under ``DIR/data``:

* ``big/big-N.bin``: large files of 64 KiB blocks, about half random bytes and half text
  (partly compressible, no duplicate chunks);
* ``tree/dNNN/sNN/``: the small files (1-16 KiB, text or random bytes), spread round-robin
  over the leaf folders, with empty files, unicode names and 0600/0755 modes among them and
  a relative symlink next to some;
* ``hardlinks/``: second names of some small files; ``links/``: symlinks to a folder, a big
  file, nowhere and an absolute path; ``empty/``: empty folders; ``deep/``: a deep path.

``DIR/bench-dataset.json`` (the manifest) is written last and describes what was made, so a
kept folder is reused only when complete and of the same profile, seed and generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

# 2: the large profile's first big file is 384 MiB, the size the issues' restic figures use.
GENERATOR = 2
MANIFEST = "bench-dataset.json"
PARTIAL = ".bench-dataset-partial"
MIB = 1 << 20
BLOCK = 64 << 10
FOLDERS_PER_TOP = 25
BASE_TIME = 1_704_067_200  # 2024-01-01T00:00:00Z
UNICODE_NAMES = (
    "café", "naïve résumé", "日本語のファイル", "Ελληνικά", "emoji-🎉",
    "e\u0301-combining", "spaces in name", "Ünïcødé", "Кириллица", "עברית",
)


class DatasetError(Exception):
    """A folder given for the dataset holds something else."""


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark profile."""

    name: str
    big_files: tuple[int, ...]  # bytes of each big file; the first is "the big file"
    small_files: int
    folders: int  # leaf folders holding the small files
    snapshots: int  # in the repository with many snapshots
    index_blobs: tuple[int, ...]  # blob counts for tools/bench_index.py
    ceiling_mib: int  # data per CPU ceiling measurement


PROFILES = {
    "smoke": Profile("smoke", (8 * MIB, 8 * MIB, 4 * MIB), 1_200, 60, 5, (100_000,), 16),
    "small": Profile("small", (64 * MIB,) * 3, 20_000, 1_000, 50, (100_000, 1_000_000), 64),
    "large": Profile("large", (384 * MIB,) + (128 * MIB,) * 5 + (64 * MIB,), 100_000, 5_000, 50,
                     (100_000, 1_000_000), 64),
}


@dataclass
class Manifest:
    """What a generated dataset holds; sizes count every path, hardlinks once per name."""

    profile: str
    seed: int
    generator: int
    files: int = 0  # regular file names, hardlinks included
    bytes: int = 0  # their sizes summed (what a tar of the tree carries)
    unique_bytes: int = 0  # with each hardlinked inode counted once
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0  # extra names
    empty_files: int = 0  # names of empty regular files
    unicode_names: int = 0
    entries: int = 0  # every path below data/ (what `find` prints, less the root)
    big: list[str] = dataclasses.field(default_factory=list)  # relative paths
    big_sizes: list[int] = dataclasses.field(default_factory=list)
    snapshot_dirs: list[str] = dataclasses.field(default_factory=list)  # for the many-snapshot repo
    snapshot_files: int = 0

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class Dataset:
    """A dataset on disk: the folder, its ``data`` subfolder and its manifest."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.data = root / "data"
        self.manifest = manifest

    @property
    def big_file(self) -> str:
        return self.manifest.big[0]

    @property
    def big_size(self) -> int:
        return self.manifest.big_sizes[0]


def prepare(root: Path, profile: Profile, seed: int) -> tuple[Dataset, bool]:
    """The dataset in ``root``: reused if complete and matching, else made. True if made."""
    manifest_path = root / MANIFEST
    if manifest_path.exists() and not (root / PARTIAL).exists():
        found = Manifest(**json.loads(manifest_path.read_text()))
        if (found.profile, found.seed, found.generator) != (profile.name, seed, GENERATOR):
            raise DatasetError(
                f"{root} holds the {found.profile!r} dataset (seed {found.seed}, generator "
                f"{found.generator}); pick another folder for {profile.name!r} (seed {seed})")
        return Dataset(root, found), False
    if root.exists() and any(root.iterdir()) and not (root / PARTIAL).exists():
        raise DatasetError(f"{root} is not empty and holds no benchmark dataset")
    root.mkdir(parents=True, exist_ok=True)
    (root / PARTIAL).touch()
    shutil.rmtree(root / "data", ignore_errors=True)
    manifest_path.unlink(missing_ok=True)
    manifest = generate(root / "data", profile, seed)
    manifest_path.write_text(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False) + "\n")
    (root / PARTIAL).unlink()
    return Dataset(root, manifest), True


def text_pool(rng: random.Random, size: int) -> bytes:
    """Words of a made-up language: compresses about 2:1 with zstd, unlike random bytes."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(4096)]
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choices(words, k=12)) + ".\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def generate(data: Path, profile: Profile, seed: int) -> Manifest:
    """Write the dataset of ``profile`` into the new folder ``data``."""
    rng = random.Random(seed)
    pool = text_pool(rng, 4 * MIB)
    m = Manifest(profile.name, seed, GENERATOR)
    data.mkdir(parents=True)

    def mkdir(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def write(path: Path, content: bytes, mode: int, when: int) -> None:
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        os.utime(path, ns=(when * 10**9, when * 10**9))

    def symlink(target: str, path: Path) -> None:
        os.symlink(target, path)
        os.utime(path, ns=(BASE_TIME * 10**9,) * 2, follow_symlinks=False)
        m.symlinks += 1

    mkdir(data / "big")
    for n, size in enumerate(profile.big_files):
        path = data / "big" / f"big-{n}.bin"
        with open(path, "wb") as f:
            buffer = bytearray()
            for _ in range(size // BLOCK):
                if rng.random() < 0.5:
                    buffer += rng.randbytes(BLOCK)
                else:
                    at = rng.randrange(len(pool) - BLOCK)
                    buffer += pool[at:at + BLOCK]
                if len(buffer) >= 4 * MIB:
                    f.write(buffer)
                    buffer.clear()
            f.write(buffer)
        os.utime(path, ns=((BASE_TIME + n) * 10**9,) * 2)
        m.big.append(f"big/big-{n}.bin")
        m.big_sizes.append(size)
        m.files += 1
        m.bytes += size
        m.unique_bytes += size

    tops = -(-profile.folders // FOLDERS_PER_TOP)
    leaves = [f"tree/d{i // FOLDERS_PER_TOP:03d}/s{i % FOLDERS_PER_TOP:02d}" for i in range(profile.folders)]
    for leaf in leaves:
        mkdir(data / leaf)
    m.snapshot_dirs = [f"tree/d{i:03d}" for i in range(max(1, tops // 10))]
    mkdir(data / "hardlinks")
    for i in range(profile.small_files):
        leaf = leaves[i % len(leaves)]
        if i % 97 == 0:
            size = 0
            m.empty_files += 1
        else:
            size = rng.randint(1024, 16 * 1024)
        if rng.random() < 0.6:
            at = rng.randrange(len(pool) - size) if size else 0
            content, ext = pool[at:at + size], "txt"
        else:
            content, ext = rng.randbytes(size), "bin"
        name = f"f{i:06d}.{ext}"
        if i % 61 == 0:
            name = f"{UNICODE_NAMES[(i // 61) % len(UNICODE_NAMES)]}-{i}.{ext}"
            m.unicode_names += 1
        mode = 0o600 if i % 13 == 0 else 0o755 if i % 17 == 0 else 0o644
        path = data / leaf / name
        write(path, content, mode, BASE_TIME + 3600 + i)
        m.files += 1
        m.bytes += size
        m.unique_bytes += size
        if leaf.startswith(tuple(d + "/" for d in m.snapshot_dirs)):
            m.snapshot_files += 1
        if i % 53 == 0:
            symlink(name, data / leaf / f"link-{i:06d}")
        if i % 89 == 0:
            os.link(path, data / "hardlinks" / f"hl-{i:06d}.{ext}")
            m.files += 1
            m.hardlinks += 1
            m.bytes += size
            m.empty_files += not size

    mkdir(data / "links")
    symlink("../tree/d000", data / "links" / "to-folder")
    symlink("../" + m.big[0], data / "links" / "to-big-file")
    symlink("../nowhere/at/all", data / "links" / "dangling")
    symlink("/nonexistent/absolute/target", data / "links" / "absolute")
    for i in range(10):
        mkdir(data / "empty" / f"e{i}")
    deep = data / "deep" / "/".join("abcdefghijklmnop")
    mkdir(deep)
    write(deep / "bottom.txt", pool[:100], 0o644, BASE_TIME)
    m.files += 1
    m.bytes += 100
    m.unique_bytes += 100

    # Folders last, deepest first, so writing inside them no longer moves their times.
    folders = sorted((p for p in data.rglob("*") if p.is_dir() and not p.is_symlink()),
                     key=lambda p: len(p.parts), reverse=True)
    for path in folders + [data]:
        os.chmod(path, 0o755)
        os.utime(path, ns=(BASE_TIME * 10**9,) * 2)
    m.dirs = len(folders)
    m.entries = sum(1 for _ in data.rglob("*"))
    return m


def digest(data: Path) -> str:
    """SHA-256 over every path, type, mode, size, time and content or link target, sorted."""
    h = hashlib.sha256()
    for path in sorted(data.rglob("*")):
        st = path.lstat()
        h.update(os.fsencode(path.relative_to(data)) + b"\0")
        h.update(b"%o %d %d %d\0" % (st.st_mode, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                                       st.st_mtime_ns, st.st_nlink))
        if stat.S_ISLNK(st.st_mode):
            h.update(os.fsencode(os.readlink(path)))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                while block := f.read(MIB):
                    h.update(block)
    return h.hexdigest()
