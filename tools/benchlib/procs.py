"""Child processes and FUSE mounts: wall time, peak RSS, and cleanup on every way out.

Each command runs in a session of its own (terminal Ctrl-C reaches only the benchmark, which
then ends what it started). Peak RSS comes from a small launcher between us and the command:
GNU time (``/usr/bin/time -f %M``) where installed, else a bare Python that forks, execs
and reports ``wait4``'s ``ru_maxrss``. Reaping the command from this process would not do:
Linux keeps the peak across ``exec``, so a child forked from a big parent inherits its size
as a floor. Through GNU time the floor is about 1-2 MiB; through the Python launcher, its own
size (about 9 MiB). Standard output goes into a pipe this process drains and counts, never
to ``/dev/null`` (GNU tar does not read file contents when it writes there).
``Processes.cleanup`` unmounts every mount still listed and ends every child still alive:
the caller runs it in ``finally``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = "/usr/bin/time"
LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@functools.lru_cache(maxsize=1)
def rss_method() -> str:
    """Which launcher measures peak RSS here."""
    if os.access(GNU_TIME, os.X_OK):
        done = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True, check=False)
        if "GNU" in done.stdout + done.stderr:
            return "GNU time -f %M"
    return "python launcher (wait4 ru_maxrss; floor about 9 MiB)"


def launcher(rss_file: Path) -> list[str]:
    """The command prefix that writes the child's peak RSS in KiB to ``rss_file``."""
    if rss_method().startswith("GNU"):
        return [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file)]
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(rss_file)]


def read_rss(rss_file: Path) -> int:
    """Peak RSS in bytes from the launcher's file; 0 if it never wrote one."""
    try:
        lines = rss_file.read_text().split()
        return int(lines[-1]) * 1024 if lines else 0
    except (OSError, ValueError):
        return 0


PIPE_SIZE = 1 << 20


