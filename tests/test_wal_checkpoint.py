"""A SQLite store's WAL is checkpointed by a thread of its own (store/wal_checkpoint.py, issue
23), not inside the writer's commits; the WAL stays bounded even when the writer never
pauses, the thread ends with the store, and where no thread can be had the writer checkpoints
as SQLite does by default."""

from __future__ import annotations

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


def write(db, rows: int, wal: Path, sizes: list[int]) -> None:
    """`rows` commits of one 64 KiB row each, with no pause between them."""
    for index in range(rows):
        with db.atomic():
            db.execute("INSERT INTO blobs (n, data) VALUES (?, ?)",
                       (index, bytes([index % 251]) * ROW_BYTES))
        sizes.append(wal.stat().st_size)


@pytest.fixture
def small_wal(monkeypatch):
    # (A new store's schema takes about 0.7 MB of WAL.)
    monkeypatch.setattr(wal_checkpoint, "WAL_BYTES", 16 * ROW_BYTES)
    monkeypatch.setattr(wal_checkpoint, "WAL_LIMIT_BYTES", 64 * ROW_BYTES)


def open_store(tmp_path: Path):
    db = sqlite_store(tmp_path / "store.db")
    with db.atomic():
        db.execute("CREATE TABLE blobs (n INTEGER, data BLOB)")
    return db


def test_the_writer_leaves_checkpoints_to_a_thread_and_the_wal_stays_bounded(
        tmp_path, small_wal) -> None:
    db = open_store(tmp_path)
    wal, sizes = tmp_path / "store.db-wal", []
    try:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        write(db, 3, wal, sizes)
        assert checkpointing_threads() == []  # a small WAL: no thread yet
        write(db, 400, wal, sizes)  # 26 MB, six times the limit
        assert len(checkpointing_threads()) == 1
        # Past the limit the writer waits for the thread and checkpoints, and the WAL starts
        # again from its beginning: it never holds much more than the limit.
        assert max(sizes) <= wal_checkpoint.WAL_LIMIT_BYTES + 4 * ROW_BYTES
        # Once all of it is copied, the next write starts it again, cut back to its start size.
        caught_up(db.checkpointer)
        write(db, 1, wal, sizes)
        assert sizes[-1] <= wal_checkpoint.WAL_BYTES
    finally:
        db.close()
    assert checkpointing_threads() == []
    db = sqlite_store(tmp_path / "store.db")
    try:
        assert db.execute("SELECT count(*), sum(length(data)) FROM blobs").fetchone() == (
            404, 404 * ROW_BYTES)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def caught_up(checkpointer: wal_checkpoint.Checkpointer) -> None:
    """Wait until the thread has no checkpoint asked of it or under way."""
    deadline = time.monotonic() + 10
    while checkpointer._wake.is_set() or not checkpointer._idle.is_set():
        assert time.monotonic() < deadline, "the checkpointing thread did not catch up"
        time.sleep(0.005)


def test_a_writer_that_pauses_has_its_wal_checkpointed_by_the_thread(tmp_path,
                                                                     small_wal) -> None:
    db = open_store(tmp_path)
    wal, sizes = tmp_path / "store.db-wal", []
    try:
        for _ in range(40):
            write(db, 2, wal, sizes)
            caught_up(db.checkpointer)  # (the pause: a sync fetching its next batch)
        assert len(checkpointing_threads()) == 1
        # Each pause lets the thread copy all of the WAL, which then starts again: it stays
        # at its starting size, far under the limit.
        assert max(sizes) <= wal_checkpoint.WAL_BYTES + 2 * ROW_BYTES
    finally:
        db.close()


def test_without_a_thread_the_writer_checkpoints_itself(tmp_path, small_wal,
                                                         monkeypatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    db = open_store(tmp_path)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    wal, sizes = tmp_path / "store.db-wal", []
    try:
        write(db, 100, wal, sizes)
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        db.close()
