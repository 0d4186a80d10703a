"""The SQLite backend, the default: one file (mode 600, WAL, busy timeout) on one machine.
One writer at a time is kept by advisory file locks beside it (store/lock.py); readers never
wait. SQLite's errors become StoreErrors that name the file and what to do."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mailbridge.errors import MailbridgeError, StoreError, TemporaryError, disk_full, os_failure
from mailbridge.store import lock, migrations
from mailbridge.store.db import Store, split_script
from mailbridge.store.fulltext import SqliteFullText
from mailbridge.store.wal_checkpoint import Checkpointer

BUSY_TIMEOUT_MS = 10_000
LOW_SPACE_BYTES = 1 << 20  # less than this free and an I/O error means a full disk
STREAMED_BLOB_BYTES = 1 << 20  # a blob this large, last in its row, is written in place
BLOB_CHUNK_BYTES = 1 << 20
LEGACY_TABLE = "_sqlite_migrations"  # where sqlite-utils recorded the steps of older stores


def path_of(url: str) -> Path:
    """`sqlite:///abs/path` (or `sqlite:relative/path`) as a path."""
    parts = urlsplit(url)
    return Path(unquote(parts.path if parts.netloc in ("", "localhost") else
                        f"//{parts.netloc}{parts.path}")).expanduser()


class SqliteStore(Store):
    backend = "sqlite"
    clock_sql = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.fulltext = SqliteFullText(self)
        self.checkpointer: Checkpointer | None = None  # a writer's (see store/wal_checkpoint)
        self._last_columns: dict[str, str] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        # A plain try, not `translated()`: two context managers cost more than the statement.
        try:
            return self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise translated_error(exc, self.path) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.translated():
            self.conn.executemany(sql, rows)

    def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """A statement a row: SQLite has no round trips to save, and one prepared statement
        run again is quicker than a many-row one made anew for each batch."""
        found: list[Any] = []
        for row in rows:
            found += self.execute(sql, row).fetchall()
        return found

    def ddl(self, script: str) -> None:
        for statement in split_script(script):
            self.execute(statement)

    def tables(self) -> set[str]:
        return {r[0] for r in self.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Store]:
        conn = self.conn
        with self.translated():
            if conn.in_transaction:
                conn.execute("SAVEPOINT nested")
                try:
                    with self.staging():
                        yield self
                except BaseException:
                    if conn.in_transaction:  # some errors end the transaction themselves
                        conn.execute("ROLLBACK TO nested")
                        conn.execute("RELEASE nested")
                    raise
                conn.execute("RELEASE nested")
                return
            with self.guard():
                conn.execute("BEGIN IMMEDIATE")  # take SQLite's lock now, not mid-transaction
                try:
                    with self.staging():
                        yield self
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            if self.checkpointer is not None:
                self.checkpointer.committed()

    def insert(self, table: str, row: dict[str, Any], key: str | None = "id") -> int:
        last = self._last_column(table)
        value = row.get(last)
        if isinstance(value, bytes) and len(value) >= STREAMED_BLOB_BYTES:
            with self.atomic():  # no reader sees the row before its blob is written
                rowid = self._insert_streaming(table, row, last, value)
        else:
            sql = (f"INSERT INTO {table} ({', '.join(row)}) "
                   f"VALUES ({', '.join('?' * len(row))})")
            rowid = self.execute(sql, list(row.values())).lastrowid or 0
        return rowid if key else 0  # an INTEGER PRIMARY KEY is the rowid

    def _insert_streaming(self, table: str, row: dict[str, Any], column: str,
                          blob: bytes) -> int:
        """The row with `column` as zeroes of the blob's length, then the blob written into
        place a chunk at a time. SQLite makes trailing zeroes of a row without allocating
        them, so the blob is held once, by the caller; bound as a parameter it would be
        copied twice (to bind it, then to build the row)."""
        sql = (f"INSERT INTO {table} ({', '.join(row)}) VALUES (" + ", ".join(
            "zeroblob(?)" if c == column else "?" for c in row) + ")")
        rowid = self.execute(sql, [len(blob) if c == column else v
                                   for c, v in row.items()]).lastrowid or 0
        data = memoryview(blob)
        with self.translated(), self.conn.blobopen(table, column, rowid) as handle:
            for start in range(0, len(data), BLOB_CHUNK_BYTES):
                handle.write(data[start:start + BLOB_CHUNK_BYTES])
        return rowid

    def _last_column(self, table: str) -> str:
        """The last column of `table` (only its blob can be written in place)."""
        if table not in self._last_columns:
            columns = self.execute(f"PRAGMA table_info({table})").fetchall()
            self._last_columns[table] = columns[-1][1] if columns else ""
        return self._last_columns[table]

    def string_agg(self, expression: str) -> str:
        return f"group_concat(DISTINCT {expression})"

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.conn.close()

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        with translate_errors(self.path):
            yield


@contextlib.contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise translated_error(exc, path) from None


def translated_error(exc: sqlite3.DatabaseError, path: Path) -> MailbridgeError:
    """What SQLite's error means for a user of the store at `path`."""
    if isinstance(exc, sqlite3.OperationalError):
        if _out_of_space(exc, path):
            return disk_full(path, f"SQLite: {exc}")
        text = str(exc)
        if "locked" in text or "busy" in text:
            return TemporaryError(f"{path}: the store is busy", "try again shortly")
    return StoreError(f"{path}: {_reason(exc)}")


