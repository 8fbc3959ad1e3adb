"""``tools/bench``: options, the order of the work, the printed report and the JSON file."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import ceilings, ops
from .dataset import PROFILES, Dataset, DatasetError, prepare
from .procs import CommandFailed, Processes, on_signal, rss_method
from .report import FAILED, megabytes, simple_table, table
from .tools import ROOT, checkout, fuse_missing, repofs, restic

GROUPS = ("ceilings", "index") + ops.GROUPS
NEEDS_READ_REPO = {"dump", "mount", "copy", "ls"}
NEEDS_MANY_REPO = {"snapshots", "ls"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/bench",
        description="Benchmark repofs against restic on a seeded dataset: every operation repofs "
                    "has, A B A B over the rounds, with this machine's ceilings.")
    parser.add_argument("--profile", choices=PROFILES, default="small",
                        help="dataset size: smoke ~30 MB, small ~370 MB, large ~2 GB (default small)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per operation (default 3)")
    parser.add_argument("--only", action="append", choices=GROUPS, metavar="OP",
                        help=f"run only this part, repeatable: {', '.join(GROUPS)}")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="dataset folder: reused if it holds this profile's dataset, else made there and kept")
    parser.add_argument("--keep", action="store_true", help="keep the dataset made in a temp folder (see --data)")
    parser.add_argument("--seed", type=int, default=1, help="dataset seed (default 1)")
    parser.add_argument("--json-out", type=Path, metavar="PATH",
                        help="JSON results (default bench-results/bench-PROFILE-TIME.json in the checkout)")
    parser.add_argument("--work-dir", type=Path, metavar="DIR",
                        help="where the temporary work folder (repositories, mountpoints, caches) goes")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed per command (default 7200)")
    parser.add_argument("--stall", type=float, default=120.0,
                        help="seconds without output after which a dump or a reader of a mount counts as "
                             "hung (default 120); a hung mount's FUSE connection is aborted")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": memory, "kernel": platform.release(),
            "load_average": os.getloadavg()}


def header(meta: dict[str, object], ds: Dataset | None) -> str:
    m = meta["machine"]
    assert isinstance(m, dict)
    lines = [
        f"repofs benchmark, profile {meta['profile']}, {meta['date']}",
        f"{meta['repofs']} (checkout {meta['checkout']}, Python {platform.python_version()}) vs {meta['restic']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB, Linux {m['kernel']}, "
        f"load average at start {m['load_average'][0]:.2f}",
    ]
    if ds is not None:
        d = ds.manifest
        lines.append(
            f"dataset (seed {d.seed}): {megabytes(d.bytes)} in {d.files:,} files ({len(d.big)} big files of "
            f"{', '.join(megabytes(s) for s in sorted(set(d.big_sizes), reverse=True))}, the rest 1-16 KiB), "
            f"{d.dirs:,} folders, {d.symlinks} symlinks, {d.hardlinks} hardlinks, {d.empty_files} empty files, "
            f"{d.unicode_names} unicode names")
    return "\n".join(lines)


NOTES = """\
How to read it: {rounds} round(s), each operation run by repofs then restic before the next.
  s = median wall seconds, from spawn to exit; MB/s = data / median seconds (10^6 bytes).
  RSS MiB = peak resident set of the tool's process ({rss}), max over rounds; for
  mounts, of the mount process (the reader runs as its own process: find, cat, tar).
  repofs/restic = time ratio per round, median (min-max); below 1 means repofs is faster.
  Both tools run as a user would: restic with its cache (RESTIC_CACHE_DIR in the work
  folder) warm from the set-up before round 1; dataset and repositories are in the page cache.
  Read operations use a repository made by `restic backup`, compressed (format 2)."""


def print_ceilings(figures: dict[str, object]) -> str:
    body = []
    for part in ("disk", "cpu", "chunker"):
        for f in figures.get(part, []):  # type: ignore[union-attr]
            if "error" in f:
                body.append([f["name"], "error", str(f["error"])])
                continue
            note = f.get("note", "")
            if part == "disk":
                note = f"{megabytes(f['bytes'])}, {f['files']:,} files in {f['seconds']:.2f} s"
            body.append([f["name"], f"{f['mb_per_second']:,.1f}", str(note)])
    return (simple_table(["ceiling (one core, one thread)", "MB/s", "measured on"], body)
            + "\n  cold: after sync, each file dropped from the page cache (posix_fadvise DONTNEED);"
            + "\n  a virtual machine's host may still cache the disk.")


def print_index(figures: list[dict[str, object]]) -> str:
    body = []
    for f in figures:
        if "error" in f:
            body.append([f"{f['blobs']:,}", "error", str(f["error"]), "", "", ""])
            continue
        body.append([f"{f['blobs']:,}", f"{f['load_seconds']:.3f}", f"{f['bytes_per_blob']:.1f}",
                     f"{f['table_bytes_per_blob']:.1f}", f"{f['has_hit_us']:.2f}", f"{f['lookup_hit_us']:.2f}"])
    return simple_table(["repofs index: blobs", "load s", "bytes/blob (RSS)", "bytes/blob (tables)",
                         "has() µs", "lookup() µs"], body)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    profile = PROFILES[args.profile]
    groups = [g for g in GROUPS if not args.only or g in args.only]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - began:7.1f} s] {message}", file=sys.stderr, flush=True)

    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="repofs-bench-", dir=args.work_dir))
    if args.data:
        data_root, keep_data = args.data.resolve(), True
    else:
        data_root = Path(tempfile.mkdtemp(prefix="repofs-bench-data-", dir=args.work_dir))
        keep_data = args.keep
    now = datetime.datetime.now(datetime.timezone.utc)
    json_out = args.json_out or ROOT / "bench-results" / f"bench-{profile.name}-{now:%Y%m%dT%H%M%SZ}.json"
    repofs_tool, restic_tool = repofs(work), restic(work)
    meta: dict[str, object] = {
        "date": f"{now:%Y-%m-%d %H:%M} UTC", "profile": profile.name, "rounds": args.rounds,
        "only": groups, "repofs": repofs_tool.version(), "restic": restic_tool.version(),
        "checkout": checkout(), "python": platform.python_version(), "machine": machine(),
        "repofs_command": repofs_tool.base + ["..."], "rss_method": rss_method(),
    }
    results: dict[str, object] = {"meta": meta}
    ds: Dataset | None = None
    ctx: ops.Context | None = None
    code = 0
    try:
        log(f"dataset {profile.name} in {data_root}")
        ds, made = prepare(data_root, profile, args.seed)
        log(("made" if made else "reused") + f" dataset: {megabytes(ds.manifest.bytes)}, {ds.manifest.files:,} files")
        results["dataset"] = ds.manifest.to_json()
        print(header(meta, ds), flush=True)

        if "ceilings" in groups:
            log("ceilings: disk, CPU, chunker")
            results["ceilings"] = {"disk": ceilings.disk(ds), "cpu": ceilings.cpu(ds, profile.ceiling_mib),
                                   "chunker": ceilings.chunker(profile.ceiling_mib)}
            print("\n" + print_ceilings(results["ceilings"]), flush=True)  # type: ignore[arg-type]
        if "index" in groups:
            figures = []
            for blobs in profile.index_blobs:
                log(f"index: {blobs:,} blobs")
                figures.append(ceilings.index(blobs))
            results["index"] = figures
            print("\n" + print_index(figures), flush=True)

        ctx = ops.Context(procs, repofs_tool, restic_tool, ds, work, args.rounds, args.timeout,
                          args.stall, log, fuse_missing())
        wanted = [g for g in ops.GROUPS if g in groups]
        if NEEDS_READ_REPO & set(wanted):
            log("restic backup of the dataset into the read repository")
            ops.prepare_read_repo(ctx)
        if NEEDS_MANY_REPO & set(wanted):
            log(f"restic backup of {profile.snapshots} snapshots")
            ops.prepare_many_repo(ctx, profile.snapshots)
        results["setup"] = ctx.setup
        for group in wanted:
            log(f"{group}")
            if group in ("snapshots", "ls"):
                getattr(ops, group)(ctx, profile.snapshots)
            else:
                getattr(ops, group)(ctx)
        if any(side.status == FAILED for row in ctx.rows for side in row.sides.values()):
            code = 1
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        results["interrupted"] = True
        code = 130
    except (DatasetError, CommandFailed) as e:
        log(f"error: {e}")
        results["error"] = str(e)
        code = 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for note in procs.cleanup():
            log(f"cleanup: {note}")
        shutil.rmtree(work, ignore_errors=True)
        if not keep_data:
            shutil.rmtree(data_root, ignore_errors=True)
        elif ds is not None and not args.data:
            log(f"dataset kept in {data_root}: reuse it with --data {data_root}")
        rows = ctx.rows if ctx else []
        results["operations"] = [row.to_json() for row in rows]
        results["seconds"] = time.monotonic() - began
        meta["load_average_at_end"] = os.getloadavg()
        if rows:
            print("\n" + NOTES.format(rounds=args.rounds, rss=rss_method()) + "\n\n" + table(rows), flush=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}; {time.monotonic() - began:.0f} s in all",
              flush=True)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        log(f"results in {json_out}; {time.monotonic() - began:.0f} s in all")
    return code
