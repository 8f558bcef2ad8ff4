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
