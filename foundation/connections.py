"""Connections to PostgreSQL and Redis, set up the same way for the app, the CLI and the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterCrossSlotError, ConnectionError as RedisConnectionError, CrossSlotTransactionError, RedisClusterException,
    RedisError, ResponseError,
)

from foundation.scripts import CrossSlot
from foundation.settings import Settings

__all__ = (
    "SERVICE_ROLE", "ClusterClient", "ClusterUnavailable", "ConnectionOnDemand", "RedisClient", "connect_postgres", "connect_redis", "dsn_with_database", "dsn_with_user", "init_connection",
    "open_connection", "reset_connection", "warm_up",
)


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, encoded by msgspec (fast, and Structs encode directly).
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(), decoder=msgspec.json.decode
        )


async def reset_connection(conn: asyncpg.Connection) -> None:
    """Run when a connection goes back to the pool, instead of asyncpg's reset query.

    The default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is one more round
    trip on every request. Nothing here leaves session state on a pooled connection: no SET
    without LOCAL, no LISTEN, no cursor outside a transaction, only transaction-scoped advisory
    locks (migrations use a connection of their own). What can be left is an open transaction
    after an error, and that is rolled back.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect_postgres(settings: Settings, *, dsn: str | None = None, **overrides) -> asyncpg.Pool:
    """A pool that opens connections lazily, so the app starts (and /ready says why) while PG is down.

    `dsn`: another server than `settings.database_url` (the read replica)."""
    options = {
        "min_size": 0,
        "max_size": settings.pool_max_size,
        "init": init_connection,
        "reset": reset_connection,
        "command_timeout": 30,
        "timeout": 5,
        "max_inactive_connection_lifetime": 300,
    }
    options.update(overrides)
    return await asyncpg.create_pool(dsn or settings.database_url, **options)


class ConnectionOnDemand:
    """A connection of `pool` taken only when a statement runs on it, given back by `release()`
    (or at the end of `async with ConnectionOnDemand(pool) as conn:`, as with `pool.acquire()`).

    For the scan (api.fastscan): its ledger statement and person read run in the worker's
    batches (foundation.batching) and its venue and offers come from caches, so most scans run
    no statement of their own. Holding a connection anyway cost an acquire and a release on
    every scan, each a turn of the event loop, and grew the pool to one connection per scan in
    flight, each of which introspected its types on first use. The methods are the
    connection's; one statement at a time, as on the connection itself."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn: Any = None

    async def _taken(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self._pool.acquire()
        return self._conn

    async def fetch(self, query: str, *args: Any, **options: Any) -> list[asyncpg.Record]:
        return await (await self._taken()).fetch(query, *args, **options)

    async def fetchrow(self, query: str, *args: Any, **options: Any) -> asyncpg.Record | None:
        return await (await self._taken()).fetchrow(query, *args, **options)

    async def fetchval(self, query: str, *args: Any, **options: Any) -> Any:
        return await (await self._taken()).fetchval(query, *args, **options)

    async def execute(self, query: str, *args: Any, **options: Any) -> str:
        return await (await self._taken()).execute(query, *args, **options)

    def transaction(self, **options: Any) -> _TransactionOnDemand:
        return _TransactionOnDemand(self, options)

    @property
    def taken(self) -> bool:
        """Whether a statement ran, so a connection is held."""
        return self._conn is not None

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._pool.release(conn)

    async def __aenter__(self) -> ConnectionOnDemand:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.release()


class _TransactionOnDemand:
    """`async with on_demand.transaction():` takes the connection at its start."""

    __slots__ = ("_on_demand", "_options", "_transaction")

    def __init__(self, on_demand: ConnectionOnDemand, options: dict[str, Any]) -> None:
        self._on_demand, self._options, self._transaction = on_demand, options, None

    async def __aenter__(self) -> None:
        self._transaction = (await self._on_demand._taken()).transaction(**self._options)
        await self._transaction.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._transaction.__aexit__(*exc_info)


class ClusterUnavailable(RedisConnectionError):
    """The cluster could not serve a command (slots not covered, no node reachable, a node going
    away mid-command): a `RedisError`, so every Redis-down fallback of the app applies."""


_CROSS_SLOT_WORDS = ("same key slot", "CROSSSLOT", "non local key")


@contextmanager
def _as_redis_errors() -> Iterator[None]:
    """redis-py's cluster client raises some failures outside `RedisError`: `RedisClusterException`
    (slots not covered while a master is away, no reachable node at (re)initialisation) and, when
    its own `aclose()` after a CLUSTERDOWN (or a slot-map refresh) races a command on another task,
    an `AttributeError` or, under uvloop, a `RuntimeError` from a connection it just closed
    (`'NoneType' object has no attribute 'writelines'`, `... the handler is closed`; redis 8.1).
    Those become `ClusterUnavailable`; cross-slot mistakes become `CrossSlot`."""
    try:
        yield
    except (CrossSlotTransactionError, ClusterCrossSlotError) as error:
        raise CrossSlot(str(error)) from error
    except ResponseError as error:
        if any(word in str(error) for word in _CROSS_SLOT_WORDS):
            raise CrossSlot(str(error)) from error
        raise
    except RedisClusterException as error:
        if any(word in str(error) for word in _CROSS_SLOT_WORDS):
            raise CrossSlot(str(error)) from error
        raise ClusterUnavailable(str(error)) from error
    except AttributeError as error:
        raise ClusterUnavailable(f"connection closed under the command: {error}") from error
    except RuntimeError as error:  # the same race under uvloop: "... the handler is closed"
        if "closed" not in str(error):
            raise
        raise ClusterUnavailable(f"connection closed under the command: {error}") from error


class ClusterClient(aioredis.RedisCluster):
    """`redis.asyncio.RedisCluster` whose failures are all `RedisError`s (or `CrossSlot`)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterClient:
        # Also run on its own by a pipeline's `async with`, outside execute_command.
        with _as_redis_errors():
            return await super().initialize(*args, **kwargs)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _as_redis_errors():
            if self._initialize or self.get_default_node() is None:
                # redis-py 8.1 decides how to route a command before it (re)reads the slot map, and
                # with no map yet it sends a keyed command to any node: MOVED, then its aclose()
                # under every other command in flight. So the map is read first. Measured on a cold
                # client, 100 concurrent scripts: 19-24 failed without this, none with it.
                await self.initialize()
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if transaction or shard_hint:
            # MULTI/EXEC over one slot only; nothing of ours needs one, so none is allowed.
            raise CrossSlot("no transactions on the cluster: one script per slot instead")
        return _ClusterPipeline(self)


