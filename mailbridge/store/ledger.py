"""The ledger (which source item became which message) and the per-source cursors. Both are
written in the same transaction as the records, so a retry after any crash is harmless."""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from mailbridge.domain.source import SourceRef
from mailbridge.store.db import now


def seen(db: Database, channel: str, ref: SourceRef) -> bool:
    row = db.execute(
        "SELECT 1 FROM ledger WHERE channel=? AND mailbox=? AND folder=? AND source_key=?",
        [channel, ref.mailbox, ref.folder, ref.key],
    ).fetchone()
    return row is not None


def record(db: Database, channel: str, ref: SourceRef, fingerprint: str,
           message: int | None, status: str) -> None:
    db["ledger"].insert(
        {"channel": channel, "mailbox": ref.mailbox, "folder": ref.folder, "source_key": ref.key,
         "fingerprint": fingerprint, "message": message, "status": status, "stored_at": now()},
        replace=True,
    )


def get_cursor(db: Database, channel: str, mailbox: str, folder: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT state_json FROM cursors WHERE channel=? AND mailbox=? AND folder=?",
        [channel, mailbox, folder],
    ).fetchone()
    return json.loads(row[0]) if row else None


def save_cursor(db: Database, channel: str, mailbox: str, folder: str,
                state: dict[str, Any]) -> None:
    db["cursors"].insert(
        {"channel": channel, "mailbox": mailbox, "folder": folder,
         "state_json": json.dumps(state, sort_keys=True), "updated_at": now()},
        replace=True,
    )
