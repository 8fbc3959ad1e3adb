"""The operations, each run by repofs and restic in turn: A B A B over the rounds.

A group (backup, dump, mount, copy, snapshots, ls) is a list of sessions; a session is what one
tool does once in one round and yields one or more measured rows (a backup session makes a new
repository and backs up twice). Per round, every session runs repofs then restic before the
next session starts. A tool without the command is "not implemented" for that session; after
a failure a tool sits out the remaining rounds of that session.

Read operations use repositories made by restic before round 1 (so they work before repofs
can write): one snapshot of the whole dataset, and one repository with many snapshots of a
small part of it. Untimed set-up (``init``, fresh copy targets) runs between the timed runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .dataset import Dataset
from .procs import CommandFailed, Mount, Processes, Run, abort_fuse
from .report import NOT_IMPLEMENTED, OK, SKIPPED, Measure, Row, megabytes
from .tools import Tool

GROUPS = ("backup", "dump", "mount", "copy", "snapshots", "ls")
HOST = "bench"


@dataclass
class Context:
    procs: Processes
    repofs: Tool
    restic: Tool
    dataset: Dataset
    work: Path
    rounds: int
    timeout: float
    stall: float
    log: Callable[[str], None]
    fuse_missing: str | None
    read_repo: Path | None = None
    many_repo: Path | None = None
    repo_bytes: int = 0
    setup: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)  # every row so far, for a report after Ctrl-C

    @property
    def tools(self) -> tuple[Tool, Tool]:
        return self.repofs, self.restic

    def run(self, cmd: list[str], tool: Tool, cwd: Path | None = None, streams: bool = False,
            on_hang: Callable[[], object] | None = None, count_lines: bool = True) -> Run:
        """Run ``cmd``; one that ``streams`` output is taken for hung after ``stall`` quiet
        seconds. Bulk output whose lines nobody checks is better not ``count_lines``."""
        return self.procs.run(cmd, tool.env, cwd, self.timeout, self.stall if streams else None, on_hang,
                              count_lines)

    def must(self, cmd: list[str], tool: Tool, cwd: Path | None = None) -> Run:
        """An untimed step that has to work for the benchmark to go on."""
        done = self.run(cmd, tool, cwd)
        if done.error():
            raise CommandFailed(f"{' '.join(cmd[-4:])}: {done.error()}")
        return done


@dataclass
class Session:
    keys: list[str]
    command: str  # the subcommand a tool needs
    run: Callable[[Tool, int], dict[str, Measure]]
    fuse: bool = False


Check = Callable[[Run], str | None]


def measure(r: int, done: Run, check: Check | None = None, rss: int | None = None) -> Measure:
    error = done.error() or (check(done) if check else None)
    return Measure(r, done.seconds, done.rss_bytes if rss is None else rss, done.out_bytes, error)


def at_least(n: int, what: str = "bytes", lines: bool = False) -> Check:
    def check(done: Run) -> str | None:
        got = done.out_lines if lines else done.out_bytes
        return None if got >= n else f"wrong output: {got:,} {what}, expected at least {n:,}"
    return check


def exactly(n: int, what: str = "bytes", lines: bool = False) -> Check:
    def check(done: Run) -> str | None:
        got = done.out_lines if lines else done.out_bytes
        return None if got == n else f"wrong output: {got:,} {what}, expected {n:,}"
    return check


def alternate(ctx: Context, rows: list[Row], sessions: list[Session]) -> None:
    ctx.rows += rows
    by_key = {row.key: row for row in rows}
    for session in sessions:
        for tool in ctx.tools:
            why = None
            if session.fuse and ctx.fuse_missing:
                status, why = SKIPPED, ctx.fuse_missing
            elif not tool.has(session.command):
                status, why = NOT_IMPLEMENTED, f"no `{tool.name} {session.command}`"
            if why:
                for key in session.keys:
                    by_key[key].sides[tool.name].status = status
                    by_key[key].sides[tool.name].reason = why if status == SKIPPED else ""
    for r in range(ctx.rounds):
        for session in sessions:
            for tool in ctx.tools:
                if any(by_key[k].sides[tool.name].status != OK for k in session.keys):
                    continue
                try:
                    got = session.run(tool, r)
                except CommandFailed as e:
                    got = {k: Measure(r, 0.0, None, error=str(e)) for k in session.keys}
                for key, m in got.items():
                    by_key[key].record(tool.name, m)
                    figure = f"{m.seconds:.3f} s" if m.error is None else f"FAILED: {m.error}"
                    ctx.log(f"{by_key[key].title}: {tool.name} round {r + 1}: {figure}")


# -- repositories made before round 1 ------------------------------------------------------

def prepare_read_repo(ctx: Context) -> None:
    """One restic snapshot of the whole dataset, and both tools' caches warmed on it."""
    repo = ctx.work / "repos" / "read"
    ctx.must(ctx.restic(repo, "init"), ctx.restic)
    start = time.perf_counter()
    ctx.must(ctx.restic(repo, "backup", "--host", HOST, "."), ctx.restic, ctx.dataset.data)
    ctx.setup["restic backup of the read repository, seconds"] = time.perf_counter() - start
    ctx.read_repo = repo
    ctx.repo_bytes = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
    warm(ctx, repo)


