"""A primary and its streaming replica of the tests' own, from the embedded server's binaries
(the pgserver wheel), each on a free TCP port of 127.0.0.1.

The primary runs with `wal_level=replica` (and without autovacuum, so that nothing commits
while a test wants it idle), a role `replicator` (REPLICATION) and a pg_hba line
that lets it stream from loopback (trust, like every other role here: a test cluster). The
standby is `pg_basebackup -R` of it (the backup writes `standby.signal` and `primary_conninfo`),
a hot standby that logs every statement it runs, so a test can read what reached it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.exchange.postgres import POSTGRES_BIN_PATH
from tests.support import free_port

__all__ = ("StreamingPair",)

_ENTRY = re.compile(r"^\S*@\S* [A-Z]+:  ")
"""The start of a log entry under `log_line_prefix` `%u@%d ` (`chongjun_app@cj_x LOG:  ...`)."""


class StreamingPair:
    """`start()` the primary and a standby streaming from it; `stop_standby()` /
    `start_standby()` crash and restart the standby; `close()` removes both."""

    def __init__(self) -> None:
        # PostgreSQL refuses to run as root: as pgserver does, run it as the user `pgserver`.
        self.user = "pgserver" if os.geteuid() == 0 else None
        self.directory = Path(tempfile.mkdtemp(prefix="cj-replica-"))
        self.primary_data = self.directory / "primary"
        self.standby_data = self.directory / "standby"
        self.standby_log = self.directory / "standby.log"
        self.primary_port = free_port()
        self.standby_port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _run(self, name: str, *args: str) -> None:
        subprocess.run([str(POSTGRES_BIN_PATH / name), *args], check=True, user=self.user, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _ctl(self, data: Path, log: Path, *args: str) -> None:
        self._run("pg_ctl", "-D", str(data), "-w", "-t", "30", "-l", str(log), *args)

    def start(self) -> StreamingPair:
        self._run("initdb", "-D", str(self.primary_data), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        with open(self.primary_data / "pg_hba.conf", "a") as hba:
            hba.write("host replication replicator 127.0.0.1/32 trust\n")
        self._ctl(self.primary_data, self.directory / "primary.log", "-o",
                  f"-h 127.0.0.1 -p {self.primary_port} -k '' -c max_connections=100 -c wal_level=replica"
                  " -c max_wal_senders=4 -c fsync=off -c autovacuum=off", "start")
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres", "-q", "-c",
                  "CREATE ROLE replicator WITH REPLICATION LOGIN")
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "replicator",
                  "-D", str(self.standby_data), "-R", "-X", "stream", "-c", "fast")
        self.start_standby()
        return self

    def start_standby(self) -> None:
        self._ctl(self.standby_data, self.standby_log, "-o",
                  f"-h 127.0.0.1 -p {self.standby_port} -k '' -c max_connections=100 -c hot_standby=on"
                  " -c fsync=off -c log_statement=all -c \"log_line_prefix=%u@%d \"", "start")

    def stop_standby(self) -> None:
        """A crashed standby: `-m immediate`, every connection to it cut."""
        self._ctl(self.standby_data, self.standby_log, "-m", "immediate", "stop")

    def close(self) -> None:
        for data in (self.standby_data, self.primary_data):
            try:
                self._ctl(data, self.directory / "stop.log", "-m", "immediate", "stop")
            except subprocess.CalledProcessError:
                pass  # not running
        shutil.rmtree(self.directory, ignore_errors=True)

    def primary_dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.primary_port}/{database}"

    def standby_dsn(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.standby_port}/{database}"

    def standby_statements(self, since: int = 0) -> list[str]:
        """The statements the standby logged after byte `since` of its log, one `user@db statement` each."""
        with open(self.standby_log, "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        entries: list[str] = []
        for line in text.splitlines():
            if _ENTRY.match(line):
                entries.append(line)
            elif entries:  # a statement's next lines come without the prefix
                entries[-1] += "\n" + line
        return [entry for entry in entries if "statement: " in entry or re.search(r"LOG:  execute \S+: ", entry)]

    def standby_log_size(self) -> int:
        return self.standby_log.stat().st_size
