"""Raised alerts: one open row per channel and kind, closed when the condition clears, so an
alert is delivered once and its recovery once."""

from __future__ import annotations

from typing import Any

from mailbridge.store.db import Store, insert_row, now

COLUMNS = ("id", "channel", "kind", "detail", "raised_at", "cleared_at")


def open_alerts(db: Store) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM alerts WHERE cleared_at IS NULL "
                      "ORDER BY id")
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def raise_alert(db: Store, channel: str, kind: str, detail: str) -> int:
    return insert_row(db, "alerts", {"channel": channel, "kind": kind, "detail": detail,
                                     "raised_at": now()})


def clear(db: Store, alert: int) -> str:
    stamp = now()
    db.execute("UPDATE alerts SET cleared_at=? WHERE id=?", [stamp, alert])
    return stamp