def prepare_many_repo(ctx: Context, snapshots: int) -> None:
    """``snapshots`` restic snapshots of a part of the dataset, a file changing every time."""
    source = ctx.work / "many-src"
    for part in ctx.dataset.manifest.snapshot_dirs:
        shutil.copytree(ctx.dataset.data / part, source / part, symlinks=True, copy_function=os.link)
    repo = ctx.work / "repos" / "many"
    ctx.must(ctx.restic(repo, "init"), ctx.restic)
    start = time.perf_counter()
    for i in range(snapshots):
        (source / "counter.txt").write_text(f"snapshot {i}\n")
        host = HOST if i % 5 else f"{HOST}-2"
        tag = "weekly" if i % 7 == 0 else "daily"
        ctx.must(ctx.restic(repo, "backup", "--host", host, "--tag", tag, "."), ctx.restic, source)
    ctx.setup[f"restic backup of {snapshots} snapshots, seconds"] = time.perf_counter() - start
    ctx.many_repo = repo
    warm(ctx, repo)


def warm(ctx: Context, repo: Path) -> None:
    """An untimed `ls latest` by each tool: restic's cache and the page cache filled."""
    for tool in ctx.tools:
        if tool.has("ls"):
            ctx.run(tool(repo, "ls", "latest"), tool)


# -- groups ---------------------------------------------------------------------------------

def backup(ctx: Context) -> list[Row]:
    m = ctx.dataset.manifest
    data = f"{megabytes(m.bytes)}, {m.files:,} files"
    rows = [Row("backup.first", "backup", "backup, first (new repository)", m.bytes, data),
            Row("backup.second", "backup", "backup, unchanged second", m.bytes, data)]

    def session(tool: Tool, r: int) -> dict[str, Measure]:
        repo = ctx.work / "repos" / f"backup-{tool.name}-{r}"
        maker = tool if tool.has("init") else ctx.restic
        ctx.must(maker(repo, "init"), maker)
        try:
            cmd = tool(repo, "backup", "--host", HOST, ".")
            first = measure(r, ctx.run(cmd, tool, ctx.dataset.data))
            if first.error:
                return {"backup.first": first, "backup.second": Measure(r, 0.0, None, error="first backup failed")}
            second = measure(r, ctx.run(cmd, tool, ctx.dataset.data))
            return {"backup.first": first, "backup.second": second}
        finally:
            shutil.rmtree(repo, ignore_errors=True)

    alternate(ctx, rows, [Session(["backup.first", "backup.second"], "backup", session)])
    return rows


def dump(ctx: Context) -> list[Row]:
    m, ds = ctx.dataset.manifest, ctx.dataset
    assert ctx.read_repo is not None
    repo = ctx.read_repo
    data = megabytes(m.bytes)
    big = f"{megabytes(ds.big_size)} file"
    rows = [Row("dump.tar", "dump", "dump, whole snapshot as tar", m.bytes, data),
            Row("dump.zip", "dump", "dump, whole snapshot as zip", m.bytes, data),
            Row("dump.file", "dump", "dump, one big file", ds.big_size, big)]

    def one(key: str, args: list[str], check: Check) -> Session:
        def session(tool: Tool, r: int) -> dict[str, Measure]:
            done = ctx.run(tool(repo, "dump", *args), tool, streams=True, count_lines=False)
            return {key: measure(r, done, check)}
        return Session([key], "dump", session)

    alternate(ctx, rows, [
        one("dump.tar", ["--archive", "tar", "latest", "/"], at_least(m.unique_bytes)),
        one("dump.zip", ["--archive", "zip", "latest", "/"], at_least(1)),
        one("dump.file", ["latest", "/" + ds.big_file], exactly(ds.big_size)),
    ])
    return rows


