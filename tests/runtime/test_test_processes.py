"""The suite's own plumbing for running in several processes (tests/support.py): each process
flushes a Redis database of its own, and the sweep of databases left by killed runs spares those
of a process that is still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support import (
    claim_test_dir,
    embedded_test_dir,
    is_stale_test_database,
    new_test_database_name,
    redis_url_with_db,
    suite_process,
    suite_process_index,
    sweep_orphaned_test_dirs,
)


def test_each_process_takes_the_given_redis_database_plus_its_index():
    assert redis_url_with_db("redis://127.0.0.1:6379/0", 0) == "redis://127.0.0.1:6379/0"
    assert redis_url_with_db("redis://127.0.0.1:6379/3", 1) == "redis://127.0.0.1:6379/4"
    assert redis_url_with_db("redis://127.0.0.1:6379", 1) == "redis://127.0.0.1:6379/1"
    assert redis_url_with_db("redis://:secret@10.0.0.5:7000/2?socket_timeout=1", 2) == (
        "redis://:secret@10.0.0.5:7000/4?socket_timeout=1"
    )
    assert redis_url_with_db("unix:///tmp/r/redis.sock", 1) == "unix:///tmp/r/redis.sock?db=1"
    assert redis_url_with_db("unix:///tmp/r/redis.sock?db=2", 1) == "unix:///tmp/r/redis.sock?db=3"


def test_a_database_of_a_running_process_is_never_stale_one_of_a_finished_process_is():
    mine = new_test_database_name()
    assert mine.startswith(f"cj_test_{os.getpid()}_") and len(mine) <= 63
    assert not is_stale_test_database(mine)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert is_stale_test_database(f"cj_test_{int(finished.stdout)}_0123456789")
    assert is_stale_test_database("cj_test_0a1b2c3d4e5f")  # the form before process ids: a killed run's


def test_the_process_name_follows_pytest_xdist(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert (suite_process(), suite_process_index()) == ("gw3", 3)
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert (suite_process(), suite_process_index()) == ("main", 0)


def test_the_servers_directory_is_the_configured_one_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("CHONGJUN_TEST_DATA_DIR", str(tmp_path))
    assert embedded_test_dir() == tmp_path
    monkeypatch.delenv("CHONGJUN_TEST_DATA_DIR")
    assert embedded_test_dir().name.startswith(("chongjun-test-", "test"))


def test_the_ram_directory_of_a_checkout_that_is_gone_is_stopped_and_removed(tmp_path):
    gone = tmp_path / "chongjun-test-gone"
    (gone / "redis").mkdir(parents=True)
    (gone / "checkout").write_text(str(tmp_path / "a-clone-ci-deleted"))
    # Stands in for the gone checkout's Redis: its command line names the directory, as the
    # real one's does.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(gone / "redis")])
    (gone / "redis" / "redis.pid").write_text(str(server.pid))
    stranger = subprocess.Popen(["sleep", "60"])  # a pid file naming a process that is not its server
    (gone / "pg").mkdir()
    (gone / "pg" / "postmaster.pid").write_text(f"{stranger.pid}\n{gone / 'pg'}\n")
    here = tmp_path / "chongjun-test-here"
    claim_test_dir(here)  # this checkout's: it exists
    unmarked = tmp_path / "chongjun-test-unmarked"
    unmarked.mkdir()  # no marker (being made, or an older run's): not judged
    try:
        assert sweep_orphaned_test_dirs(tmp_path) == [gone]
        assert server.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None  # never signalled: its command line is not the server's
    finally:
        server.kill()
        stranger.kill()
    assert not gone.exists() and here.is_dir() and unmarked.is_dir()
    assert sweep_orphaned_test_dirs(tmp_path) == []