def _out_of_space(exc: sqlite3.Error, path: Path) -> bool:
    """SQLite says SQLITE_FULL when the database or its WAL cannot grow, but only "disk I/O
    error" (SQLITE_IOERR_SHMSIZE, …) when its shared-memory file cannot: for those, ask the
    file system whether it is full."""
    code = exc.sqlite_errorcode & 0xFF  # the primary result code
    if code == sqlite3.SQLITE_FULL:
        return True
    if code != sqlite3.SQLITE_IOERR:
        return False
    try:
        return shutil.disk_usage(path.parent).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, sqlite3.Error) else (getattr(exc, "strerror", None)
                                                           or str(exc))
    if "not a database" in text:
        return "the file is not a mailbridge (SQLite) store; point [store] path elsewhere"
    if "readonly" in text or "read-only" in text or "Permission denied" in text:
        return "the store is read-only; check the permissions of the file and its folder"
    if "unable to open" in text:
        return "cannot open the file; check that its folder exists and is writable"
    return text


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                           isolation_level=None, check_same_thread=False)


class SqliteBackend:
    name = "sqlite"
    shared = False

    def __init__(self, url: str, lease_seconds: int = 60, password: Any = None) -> None:
        self.path = path_of(url)

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def connect(self, readonly: bool = False) -> SqliteStore:
        """The store (created and migrated unless `readonly`)."""
        path = self.path
        if readonly and not path.exists():
            raise StoreError(f"{path}: no store yet", "run `mailbridge sync` first")
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise os_failure(path, "cannot create the store", exc) from None
        try:
            conn = _open(path, readonly)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {_reason(exc)}") from None
        db = SqliteStore(conn, path)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.checkpointer = Checkpointer(conn, lambda: _open(path, readonly=False))
                _adopt_legacy_migrations(db)
                migrations.apply(db)
            elif migrations.pending(db):
                raise StoreError(f"{path}: store schema is older than this mailbridge",
                                 "run `mailbridge sync` or `mailbridge doctor` to upgrade it")
        except MailbridgeError:
            db.close()
            raise
        return db

    def write_lock(self, wait_seconds: float = 0.0) -> contextlib.AbstractContextManager:
        return lock.write_lock(self.path, wait_seconds)

    def service_lock(self, wait_seconds: float = 0.0) -> contextlib.AbstractContextManager:
        return lock.service_lock(self.path, wait_seconds)

    def service_pid(self) -> int | None:
        return lock.service_running(self.path)

    def writer_alive(self) -> bool:
        """Whether the process that last took the write lock may be writing now."""
        return lock.writer_alive(self.path)

    def unwritable(self) -> str | None:
        """Why a writer (sync, ingest, run) could not use the store, or None: the file, the
        files beside it (WAL, shared memory, locks) and the folder they are made in must be
        writable by this user (root included: a read-only mount stops root too)."""
        path = self.path
        folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        siblings = sorted(path.parent.glob(glob.escape(path.name) + "*")) if folder else []
        for candidate in (*siblings, folder):
            if candidate is not None and not os.access(candidate, os.W_OK):
                read_only = os.statvfs(candidate).f_flag & os.ST_RDONLY
                return f"{candidate}: " + ("on a file system mounted read-only" if read_only
                                           else "not writable by this user")
        return None

    def version(self, db: Store) -> str:
        return "SQLite " + sqlite3.sqlite_version

    def integrity(self, db: Store) -> list[str]:
        """Problems found by `PRAGMA quick_check` (none: an empty list)."""
        rows = [r[0] for r in db.execute("PRAGMA quick_check(5)")]
        if rows == ["ok"]:
            return []
        return [*rows, "back up the file, then try `sqlite3 FILE .recover`"]

    def close(self) -> None:
        """Nothing is kept open between connections."""


def _adopt_legacy_migrations(db: SqliteStore) -> None:
    tables = db.tables()
    if LEGACY_TABLE not in tables or migrations.TABLE in tables:
        return
    with db.atomic():
        names = [r[0] for r in db.execute(
            f"SELECT name FROM {LEGACY_TABLE} WHERE migration_set='mailbridge' ORDER BY rowid")]
        migrations.create_table(db)
        migrations.record(db, names)
        db.execute(f"DROP TABLE {LEGACY_TABLE}")