def mount(ctx: Context) -> list[Row]:
    m, ds = ctx.dataset.manifest, ctx.dataset
    assert ctx.read_repo is not None
    rows = [Row("mount.listing", "mount", "mount, time to first listing", None, "snapshots/"),
            Row("mount.find", "mount", "mount, find over the snapshot", None, f"{m.entries + 1:,} entries"),
            Row("mount.cat", "mount", "mount, cat one big file", ds.big_size, f"{megabytes(ds.big_size)} file"),
            Row("mount.tar", "mount", "mount, tar of the whole snapshot", m.bytes, megabytes(m.bytes))]
    latest = Path("snapshots", "latest")
    readers: dict[str, tuple[Callable[[Path], list[str]], Check] | None] = {
        "mount.listing": None,
        "mount.find": (lambda mnt: ["find", f"{mnt / latest}/"], exactly(m.entries + 1, "entries", lines=True)),
        "mount.cat": (lambda mnt: ["cat", str(mnt / latest / ds.big_file)], exactly(ds.big_size)),
        "mount.tar": (lambda mnt: ["tar", "-cf", "-", "-C", f"{mnt / latest}/", "."], at_least(m.unique_bytes)),
    }

    def one(key: str) -> Session:
        def session(tool: Tool, r: int) -> dict[str, Measure]:
            name = f"{tool.name}-{r}-{key.split('.')[1]}"
            mnt = ctx.work / "mnt" / name
            assert ctx.read_repo is not None
            mounted = Mount(ctx.procs, tool(ctx.read_repo, "mount", mnt), tool.env, mnt,
                            ctx.work / "logs" / f"mount-{name}.log")
            mounted.start()
            try:
                listing = mounted.wait_listing()
                reader = readers[key]
                done = None
                if reader:
                    done = ctx.run(reader[0](mnt), tool, streams=True, on_hang=lambda: abort_fuse(mnt),
                                   count_lines=key == "mount.find")
            except BaseException:
                try:
                    mounted.stop()
                except CommandFailed:
                    pass
                raise
            rss = mounted.stop()
            if done is None or reader is None:
                return {key: Measure(r, listing, rss)}
            return {key: measure(r, done, reader[1], rss)}
        return Session([key], "mount", session, fuse=True)

    alternate(ctx, rows, [one(key) for key in readers])
    return rows


def copy(ctx: Context) -> list[Row]:
    assert ctx.read_repo is not None
    source = ctx.read_repo
    rows = [Row("copy.full", "copy", "copy, all snapshots to a new repository", ctx.repo_bytes,
                f"repository {megabytes(ctx.repo_bytes)}")]

    def session(tool: Tool, r: int) -> dict[str, Measure]:
        target = ctx.work / "repos" / f"copy-{tool.name}-{r}"
        ctx.must(ctx.restic(target, "init", "--from-repo", source, "--copy-chunker-params"), ctx.restic)
        try:
            done = ctx.run(tool(target, "copy", "--from-repo", source), tool)
            return {"copy.full": measure(r, done)}
        finally:
            shutil.rmtree(target, ignore_errors=True)

    alternate(ctx, rows, [Session(["copy.full"], "copy", session)])
    return rows


def snapshots(ctx: Context, count: int) -> list[Row]:
    assert ctx.many_repo is not None
    repo = ctx.many_repo
    data = f"{count} snapshots"
    rows = [Row("snapshots.text", "snapshots", "snapshots", None, data),
            Row("snapshots.json", "snapshots", "snapshots --json", None, data)]

    def one(key: str, args: list[str], check: Check) -> Session:
        def session(tool: Tool, r: int) -> dict[str, Measure]:
            return {key: measure(r, ctx.run(tool(repo, "snapshots", *args), tool), check)}
        return Session([key], "snapshots", session)

    alternate(ctx, rows, [one("snapshots.text", [], at_least(count, "lines", lines=True)),
                          one("snapshots.json", ["--json"], at_least(count * 100))])
    return rows


def ls(ctx: Context, count: int) -> list[Row]:
    m = ctx.dataset.manifest
    assert ctx.many_repo is not None and ctx.read_repo is not None
    many, read = ctx.many_repo, ctx.read_repo
    rows = [Row("ls.many", "ls", f"ls -l latest, repository of {count} snapshots", None,
                f"{m.snapshot_files:,} files"),
            Row("ls.dataset", "ls", "ls -l latest, whole dataset", None, f"{m.entries:,} entries")]

    def one(key: str, repo: Path, check: Check) -> Session:
        def session(tool: Tool, r: int) -> dict[str, Measure]:
            return {key: measure(r, ctx.run(tool(repo, "ls", "-l", "latest"), tool), check)}
        return Session([key], "ls", session)

    alternate(ctx, rows, [one("ls.many", many, at_least(m.snapshot_files, "lines", lines=True)),
                          one("ls.dataset", read, at_least(m.entries, "lines", lines=True))])
    return rows

