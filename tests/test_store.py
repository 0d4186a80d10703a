"""The store file: private, WAL, migrated once; a non-SQLite or read-only file is a clear error
and is left as it was; a second writer is refused with the holder's pid."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from conftest import drop, message

from mailbridge.errors import LockBusyError, StoreError
from mailbridge.store import migrations
from mailbridge.store.db import open_store, schema_status
from mailbridge.store.lock import write_lock


def test_new_store_is_private_wal_and_current(tmp_path):
    path = tmp_path / "d" / "s.db"
    db = open_store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_status(db) == (len(migrations.STEPS), 0)
    db.close()
    again = open_store(path)
    assert schema_status(again) == (len(migrations.STEPS), 0)  # nothing applied twice
    applied = again.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    assert applied == len(migrations.STEPS)


def test_an_older_store_is_upgraded_and_keeps_its_data(tmp_path):
    """A store made by a release that had only the first migration."""
    import sqlite3

    from sqlite_utils import Database

    path = tmp_path / "old.db"
    old = migrations.migration_set()
    old.apply(Database(sqlite3.connect(path)), stop_before=migrations.STEPS[1].__name__)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO queues (name, created_at) VALUES ('kept', 'then')")
    with pytest.raises(StoreError, match="older than this mailbridge"):
        open_store(path, readonly=True)
    db = open_store(path)
    assert schema_status(db) == (len(migrations.STEPS), 0)
    assert db.execute("SELECT name FROM queues").fetchall() == [("kept",)]
    assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


def test_a_file_that_is_not_sqlite_is_refused_and_untouched(mb):
    mb.drop_channel()
    mb.store.parent.mkdir(parents=True)
    mb.store.write_bytes(b"this is my thesis, not a database" * 100)
    before = mb.store.read_bytes()
    result = mb("sync")
    assert result.exit_code == 2
    assert "not a mailbridge (SQLite) store" in result.stderr
    assert "Traceback" not in result.stderr
    assert mb.store.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_store_is_a_clear_error(mb):
    spool = mb.drop_channel()
    assert mb("sync").exit_code == 0
    drop(spool, message())
    mb.store.chmod(0o400)
    result = mb("sync")
    assert result.exit_code == 2
    assert "read-only" in result.stderr


def test_read_only_store_opened_read_only_cannot_be_written(tmp_path):
    path = tmp_path / "s.db"
    open_store(path).close()
    db = open_store(path, readonly=True)
    with pytest.raises(Exception, match="readonly"):
        db.execute("INSERT INTO queues VALUES ('x', 'y')")


def test_second_writer_gets_exit_75_naming_the_pid(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    mb.store.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pathlib import Path\n"
         "from mailbridge.store.lock import write_lock\n"
         f"with write_lock(Path({str(mb.store)!r})):\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = mb("sync", "--wait", "0.3")
        assert result.exit_code == 75
        assert f"another mailbridge process (pid {holder.pid})" in result.stderr
        piped = mb("ingest", "support", "--wait", "0.3", input=message())
        assert piped.exit_code == 75
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert mb("sync").exit_code == 0


def test_lock_is_released_after_use(tmp_path):
    path = tmp_path / "s.db"
    with write_lock(path), pytest.raises(LockBusyError), write_lock(path):
        pass
    with write_lock(path):
        pass


def test_missing_store_for_readers(tmp_path):
    with pytest.raises(StoreError, match="no store yet"):
        open_store(tmp_path / "none.db", readonly=True)
