"""Opening the store: file mode 600, WAL, busy timeout, migrations; SQLite errors become
StoreErrors that name the file and what to do.

`Store` is a thin connection wrapper rather than sqlite-utils' `Database`: every command opens
the store, and that library's import is a quarter of a cron poll (see migrations.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbridge.errors import StoreError, TemporaryError
from mailbridge.store import migrations

BUSY_TIMEOUT_MS = 10_000


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """An open store: plain SQL on one connection in autocommit mode, and `atomic` blocks."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # Entered around each outermost transaction: the write lock, for a writer that holds
        # it only while it commits (store.session.writing_per_commit).
        self.guard: Callable[[], contextlib.AbstractContextManager[object]] = (
            contextlib.nullcontext)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.conn.executescript(sql)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Store]:
        """One transaction; a nested block is a savepoint inside it."""
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT nested")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:  # some errors end the transaction themselves
                    self.conn.execute("ROLLBACK TO nested")
                    self.conn.execute("RELEASE nested")
                raise
            self.conn.execute("RELEASE nested")
            return
        with self.guard():
            self.conn.execute("BEGIN IMMEDIATE")  # take SQLite's lock now, not mid-transaction
            try:
                yield self
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.conn.close()


def open_store(path: Path, *, readonly: bool = False) -> Store:
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
    db = Store(conn)
    with translate_errors(path):
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrations.apply(conn)
        elif migrations.pending(conn):
            raise StoreError(f"{path}: store schema is older than this mailbridge",
                             "run `mailbridge sync` or `mailbridge doctor` to upgrade it")
    return db


def insert_row(db: Store, table: str, row: dict[str, Any], replace: bool = False) -> int:
    """One INSERT, returning the rowid. Hot paths use this instead of `db[table].insert`,
    which inspected the table and converted every value first: a third of a sync's store
    time."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    sql = (f"{verb} INTO {table} ({', '.join(row)}) "
           f"VALUES ({', '.join('?' * len(row))})")
    return db.conn.execute(sql, list(row.values())).lastrowid or 0


def update_row(db: Store, table: str, rowid: int, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"{column}=?" for column in values)
    db.execute(f"UPDATE {table} SET {assignments} WHERE rowid=?", [*values.values(), rowid])


def schema_status(db: Store) -> tuple[int, int]:
    """(applied, pending) migration counts."""
    return len(migrations.applied(db.conn)), len(migrations.pending(db.conn))


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
