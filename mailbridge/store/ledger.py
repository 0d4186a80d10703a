"""The ledger (which source item became which message) and the per-source cursors. Both are
written in the same transaction as the records, so a retry after any crash is harmless."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from mailbridge.domain.source import SourceRef
from mailbridge.store.db import Store, now, upsert_row, upsert_rows


def statuses(db: Store, channel: str, refs: Iterable[SourceRef]) -> dict[SourceRef, str]:
    """The ledger status of each of these items that was committed: one query per mailbox
    folder and 500 keys, not one per item (a round trip each on a database server)."""
    by_folder: dict[tuple[str, str], list[SourceRef]] = {}
    for ref in refs:
        by_folder.setdefault((ref.mailbox, ref.folder), []).append(ref)
    found: dict[SourceRef, str] = {}
    for (mailbox, folder), group in by_folder.items():
        wanted = {ref.key: ref for ref in group}
        keys = list(wanted)
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            for key, state in db.execute(
                    f"SELECT source_key, status FROM ledger WHERE channel=? AND mailbox=? AND "
                    f"folder=? AND source_key IN ({','.join('?' * len(chunk))})",
                    [channel, mailbox, folder, *chunk]):
                found[wanted[key]] = state
    return found


def known(db: Store, channel: str, mailbox: str, folder: str,
          keys: Iterable[str], reopen: str | None = None) -> set[str]:
    """`reopen`: a status (engagements' "ignored") whose items judged no later than the
    latest contact was added are left out, so the connector hands them over again and they
    are judged with today's contacts."""
    found: set[str] = set()
    keys = list(keys)
    again = ""
    params: list[Any] = []
    if reopen is not None:
        again = ("AND NOT (status=? AND stored_at <= "
                 "(SELECT coalesce(max(created_at), '') FROM contacts)) ")
        params = [reopen]
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in db.execute(
            f"SELECT source_key FROM ledger WHERE channel=? AND mailbox=? AND folder=? "
            f"{again}AND source_key IN ({marks})", [channel, mailbox, folder, *params, *chunk]))
    return found


class LedgerState:
    """The store's answers to a connector's questions about one channel (SourceState), and
    whether the sync is stopping. `reopen` (engagements: "ignored"): items of that status
    count as unknown again once a contact was added after they were judged."""

    def __init__(self, db: Store, channel: str, reopen: str | None = None,
                 stopping: Callable[[], bool] = lambda: False,
                 access: contextlib.AbstractContextManager[Any] | None = None) -> None:
        """`access`: held while the store is asked (another thread commits with it held)."""
        self.db, self.channel, self.reopen = db, channel, reopen
        self.stopping, self.access = stopping, access or contextlib.nullcontext()

    def cursor(self, mailbox: str, folder: str) -> dict[str, Any] | None:
        with self.access:
            return get_cursor(self.db, self.channel, mailbox, folder)

    def known(self, mailbox: str, folder: str, keys: Iterable[str]) -> set[str]:
        with self.access:
            return known(self.db, self.channel, mailbox, folder, keys, self.reopen)


COLUMNS = ("channel", "mailbox", "folder", "source_key", "fingerprint", "message", "status",
           "stored_at")
KEY = COLUMNS[:4]


def record(db: Store, channel: str, entries: Iterable[tuple[SourceRef, str, int | None, str]]
           ) -> None:
    """What became of each item (ref, fingerprint, message, status), a batch's in one
    statement: an item given twice is recorded with its last status."""
    stamp = now()
    rows = {ref: (channel, ref.mailbox, ref.folder, ref.key, fingerprint, message, status, stamp)
            for ref, fingerprint, message, status in entries}
    if rows:
        upsert_rows(db, "ledger", COLUMNS, list(rows.values()), KEY)


def get_cursor(db: Store, channel: str, mailbox: str, folder: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT state_json FROM cursors WHERE channel=? AND mailbox=? AND folder=?",
        [channel, mailbox, folder],
    ).fetchone()
    return json.loads(row[0]) if row else None


def save_cursor(db: Store, channel: str, mailbox: str, folder: str,
                state: dict[str, Any]) -> None:
    upsert_row(
        db, "cursors",
        {"channel": channel, "mailbox": mailbox, "folder": folder,
         "state_json": json.dumps(state, sort_keys=True), "updated_at": now()},
        ("channel", "mailbox", "folder"),
    )
