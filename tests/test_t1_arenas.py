"""glibc's malloc arenas are limited before threads start, unless the user chose a number."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# Eight threads allocate outside pymalloc (1000-byte objects) and stay until all have;
# glibc's malloc_stats() then prints one "Arena N:" block per arena on stderr.
SCRIPT = """
import ctypes, sys, threading
from repofs.arenas import limit_arenas
print(limit_arenas() if sys.argv[1] == "limit" else None)
held = []
together = threading.Barrier(8)
def work():
    held.extend(bytes(1000) for _ in range(1000))
    together.wait()  # a thread that ended would hand its arena to the next one
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stdout.flush()
ctypes.CDLL(None).malloc_stats()
"""

glibc_only = pytest.mark.skipif(not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""),
                                reason="malloc arenas are glibc's")


def _arenas(mode: str, **env: str) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env={**base, **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.strip(), len(re.findall(r"^Arena \d+:", done.stderr, re.MULTILINE))


@glibc_only
def test_threads_share_two_arenas() -> None:
    said, limited = _arenas("limit")
    _, free = _arenas("leave")
    assert said == "True" and limited == 2
    assert free > 2  # without the limit the threads do get arenas of their own


@glibc_only
def test_the_users_setting_stands() -> None:
    said, arenas = _arenas("limit", MALLOC_ARENA_MAX="4")
    assert said == "False" and arenas > 2
