"""Mail campaigns and their recipients. A recipient row is written in the same transaction
as its outbox row, and (campaign, email) is its key: a campaign run again queues only the
recipients it has not queued yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailbridge.store import outbox
from mailbridge.store.db import Store, now

COLUMNS = ("id", "name", "agent", "channel", "sent_from", "subject", "body", "created_at")
RECIPIENT_COLUMNS = ("email", "name", "client", "outbox", "state", "not_before", "sent_at",
                     "last_error", "claimed_by")


def find(db: Store, name: str) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM campaigns WHERE name=?",
                     [name]).fetchone()
    return dict(zip(COLUMNS, row, strict=True)) if row else None


def get(db: Store, campaign: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM campaigns WHERE id=?",
                     [campaign]).fetchone()
    return dict(zip(COLUMNS, row, strict=True)) if row else None


def create(db: Store, name: str, agent: str, channel: str, sent_from: str, subject: str,
           body: str) -> dict[str, Any]:
    """The campaign called `name`: this one, or one another run made at the same moment."""
    db.execute("INSERT INTO campaigns (name, agent, channel, sent_from, subject, body, "
               "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
               [name, agent, channel, sent_from, subject, body, now()])
    return find(db, name)


def claim(db: Store, campaign: int, email: str, name: str, client: str) -> bool:
    """Record the recipient (lower case); False when the campaign has them already."""
    return db.execute(
        "INSERT INTO campaign_recipients (campaign, email, name, client, queued_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (campaign, email) DO NOTHING",
        [campaign, email.lower(), name, client, now()]).rowcount > 0


def link(db: Store, campaign: int, email: str, outbox: int) -> None:
    db.execute("UPDATE campaign_recipients SET outbox=? WHERE campaign=? AND email=?",
               [outbox, campaign, email.lower()])


def queued(db: Store, campaign: int) -> set[str]:
    """The recipients (lower case) the campaign has queued already."""
    return {r[0] for r in db.execute("SELECT email FROM campaign_recipients WHERE campaign=?",
                                     [campaign])}


def recipients(db: Store, campaign: int) -> list[dict[str, Any]]:
    """Each recipient with its outbox row's state, in the order they were queued."""
    rows = db.execute(
        "SELECT r.email, r.name, r.client, r.outbox, o.state, o.not_before, o.sent_at, "
        "o.last_error, o.claimed_by FROM campaign_recipients r "
        "LEFT JOIN outbox o ON o.id = r.outbox WHERE r.campaign=? ORDER BY r.outbox, r.email",
        [campaign])
    return [dict(zip(RECIPIENT_COLUMNS, r, strict=True)) for r in rows]


def list_all(db: Store, in_flight: Callable[[str | None], bool]) -> list[dict[str, Any]]:
    """Every campaign, newest first, with how many of its mails are in each outbox state; a
    mail a crash left `sending` counts as `unknown` unless `in_flight(sender)` (as `outbox
    list` tells it)."""
    found = [dict(zip(COLUMNS, r, strict=True)) for r in db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM campaigns ORDER BY id DESC")]
    counts: dict[int, dict[str, int]] = {}
    for campaign, state, sender, count in db.execute(
            "SELECT r.campaign, o.state, o.claimed_by, count(*) FROM campaign_recipients r "
            "JOIN outbox o ON o.id = r.outbox GROUP BY r.campaign, o.state, o.claimed_by"):
        state = outbox.told(state, sender, in_flight)
        states = counts.setdefault(campaign, {})
        states[state] = states.get(state, 0) + count
    for row in found:
        row["states"] = counts.get(row["id"], {})
    return found
