"""The `chongjun` command as an operator runs it: a real subprocess, its stdout and stderr."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.support import embedded_test_dir


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chongjun.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_call_on_the_embedded_servers_prints_no_warning(base_settings):
    """No login session (a container, cron, a service): XDG_RUNTIME_DIR unset, URLs unset.

    The call starts (or joins) the embedded servers of the test session, so pgserver is imported,
    which is where platformdirs used to print a RuntimeDirWarning on every CLI call.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "XDG_RUNTIME_DIR", "PYTHONWARNINGS")}
    env["CHONGJUN_DATA_DIR"] = str(embedded_test_dir())
    done = _cli("bench", "import", "--rows", "10", env=env)
    assert done.returncode == 0, done.stderr
    assert "roster import: 10 rows" in done.stdout
    assert "chongjun: embedded PostgreSQL in" in done.stderr  # the embedded path was taken
    assert "Warning" not in done.stderr, done.stderr


def test_serve_refuses_a_port_another_server_listens_on(base_settings):
    """Granian binds with SO_REUSEPORT, so without the check a second `serve` on a busy port
    started silently and shared the first one's connections."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a server of ours would
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": base_settings.database_url, "REDIS_URL": base_settings.redis_url,
               "CHONGJUN_DATA_DIR": str(embedded_test_dir())}
        done = _cli("serve", "--port", str(port), "--no-seed", env=env)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert f"refusing to start: 127.0.0.1:{port} is in use" in done.stderr
    assert "serving on" not in done.stderr


_START_AND_QUERY = """
import asyncio, sys
import asyncpg, redis
from chongjun.embedded import start_embedded
services = start_embedded(__import__("pathlib").Path(sys.argv[1]))
async def main():
    conn = await asyncpg.connect(services.database_url)
    print(await conn.fetchval("SHOW max_connections"), redis.Redis.from_url(services.redis_url).ping())
    await conn.close()
asyncio.run(main())
"""


def test_two_processes_starting_the_embedded_servers_at_once_on_a_fresh_directory_both_get_them(tmp_path):
    """The test suite's two processes on a fresh clone did this: each found the new cluster's
    settings stale and restarted it under the other (`pg_ctl restart` timed out in both, and
    every test errored). `start_embedded` now lets one starter in at a time."""
    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")}
    starters = [
        subprocess.Popen([sys.executable, "-c", _START_AND_QUERY, str(data_dir)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [starter.communicate(timeout=120) for starter in starters]
    for starter, (out, err) in zip(starters, results):
        assert starter.returncode == 0, err
        assert out.split() == ["400", "True"], (out, err)  # the embedded cluster's own settings, applied once
