"""Copying one store into another (`store migrate`): every table, every row, raw messages byte
for byte, ids kept (so references, cursors and the ledger stay true and nothing is fetched
twice), in chunks that each commit on their own, so a copy cut off half-way resumes where it
stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mailbridge.store import migrations
from mailbridge.store.db import Store
from mailbridge.store.fulltext import is_index_table

# Parents before children (foreign keys). A table a new migration adds must be listed here;
# tests/test_store_migrate.py checks that every table of a current store is.
TABLES = (
    "queues", "clients", "agents", "opportunity_types",
    "messages", "message_raws", "attachments", "ledger", "cursors",
    "tickets", "ticket_messages", "ticket_comments", "runs", "alerts",
    "campaigns", "outbox", "campaign_recipients",
    "contacts", "client_domains", "engagements", "engagement_contacts",
    "opportunities", "opportunity_messages", "inbox_items", "crm_notes",
    "leases", "lease_events", "hosts", "token_caches", "events", "hook_state",
)
CHUNK_ROWS = 500
# Tables read a few rows at a time by a key other than `id`: their rows are large (a raw
# message of 1 MiB or more a row), so reading them whole would hold the table in memory.
KEYED = {"message_raws": ("message", 1)}
CHUNK_BYTES = 32 * 1024 * 1024  # raw messages: a chunk is committed before it gets larger

Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in all)


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int


def counts(db: Store) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def unlisted(db: Store) -> list[str]:
    """Tables of the store that the copy would miss."""
    internal = {migrations.TABLE}
    return sorted(t for t in db.tables() if t not in TABLES and t not in internal
                  and not t.startswith("sqlite_") and not is_index_table(t))


def is_empty(db: Store) -> bool:
    return all(n == 0 for n in counts(db).values())


def copy(source: Store, target: Store, progress: Progress = lambda *_: None
         ) -> list[TableCount]:
    """Copy every table; rows the target already has (a resumed copy) are kept as they are.
    The target's search index is made afresh from the messages at the end."""
    for table in TABLES:
        total = source.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        columns = _columns(source, table)
        done = target.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        progress(table, done, total)
        for rows in _chunks(source, target, table, columns):
            marks = ", ".join("?" * len(columns))
            with target.atomic():
                target.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                   f"({marks}) ON CONFLICT DO NOTHING", rows)
            done += len(rows)
            progress(table, min(done, total), total)
        if "id" in columns:
            target.reset_ids(table)
    with target.atomic():  # the search index, made from the messages copied
        target.fulltext.rebuild()
    after_source, after_target = counts(source), counts(target)
    return [TableCount(t, after_source[t], after_target[t]) for t in TABLES]


def _columns(db: Store, table: str) -> list[str]:
    return [d[0] for d in db.execute(f"SELECT * FROM {table} LIMIT 0").description]


def _chunks(source: Store, target: Store, table: str, columns: list[str]
            ) -> Iterator[list[tuple]]:
    """Rows in key order after the target's highest key (tables with an id, and KEYED), or
    every row with the insert skipping those already there (tables keyed by their values,
    which are small: a row per message at most). Read CHUNK_ROWS at a time (KEYED: their
    own number), handed on CHUNK_BYTES at most."""
    select = f"SELECT {', '.join(columns)} FROM {table}"
    key, at_a_time = KEYED.get(table, ("id", CHUNK_ROWS))
    if key not in columns:
        yield from _sized(source.execute(select).fetchall())
        return
    last = target.execute(f"SELECT coalesce(max({key}), 0) FROM {table}").fetchone()[0]
    while True:
        rows = source.execute(f"{select} WHERE {key} > ? ORDER BY {key} LIMIT {at_a_time}",
                              [last]).fetchall()
        if not rows:
            return
        yield from _sized(rows)
        last = rows[-1][columns.index(key)]


def _sized(rows: list) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    size = 0
    for row in rows:
        chunk.append(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row))
        size += sum(len(v) for v in row if isinstance(v, bytes | memoryview | str))
        if len(chunk) >= CHUNK_ROWS or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
