"""Opening the store: file mode 600, WAL, busy timeout, migrations; SQLite errors become
StoreErrors that name the file and what to do."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from mailbridge.errors import StoreError, TemporaryError
from mailbridge.store.migrations import migrations

BUSY_TIMEOUT_MS = 10_000


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_store(path: Path, *, readonly: bool = False) -> Database:
    """Open (creating and migrating unless `readonly`) the store at `path`."""
    if readonly and not path.exists():
        raise StoreError(f"{path}: no store yet", "run `mailbridge sync` first")
    try:
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot open the store: {_reason(exc)}") from None
    db = Database(conn)
    with translate_errors(path):
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrations.apply(db)
        elif migrations.pending(db):
            raise StoreError(f"{path}: store schema is older than this mailbridge",
                             "run `mailbridge sync` or `mailbridge doctor` to upgrade it")
    return db


def schema_status(db: Database) -> tuple[int, int]:
    """(applied, pending) migration counts."""
    return len(migrations.applied(db)), len(migrations.pending(db))


@contextlib.contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise TemporaryError(f"{path}: the store is busy", "try again shortly") from None
        raise StoreError(f"{path}: {_reason(exc)}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, sqlite3.Error) else (exc.strerror or str(exc))
    if "not a database" in text:
        return "the file is not a mailbridge (SQLite) store; point [store] path elsewhere"
    if "readonly" in text or "read-only" in text or "Permission denied" in text:
        return "the store is read-only; check the permissions of the file and its folder"
    if "unable to open" in text:
        return "cannot open the file; check that its folder exists and is writable"
    return text