class _ClusterPipeline(ClusterPipeline):
    """A non-transactional cluster pipeline: its commands are grouped per node and sent in parallel."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        with _as_redis_errors():
            return await super().execute(raise_on_error=raise_on_error, allow_redirections=allow_redirections)


async def warm_up(redis: RedisClient) -> None:
    """Read a cluster's slot map now, before requests come (`ClusterClient.execute_command` would
    read it on the first command anyway). Best effort: a cluster that is down at start is read on
    first use instead."""
    if isinstance(redis, ClusterClient):
        try:
            await redis.initialize()
        except RedisError:
            pass


RedisClient: TypeAlias = aioredis.Redis | ClusterClient
"""What `connect_redis` returns: the same commands either way (the app never uses one that a
cluster lacks: no MULTI across slots, no KEYS/SCAN, no FLUSHDB)."""


def connect_redis(settings: Settings) -> RedisClient:
    """The one place Redis clients are made. `settings.redis_cluster`: a cluster client that finds
    every node from the one `redis_url` names and routes each command to the slot of its keys."""
    options: dict[str, Any] = {
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
        "max_connections": 256,
    }
    if settings.redis_cluster:
        # One retry after re-reading the slot map (a moved slot, a master back on its port); more
        # would only hold a request longer while a master is away, and every caller has a fallback.
        return ClusterClient.from_url(settings.redis_url, retry=Retry(NoBackoff(), 1), **options)
    return aioredis.Redis.from_url(settings.redis_url, **options)


SERVICE_ROLE = "chongjun_app"
"""The service's database role (migration 0004): reads and appends history, owns nothing."""


async def open_connection(settings: Settings, *, owner: bool = False) -> asyncpg.Connection:
    """One connection outside the pool (CLI commands; with `owner`, as the schema's owner for
    migrations), with the pool's codecs."""
    conn = await asyncpg.connect(settings.migration_url if owner else settings.database_url, timeout=10)
    await init_connection(conn)
    return conn


def dsn_with_user(dsn: str, user: str) -> str:
    """The same server and database as another role, without a password (trust or peer-less local
    authentication: the embedded server, a test server); give a full DSN for anything else."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.pop("user", None)
    query.pop("password", None)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, urlencode(query), parts.fragment))


def dsn_with_database(dsn: str, database: str) -> str:
    """The same server, another database; keeps query options such as a socket `host`."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.pop("dbname", None)
    query.pop("database", None)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, urlencode(query), parts.fragment))
