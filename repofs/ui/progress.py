"""Backup progress: counters fed by the archiver's events, shown while it runs, and restic's
summary at the end.

While running: on a terminal a tqdm bar (bytes read of the total the scanner found, rate,
ETA, files, errors); with ``--json`` restic's ``status`` lines; otherwise nothing. At the end
the text summary reads like restic's, and ``--json`` prints restic's ``summary`` object, with
restic's field names, so tools that parse restic's output parse ours. ``-v``/``-vv`` add
restic's verbose lines (``verbose_status`` objects in JSON).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

import trio

from ..archiver.nodes import same_node
from ..archiver.report import ItemStats
from ..archiver.scanner import Totals
from ..model import gojson
from ..model.tree import Node

DEFAULT_FPS = 60.0
_COUNTERS = {"new": "new", "modified": "changed", "unchanged": "unmodified"}
TERMINAL_INTERVAL = 0.2


def format_bytes(n: int) -> str:
    """restic's byte counts: three decimals and a binary unit above 1 KiB."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n > 1 << shift:
            return f"{n / (1 << shift):.3f} {unit}"
    return f"{n} B"


def format_seconds(sec: int) -> str:
    """``M:SS``, or ``H:MM:SS`` from an hour on."""
    hours, rest = divmod(int(sec), 3600)
    minutes, sec = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def go_float(x: float) -> float | int:
    """A float as Go's JSON writes it: integral values without ``.0``."""
    return int(x) if x == int(x) and abs(x) < 1e21 else x


def error_object(exc: BaseException) -> dict[str, Any]:
    """How Go's JSON shows an error value: a path error's fields, else an empty object."""
    op = getattr(exc, "op", "")
    if op:
        return {"Op": op, "Path": getattr(exc, "path", ""), "Err": getattr(exc, "errno", 0)}
    return {}


@dataclass
class Summary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    processed_bytes: int = 0
    stats: ItemStats = field(default_factory=ItemStats)

    @property
    def files(self) -> int:
        return self.files_new + self.files_changed + self.files_unmodified


