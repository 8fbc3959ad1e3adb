"""A real REST server for tests: `rclone serve restic` on a loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

RCLONE = shutil.which("rclone")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def rest_server(root: Path) -> Iterator[str]:
    """Serve ``root`` over restic's REST protocol; yields the base URL."""
    if RCLONE is None:
        pytest.skip("rclone is not installed")
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    proc = subprocess.Popen([RCLONE, "serve", "restic", "--addr", f"127.0.0.1:{port}", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rclone exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)
