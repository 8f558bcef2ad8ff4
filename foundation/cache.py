"""The one in-process cache type: `LocalCache`, a bounded map whose entries may expire.

The rule, for every cache in this codebase that lives in one worker's memory:

- **What it may hold.** Only a value that is safe to be stale for its whole lifetime, because
  either (a) it never changes (a benefit version, the rules compiled from it), or (b) a later
  check decides with the truth anyway: the ledger statement re-checks the benefit and the venue
  (migrations 0042/0043), a refusal is decided again from PostgreSQL before it is given, the
  device check reads Redis/PostgreSQL again after its second, a verified token still passes the
  per-request principal checks. The staleness a reader accepts is at most the entry's `ttl`.
  Or (c) a best-effort counter whose loss only loosens a limit that is documented as
  per-process (the scan rate while Redis is down). Never a secret that can be revoked, never
  the only copy of something.
- **Bounded size.** At most `maxsize` entries. Storing into a full cache first drops the
  entries stored longest ago (oldest `put` first; with one `ttl` for all entries that is also
  the one closest to expiry). A hit does not reorder: cheap on the hot path, and a cache this
  size is meant to hold the whole working set anyway, so the bound only guards against abuse.
- **Per-entry expiry.** An entry is returned while `clock() < expires`; `ttl=None` never
  expires (only the size bound evicts). `put(..., ttl=...)` overrides the cache's default for
  one entry (a token valid for less than the default). Expired entries are not swept; they are
  replaced or evicted by the size bound.
- **Per process, per event loop.** No locking: it is used from coroutines of one loop, where a
  dict operation is atomic. Two concurrent misses both load; the later `put` wins. Workers never
  share it, so anything that must be seen by every worker within a bound goes through Redis or
  PostgreSQL and is cached here for at most that bound.

`None` is a value like any other (a venue that does not exist is remembered as absent); use
`lookup` or `get_or_load` to tell "absent" from "not cached".
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Final, Generic, TypeVar

__all__ = ("MISSING", "LocalCache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What `lookup` answers for a key that is not cached (or whose entry expired)."""


class LocalCache(Generic[K, V]):
    """A bounded in-process map with per-entry expiry (the rule is in the module docstring).

    `ttl` is the default lifetime in seconds of an entry (None: entries never expire); `clock`
    is the time source the expiries are measured against (`time.monotonic` unless the entries
    carry wall-clock deadlines, like a token's `exp`).
    """

    __slots__ = ("_clock", "_entries", "maxsize", "ttl")

    def __init__(self, *, maxsize: int, ttl: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive (or None: never expires)")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float | None, V]] = OrderedDict()

    def lookup(self, key: K) -> V | _Missing:
        """The cached value, or MISSING when there is none or it expired."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        expires, value = entry
        if expires is not None and self._clock() >= expires:
            return MISSING
        return value

    def get(self, key: K, default: V | None = None) -> V | None:
        """The cached value, or `default` when there is none or it expired."""
        value = self.lookup(key)
        return default if value is MISSING else value  # type: ignore[return-value]

    def put(self, key: K, value: V, *, ttl: float | None | _Missing = MISSING) -> None:
        """Store `value` for `ttl` seconds (the cache's default unless given; None: no expiry)."""
        lifetime = self.ttl if ttl is MISSING else ttl
        expires = None if lifetime is None else self._clock() + lifetime  # type: ignore[operator]
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        else:
            while len(entries) >= self.maxsize:
                entries.popitem(last=False)
        entries[key] = (expires, value)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]], *, fresh: bool = False) -> V:
        """The cached value, else `await load()` stored and returned (always loads when `fresh`)."""
        if not fresh:
            value = self.lookup(key)
            if value is not MISSING:
                return value  # type: ignore[return-value]
        value = await load()
        self.put(key, value)
        return value

    def forget(self, keys: Iterable[K] | None = None) -> None:
        """Drop these keys' entries (every entry with no argument)."""
        if keys is None:
            self._entries.clear()
            return
        for key in keys:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return self.lookup(key) is not MISSING  # type: ignore[arg-type]