class BackupProgress:
    """The archiver's Reporter for the backup command, and its output."""

    def __init__(self, *, json: bool = False, verbosity: int = 0, quiet: bool = False,
                 stdout: IO[str] | None = None, stderr: IO[str] | None = None,
                 totals: Totals | None = None) -> None:
        self.json = json
        self.verbosity = 0 if quiet else verbosity
        self.quiet = quiet
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.totals = totals or Totals()
        self.summary = Summary()
        self.errors = 0
        self.files_done = 0
        self.dirs_done = 0
        self.bytes_done = 0
        self.current: set[str] = set()
        self.start = time.monotonic()
        self._bar: Any = None
        self._scan_reported = False
        self._last_status: dict[str, Any] | None = None

    # -- when to show what ----------------------------------------------------------------

    @property
    def shows_status(self) -> bool:
        """Whether ``run`` has anything to show (and a scanner is worth running)."""
        if self.quiet:
            return False
        if self.json:
            return True
        return _is_terminal(self.out)

    def interval(self) -> float:
        try:
            fps = float(os.environ.get("RESTIC_PROGRESS_FPS", ""))
        except ValueError:
            fps = 0.0
        if fps > 0:
            return 1.0 / min(fps, DEFAULT_FPS)
        return 1.0 / DEFAULT_FPS if self.json else TERMINAL_INTERVAL

    # -- plain messages -------------------------------------------------------------------

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def message(self, text: str) -> None:
        """restic's P: shown in text mode unless quiet."""
        if not self.json and not self.quiet:
            self._print(text)

    def verbose(self, text: str, level: int = 1) -> None:
        """restic's V (``-v``, level 1) and VV (``-vv``, level 2) in text mode."""
        if not self.json and self.verbosity >= level:
            self._print(text)

    def _json(self, doc: dict[str, Any], stream: IO[str] | None = None) -> None:
        stream = stream or self.out
        stream.write(gojson.dumps(doc).decode() + "\n")
        stream.flush()

    # -- Reporter ---------------------------------------------------------------------------

    def start_file(self, item: str) -> None:
        self.current.add(item)

    def complete_blob(self, nbytes: int) -> None:
        self.bytes_done += nbytes

    def error(self, item: str, exc: BaseException) -> None:
        self.errors += 1
        if self.json:
            self._json({"message_type": "error", "error": error_object(exc), "during": "archival",
                        "item": item}, self.err)
        else:
            if self._bar is not None:
                self._bar.clear()
            self.err.write(f"error: {exc}\n")
            self.err.flush()

    def complete_item(self, item: str, previous: Node | None, current: Node | None,
                      stats: ItemStats, seconds: float) -> None:
        s = self.summary
        s.stats.add(stats)
        if current is None:
            self.current.discard(item)
            return
        s.processed_bytes += current.size
        if current.type == "file":
            self.files_done += 1
            self.current.discard(item)
        elif current.type == "dir":
            self.dirs_done += 1
        else:
            return
        kind = "dir" if current.type == "dir" else "file"
        if previous is None:
            action = "new"
        elif same_node(previous, current):
            action = "unchanged"
        else:
            action = "modified"
        counter = f"{kind}s_{_COUNTERS[action]}"
        setattr(s, counter, getattr(s, counter) + 1)
        if self.verbosity >= (1 if self.json else 2):
            self._verbose_item(kind, action, item, stats, seconds)

    def _verbose_item(self, kind: str, action: str, item: str, s: ItemStats, seconds: float) -> None:
        if self.json:
            doc: dict[str, Any] = {"message_type": "verbose_status", "action": action, "item": item,
                                   "duration": 0, "data_size": 0, "data_size_in_repo": 0,
                                   "metadata_size": 0, "metadata_size_in_repo": 0, "total_files": 0}
            if action != "unchanged":
                doc["duration"] = go_float(seconds)
                doc["data_size"] = s.data_size
                doc["data_size_in_repo"] = s.data_size_in_repo
                if kind == "dir":
                    doc["metadata_size"] = s.tree_size
                    doc["metadata_size_in_repo"] = s.tree_size_in_repo
            self._json(doc)
            return
        if action == "unchanged":
            self._print(f"unchanged {item}")
            return
        label = "new      " if action == "new" else "modified "
        line = f"{label} {item}, saved in {seconds:.3f}s ({format_bytes(s.data_size)} added"
        if kind == "dir":
            line += (f", {format_bytes(s.data_size_in_repo)} stored, "
                     f"{format_bytes(s.tree_size_in_repo)} metadata)")
        elif action == "modified":
            line += f", {format_bytes(s.data_size_in_repo)} stored)"
        else:
            line += ")"
        self._print(line)

    # -- running status --------------------------------------------------------------------

    async def run(self) -> None:
        """Show the status until cancelled."""
        if not self.shows_status:
            await trio.sleep_forever()
        interval = self.interval()
        try:
            while True:
                await trio.sleep(interval)
                self.update()
        finally:
            self.close()

    def _seconds_remaining(self) -> int:
        t = self.totals
        if not t.done or not self.bytes_done or t.bytes <= self.bytes_done:
            return 0
        elapsed = int(time.monotonic() - self.start)
        return int(elapsed / self.bytes_done * (t.bytes - self.bytes_done))

    def update(self) -> None:
        t = self.totals
        if t.done and not self._scan_reported:
            self._scan_reported = True
            self._scan_finished()
        if self.json:
            self._json_status()
        else:
            self._terminal_status()

    def _scan_finished(self) -> None:
        t = self.totals
        if self.json:
            if self.verbosity >= 1:
                self._json({"message_type": "status", "action": "scan_finished", "item": "",
                            "duration": go_float(t.seconds), "data_size": t.bytes, "data_size_in_repo": 0,
                            "metadata_size": 0, "metadata_size_in_repo": 0, "total_files": t.files})
        else:
            self.verbose(f"scan finished in {t.seconds:.3f}s: {t.files} files, {format_bytes(t.bytes)}")

    def _json_status(self) -> None:
        t = self.totals
        doc: dict[str, Any] = {"message_type": "status"}
        elapsed = int(time.monotonic() - self.start)
        if elapsed:
            doc["seconds_elapsed"] = elapsed
        remaining = self._seconds_remaining()
        if remaining:
            doc["seconds_remaining"] = remaining
        doc["percent_done"] = go_float(self.bytes_done / t.bytes) if t.bytes else 0
        for key, value in (("total_files", t.files), ("files_done", self.files_done),
                           ("total_bytes", t.bytes), ("bytes_done", self.bytes_done),
                           ("error_count", self.errors)):
            if value:
                doc[key] = value
        if self.current:
            doc["current_files"] = sorted(self.current)
        if doc != self._last_status:
            self._last_status = dict(doc)
            self._json(doc)

    def _terminal_status(self) -> None:
        from tqdm import tqdm  # only on a terminal: keep the import off the plain path

        t = self.totals
        if self._bar is None:
            self._bar = tqdm(total=t.bytes or None, unit="B", unit_scale=True, unit_divisor=1024,
                             file=self.out, leave=False, dynamic_ncols=True, mininterval=0,
                             bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
        bar = self._bar
        if t.bytes and bar.total != t.bytes:
            bar.total = t.bytes
        bar.n = self.bytes_done
        total_files = f"/{t.files}" if t.files else ""
        bar.set_postfix_str(f"{self.files_done}{total_files} files, {self.errors} errors", refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- the end -----------------------------------------------------------------------------

    def finish(self, snapshot_id: bytes, dry_run: bool) -> None:
        """restic's summary: the text block, or the JSON ``summary`` object."""
        self.close()
        s = self.summary
        duration = time.monotonic() - self.start
        if self.json:
            doc: dict[str, Any] = {
                "message_type": "summary",
                "files_new": s.files_new, "files_changed": s.files_changed,
                "files_unmodified": s.files_unmodified,
                "dirs_new": s.dirs_new, "dirs_changed": s.dirs_changed, "dirs_unmodified": s.dirs_unmodified,
                "data_blobs": s.stats.data_blobs, "tree_blobs": s.stats.tree_blobs,
                "data_added": s.stats.data_size + s.stats.tree_size,
                "total_files_processed": s.files, "total_bytes_processed": s.processed_bytes,
                "total_duration": go_float(duration), "snapshot_id": snapshot_id.hex()[:8],
            }
            if dry_run:
                doc["dry_run"] = True
            self._json(doc)
            return
        self.message("")
        self.message(f"Files:       {s.files_new:5d} new, {s.files_changed:5d} changed, "
                     f"{s.files_unmodified:5d} unmodified")
        self.message(f"Dirs:        {s.dirs_new:5d} new, {s.dirs_changed:5d} changed, "
                     f"{s.dirs_unmodified:5d} unmodified")
        self.verbose(f"Data Blobs:  {s.stats.data_blobs:5d} new")
        self.verbose(f"Tree Blobs:  {s.stats.tree_blobs:5d} new")
        verb = "Would add" if dry_run else "Added"
        added = format_bytes(s.stats.data_size + s.stats.tree_size)
        stored = format_bytes(s.stats.data_size_in_repo + s.stats.tree_size_in_repo)
        self.message(f"{verb} to the repository: {added:<5} ({stored:<5} stored)")
        self.message("")
        self.message(f"processed {s.files} files, {format_bytes(s.processed_bytes)} in "
                     f"{format_seconds(int(duration))}")


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
