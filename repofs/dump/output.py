"""Writing a byte stream to a file descriptor from a thread, a batch at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable

import trio

from ..errors import RepofsError

Buffer = bytes | bytearray | memoryview

FLUSH_AT = 1 << 20
IOV_MAX = 1024


class OutputError(RepofsError):
    """The output cannot be written (full disk, I/O error); a closed pipe stays a
    BrokenPipeError, since that is the reader's choice, not a failure."""


def write_all(fd: int, buffers: list[Buffer]) -> None:
    """Write every buffer, in order, whatever the partial writes (blocking)."""
    try:
        _write_all(fd, buffers)
    except BrokenPipeError:
        raise
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutputError(f"cannot write the output: {reason.lower()}") from None


def _write_all(fd: int, buffers: list[Buffer]) -> None:
    views = [memoryview(b) for b in buffers if len(b)]
    i = 0
    while i < len(views):
        done = os.writev(fd, views[i:i + IOV_MAX])
        while done:
            if done >= len(views[i]):
                done -= len(views[i])
                i += 1
            else:
                views[i] = views[i][done:]
                done = 0


class Output:
    """Buffers writes and hands full batches to a writer task in ``nursery``; at most one
    batch waits while another is written, so memory stays near ``2 * flush_at``.

    Errors of the write (``BrokenPipeError`` when the reader went away) surface in the
    nursery and from the next ``write`` or ``aclose``.
    """

    def __init__(self, fd: int, nursery: trio.Nursery, flush_at: int = FLUSH_AT) -> None:
        self.fd = fd
        self.flush_at = flush_at
        self.written = 0
        self._batch: list[Buffer] = []
        self._pending = 0
        self._limiter = trio.CapacityLimiter(1)
        self._send, recv = trio.open_memory_channel[list[Buffer]](1)
        nursery.start_soon(self._drain, recv)

    async def write(self, buffers: Iterable[Buffer]) -> None:
        for b in buffers:
            self._batch.append(b)
            self._pending += len(b)
        if self._pending >= self.flush_at:
            await self._hand_over()

    async def _hand_over(self) -> None:
        batch, self._batch = self._batch, []
        self.written += self._pending
        self._pending = 0
        await self._send.send(batch)

    async def aclose(self) -> None:
        """Write what is buffered; the writer task ends once it is written."""
        if self._batch:
            await self._hand_over()
        await self._send.aclose()

    async def _drain(self, recv: trio.MemoryReceiveChannel[list[Buffer]]) -> None:
        with recv:  # a sync close: an async one could trade our error for Cancelled
            async for batch in recv:
                await trio.to_thread.run_sync(write_all, self.fd, batch, limiter=self._limiter)
