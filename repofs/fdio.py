"""Writing a list of buffers to a file descriptor, whatever the partial writes."""

from __future__ import annotations

import os

Buffer = bytes | bytearray | memoryview

IOV_MAX = 1024  # buffers one writev takes at most (Linux's limit)


def writev_all(fd: int, buffers: list[Buffer]) -> None:
    """Write the buffers back to back (blocking); ``buffers`` is used up in the process."""
    i, n = 0, len(buffers)
    while i < n:
        done = os.writev(fd, buffers[i:i + IOV_MAX])
        while i < n and done >= len(buffers[i]):
            done -= len(buffers[i])
            i += 1
        if done:  # a partial write ended inside buffers[i]
            buffers[i] = memoryview(buffers[i])[done:]
