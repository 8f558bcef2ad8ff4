"""The `chongjun` command as an operator runs it: a real subprocess, its stdout and stderr."""

from __future__ import annotations

import os
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
