"""The store file: private, WAL, migrated once; a non-SQLite or read-only file is a clear error
and is left as it was; a second writer is refused with the holder's pid."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import drop, message, schema_status
from conftest import sqlite_store as open_store

from mailbridge.errors import LockBusyError, StoreError
from mailbridge.store import migrations
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
    applied = again.execute(f"SELECT count(*) FROM {migrations.TABLE}").fetchone()[0]
    assert applied == len(migrations.STEPS)


def test_an_older_store_is_upgraded_and_keeps_its_data(tmp_path):
    """A store made by a release that had only the first migration, recorded (as releases
    before the PostgreSQL backend did) in sqlite-utils' `_sqlite_migrations` table."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        class Script:
            ddl = conn.executescript

        migrations.m001_foundation(Script())  # type: ignore[arg-type]
        conn.execute("CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, "
                     "applied_at TEXT)")
        conn.execute("INSERT INTO _sqlite_migrations VALUES ('mailbridge', 'm001_foundation', "
                     "'then')")
        conn.execute("INSERT INTO queues (name, created_at) VALUES ('kept', 'then')")
    with pytest.raises(StoreError, match="older than this mailbridge"):
        open_store(path, readonly=True)
    db = open_store(path)
    assert schema_status(db) == (len(migrations.STEPS), 0)
    assert db.execute("SELECT name FROM queues").fetchall() == [("kept",)]
    assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert "_sqlite_migrations" not in db.tables()


@pytest.mark.sqlite_only
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
@pytest.mark.sqlite_only
def test_read_only_store_is_a_clear_error(mb):
    spool = mb.drop_channel()
    assert mb("sync").exit_code == 0
    drop(spool, message())
    mb.store.chmod(0o400)
    result = mb("sync")
    assert result.exit_code == 2
    assert "read-only" in result.stderr


@contextlib.contextmanager
def read_only(mb, how: str):
    """The store made unwritable: its folder bind-mounted read-only over itself (stops root
    too; needs mount rights), or the file and folder without write permission (stops
    everyone but root)."""
    folder = mb.store.parent
    if how == "mount":
        if os.geteuid() != 0:
            pytest.skip("a read-only bind mount needs root; the mode-444 case covers this user")
        for args in (["--bind", str(folder), str(folder)],
                     ["-o", "remount,bind,ro", str(folder)]):
            done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
            if done.returncode:
                subprocess.run(["umount", "-l", str(folder)], timeout=30, check=False)
                pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], timeout=30, check=True)
    else:
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions; the read-only mount case covers root")
        mb.store.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o700)
            mb.store.chmod(0o600)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("how", ["mount", "mode-444"])
def test_doctor_and_sync_agree_on_a_store_nobody_can_write(mb, how):
    spool = mb.drop_channel()
    assert mb("sync").exit_code == 0
    drop(spool, message())
    with read_only(mb, how):
        checks = json.loads(mb("doctor", "--offline", "--format", "json").stdout)
        [writable] = [c for c in checks if c["check"] == "store writable"]
        assert writable["status"] == "fail"
        assert writable["detail"].startswith(str(mb.store.parent))
        assert ("mounted read-only" if how == "mount" else "not writable by this user") in \
            writable["detail"]
        result = mb("sync")
        assert result.exit_code == 2
        assert "Traceback" not in result.stderr
    assert mb("sync").exit_code == 0
    checks = json.loads(mb("doctor", "--offline", "--format", "json").stdout)
    assert "store writable" not in {c["check"] for c in checks}


def test_read_only_store_opened_read_only_cannot_be_written(tmp_path):
    path = tmp_path / "s.db"
    open_store(path).close()
    db = open_store(path, readonly=True)
    with pytest.raises(StoreError, match="read-only"):
        db.execute("INSERT INTO queues VALUES ('x', 'y')")


@pytest.mark.sqlite_only
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
