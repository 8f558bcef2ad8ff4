"""A PostgreSQL cluster of the test's own, from the embedded server's binaries (the pgserver
wheel), on a free TCP port of 127.0.0.1: a test can restart or crash it without touching the
cluster every other test uses."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port

__all__ = ("OwnPostgres",)

# Found, not imported: importing pgserver asks for a runtime directory (chongjun.embedded).
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("pgserver").origin).parent / "pginstall" / "bin"


class OwnPostgres:
    """initdb + pg_ctl on a fresh directory; `dsn(database)` is the superuser's (trust auth)."""

    def __init__(self) -> None:
        # PostgreSQL refuses to run as root: as pgserver does, run it as the user `pgserver`
        # (which the embedded server created), in a directory of /tmp that user owns.
        self.user = "pgserver" if os.geteuid() == 0 else None
        self.directory = Path(tempfile.mkdtemp(prefix="cj-own-pg-"))
        self.pgdata = self.directory / "data"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _run(self, name: str, *args: str) -> None:
        subprocess.run([str(POSTGRES_BIN_PATH / name), *args], check=True, user=self.user, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "30", "-l", str(self.directory / "log"), *args)

    def start(self) -> OwnPostgres:
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        self._ctl("-o", f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=100", "start")
        return self

    def crash_restart(self) -> None:
        """What a killed server and its restart do: `-m immediate` (no checkpoint, every
        connection cut mid-statement, crash recovery from WAL at start), then start again."""
        self._ctl("-m", "immediate", "stop")
        self.start()

    def stop(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.directory, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
