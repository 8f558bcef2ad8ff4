"""Lua scripts for Redis, the one way our code runs one: by SHA, loading it again when Redis lost it,
and only over keys of ONE hash slot, so the same script runs on one server and on a Redis Cluster.

The rule (docs/architecture.md, "Redis keys"): the keys one script or one multi-key command
touches share a hash tag, the part of the key between the first `{` and the next `}`
(`cj:idem:{device:<id>}:<key>` and `cj:rate:{device:<id>}:<minute>` are one slot). `Script.run`
checks it on every call, on a single server too, where Redis itself would not: a script that
names keys of two slots fails every test that runs it, not only the cluster's. A script must
also touch only the keys it is given (a cluster node refuses a key it does not hold).
`tests/cluster/test_slots.py` checks that no module sends EVAL any other way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterPipeline
from redis.crc import key_slot
from redis.exceptions import NoScriptError

__all__ = ("CrossSlot", "Script", "hash_slot")


class CrossSlot(Exception):
    """Keys of several hash slots in one script, command or transaction, or a script touching a key
    it was not given: a bug of ours, never an outage. Deliberately not a `RedisError`, so no
    Redis-down fallback swallows it: it is a 500, and every test that runs the code fails."""


def hash_slot(key: str | bytes) -> int:
    """The Redis Cluster slot of a key (CRC16 of its hash tag, or of the whole key without one)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


class Script:
    """One Lua script; `await script.run(redis, keys, args)`.

    `single_server=True` is for the one script that folds the parts of several slots into one round
    trip on a single server (the scan gate's): its keys may span slots, and it refuses to run on a
    cluster client, where the caller runs the single-slot parts instead.
    """

    def __init__(self, body: str, *, name: str, single_server: bool = False) -> None:
        self.body = body
        self.name = name
        self.single_server = single_server
        self.sha = hashlib.sha1(body.encode()).hexdigest()

    def check_keys(self, keys: Sequence[str]) -> None:
        if len(keys) > 1 and len({hash_slot(key) for key in keys}) > 1:
            raise CrossSlot(f"script {self.name}: its keys span hash slots: {list(keys)}")

    def _check(self, redis: Any, keys: Sequence[str]) -> None:
        if self.single_server:
            if isinstance(redis, (RedisCluster, ClusterPipeline)):
                raise CrossSlot(f"script {self.name} is for a single Redis server, not a cluster")
        else:
            self.check_keys(keys)

    def queue(self, pipeline: Any, keys: Sequence[str], args: Sequence[object] = ()) -> None:
        """Queue one call on a pipeline (made with transaction=False): `ScriptBatcher`'s way of
        running many calls a round trip. A call Redis answers NOSCRIPT for is the caller's to run
        again with `run`, which sends the body."""
        self._check(pipeline, keys)
        pipeline.evalsha(self.sha, len(keys), *keys, *args)

    async def run(self, redis: Any, keys: Sequence[str], args: Sequence[object] = ()) -> Any:
        self._check(redis, keys)
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted Redis (or another cluster node): send the script, which loads it
            return await redis.eval(self.body, len(keys), *keys, *args)

    def __repr__(self) -> str:
        return f"Script({self.name})"
