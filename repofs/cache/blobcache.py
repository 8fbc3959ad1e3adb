"""A byte-bounded LRU cache of decrypted blobs with single-flight loading.

Concurrency contract (trio, one thread): the LRU and the in-flight table are only touched
between checkpoints, so no lock is needed. The first task that misses a key becomes its
loader and registers a ``Flight`` before its first ``await``; later tasks for the same key
wait on that flight and share its value or its error. A flight is removed when its loader
finishes, whether it succeeded, failed or was cancelled; waiters of a cancelled loader retry.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Hashable

import trio
from lru import LRU

# What lru-dict spends per entry beyond the key and value objects (its node and hash slot),
# measured at about 100 bytes on CPython 3.11, x86_64.
ENTRY_OVERHEAD = 104


class Flight:
    """One load in progress: waiters wait on ``done``, then read ``value`` or ``error``."""

    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


class BlobCache:
    """Decrypted blobs by key, evicting least recently used ones beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.loads = 0  # backend loads started, for statistics and tests
        self._lru: LRU = LRU(1 << 30)  # bounded by bytes below, not by count
        self._flights: dict[Hashable, Flight] = {}

    @staticmethod
    def cost(key: Hashable, value: bytes) -> int:
        return sys.getsizeof(value) + sys.getsizeof(key) + ENTRY_OVERHEAD

    def __len__(self) -> int:
        return len(self._lru)

    def get_cached(self, key: Hashable) -> bytes | None:
        return self._lru.get(key)

    def put(self, key: Hashable, value: bytes) -> None:
        cost = self.cost(key, value)
        if cost > self.max_bytes:
            return
        old = self._lru.get(key)
        if old is not None:
            self.used -= self.cost(key, old)
        self._lru[key] = value
        self.used += cost
        while self.used > self.max_bytes:
            # Not popitem(): lru-dict 1.4.1 leaks a reference to every item it pops.
            k, v = self._lru.peek_last_item()
            del self._lru[k]
            self.used -= self.cost(k, v)

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (a value used once and not wanted again)."""
        value = self._lru.get(key)
        if value is not None:
            del self._lru[key]
            self.used -= self.cost(key, value)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached value, or the result of ``load()``, run once however many ask at once."""
        while True:
            value = self._lru.get(key)
            if value is not None:
                return value
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.value is not None:
                return flight.value
            # The loader was cancelled: try again, possibly as the new loader.
        flight = self._flights[key] = Flight()
        self.loads += 1
        try:
            value = await load()
        except trio.Cancelled:
            raise
        except Exception as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            self.put(key, value)
            return value
        finally:
            del self._flights[key]
            flight.done.set()
