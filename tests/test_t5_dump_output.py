"""The dump's output stage on its own: widening a pipe, writing batches of buffers."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repofs import fdio
from repofs.dump import output

needs_pipe_sizes = pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="no F_GETPIPE_SZ (not Linux)")


def _size(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def _may_set(size: int) -> bool:
    """Whether this process may give a pipe ``size`` bytes (pipe-max-size, pipe quota)."""
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
        return True
    except OSError:
        return False
    finally:
        os.close(r)
        os.close(w)


@needs_pipe_sizes
@pytest.mark.parametrize("end", [0, 1], ids=["read-end", "write-end"])
def test_widen_pipe_gives_a_pipe_a_mib_or_leaves_it(pipe: tuple[int, int], end: int) -> None:
    before = _size(pipe[end])
    if before >= output.PIPE_SIZE:
        pytest.skip(f"pipes start with {before} bytes here")
    output.widen_pipe(pipe[end])
    if not _may_set(output.PIPE_SIZE):
        assert _size(pipe[end]) == before
        return
    assert _size(pipe[0]) == _size(pipe[1]) == output.PIPE_SIZE
    os.set_blocking(pipe[1], False)
    assert os.write(pipe[1], bytes(output.PIPE_SIZE)) == output.PIPE_SIZE  # all of it, at once


@needs_pipe_sizes
def test_widen_pipe_does_not_shrink_a_larger_pipe(pipe: tuple[int, int]) -> None:
    before = _size(pipe[1])
    output.widen_pipe(pipe[1], before // 4)
    assert _size(pipe[1]) == before


@needs_pipe_sizes
def test_widen_pipe_takes_a_refusal_quietly(pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    real = fcntl.fcntl

    def refuse(fd: int, cmd: int, arg: Any = 0) -> Any:
        if cmd == fcntl.F_SETPIPE_SZ:
            raise PermissionError(1, "Operation not permitted")
        return real(fd, cmd, arg)

    before = _size(pipe[1])
    monkeypatch.setattr(fcntl, "fcntl", refuse)
    output.widen_pipe(pipe[1])
    monkeypatch.undo()
    assert _size(pipe[1]) == before


@needs_pipe_sizes
@pytest.mark.parametrize("kind", ["file", "devnull", "socket"])
def test_widen_pipe_leaves_anything_but_a_pipe_alone(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fcntl.fcntl
    calls: list[int] = []

    def record(fd: int, cmd: int, arg: Any = 0) -> Any:
        calls.append(cmd)
        return real(fd, cmd, arg)

    other: socket.socket | None = None
    if kind == "file":
        fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    elif kind == "devnull":
        fd = os.open(os.devnull, os.O_WRONLY)
    else:
        mine, other = socket.socketpair()
        fd = mine.detach()
    try:
        monkeypatch.setattr(fcntl, "fcntl", record)
        output.widen_pipe(fd)
        monkeypatch.undo()
        assert calls == []
        assert os.write(fd, b"still writable") == 14
    finally:
        os.close(fd)
        if other is not None:
            other.close()


@settings(max_examples=200, deadline=None)
@given(buffers=st.lists(st.binary(min_size=1, max_size=50), max_size=1500), most=st.integers(1, 200))
def test_write_all_survives_partial_writes(buffers: list[bytes], most: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each writev writes at most ``most`` bytes, ending anywhere inside a buffer; more
    buffers than IOV_MAX take several calls."""
    real = os.writev
    path = tmp_path_factory.mktemp("out") / "out"

    def short_writev(fd: int, bufs: list[Any]) -> int:
        assert 0 < len(bufs) <= fdio.IOV_MAX
        return real(fd, [b"".join(bytes(b) for b in bufs)[:most]])

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "writev", short_writev)
            output.write_all(fd, list(buffers))
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(buffers)
