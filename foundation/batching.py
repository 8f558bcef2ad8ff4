"""One statement for many concurrent callers: natural batching of a hot write (group commit in
the application).

Under load, many requests of one worker want the same statement at the same moment (the scan's
ledger statement at a busy venue). Each on its own pays a round trip, a transaction and a
commit: measured on the ledger statement (issue 16), 420-520 us of PostgreSQL CPU and 100-140 us
of asyncpg's Python per scan alone, against 180-225 us and 15-50 us in batches of 8-16.

`StatementBatcher.run(args)` queues the arguments and answers with that row's value. While fewer
than `max_in_flight` batches are running, whatever is queued leaves at once as one batch (up to
`max_batch` argument sets): an idle server sends each call alone, without waiting for company,
and a busy one sends the calls that arrived while the previous batch was running. A batch is
asyncpg's `fetchmany`: every set bound and executed in one pipeline and one implicit
transaction, so the batch commits, and answers, as a whole.

The statement must not fail for an expected outcome (a refused scan answers with a value, see
migration 0058): a batch that fails with a PostgreSQL error rolled back as a whole, and each of
its calls is then run once more on its own, so only the faulty one fails. A failure that may
have left the commit unknown (the connection lost, a timeout) is every caller's failure, as it
would have been for a call of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import asyncpg
from redis.exceptions import NoScriptError

from foundation.scripts import Script

__all__ = ("ScriptBatcher", "StatementBatcher")

log = logging.getLogger("chongjun.batching")


class _Batcher:
    """Natural batching for concurrent callers of one event loop: `run(call)` queues the call and
    answers with its result; `_send_batch` (the kind's own) sends a batch and settles its calls."""

    def __init__(self, *, max_batch: int, max_in_flight: int) -> None:
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[Any, asyncio.Future]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # the running drains, held so they are not collected
        self.batches = 0
        """Batches sent so far (with `calls`, what the benchmark and the tests read)."""
        self.calls = 0

    async def _run(self, call: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        # Its exception is retrieved even when its caller went away.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append((call, future))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A caller that goes away (its client disconnected) cancels only its own future: the
        # batch runs in the drain task, for the others, and its call is made or not with theirs.
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                await self._send(batch)
        finally:
            self._in_flight -= 1

    async def _send(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            await self._send_batch(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller still waiting, then re-raised if it ends the task
            for _, future in batch:
                _settle(future, exception=exc if isinstance(exc, Exception) else ConnectionError("the batch was cancelled"))
            if not isinstance(exc, Exception):
                raise

    async def _send_batch(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        raise NotImplementedError


class StatementBatcher(_Batcher):
    """Runs `sql` (one row a call) for concurrent callers of one event loop in batches."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sql: str,
        *,
        max_batch: int = 32,
        max_in_flight: int = 2,
        order: Callable[[tuple], Any] | None = None,
        whole_row: bool = False,
    ) -> None:
        # 32: each call of the ledger statement is one subtransaction (its refusal undoes only
        # itself), and a backend keeps 64 of them in shared memory before visibility checks of
        # everyone slow down (PGPROC_MAX_CACHED_SUBXIDS).
        super().__init__(max_batch=max_batch, max_in_flight=max_in_flight)
        self._pool = pool
        self._sql = sql
        # Each call's answer: its row's first value, or (`whole_row`) the row itself. Either way
        # the statement must give exactly one row a call (fetchmany gives the rows of all calls
        # as one list).
        self._whole_row = whole_row
        # Rows a statement locks are locked until its batch commits, so two batches that want
        # the same two rows in opposite orders deadlock (PostgreSQL ends one after a second).
        # `order` sorts every batch by the key of what its calls lock, one order for all.
        self._order = order

    async def run(self, args: tuple) -> Any:
        return await self._run(args)

    async def _send_batch(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        if self._order is not None and len(batch) > 1:
            batch.sort(key=lambda item: self._order(item[0]))
        try:
            async with self._pool.acquire() as conn:
                if len(batch) == 1:
                    rows = [await conn.fetchrow(self._sql, *batch[0][0])]
                else:
                    rows = await conn.fetchmany(self._sql, [args for args, _ in batch])
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exception=exc)
                return
            # The batch rolled back as a whole: each call once more on its own.
            log.warning("a batch of %d failed (%s); running its calls one by one", len(batch), exc.sqlstate)
            await asyncio.gather(*(self._send([item]) for item in batch))
            return
        values = rows if self._whole_row else [row[0] for row in rows]
        for (_, future), value in zip(batch, values, strict=True):
            _settle(future, value=value)


def _settle(future: asyncio.Future, *, value: Any = None, exception: BaseException | None = None) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(value)


class ScriptBatcher(_Batcher):
    """A Redis script for concurrent callers of one event loop, many calls a round trip.

    The same natural batching as `StatementBatcher`: while fewer than `max_in_flight` pipelines
    are out, whatever is queued leaves at once as one pipeline (no MULTI: each script runs on its
    own, as it would alone). A call whose script Redis had lost runs once more with its body; a
    pipeline that failed as a whole (Redis down) is every caller's `RedisError`, as one call's
    would have been. For a single Redis server: a cluster client runs each script on its node.
    """

    def __init__(self, redis: Any, script: Script, *, max_batch: int = 64, max_in_flight: int = 2) -> None:
        super().__init__(max_batch=max_batch, max_in_flight=max_in_flight)
        self._redis = redis
        self._script = script

    async def run(self, keys: list[str], args: list[object]) -> Any:
        return await self._run((keys, args))

    async def _send_batch(self, batch: list[tuple[tuple[list[str], list[object]], asyncio.Future]]) -> None:
        if len(batch) == 1:
            (keys, args), future = batch[0]
            _settle(future, value=await self._script.run(self._redis, keys, args))
            return
        pipe = self._redis.pipeline(transaction=False)
        for (keys, args), _ in batch:
            self._script.queue(pipe, keys, args)
        answers = await pipe.execute(raise_on_error=False)
        for ((keys, args), future), answer in zip(batch, answers, strict=True):
            if isinstance(answer, NoScriptError):  # a restarted Redis: this call with the body, which loads it
                answer = await self._script.run(self._redis, keys, args)
            if isinstance(answer, Exception):
                _settle(future, exception=answer)
            else:
                _settle(future, value=answer)
