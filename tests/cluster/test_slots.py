"""Nothing of ours may span hash slots, so the same code runs on one Redis server and on a cluster.

Three nets, from the cheapest: (1) the source: no module sends EVAL except through
`foundation.scripts.Script`, and none uses a command that assumes one node (KEYS, SCAN, FLUSHDB,
MGET/MSET, MULTI/WATCH, a transactional pipeline); (2) `Script.run` refuses keys of several slots
on every call, on a single server too, so any test that runs a future cross-slot script fails;
(3) on the real cluster a cross-slot command or script is a `CrossSlot` error (a 500), never a
`RedisError` that a Redis-down fallback would quietly absorb.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import uuid
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from benefits.catalog import person_stale_mark
from benefits.redemption import gate
from foundation.connections import ClusterClient
from foundation.scripts import CrossSlot, Script, hash_slot
from tests.support import both_redis, cluster_only

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "archive", "benefits", "chongjun", "exchange", "foundation", "identity", "merchants")

# Commands that assume one node or span slots, by the redis-py method that sends them.
_NEVER = {"keys", "scan", "scan_iter", "flushdb", "flushall", "mget", "mset", "msetnx", "watch", "multi",
          "transaction", "rename", "renamenx", "smove", "sunionstore", "sinterstore", "sdiffstore",
          "zunionstore", "zinterstore", "rpoplpush", "lmove", "copy", "bitop", "pfmerge"}
_SCRIPTS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "register_script", "script_load", "fcall"}


def _redis_calls() -> list[tuple[str, int, str, ast.Call]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    receiver = ast.unparse(node.func.value)
                    if "redis" in receiver or "pipe" in receiver or receiver == "client":
                        found.append((str(path.relative_to(ROOT)), node.lineno, node.func.attr, node))
    return found


def test_no_module_sends_eval_or_a_one_node_command_itself():
    calls = _redis_calls()
    assert len(calls) > 20  # the scan above sees the code's Redis calls at all
    scripts = [f"{p}:{n} {a}" for p, n, a, _ in calls if a in _SCRIPTS and p != "foundation/scripts.py"]
    assert not scripts, f"run Lua through foundation.scripts.Script (one slot per call): {scripts}"
    never = [f"{p}:{n} {a}" for p, n, a, _ in calls if a in _NEVER]
    assert not never, f"commands that assume one node or span slots: {never}"
    transactional = [
        f"{p}:{n}" for p, n, a, call in calls
        if a == "pipeline" and not any(k.arg == "transaction" and ast.unparse(k.value) == "False" for k in call.keywords)
    ]
    assert not transactional, f"pipelines must say transaction=False (MULTI spans no slots on a cluster): {transactional}"


def _scripts() -> dict[str, Script]:
    found: dict[str, Script] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if info.name.startswith(("chongjun.bench", "chongjun.demo", "chongjun.cli")):
                continue
            for value in vars(importlib.import_module(info.name)).values():
                if isinstance(value, Script):
                    found[value.name] = value
    return found


def test_only_the_scan_gate_folds_slots_together_and_only_on_one_server():
    scripts = _scripts()
    assert {"scan-gate-caller", "scan-gate-code", "login-reserve", "login-release", "quota-stale"} <= set(scripts)
    assert [name for name, s in scripts.items() if s.single_server] == ["scan-gate"]


def test_the_keys_each_script_is_given_share_one_slot():
    for _ in range(200):
        caller = f"device:{uuid.uuid4()}"
        keys = [gate._marker_key(caller, str(uuid.uuid4())), gate._marker_key(caller, None)]
        gate._CALLER.check_keys([keys[0], f"cj:rate:{{{caller}}}:12345"])
        gate._CALLER.check_keys([keys[1], f"cj:rate:{{{caller}}}:12345"])
        mark = person_stale_mark(uuid.uuid4())
        gate._STALE.check_keys([mark.generation_key, mark.cache_key])
    # and different callers or codes land on different slots (the load spreads over the masters)
    slots = {hash_slot(gate._used_key(f"ssm:{uuid.uuid4()}")) for _ in range(200)}
    assert len(slots) > 150


@both_redis
async def test_a_cross_slot_script_fails_everywhere_and_is_no_redis_error(redis):
    probe = Script("redis.call('SET', KEYS[1], '1') return redis.call('SET', KEYS[2], '1')", name="probe")
    assert hash_slot("cj:a:{one}") != hash_slot("cj:b:{two}")
    with pytest.raises(CrossSlot):
        await probe.run(redis, ["cj:a:{one}", "cj:b:{two}"])
    assert not issubclass(CrossSlot, RedisError)
    assert await probe.run(redis, ["cj:a:{one}", "cj:b:{one}"])  # one tag: fine on both


@cluster_only
async def test_on_the_cluster_redis_itself_refuses_what_spans_slots(redis):
    assert isinstance(redis, ClusterClient)
    with pytest.raises(CrossSlot):  # the client's own slot check, before anything is sent
        await redis.eval("return 1", 2, "cj:a:{one}", "cj:b:{two}")
    # a script that touches a key it was not given: the node refuses, and it is not a RedisError
    sneaky = Script("return redis.call('GET', 'cj:elsewhere:' .. ARGV[1])", name="sneaky")
    with pytest.raises(CrossSlot):
        for n in range(50):  # some of these names live on this node; most do not
            await sneaky.run(redis, [f"cj:here:{{{n}}}"], [str(n)])
    with pytest.raises(CrossSlot):
        redis.pipeline(transaction=True)
    with pytest.raises(CrossSlot):
        await gate._SERVER.run(redis, ["cj:unused", "cj:unused", "cj:unused"], ["t", "0", "0", "0"])


@cluster_only
async def test_the_gate_sends_one_script_per_slot_and_answers_as_on_one_server(redis):
    """The round trips: at most two commands (the caller's, the code's), answered in parallel."""
    sent: list[tuple] = []
    execute = ClusterClient.execute_command

    async def counting(self, *args, **kwargs):
        sent.append(args)
        return await execute(self, *args, **kwargs)

    ClusterClient.execute_command = counting  # type: ignore[method-assign]
    try:
        caller, token = f"device:{uuid.uuid4()}", "t1"
        first = await gate.ask(redis, caller=caller, key="k1", token=token, jti="ssm:j1", per_minute=120)
        again = await gate.ask(redis, caller=caller, key="k1", token="t2", jti="ssm:j1", per_minute=120)
        retry = await gate.ask(redis, caller=caller, key="k1", token=token, jti="ssm:j1", per_minute=120)
        bare = await gate.ask(redis, caller=caller, key=None, token="t3", jti="ssm:j2", per_minute=0)
    finally:
        ClusterClient.execute_command = execute  # type: ignore[method-assign]
    assert first == gate.Gate(key_fresh=True, scans_this_minute=1, seen_before=False)
    assert again == gate.Gate(key_fresh=False, scans_this_minute=2, seen_before=True)
    assert retry.key_fresh and retry.seen_before  # its own token: a re-sent script goes on
    assert bare == gate.Gate(key_fresh=True, scans_this_minute=0, seen_before=False)
    commands = [args[0] for args in sent]
    assert set(commands) <= {"EVALSHA", "EVAL"}
    # 2 + 2 + 2 + 1 script calls (no key and no rate limit: only the code's), plus one EVAL per
    # node the first time a script meets it (NOSCRIPT, then the script itself)
    assert commands.count("EVALSHA") == 7, commands
    for args in sent:
        keys = args[3 : 3 + int(args[2])]
        assert len({hash_slot(key) for key in keys}) == 1, args
