"""scrypt (RFC 7914) with its p lanes mixed in parallel where memory allows.

scrypt(P, S, N, r, p) = PBKDF2-HMAC-SHA256(P, B', 1, dkLen), where B = PBKDF2-HMAC-SHA256(P, S,
1, p*128*r) is cut into p lanes of 128*r bytes and B' is every lane after ROMix. The lanes do
not depend on each other, so they can run on one thread per core (restic's key files ask for
several: p is calibrated when the repository is made). ROMix itself is the C extension
``_scrypt``, which releases the GIL.

Each lane in flight holds N*128*r bytes (32 MiB for restic's N=2^15, r=8); fewer threads run
when that many lanes would pass ``MEMORY_BUDGET``, which keeps restic's key files to one lane
at a time.

``derive_ahead`` starts a derivation in the background before anyone asks for it (the
command line does, while Python imports the rest of repofs); the ``scrypt`` call with the
same arguments then takes that result.
"""

from __future__ import annotations

import hashlib
import os
import threading

from . import _scrypt

# restic's own key files (N=2^15, r=8) then mix one lane at a time, holding 32 MiB as restic
# does: a second lane in parallel saved 25 ms of 160 (p=4) on 2 cores, for 32 MiB more at the
# peak of every command that opens such a repository.
MEMORY_BUDGET = 32 << 20


def lane_threads(n: int, r: int, p: int) -> int:
    """How many lanes are mixed at once: one per usable core, within the memory budget."""
    cores = len(os.sched_getaffinity(0))
    return max(1, min(p, cores, MEMORY_BUDGET // (128 * r * n)))


Arguments = tuple[bytes, bytes, int, int, int, int]  # password, salt, n, r, p, dklen


class _Derivation:
    """One scrypt run in a background thread; ``result`` waits for it."""

    def __init__(self, args: Arguments) -> None:
        self._done = threading.Event()
        self._value = b""
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=args, name="scrypt ahead", daemon=True).start()

    def _run(self, *args: object) -> None:
        try:
            self._value = _derive(*args)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> bytes:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


_ahead: dict[Arguments, _Derivation] = {}
_ahead_lock = threading.Lock()


def derive_ahead(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> None:
    """Start ``scrypt(password, salt, n, r, p, dklen)`` in a daemon thread; the first
    ``scrypt`` call with these arguments waits for it instead of deriving again."""
    args = (password, salt, n, r, p, dklen)
    with _ahead_lock:
        if args not in _ahead:
            _ahead[args] = _Derivation(args)


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """The same bytes as hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen)."""
    with _ahead_lock:
        started = _ahead.pop((password, salt, n, r, p, dklen), None)
    if started is not None:
        return started.result()
    return _derive(password, salt, n, r, p, dklen)


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or p * r >= 1 << 30:
        raise ValueError(f"scrypt: bad parameters N={n}, r={r}, p={p}")
    size = 128 * r
    lanes = hashlib.pbkdf2_hmac("sha256", password, salt, 1, p * size)
    mixed: list[bytes] = [b""] * p
    errors: list[BaseException] = []
    threads = lane_threads(n, r, p)

    def mix(first: int) -> None:
        try:
            for i in range(first, p, threads):
                mixed[i] = _scrypt.romix(lanes[i * size:(i + 1) * size], n, r)
        except BaseException as exc:  # handed to the calling thread below
            errors.append(exc)

    helpers = [threading.Thread(target=mix, args=(t,), name="scrypt lane") for t in range(1, threads)]
    for h in helpers:
        h.start()
    mix(0)
    for h in helpers:
        h.join()
    if errors:
        raise errors[0]
    return hashlib.pbkdf2_hmac("sha256", password, b"".join(mixed), 1, dklen)
