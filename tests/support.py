"""Helpers shared by tests: DSNs, a live server in subprocesses, free ports."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psutil
import pytest

from foundation.connections import dsn_with_database, init_connection
from foundation.settings import Settings

__all__ = (
    "PROFILES",
    "both_profiles",
    "both_redis",
    "claim_test_dir",
    "cluster_only",
    "intl_only",
    "dsn_with_database",
    "embedded_test_dir",
    "free_port",
    "init_connection",
    "is_stale_test_database",
    "kill_live_server",
    "live_server",
    "new_test_database_name",
    "redis_url_with_db",
    "suite_process",
    "suite_process_index",
    "sweep_orphaned_test_dirs",
)

PROFILES = ("intl", "gm")
both_profiles = pytest.mark.parametrize("crypto_profile", PROFILES, indirect=True)
"""Run a test once per crypto profile (the `crypto_profile` fixture of tests/conftest.py)."""
intl_only = pytest.mark.parametrize("crypto_profile", ("intl",), indirect=True)
"""Pin a test of the intl profile's own mechanics (Ed25519/ES256 key bytes, their kids, the forged
tokens of those algorithms) to intl, so `CHONGJUN_CRYPTO_PROFILE=gm ./dev test` runs it as written
instead of failing on an SM2 key it never meant to test; the gm side of each is in the profile tests."""

both_redis = pytest.mark.parametrize("redis_kind", ("single", "cluster"), indirect=True)
"""Run a test once on a single Redis server and once on a real 3-master Redis Cluster (the
`redis_kind` fixture of tests/conftest.py; the cluster is tests/cluster/servers.py's)."""
cluster_only = pytest.mark.parametrize("redis_kind", ("cluster",), indirect=True)

_RUNNING: dict[str, subprocess.Popen] = {}


def kill_live_server(base_url: str) -> None:
    """SIGKILL a `live_server` and all its workers at once (a crashed host): nothing shuts down cleanly."""
    process = _RUNNING[base_url]
    _signal_group(process, signal.SIGKILL)
    process.wait()


ROOT = Path(__file__).resolve().parent.parent


_RAM_DIRECTORY = Path("/dev/shm")
_RAM_PREFIX = "chongjun-test-"
_CHECKOUT_FILE = "checkout"  # in each RAM directory: the checkout it belongs to
_RAM_ROOM_NEEDED = 2 << 30  # the test cluster peaks well under 1 GiB (WAL, a few live test databases)


def embedded_test_dir() -> Path:
    """Where the tests' embedded servers live (when DATABASE_URL and REDIS_URL are not set).

    CHONGJUN_TEST_DATA_DIR when it is set. Else a directory of this checkout's own on /dev/shm, a
    RAM filesystem, when there is one with room; else `.chongjun/test`.

    Why RAM: every test clones the template database (some 660 files: the ledger's partitions
    and their indexes) and drops it afterwards. On ext4, creating files soon after thousands were
    deleted makes the inode allocator check each recently deleted inode (`recently_deleted` and
    `find_get_block_common` took 70 % of the backend's time in `perf`), and CREATE DATABASE grew
    from 0.1 s to 0.4-0.7 s a test as a run went on. On tmpfs it stays near 0.1 s. The servers are
    the same PostgreSQL and Redis binaries; what a RAM filesystem loses is a host crash, which
    no test survives or relies on (killed processes keep what the kernel holds).
    """
    configured = os.environ.get("CHONGJUN_TEST_DATA_DIR")
    if configured:
        return Path(configured)
    if _RAM_DIRECTORY.is_dir() and os.access(_RAM_DIRECTORY, os.W_OK):
        try:
            room = shutil.disk_usage(_RAM_DIRECTORY).free
        except OSError:
            room = 0
        if room >= _RAM_ROOM_NEEDED:
            # One directory per checkout: a clean clone's CI run never shares servers with the
            # working copy beside it.
            checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
            return _RAM_DIRECTORY / f"{_RAM_PREFIX}{checkout}"
    return ROOT / ".chongjun" / "test"


def claim_test_dir(directory: Path) -> None:
    """Note in `directory` which checkout it belongs to (for `sweep_orphaned_test_dirs`)."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / _CHECKOUT_FILE
    if not marker.exists():
        marker.write_text(str(ROOT))


def sweep_orphaned_test_dirs(parent: Path = _RAM_DIRECTORY) -> list[Path]:
    """Stop the servers of, and remove, the RAM directories of checkouts that are gone.

    Unlike `.chongjun/test`, a directory on /dev/shm outlives its checkout: every clean clone
    that CI ran and deleted would keep its PostgreSQL cluster (and, where a killed process left
    its handle behind, the running server) in memory until the host restarts. Returns what it
    removed."""
    removed = []
    for directory in sorted(parent.glob(f"{_RAM_PREFIX}*")):
        try:
            owner = Path((directory / _CHECKOUT_FILE).read_text().strip())
        except (FileNotFoundError, NotADirectoryError):
            continue  # being made, or not ours to judge
        if owner.exists():
            continue
        for pid_file, sig in ((directory / "pg" / "postmaster.pid", signal.SIGQUIT),
                              (directory / "redis" / "redis.pid", signal.SIGTERM)):
            try:
                pid = int(pid_file.read_text().split()[0])
                # Only a server of this directory: a pid file can outlive its process, and the
                # pid can be another program's by now. Both servers name the directory in their
                # command line (postgres -D, redis-server's title shows its socket).
                if str(directory) in " ".join(psutil.Process(pid).cmdline()):
                    os.kill(pid, sig)
            except (FileNotFoundError, ValueError, IndexError, ProcessLookupError, PermissionError, psutil.Error):
                pass
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def suite_process() -> str:
    """This test process's name: pytest-xdist's worker id (`gw0`, `gw1`, ...), or `main` when the
    suite runs in one process. Whatever two processes of one run could collide on (the Redis
    database, the app's data directory) is named after it."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def suite_process_index() -> int:
    """0 for `main` and `gw0`, N for `gwN`."""
    name = suite_process()
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url_with_db(url: str, offset: int) -> str:
    """`url` with its database number raised by `offset` (`redis://h:p/3` and offset 1 →
    `redis://h:p/4`; `unix:///s.sock` → `unix:///s.sock?db=1`): each test process flushes a
    database of its own."""
    if offset == 0:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":  # urlunsplit would drop the empty host: unix:/path
        query["db"] = str(int(query.get("db", "0")) + offset)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    number = int(parts.path.strip("/") or query.pop("db", "0"))
    return urlunsplit(parts._replace(path=f"/{number + offset}", query=urlencode(query)))


_TEST_DATABASE_PREFIX = "cj_test_"


def new_test_database_name() -> str:
    """A fresh database name that says which process made it (`cj_test_<pid>_<random>`), so the
    sweep of databases left by killed runs never drops one another test process still uses."""
    return f"{_TEST_DATABASE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}"


def is_stale_test_database(name: str) -> bool:
    """A test database whose process is gone (or of the older unnamed form)."""
    owner = name[len(_TEST_DATABASE_PREFIX):].partition("_")[0]
    if not owner.isdigit():
        return True
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # started with start_new_session: its pid is the group's id
    except ProcessLookupError:
        pass


@contextmanager
def live_server(
    settings: Settings, *, workers: int = 2, extra_env: dict[str, str] | None = None, log_file: Path | None = None
):
    """`chongjun serve --workers N` as a real subprocess on a free port; yields its base URL.

    With `log_file`, the server's stderr (its JSON log lines) is written there for the test to read.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
        "CHONGJUN_ENV": settings.env,
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
        "CHONGJUN_DEVICE_SCAN_RATE": str(settings.device_scan_rate),
        "CHONGJUN_CRYPTO_PROFILE": settings.crypto_profile,
        "CHONGJUN_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # stderr goes to a file, never to a pipe nobody reads: a server that logs more than a pipe
    # holds (64 KiB: a warning a scan while Redis is away) would block in its write, every
    # request of that worker with it (test_restart.py saw 32 scans time out at once).
    log_handle = open(log_file, "wb") if log_file is not None else tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "chongjun.cli", "serve", "--port", str(port), "--workers", str(workers), "--no-seed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_handle,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log_handle.flush()
                log_handle.seek(0)
                output = log_file.read_bytes() if log_file is not None else log_handle.read()
                raise RuntimeError(f"server exited: {output.decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in 60 s")
            time.sleep(0.2)
        _RUNNING[base_url] = process
        yield base_url
    finally:
        _RUNNING.pop(base_url, None)
        # The whole process group: granian's workers too, not only the process that started them.
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
        log_handle.close()
