"""Counting what a backup will read, alongside the backup, for progress and ETA.

Like restic's scanner it walks the targets with the same excludes and only ``lstat``s;
it runs in one worker thread and publishes running totals in a ``Totals`` record.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass

from .select import Selector


@dataclass(slots=True)
class Totals:
    """Running totals; ``done`` once the whole selection was counted."""

    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    done: bool = False
    seconds: float = 0.0


def count(targets: list[bytes], selector: Selector, totals: Totals, stop: threading.Event) -> None:
    """Walk the absolute ``targets``, updating ``totals``; returns early once ``stop`` is set."""
    start = time.monotonic()
    stack = list(reversed(targets))
    while stack and not stop.is_set():
        path = stack.pop()
        if not selector.by_name(path):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if selector.filters_by_stat and not selector.by_stat(path, st):
            continue
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            totals.dirs += 1
            try:
                names = os.listdir(path)
            except OSError:
                continue
            prefix = path if path.endswith(b"/") else path + b"/"
            stack.extend(prefix + n for n in sorted(names, reverse=True))
        elif stat.S_ISREG(mode):
            totals.files += 1
            totals.bytes += st.st_size
        elif not stat.S_ISSOCK(mode):
            totals.others += 1
    totals.seconds = time.monotonic() - start
    totals.done = not stop.is_set()
