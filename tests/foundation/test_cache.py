"""The one in-process cache type: expiry per entry, a size bound, None as a value."""

from __future__ import annotations

import pytest

from foundation.cache import MISSING, LocalCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_ttl_and_not_a_moment_longer() -> None:
    clock = Clock()
    cache: LocalCache[str, int] = LocalCache(maxsize=10, ttl=5.0, clock=clock)
    cache.put("a", 1)
    clock.now = 104.9
    assert cache.get("a") == 1
    clock.now = 105.0
    assert cache.get("a") is None
    assert cache.lookup("a") is MISSING
    assert "a" not in cache


def test_a_per_entry_ttl_overrides_the_default_and_none_never_expires() -> None:
    clock = Clock()
    cache: LocalCache[str, int] = LocalCache(maxsize=10, ttl=60.0, clock=clock)
    cache.put("short", 1, ttl=1.0)
    cache.put("forever", 2, ttl=None)
    clock.now += 2
    assert cache.get("short") is None
    clock.now += 10**9
    assert cache.get("forever") == 2
    immutable: LocalCache[str, int] = LocalCache(maxsize=10, ttl=None, clock=clock)
    immutable.put("v", 3)
    clock.now += 10**9
    assert immutable.get("v") == 3


def test_a_full_cache_drops_what_was_stored_longest_ago() -> None:
    cache: LocalCache[int, str] = LocalCache(maxsize=3, ttl=None)
    for key in (1, 2, 3):
        cache.put(key, str(key))
    cache.put(1, "again")  # stored again: now the newest
    cache.put(4, "4")
    assert len(cache) == 3
    assert cache.get(2) is None
    assert [cache.get(k) for k in (1, 3, 4)] == ["again", "3", "4"]


def test_none_is_remembered_as_a_value() -> None:
    cache: LocalCache[str, int | None] = LocalCache(maxsize=10, ttl=5.0)
    cache.put("absent", None)
    assert cache.lookup("absent") is None
    assert "absent" in cache


async def test_get_or_load_loads_once_until_expiry_or_fresh() -> None:
    clock = Clock()
    cache: LocalCache[str, int | None] = LocalCache(maxsize=10, ttl=5.0, clock=clock)
    loads: list[int] = []

    async def load() -> int | None:
        loads.append(1)
        return None if len(loads) == 1 else len(loads)

    assert await cache.get_or_load("k", load) is None
    assert await cache.get_or_load("k", load) is None  # a cached None is a hit
    assert await cache.get_or_load("k", load, fresh=True) == 2
    clock.now += 5
    assert await cache.get_or_load("k", load) == 3
    assert len(loads) == 3


def test_forget_some_or_all() -> None:
    cache: LocalCache[int, int] = LocalCache(maxsize=10, ttl=None)
    for key in range(4):
        cache.put(key, key)
    cache.forget([0, 1, 99])
    assert len(cache) == 2
    cache.forget()
    assert len(cache) == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        LocalCache(maxsize=0, ttl=1.0)
    with pytest.raises(ValueError):
        LocalCache(maxsize=1, ttl=0)
