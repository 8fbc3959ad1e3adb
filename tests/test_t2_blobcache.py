"""The blob cache: bounded by bytes, least recently used out first, one load per key."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from repofs.cache.blobcache import BlobCache


def test_bounded_by_bytes_lru_order() -> None:
    one = BlobCache.cost(b"k0", b"x" * 1000)
    cache = BlobCache(max_bytes=3 * one)
    for i in range(3):
        cache.put(f"k{i}".encode(), b"x" * 1000)
    assert cache.get_cached(b"k0") is not None  # k0 is now most recent
    cache.put(b"k3", b"x" * 1000)
    assert cache.get_cached(b"k1") is None
    assert {k for k in (b"k0", b"k2", b"k3") if cache.get_cached(k)} == {b"k0", b"k2", b"k3"}
    assert cache.used <= cache.max_bytes
    cache.put(b"huge", b"y" * (4 * one))  # larger than the whole cache: not kept
    assert cache.get_cached(b"huge") is None and len(cache) == 3


def test_discard_forgets_and_gives_the_bytes_back() -> None:
    cache = BlobCache(max_bytes=1 << 20)
    cache.put(b"a", b"x" * 1000)
    cache.put(b"b", b"y" * 500)
    cache.discard(b"a")
    cache.discard(b"never there")
    assert cache.get_cached(b"a") is None and cache.get_cached(b"b") == b"y" * 500
    assert cache.used == BlobCache.cost(b"b", b"y" * 500) and len(cache) == 1


def test_cost_counts_the_value() -> None:
    assert BlobCache.cost(b"k", b"x" * 10000) - BlobCache.cost(b"k", b"") == 10000


async def test_concurrent_misses_share_one_load() -> None:
    cache = BlobCache(1 << 20)
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        await trio.sleep(0.01)
        return b"value"

    results: list[bytes] = []

    async def get() -> None:
        results.append(await cache.get(b"key", load))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(get)
    assert calls == 1 and results == [b"value"] * 20


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache = BlobCache(1 << 20)
    calls = 0

    async def broken() -> bytes:
        nonlocal calls
        calls += 1
        await trio.sleep(0.01)
        raise ValueError("damaged")

    errors: list[Exception] = []

    async def get() -> None:
        try:
            await cache.get(b"key", broken)
        except ValueError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(get)
    assert calls == 1 and len(errors) == 5
    with pytest.raises(ValueError):
        await cache.get(b"key", broken)
    assert calls == 2


async def test_cancelled_loader_lets_a_waiter_load() -> None:
    cache = BlobCache(1 << 20)
    got: list[bytes] = []
    loader_scope = trio.CancelScope()

    async def slow() -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def fast() -> bytes:
        return b"ok"

    async def loader() -> None:
        with loader_scope:
            await cache.get(b"key", slow)

    async def waiter() -> None:
        got.append(await cache.get(b"key", fast))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loader)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        loader_scope.cancel()
    assert got == [b"ok"]
