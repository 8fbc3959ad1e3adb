"""Interpreter settings for long operations that stream many objects through worker threads.

Two of CPython's defaults cost such operations time:

* the thread switch interval (5 ms): a worker thread back from C code (decryption, zstd,
  hashing, all without the GIL) waits up to that long for the GIL while the trio loop runs
  Python, and whoever waits for its result waits with it;
* the cycle collector's young-generation threshold (700 allocations): listings and dumps
  make many small objects that live until they are written or evicted, and the collector
  scans them again and again, although they form no cycles.

``tuned`` sets both for the body of a ``with`` and restores them after.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

YOUNG_THRESHOLD = 20_000


@contextlib.contextmanager
def tuned(switch_interval: float | None = None, young_threshold: int | None = YOUNG_THRESHOLD) -> Iterator[None]:
    """Python's switch interval lowered to ``switch_interval`` seconds and the collector's
    young threshold raised to ``young_threshold`` (None: left as they are) for the body."""
    interval = sys.getswitchinterval()
    thresholds = gc.get_threshold()
    if switch_interval is not None:
        sys.setswitchinterval(min(switch_interval, interval))
    if young_threshold is not None:
        gc.set_threshold(max(young_threshold, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
