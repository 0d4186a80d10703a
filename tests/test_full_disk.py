"""A full disk under the store: `ingest` exits 75 so the MTA keeps the mail and retries,
`sync` says in one line which store is full and what to do, spool files stay in new/ until
their commit, and once there is space again everything arrives exactly once.

Each case runs on a real full file system (a small tmpfs: CI runs as root) and again with the
same failures injected where the OS and SQLite report them, for machines where we may not
mount."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import drop, message

import mailbridge.connectors.drop

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Tmpfs:
    """A 2 MiB tmpfs of our own; `fill` writes ballast until the kernel says ENOSPC."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the injected variant covers the same paths")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                               str(root)], capture_output=True, text=True, timeout=30)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the injected "
                        "variant covers the same paths")

    def fill(self) -> None:
        fd = os.open(self.root / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(2048):  # 8 MiB at most: more than the file system holds
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            return
        finally:
            os.close(fd)
        raise AssertionError("the tmpfs never filled up")

    def free(self) -> None:
        (self.root / "ballast").unlink()

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], timeout=30, check=False)


class Injected:
    """The failures of a full disk where they surface: a write to a file created since
    `fill` fails with ENOSPC (a new lock file, as on a full tmpfs), and SQLite may not add a
    page to a store (PRAGMA max_page_count: SQLite's own SQLITE_FULL)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.patch = pytest.MonkeyPatch()

    def fill(self) -> None:
        before = set(self.root.rglob("*"))
        pwrite, connect = os.pwrite, sqlite3.connect

        def full_pwrite(fd: int, data: bytes, offset: int) -> int:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if path.is_relative_to(self.root) and path not in before:
                raise ENOSPC
            return pwrite(fd, data, offset)

        def full_connect(database: str, *args, **kwargs) -> sqlite3.Connection:
            conn = connect(database, *args, **kwargs)
            if str(self.root) in str(database):
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {pages}")
            return conn

        self.patch.setattr(os, "pwrite", full_pwrite)
        self.patch.setattr(sqlite3, "connect", full_connect)

    def free(self) -> None:
        self.patch.undo()

    def close(self) -> None:
        self.patch.undo()


@pytest.fixture(params=[Tmpfs, Injected], ids=["tmpfs", "injected"])
def disk(request, tmp_path):
    made = request.param(tmp_path / "fs")
    yield made
    made.close()


@pytest.fixture
def store_on(mb, disk):
    """`mb` with its store on `disk` and a drop channel whose spool is elsewhere."""
    mb.store = disk.root / "mailbridge.db"
    return mb.drop_channel()


def big_message(n: int) -> bytes:
    """Large enough that SQLite needs new pages for it."""
    return message(f"Order {n}", message_id=f"order{n}@customer.example",
                   body=os.urandom(12000).hex())


def error_lines(result) -> list[str]:
    """`mailbridge: error: …`, or a sync's `mailbridge: CHANNEL: failed: …`."""
    return [line for line in result.stderr.splitlines()
            if line.startswith("mailbridge: ") and not line.startswith("mailbridge: hint")]


def assert_disk_full_line(result, store: Path) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    [line] = error_lines(result)
    assert str(store) in line and "the disk is full" in line
    assert f"mailbridge: hint: free space on it (`df -h {store.parent}`)" in result.stderr


