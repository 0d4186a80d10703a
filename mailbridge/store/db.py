"""The store interface every backend implements, and the helpers repositories share.

Repositories are plain functions `fn(db, …)` over a `Store`: one open connection with
`execute` and `atomic`. They write SQL that SQLite and PostgreSQL both accept, with `?`
placeholders (the PostgreSQL store turns them into its own), `ON CONFLICT` and `RETURNING`;
the little that differs between the two (a string aggregate) is asked of the store. Each
backend translates its library's errors into `mailbridge.errors` itself, so no caller sees a
sqlite3 or psycopg exception."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mailbridge.store.fulltext import FullText


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Store:
    """One open connection to a store. Statements outside `atomic` commit at once."""

    backend: str = ""  # "sqlite" | "postgresql"
    shared: bool = False  # several hosts may use it at once (leases, not file locks)
    # Its statements are answered by a server, so a commit mostly waits (pipeline/ingest
    # commits in a thread of its own then; an embedded one would only contend for the GIL).
    served: bool = False
    clock_sql: str = ""  # SQL for the database's time in seconds since the epoch
    # Entered around each outermost transaction: the write lock, for a writer that holds it
    # only while it commits (store.session.writing_per_commit).
    guard: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
    # What the current transaction staged to write last, just before it commits (events,
    # store/events.py): (writer, item) pairs; `staging` keeps it and the nesting depth.
    _staged: list[tuple[Callable[[Store, list[Any]], None], Any]] | None = None
    _last: frozenset[Callable[[Store, list[Any]], None]] = frozenset()  # stage(last=True)
    _depth: int = 0
    _done: list[str] | None = None  # `once` keys of the current transaction, in order
    fulltext: FullText  # the full-text index of messages, in this backend's own terms

    def lock_row(self, skip_locked: bool = False) -> str:
        """What ends a SELECT that locks the rows it reads until the transaction ends (or, with
        `skip_locked`, passes over rows another transaction holds). Empty where a writing
        transaction already excludes every other writer (SQLite)."""
        return ""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`INSERT INTO t (…) VALUES (…) [ON CONFLICT …]` once for each of `rows` (the only
        shape it takes: a backend may run it as one multi-row statement)."""
        raise NotImplementedError

    def insert_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """`INSERT INTO t (…) VALUES (…) [… RETURNING …]` for each of `rows`; the rows
        RETURNING gives, in no particular order. A database server answers each statement in
        a round trip, so its backend sends many rows a statement."""
        raise NotImplementedError

    def ddl(self, script: str) -> None:
        """Run a schema script (statements separated by `;`) inside the current transaction,
        written in SQLite's column types; PostgreSQL translates them."""
        raise NotImplementedError

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Store]:
        """One transaction; a nested block is a savepoint inside it."""
        raise NotImplementedError
        yield self

    @contextlib.contextmanager
    def staging(self) -> Iterator[None]:
        """Around the body of every transaction and savepoint (each backend's `atomic`): what
        the body staged (`stage`) is dropped when the body fails, and written by its writer
        when the outermost body ends, inside the transaction just before it commits."""
        staged = self._staged if self._staged is not None else []
        self._staged = staged
        done = self._done if self._done is not None else []
        self._done = done
        mark, done_mark = len(staged), len(done)
        self._depth += 1
        try:
            yield
        except BaseException:
            del staged[mark:]
            del done[done_mark:]
            raise
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._done = None
        if self._depth == 0 and staged:
            items, self._staged = list(staged), []
            writers = dict.fromkeys(w for w, _ in items)  # a bound method is ==, not `is`
            for writer in sorted(writers, key=lambda w: w in self._last):
                writer(self, [item for w, item in items if w == writer])

    def stage(self, writer: Callable[[Store, list[Any]], None], item: Any,
              last: bool = False) -> None:
        """Have `writer(db, items)` write `item` when the transaction commits (at once, in a
        transaction of its own, outside one); a `last` writer after every other (one that
        takes a lock held until the commit)."""
        if last:
            self._last = self._last | {writer}
        if self._depth:
            assert self._staged is not None
            self._staged.append((writer, item))
            return
        with self.atomic():
            self.stage(writer, item)

    def once(self, key: str) -> bool:
        """Whether `key` is new to the current transaction: a write that makes sure of
        something (a queue exists) is needed once a transaction, not once a row, as long as
        the part of the transaction that did it is not rolled back. Outside one: always."""
        if self._done is None:
            return True
        if key in self._done:
            return False
        self._done.append(key)
        return True

    def insert(self, table: str, row: dict[str, Any], key: str | None = "id") -> int:
        """One INSERT; returns the new row's `key` column (0 when `key` is None)."""
        raise NotImplementedError

    def string_agg(self, expression: str) -> str:
        """SQL for the comma-joined distinct values of `expression` in a group."""
        raise NotImplementedError

    def lock(self, key: str) -> None:
        """Inside a transaction: wait for, then hold until it ends, the lock named `key`
        (e.g. `channel:support`: filing mail into a channel reads what is stored, then adds
        to it). SQLite's writing transactions already exclude each other."""

    def reset_ids(self, table: str) -> None:
        """After rows were inserted with their ids (a copy): new rows get ids after them."""

    def translated(self) -> contextlib.AbstractContextManager:
        """A block in which the backend library's errors become `mailbridge.errors`."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def insert_row(db: Store, table: str, row: dict[str, Any], key: str | None = "id") -> int:
    """One INSERT returning the new id. Hot paths use this instead of a generic table
    object, which inspected the table and converted every value first."""
    return db.insert(table, row, key)


def upsert_row(db: Store, table: str, row: dict[str, Any], conflict: Sequence[str]) -> None:
    """INSERT, or UPDATE every other column of the row whose `conflict` columns match."""
    upsert_rows(db, table, list(row), [list(row.values())], conflict)


def upsert_rows(db: Store, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                conflict: Sequence[str]) -> None:
    """upsert_row for many rows (no two with the same `conflict` values) in one go."""
    updates = ", ".join(f"{c}=excluded.{c}" for c in columns if c not in conflict)
    db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' * len(columns))}) "
                   f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}", rows)


def update_row(db: Store, table: str, ident: int, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"{column}=?" for column in values)
    db.execute(f"UPDATE {table} SET {assignments} WHERE id=?", [*values.values(), ident])


def as_read(text: str) -> str:
    """`text` as every backend reads it back: PostgreSQL's text cannot hold NUL, which
    hostile mail puts in headers, and keeps U+FFFD in its place (store/postgres.py). A key
    read back from the store is matched against what was written through this."""
    return text.replace("\x00", "\ufffd")


def split_script(script: str) -> list[str]:
    """The statements of a schema script (none of ours has `;` inside a string)."""
    return [s.strip() for s in script.split(";") if s.strip()]
