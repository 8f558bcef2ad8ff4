"""Where a read that may be a little stale goes: the streaming replica while it is within the
staleness bound, else the primary (docs/architecture.md, "Reads on a replica").

`ReplicaReads` belongs to one worker. Its `check()` (run every `check_seconds` by the app's
lifespan, never on a request's path) reads the primary's WAL position and then the replica's
replay position, and keeps the recent primary positions with the time each was read. The
replica holds every transaction that committed before the latest of those positions it has
replayed, so that position's time is `fresh_as_of`, and a read there is at most
`clock() - fresh_as_of` stale. The comparison is of WAL positions, not of
`pg_last_xact_replay_timestamp()`, so an idle primary (no commit for an hour) does not look like
a lagging replica, and a busy one whose replica trails by milliseconds never looks caught up to
the very last byte but is still seen as fresh within one check. A request asks `choose()`: a
dict lookup and a subtraction, no query. Because staleness is measured at the request, a check
loop that stalls (a hung replica) ages `fresh_as_of` and the reads leave the replica by
themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Final, Literal

import asyncpg

__all__ = ("REPLICA_STATES", "ReplicaReads", "ReplicaState")

log = logging.getLogger("chongjun.replica")

ReplicaState = Literal["off", "ok", "lagging", "down"]
REPLICA_STATES: Final = ("off", "ok", "lagging", "down")
"""`off`: no replica configured; `ok`: reads go there; `lagging`: further behind than the bound;
`down`: the last check (or a request) could not reach it, or it is not a standby."""

_PRIMARY_POSITION: Final = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS position"
_REPLICA_POSITION: Final = (
    "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS replayed"
)


class ReplicaReads:
    """The replica's freshness as one worker last measured it, and the choice of pool per read.

    `primary` and `replica` are pools (`replica` None: every read goes to the primary).
    `max_lag` is the staleness bound in seconds, `check_seconds` how often `run()` checks;
    a check gives up after `check_timeout` seconds (the replica is then `down`). The checks use
    a connection of their own to each server (`primary_dsn`, `replica_dsn`), outside the pools,
    so that a pool busy with reports never makes a healthy replica look down.
    """

    def __init__(
        self,
        primary: asyncpg.Pool,
        replica: asyncpg.Pool | None,
        *,
        primary_dsn: str | None = None,
        replica_dsn: str | None = None,
        max_lag: float,
        check_seconds: float,
        check_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replica is not None and not 0 < check_seconds < max_lag:
            raise ValueError("the replica check interval must be positive and shorter than the staleness bound")
        if replica is not None and not (primary_dsn and replica_dsn):
            raise ValueError("the replica checks need both servers' DSNs")
        self.primary = primary
        self.replica = replica
        self._dsns = {"primary": primary_dsn, "replica": replica_dsn}
        self._probes: dict[str, asyncpg.Connection] = {}
        self.max_lag = max_lag
        self.check_seconds = check_seconds
        self.check_timeout = check_timeout
        self._clock = clock
        self._positions: deque[tuple[float, int]] = deque(maxlen=max(4, int(max_lag / check_seconds) + 4))
        self.fresh_as_of: float | None = None
        """Monotonic time before which every commit is on the replica (None: not known yet)."""
        self.reachable = False
        """Whether the last check reached a standby (False until the first check)."""
        self._state: ReplicaState = "off" if replica is None else "down"
        self._announced = self._state if replica is None else None

    @property
    def configured(self) -> bool:
        return self.replica is not None

    def staleness(self) -> float | None:
        """At most how many seconds the replica is behind now (None: not known)."""
        if self.fresh_as_of is None:
            return None
        return max(0.0, self._clock() - self.fresh_as_of)

    def state(self) -> ReplicaState:
        """The replica's state as of now (`lagging` as soon as the bound is passed, between checks too)."""
        if self.replica is None:
            return "off"
        if not self.reachable:
            return "down"
        behind = self.staleness()
        return "ok" if behind is not None and behind <= self.max_lag else "lagging"

    def choose(self) -> tuple[asyncpg.Pool, float | None, ReplicaState]:
        """The pool for one read: `(replica, staleness, "ok")`, or `(primary, None, state)` with
        the reason the replica is not used (`off`, `lagging`, `down`)."""
        state = self.state()
        if state != self._announced:  # passed the bound since the last check: say so now
            self._announce(None)
        if state == "ok":
            return self.replica, self.staleness(), state  # type: ignore[return-value]
        return self.primary, None, state

    def mark_down(self, error: BaseException) -> None:
        """A request could not use the replica (connect error, timeout, a cut connection): stop
        sending reads there until a check reaches it again."""
        self.reachable = False
        self._announce(error)

    async def check(self) -> ReplicaState:
        """Measure once: the primary's WAL position, then what the replica has replayed."""
        if self.replica is None:
            return "off"
        started = self._clock()
        try:
            position = int((await self._ask("primary", _PRIMARY_POSITION))["position"])
        except Exception:  # the primary's own trouble: /ready reports it; measure next round
            return self.state()
        self._positions.append((started, position))
        try:
            row = await self._ask("replica", _REPLICA_POSITION)
        except Exception as exc:  # refused, timed out, cut: all mean the same to a reader
            self.mark_down(exc)
            return "down"
        if not row["standby"] or row["replayed"] is None:
            self.mark_down(RuntimeError("not a standby"))  # promoted, or the URL names a primary
            return "down"
        replayed = int(row["replayed"])
        reached = None
        while self._positions and self._positions[0][1] <= replayed:  # positions only grow
            reached = self._positions.popleft()[0]  # the latest position it holds (older ones go too)
        if reached is not None:
            self.fresh_as_of = reached if self.fresh_as_of is None else max(self.fresh_as_of, reached)
        self.reachable = True
        self._announce(None)
        return self.state()

    async def _ask(self, server: str, query: str):
        """One row from `server` on the check's own connection, opened again after any failure."""
        try:
            async with asyncio.timeout(self.check_timeout):
                conn = self._probes.get(server)
                if conn is None or conn.is_closed():
                    conn = self._probes[server] = await asyncpg.connect(self._dsns[server])
                return await conn.fetchrow(query)
        except BaseException:
            broken = self._probes.pop(server, None)
            if broken is not None:
                broken.terminate()
            raise

    async def close(self) -> None:
        """Close the checks' connections (at shutdown, after `run()` was cancelled)."""
        for conn in self._probes.values():
            with suppress(Exception):
                await asyncio.wait_for(conn.close(), self.check_timeout)
        self._probes.clear()

    async def run(self, after_check: Callable[[ReplicaReads], None] | None = None) -> None:
        """Check every `check_seconds` until cancelled; `after_check` samples the figures."""
        while True:
            await self.check()
            if after_check is not None:
                after_check(self)
            await asyncio.sleep(self.check_seconds)

    def _announce(self, error: BaseException | None) -> None:
        """One log line per change of state, not one per request."""
        state = self.state()
        if state == self._announced:
            return
        previous, self._announced = self._announced, state
        if state == "ok":
            log.info("replica reads in use (%s before)", previous or "not checked")
        elif state == "lagging":
            behind = self.staleness()
            log.warning("replica lags beyond %.1f s (%s): reads fall back to the primary", self.max_lag,
                        "unknown" if behind is None else f"{behind:.1f} s")
        else:
            log.warning("replica unreachable (%s): reads fall back to the primary",
                        type(error).__name__ if error is not None else "unknown")
