"""A SQLite store's WAL is checkpointed by a thread of its own (store/wal_checkpoint.py, issue
23), not inside the writer's commits: once it holds enough, not after every commit; bounded
even when the writer never pauses; beside a symbolic link's target too; the thread ends with
the store, closed or dropped; and where no thread can be had the writer checkpoints as SQLite
does by default."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest
from conftest import sqlite_store

from mailbridge.store import wal_checkpoint

pytestmark = pytest.mark.sqlite_only

ROW_BYTES = 64 * 1024


def checkpointing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mailbridge-wal-checkpoint"]


def write(db, rows: int, wal: Path, sizes: list[int], size: int = ROW_BYTES) -> None:
    """`rows` commits of one row of `size` bytes each, with no pause between them."""
    for index in range(rows):
        with db.atomic():
            db.execute("INSERT INTO blobs (n, data) VALUES (?, ?)",
                       (index, bytes([index % 251]) * size))
        sizes.append(wal.stat().st_size)


def caught_up(db) -> None:
    """Wait until the thread has no checkpoint asked of it or under way (the pause a sync
    makes while it fetches its next batch)."""
    state = db.checkpointer._state
    deadline = time.monotonic() + 10
    while state.wake.is_set() or state.lock.locked():
        assert time.monotonic() < deadline, "the checkpointing thread did not catch up"
        time.sleep(0.005)


@pytest.fixture
def small_wal(monkeypatch):
    # (A new store's schema takes about 0.7 MB of WAL.)
    monkeypatch.setattr(wal_checkpoint, "WAL_BYTES", 16 * ROW_BYTES)
    monkeypatch.setattr(wal_checkpoint, "WAL_LIMIT_BYTES", 64 * ROW_BYTES)


@pytest.fixture
def checkpoints(monkeypatch) -> list[str]:
    """The thread's checkpoints (and the writer's own, at the limit), as they are made."""
    made: list[str] = []
    real = wal_checkpoint._checkpoint

    def counted(conn, state):
        made.append(threading.current_thread().name)
        real(conn, state)

    monkeypatch.setattr(wal_checkpoint, "_checkpoint", counted)
    return made


def open_store(path: Path):
    db = sqlite_store(path)
    with db.atomic():
        db.execute("CREATE TABLE blobs (n INTEGER, data BLOB)")
    return db


def test_the_writer_leaves_checkpoints_to_a_thread_and_the_wal_stays_bounded(
        tmp_path, small_wal, checkpoints) -> None:
    db = open_store(tmp_path / "store.db")
    wal, sizes = tmp_path / "store.db-wal", []
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        write(db, 400, wal, sizes)  # 26 MB, six times the limit, without a pause
        assert len(checkpointing_threads()) == 1
        assert "mailbridge-wal-checkpoint" in checkpoints
        # Past the limit the writer waits for the thread and checkpoints itself, and the WAL
        # starts again from its beginning: it never holds much more than the limit.
        assert max(sizes) <= wal_checkpoint.WAL_LIMIT_BYTES + 4 * ROW_BYTES
        caught_up(db)
        write(db, 1, wal, sizes)  # the next write starts it again, cut back
        assert sizes[-1] <= wal_checkpoint.WAL_BYTES
    finally:
        db.close()
    assert checkpointing_threads() == []
    db = sqlite_store(tmp_path / "store.db")
    try:
        assert db.execute("SELECT count(*), sum(length(data)) FROM blobs").fetchone() == (
            401, 401 * ROW_BYTES)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_a_checkpoint_waits_until_the_wal_holds_enough(tmp_path, small_wal,
                                                       checkpoints) -> None:
    db = open_store(tmp_path / "store.db")
    wal, sizes = tmp_path / "store.db-wal", []
    try:
        for _ in range(40):
            write(db, 2, wal, sizes)
            caught_up(db)
        # 80 commits of 64 KiB (5.9 MB): a checkpoint each time the WAL held 1 MB, sometimes
        # two (a commit made while one was copying it); not one a commit
        assert 1 <= len(checkpoints) <= 20
        # a pause lets the thread copy all of the WAL: it stays about the size it was asked
        # to be copied at
        assert max(sizes) <= wal_checkpoint.WAL_BYTES + 3 * ROW_BYTES
        before = len(checkpoints)
        write(db, 50, wal, sizes, size=1024)  # small commits: 50 KB of rows in all
        caught_up(db)
        assert len(checkpoints) - before <= 3  # (not one a commit)
    finally:
        db.close()


def test_the_wal_beside_a_symbolic_links_target_is_checkpointed(tmp_path, small_wal,
                                                                checkpoints) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "store.db").symlink_to(tmp_path / "real" / "store.db")
    db = open_store(tmp_path / "store.db")
    wal, sizes = tmp_path / "real" / "store.db-wal", []
    try:
        for _ in range(40):
            write(db, 2, wal, sizes)
            caught_up(db)
        assert checkpoints
        assert max(sizes) <= wal_checkpoint.WAL_BYTES + 3 * ROW_BYTES
    finally:
        db.close()


def test_a_store_dropped_without_closing_ends_its_thread(tmp_path, small_wal) -> None:
    db = open_store(tmp_path / "store.db")
    write(db, 20, tmp_path / "store.db-wal", [])
    assert len(checkpointing_threads()) == 1
    del db
    gc.collect()
    deadline = time.monotonic() + 10
    while checkpointing_threads():
        assert time.monotonic() < deadline, "the thread outlived its store"
        time.sleep(0.01)


def test_without_a_thread_the_writer_checkpoints_itself(tmp_path, small_wal,
                                                         monkeypatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    db = open_store(tmp_path / "store.db")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    try:
        write(db, 100, tmp_path / "store.db-wal", [])
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        db.close()
