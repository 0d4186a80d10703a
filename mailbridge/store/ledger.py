"""The ledger (which source item became which message) and the per-source cursors. Both are
written in the same transaction as the records, so a retry after any crash is harmless."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from mailbridge.domain.source import SourceRef
from mailbridge.store.db import Store, insert_row, now


def seen(db: Store, channel: str, ref: SourceRef) -> bool:
    row = db.execute(
        "SELECT 1 FROM ledger WHERE channel=? AND mailbox=? AND folder=? AND source_key=?",
        [channel, ref.mailbox, ref.folder, ref.key],
    ).fetchone()
    return row is not None


def known(db: Store, channel: str, mailbox: str, folder: str,
          keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    keys = list(keys)
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in db.execute(
            f"SELECT source_key FROM ledger WHERE channel=? AND mailbox=? AND folder=? "
            f"AND source_key IN ({marks})", [channel, mailbox, folder, *chunk]))
    return found


class LedgerState:
    """The store's answers to a connector's questions about one channel (SourceState), and
    whether the sync is stopping."""

    def __init__(self, db: Store, channel: str,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.db, self.channel = db, channel
        self.stopping = stopping

    def cursor(self, mailbox: str, folder: str) -> dict[str, Any] | None:
        return get_cursor(self.db, self.channel, mailbox, folder)

    def known(self, mailbox: str, folder: str, keys: Iterable[str]) -> set[str]:
        return known(self.db, self.channel, mailbox, folder, keys)


def record(db: Store, channel: str, ref: SourceRef, fingerprint: str,
           message: int | None, status: str) -> None:
    insert_row(
        db, "ledger",
        {"channel": channel, "mailbox": ref.mailbox, "folder": ref.folder, "source_key": ref.key,
         "fingerprint": fingerprint, "message": message, "status": status, "stored_at": now()},
        replace=True,
    )


def get_cursor(db: Store, channel: str, mailbox: str, folder: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT state_json FROM cursors WHERE channel=? AND mailbox=? AND folder=?",
        [channel, mailbox, folder],
    ).fetchone()
    return json.loads(row[0]) if row else None


def save_cursor(db: Store, channel: str, mailbox: str, folder: str,
                state: dict[str, Any]) -> None:
    insert_row(
        db, "cursors",
        {"channel": channel, "mailbox": mailbox, "folder": folder,
         "state_json": json.dumps(state, sort_keys=True), "updated_at": now()},
        replace=True,
    )
