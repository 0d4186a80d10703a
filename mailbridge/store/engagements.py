"""Engagements: stored copies of mail between the owner and known contacts (one per message,
linked to every contact it matched)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mailbridge.store import events
from mailbridge.store.db import Store, insert_row, now
from mailbridge.store.query import Query, where

COLUMNS = ("id", "channel", "message", "direction", "owner", "occurred_at", "created_at")


def for_message(db: Store, message: int) -> int | None:
    row = db.execute("SELECT id FROM engagements WHERE message=?", [message]).fetchone()
    return row[0] if row else None


def record(db: Store, channel: str, message: int, direction: str, owner: str,
           occurred_at: str | None, matched: list[tuple[str, str]]) -> int:
    engagement = insert_row(db, "engagements", {
        "channel": channel, "message": message, "direction": direction, "owner": owner,
        "occurred_at": occurred_at, "created_at": now()})
    db.executemany("INSERT INTO engagement_contacts (engagement, contact, client) "
                   "VALUES (?, ?, ?)", [(engagement, e, c) for e, c in matched])
    events.emit(db, events.ENGAGEMENT_CREATED, channel, engagement=engagement,
                message=message, direction=direction,
                clients=sorted({c for _e, c in matched}))
    return engagement


def link_contact(db: Store, email: str, client: str, since: Mapping[str, str]) -> int:
    """Link a contact just added to the stored engagements whose mail it is on (From, To or
    Cc) and that happened no earlier than `since[channel]`: the document's contact "that
    exists within twenty-four hours of the message". Returns how many were linked."""
    if not since:
        return 0
    email = email.lower()
    rows = db.execute(
        "SELECT e.id, e.channel, coalesce(e.occurred_at, e.created_at), e.owner, "
        "m.from_email, m.to_json, m.cc_json FROM engagements e "
        "JOIN messages m ON m.id = e.message WHERE coalesce(e.occurred_at, e.created_at) >= ?",
        [min(since.values())]).fetchall()
    linked = 0
    for ident, channel, when, owner, sender, to_json, cc_json in rows:
        if channel not in since or email == owner.lower() or \
                datetime.fromisoformat(when) < datetime.fromisoformat(since[channel]):
            continue
        on_it = {sender.lower(), *(a["email"].lower() for a in
                                   (*json.loads(to_json), *json.loads(cc_json)))}
        if email in on_it:
            linked += db.execute(
                "INSERT INTO engagement_contacts (engagement, contact, client) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING", [ident, email, client]).rowcount
    return linked


def list_engagements(db: Store, client: str | None = None, contact: str | None = None,
                     since: str | None = None) -> Query:
    """Engagements in the order they happened (see store/query.py: read some, or count)."""
    filters, params = where([
        ("e.id IN (SELECT engagement FROM engagement_contacts WHERE client=?)", client),
        ("e.id IN (SELECT engagement FROM engagement_contacts WHERE contact=?)",
         contact.lower() if contact else None),
        ("coalesce(e.occurred_at, e.created_at) >= ?", since)])
    sql = ("SELECT e.id, e.channel, e.direction, e.occurred_at, m.from_email, m.to_json, "
           f"m.subject, (SELECT {db.string_agg('client')} FROM engagement_contacts "
           f"WHERE engagement = e.id) FROM engagements e JOIN messages m ON m.id = e.message"
           f"{filters} ORDER BY coalesce(e.occurred_at, e.created_at), e.id")
    return Query(db, sql, params, _listed)


def _listed(row: tuple) -> dict[str, Any]:
    ident, channel, direction, occurred, sender, to_json, subject, clients = row
    return {"id": ident, "channel": channel, "direction": direction, "occurred_at": occurred,
            "from": sender, "to": [a["email"] for a in json.loads(to_json)],
            "subject": subject, "clients": sorted(clients.split(",")) if clients else []}


def get(db: Store, engagement: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM engagements WHERE id=?",
                     [engagement]).fetchone()
    if row is None:
        return None
    found = dict(zip(COLUMNS, row, strict=True))
    found["contacts"] = [{"email": e, "client": c} for e, c in db.execute(
        "SELECT contact, client FROM engagement_contacts WHERE engagement=? ORDER BY contact",
        [engagement])]
    return found