def ticket_subjects(mb) -> list[str]:
    result = mb("tickets", "list", "--status", "all", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return [t["subject"] for t in json.loads(result.stdout)]


@pytest.mark.sqlite_only  # the SQLite file on a full disk
def test_ingest_before_any_lock_file_exists_is_temporary(mb, store_on, disk):
    disk.fill()
    result = mb("ingest", "support", input=big_message(1))
    assert result.exit_code == 75  # the MTA keeps the message and retries
    assert_disk_full_line(result, mb.store)
    disk.free()
    assert mb("ingest", "support", input=big_message(1)).exit_code == 0
    assert ticket_subjects(mb) == ["Order 1"]


@pytest.mark.sqlite_only  # the SQLite file on a full disk
def test_sync_before_any_lock_file_exists_is_one_line_and_leaves_the_spool(mb, store_on,
                                                                           disk):
    drop(store_on, big_message(1), "1.m")
    disk.fill()
    result = mb("sync")
    assert result.exit_code == 75
    assert_disk_full_line(result, mb.store)
    assert [p.name for p in (store_on / "new").iterdir()] == ["1.m"]
    disk.free()
    assert mb("sync").exit_code == 0
    assert not list((store_on / "new").iterdir())
    assert ticket_subjects(mb) == ["Order 1"]


@pytest.mark.sqlite_only  # the SQLite file on a full disk
def test_a_store_that_cannot_grow(mb, store_on, disk):
    """The lock files and the store exist; SQLite cannot grow the database or its WAL."""
    drop(store_on, big_message(1), "1.m")
    assert mb("sync").exit_code == 0
    drop(store_on, big_message(2), "2.m")
    disk.fill()
    result = mb("ingest", "support", input=big_message(3))
    assert result.exit_code == 75
    assert_disk_full_line(result, mb.store)
    result = mb("sync")
    assert result.exit_code == 75
    assert_disk_full_line(result, mb.store)
    assert [p.name for p in (store_on / "new").iterdir()] == ["2.m"]
    disk.free()
    assert mb("ingest", "support", input=big_message(3)).exit_code == 0
    assert mb("sync").exit_code == 0
    assert not list((store_on / "new").iterdir())
    assert sorted(ticket_subjects(mb)) == ["Order 1", "Order 2", "Order 3"]


def test_a_spool_move_that_fails_after_the_commit(mb, monkeypatch):
    """A rename into cur/ can need a new directory block: on a full disk it fails after the
    commit. The file stays in new/, and the next sync moves it without storing it again."""
    spool = mb.drop_channel()
    drop(spool, message("Kept", message_id="kept@x"), "1.m")
    replace = os.replace

    def full_replace(src, dst):
        if Path(dst).parent.name == "cur":
            raise ENOSPC
        return replace(src, dst)

    monkeypatch.setattr(mailbridge.connectors.drop.os, "replace", full_replace)
    result = mb("sync")
    assert result.exit_code == 75
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("mailbridge: support")]
    assert f"{spool / 'new' / '1.m'}: the disk is full (stored, but cannot be moved" in line
    assert "the next sync moves it without storing it again" in result.stderr
    assert [p.name for p in (spool / "new").iterdir()] == ["1.m"]
    monkeypatch.setattr(mailbridge.connectors.drop.os, "replace", replace)
    result = mb("sync")
    assert result.exit_code == 0
    assert "0 new, 1 already stored" in result.stderr
    assert ticket_subjects(mb) == ["Kept"]
    assert not list((spool / "new").iterdir())


def test_ingest_never_exits_1(mb, monkeypatch):
    """Exit 1 makes an MTA bounce the mail: even a bug is a temporary failure for `ingest`."""
    mb.drop_channel()
    import mailbridge.pipeline.ingest

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(mailbridge.pipeline.ingest, "commit_batch", broken)
    result = mb("ingest", "support", input=message())
    assert result.exit_code == 75
    assert "mailbridge: error: internal error: RuntimeError: a bug" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sqlite_only  # the SQLite file on a full disk
def test_a_run_job_on_a_full_disk_logs_one_line_and_the_next_one_stores(mb, store_on, disk,
                                                                        caplog):
    """`run` keeps serving: the job that met the full disk logs one line (no traceback), and
    a later job stores what waited."""
    import logging
    import threading

    from mailbridge.config.load import load_config
    from mailbridge.services.run import _job

    config = load_config(mb.config)
    assert mb("sync").exit_code == 0  # the store and its lock files exist
    logging.getLogger().handlers[:] = [caplog.handler]  # the CLI run set up its own
    drop(store_on, big_message(1), "1.m")
    disk.fill()
    _job(config, "support", threading.Event())
    problems = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert problems and all(r.exc_info is None for r in problems)
    assert "the disk is full" in problems[0].getMessage()
    assert [p.name for p in (store_on / "new").iterdir()] == ["1.m"]
    disk.free()
    _job(config, "support", threading.Event())
    assert ticket_subjects(mb) == ["Order 1"]