def widen_pipe(fd: int) -> None:
    """Give the pipe the harness reads a tool's output from a 1 MiB buffer, for every tool
    alike. With Linux's 64 KiB default the reader wakes sixteen times as often: 400 MiB
    took 0.65 s of reading instead of 0.27 s (measured for repofs.dump.output.widen_pipe),
    CPU taken from the tool being measured on a small machine. repofs' dump widened its
    own stdout already, restic does not; now both are read the same way. Best effort."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass


def drain(fd: int, count_lines: bool, seen: Callable[[], object]) -> tuple[int, int]:
    """Read ``fd`` to its end, calling ``seen`` after every piece: (bytes, newlines).
    Output whose lines are not counted is spliced into /dev/null, never copied into this
    process: for 2 GB the harness took 0.4 s of CPU instead of 1.25 s, CPU a two-core
    machine would otherwise take from the tool being measured."""
    total = lines = 0
    if not count_lines:
        try:
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            null = -1
        if null >= 0:
            try:
                while n := os.splice(fd, null, PIPE_SIZE):
                    total += n
                    seen()
                return total, 0
            except (OSError, AttributeError):  # no splice here: read what is left
                pass
            finally:
                os.close(null)
    buf = bytearray(PIPE_SIZE)
    while n := os.readv(fd, [buf]):
        total += n
        if count_lines:
            lines += buf.count(b"\n", 0, n)
        seen()
    return total, lines


class _Signals:
    shielded = 0
    pending: int | None = None


def on_signal(signum: int, frame: object) -> None:
    """Handler for SIGINT, SIGTERM, SIGHUP: KeyboardInterrupt, held back while shielded."""
    if _Signals.shielded:
        _Signals.pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """No KeyboardInterrupt between a fork and its bookkeeping; it comes right after."""
    _Signals.shielded += 1
    try:
        yield
    finally:
        _Signals.shielded -= 1
        if not _Signals.shielded and _Signals.pending is not None:
            signum, _Signals.pending = _Signals.pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)


class CommandFailed(Exception):
    """A command exited with an error, timed out, or a mount never answered."""


@dataclass
class Run:
    """One finished command."""

    seconds: float
    rss_bytes: int
    out_bytes: int
    out_lines: int  # 0 when not counted
    returncode: int
    stderr: str
    killed: str | None = None  # why the watchdog ended it

    def error(self) -> str | None:
        """None if the command succeeded, else a one-line reason."""
        if self.killed:
            return self.killed
        if self.returncode != 0:
            return f"exit {self.returncode}: {summary(self.stderr)}"
        return None


def summary(stderr: str) -> str:
    """One line of an error output: a traceback's last exception, else its first and last lines."""
    lines = [line.strip(" |+-") for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    exceptions = [line for line in lines if re.match(r"[\w.]*(Error|Exception|Interrupt)\b", line)]
    text = exceptions[-1] if exceptions else " ... ".join(dict.fromkeys(lines[:1] + lines[-1:]))
    return text[:300] or "no message"


class Processes:
    """Every child and mount this benchmark started and has not ended yet."""

    def __init__(self) -> None:
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.mounts: list[Path] = []

    def spawn(self, cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None,
              stdout: int | object, stderr: object) -> subprocess.Popen[bytes]:
        with shielded():
            proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
            self.children[proc.pid] = proc
        return proc

    def reap(self, proc: subprocess.Popen[bytes], block: bool = True) -> int | None:
        """The exit code once ``proc`` ended; None if it still runs (block=False)."""
        if proc.returncode is not None:
            return proc.returncode
        with shielded():
            try:
                pid, status = os.waitpid(proc.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                pid, status = proc.pid, -1
            if pid == 0:
                return None
            proc.returncode = os.waitstatus_to_exitcode(status) if status >= 0 else -1
            self.children.pop(proc.pid, None)
        return proc.returncode

    def end(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> int:
        """Stop ``proc``: SIGTERM to its session, SIGKILL after ``grace`` seconds."""
        if proc.returncode is not None:
            return proc.returncode
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                done = self.reap(proc, block=False)
                if done is not None:
                    return done
                time.sleep(0.02)
        code = self.reap(proc)
        return -9 if code is None else code

    def run(self, cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None = None,
            timeout: float = 3600.0, stall: float | None = None,
            on_hang: Callable[[], object] | None = None, count_lines: bool = True) -> Run:
        """Run ``cmd`` to its end, draining and counting its output (bytes, and newlines
        if ``count_lines``); time it from the spawn.

        A watchdog kills it after ``timeout`` seconds, or after ``stall`` seconds without a
        byte of output, calling ``on_hang`` first (to abort a stuck mount under a reader).
        """
        with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as scratch:
            rss_file = Path(scratch, "rss")
            start = time.perf_counter()
            proc = self.spawn(launcher(rss_file) + list(cmd), env, cwd, subprocess.PIPE, err)
            assert proc.stdout is not None
            widen_pipe(proc.stdout.fileno())
            last_output = [time.monotonic()]
            killed: list[str] = []
            finished = threading.Event()

            def watch() -> None:
                began = time.monotonic()
                while not finished.wait(0.5):
                    now = time.monotonic()
                    if now - began > timeout:
                        killed.append(f"timed out after {timeout:.0f} s")
                    elif stall is not None and now - last_output[0] > stall:
                        killed.append(f"hung: no output for {stall:.0f} s")
                    else:
                        continue
                    if on_hang is not None:
                        on_hang()
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return

            watchdog = threading.Thread(target=watch, daemon=True)
            watchdog.start()
            try:
                out_bytes, out_lines = drain(proc.stdout.fileno(), count_lines,
                                             lambda: last_output.__setitem__(0, time.monotonic()))
                proc.stdout.close()
                code = self.reap(proc)
            finally:
                finished.set()
                if proc.returncode is None:
                    self.end(proc)
            seconds = time.perf_counter() - start
            err.seek(0)
            stderr = err.read()[-20_000:].decode(errors="replace")
            rss = read_rss(rss_file)
        assert code is not None
        return Run(seconds, rss, out_bytes, out_lines, code, stderr, killed[0] if killed else None)

    def unmount(self, mountpoint: Path, lazy: bool = False) -> bool:
        """``fusermount3 -u`` (``-uz`` if lazy); True if nothing is mounted there after."""
        if mount_device(mountpoint):
            subprocess.run(["fusermount3", "-uz" if lazy else "-u", str(mountpoint)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        mounted = mount_device(mountpoint) is not None
        if not mounted and mountpoint in self.mounts:
            self.mounts.remove(mountpoint)
        return not mounted

    def cleanup(self) -> list[str]:
        """Unmount and end everything still listed; what had to be cleaned up, for the log."""
        notes = []
        for mountpoint in list(self.mounts):
            if not self.unmount(mountpoint):
                abort_fuse(mountpoint)
                if not self.unmount(mountpoint):
                    self.unmount(mountpoint, lazy=True)
            notes.append(f"unmounted {mountpoint}")
            if mountpoint in self.mounts:
                self.mounts.remove(mountpoint)
        for proc in list(self.children.values()):
            self.end(proc)
            notes.append(f"ended process {proc.pid} ({Path(proc.args[0]).name})")
        return notes


class Mount:
    """One FUSE mount process, from spawn to unmount."""

    def __init__(self, procs: Processes, cmd: Sequence[str], env: Mapping[str, str],
                 mountpoint: Path, log: Path) -> None:
        self.procs = procs
        self.cmd = list(cmd)
        self.env = env
        self.mountpoint = mountpoint
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.rss_file = log.with_suffix(".rss")

    def start(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.started = time.perf_counter()
            self.procs.mounts.append(self.mountpoint)
            self.proc = self.procs.spawn(launcher(self.rss_file) + self.cmd, self.env, None, log,
                                         subprocess.STDOUT)

    def wait_listing(self, timeout: float = 120.0) -> float:
        """Seconds from the spawn until ``snapshots/`` lists something; polls every 5 ms."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        snapshots = self.mountpoint / "snapshots"
        while time.monotonic() < deadline:
            if self.procs.reap(self.proc, block=False) is not None:
                raise CommandFailed(f"mount exited with {self.proc.returncode}: {self.tail()}")
            if mount_device(self.mountpoint):
                names = listdir_within(snapshots, deadline - time.monotonic())
                if names:
                    return time.perf_counter() - self.started
            time.sleep(0.005)
        raise CommandFailed(f"mount did not list snapshots/ within {timeout:.0f} s: {self.tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """Unmount, wait for the process to end; its peak RSS in bytes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not self.procs.unmount(self.mountpoint):
            if time.monotonic() > deadline - timeout / 2:  # stuck, not just busy for a moment
                abort_fuse(self.mountpoint)
                self.procs.unmount(self.mountpoint) or self.procs.unmount(self.mountpoint, lazy=True)
                break
            time.sleep(0.1)
        while time.monotonic() < deadline:
            if self.procs.reap(self.proc, block=False) is not None:
                return read_rss(self.rss_file)
            time.sleep(0.01)
        self.procs.unmount(self.mountpoint, lazy=True)
        self.procs.end(self.proc)
        raise CommandFailed(f"mount process did not end after the unmount: {self.tail()}")

    def tail(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"


def mount_device(path: Path) -> str | None:
    """``major:minor`` of what is mounted at ``path``, from /proc/self/mountinfo.

    Unlike ``os.path.ismount`` this never touches the mount, which may be stuck.
    """
    target = os.path.join(os.path.realpath(path.parent), path.name)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            if where == target:
                found = fields[2]
    return found


def abort_fuse(path: Path) -> bool:
    """Abort the FUSE connection at ``path``: its pending requests fail, nobody waits on it.

    Through fusectl's ``abort`` file where mounted, else (as root) with ``umount -f``, which
    aborts a FUSE connection before it tries to unmount. False if neither was possible.
    """
    device = mount_device(path)
    if device is None:
        return False
    try:
        Path("/sys/fs/fuse/connections", device.split(":")[1], "abort").write_text("1")
        return True
    except OSError:
        pass
    if os.geteuid() == 0:
        subprocess.run(["umount", "-f", str(path)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        return True
    return False


def listdir_within(path: Path, timeout: float) -> list[str]:
    """``os.listdir`` in a thread that may hang on a stuck mount; [] on error or timeout."""
    result: list[str] = []

    def target() -> None:
        try:
            result.extend(os.listdir(path))
        except OSError:
            pass

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    return result if not thread.is_alive() else []
