"""Opportunities and projects, the mail matched to them, the agents' "My Inbox" and CRM notes."""

from __future__ import annotations

from typing import Any

from mailbridge.domain.sales import Candidate
from mailbridge.store import events
from mailbridge.store.contacts import domains_by_client
from mailbridge.store.db import Store, insert_row, now
from mailbridge.store.query import Query, where

OPPORTUNITY_COLUMNS = ("id", "summary", "contact_email", "client", "type", "project", "status",
                       "agent", "details", "created_at", "updated_at")
INBOX_COLUMNS = ("id", "channel", "agent", "message", "state", "handled", "created_at")


def add_type(db: Store, name: str, exclude_from_matching: bool) -> None:
    db.execute("INSERT INTO opportunity_types (name, exclude_from_matching) VALUES (?, ?) "
               "ON CONFLICT (name) DO UPDATE SET exclude_from_matching=excluded."
               "exclude_from_matching", [name, int(exclude_from_matching)])


def types(db: Store) -> list[dict[str, Any]]:
    return [{"name": n, "exclude_from_matching": bool(x)} for n, x in
            db.execute("SELECT name, exclude_from_matching FROM opportunity_types ORDER BY name")]


def add_opportunity(db: Store, summary: str, contact: str, client: str = "", kind: str = "",
                    project: bool = False, agent: str = "", details: str = "") -> int:
    stamp = now()
    if kind:
        db.execute("INSERT INTO opportunity_types (name) VALUES (?) ON CONFLICT DO NOTHING",
                   [kind])
    opportunity = insert_row(db, "opportunities", {
        "summary": summary, "contact_email": contact.lower(), "client": client, "type": kind,
        "project": int(project), "agent": agent, "details": details, "created_at": stamp,
        "updated_at": stamp})
    events.emit(db, events.OPPORTUNITY_CREATED, opportunity=opportunity, summary=summary,
                contact=contact.lower(), project=bool(project), agent=agent)
    return opportunity


def get(db: Store, opportunity: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(OPPORTUNITY_COLUMNS)} FROM opportunities WHERE id=?",
                     [opportunity]).fetchone()
    return _opportunity(row) if row else None


def list_opportunities(db: Store, status: str | None, project: bool | None
                       ) -> list[dict[str, Any]]:
    where, params = [], []
    if status:
        where.append("status=?")
        params.append(status)
    if project is not None:
        where.append("project=?")
        params.append(int(project))
    sql = f"SELECT {', '.join(OPPORTUNITY_COLUMNS)} FROM opportunities"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_opportunity(r) for r in db.execute(sql + " ORDER BY id", params)]


def set_status(db: Store, opportunity: int, status: str) -> str | None:
    row = db.execute("SELECT status FROM opportunities WHERE id=?", [opportunity]).fetchone()
    if row is None:
        return None
    db.execute("UPDATE opportunities SET status=?, updated_at=? WHERE id=?",
               [status, now(), opportunity])
    if row[0] != status:
        events.emit(db, events.OPPORTUNITY_UPDATED, opportunity=opportunity, status=status,
                    was=row[0])
    return row[0]


def candidates(db: Store, project: bool) -> list[Candidate]:
    """The open opportunities (or projects) a mail may match, each with its client's
    domains (the client named in any case)."""
    rows = db.execute(
        "SELECT o.id, o.summary, o.contact_email, o.updated_at, "
        "coalesce(t.exclude_from_matching, 0), o.client FROM opportunities o "
        "LEFT JOIN opportunity_types t ON t.name = o.type "
        "WHERE o.status = 'open' AND o.project = ?", [int(project)]).fetchall()
    domains = {client.casefold(): frozenset(found)
               for client, found in domains_by_client(db).items()}
    return [Candidate(i, s, c.lower(), u, bool(x), domains.get(client.casefold(), frozenset()))
            for i, s, c, u, x, client in rows]


def answered(db: Store, channel: str, related_ids: list[str]) -> list[int]:
    """The opportunities holding a mail of `channel` with one of these Message-IDs, in the
    order of the ids (the nearest answered first)."""
    if not related_ids:
        return []
    rows = db.execute(
        "SELECT m.message_id, om.opportunity FROM messages m JOIN opportunity_messages om "
        f"ON om.message = m.id WHERE m.channel=? AND m.message_id IN "
        f"({', '.join('?' * len(related_ids))}) ORDER BY om.opportunity",
        [channel, *related_ids]).fetchall()
    found: dict[int, int] = {}
    for mid, opportunity in rows:
        found.setdefault(opportunity, related_ids.index(mid))
    return sorted(found, key=lambda o: found[o])


def attach(db: Store, opportunity: int, message: int, text: str, how: str,
           note: str = "") -> None:
    """File a message to an opportunity: an `opportunity.updated` event, except for the mail
    that opened it (`opportunity.created` tells of that one)."""
    added = db.execute("INSERT INTO opportunity_messages (opportunity, message, text, how, "
                       "note, added_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING "
                       "RETURNING opportunity",
                       [opportunity, message, text, how, note, now()]).fetchone()
    db.execute("UPDATE opportunities SET updated_at=? WHERE id=?", [now(), opportunity])
    if added and how != "opened":
        channel = db.execute("SELECT channel FROM messages WHERE id=?", [message]).fetchone()
        events.emit(db, events.OPPORTUNITY_UPDATED, channel[0] if channel else None,
                    opportunity=opportunity, message=message, how=how)


def messages_of(db: Store, opportunity: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT om.message, m.from_email, m.subject, coalesce(m.sent_at, m.stored_at), om.how, "
        "om.note, om.text FROM opportunity_messages om JOIN messages m ON m.id = om.message "
        "WHERE om.opportunity=? ORDER BY coalesce(m.sent_at, m.stored_at), om.message",
        [opportunity])
    return [dict(zip(("message", "from", "subject", "date", "how", "note", "text"), r,
                     strict=True)) for r in rows]


def to_inbox(db: Store, channel: str, agent: str, message: int) -> int:
    return insert_row(db, "inbox_items", {"channel": channel, "agent": agent,
                                          "message": message, "created_at": now()})


def inbox(db: Store, agent: str | None) -> Query:
    """My Inbox items not handled yet, oldest first (see store/query.py)."""
    filters, params = where([("i.state = ?", "new"), ("i.agent = ?", agent)])
    sql = ("SELECT i.id, i.channel, i.agent, i.message, i.state, i.handled, i.created_at, "
           "m.from_email, m.subject FROM inbox_items i JOIN messages m ON m.id = i.message"
           f"{filters} ORDER BY i.id")
    return Query(db, sql, params,
                 lambda row: dict(zip((*INBOX_COLUMNS, "from", "subject"), row, strict=True)))


def inbox_item(db: Store, item: int) -> dict[str, Any] | None:
    row = db.execute(f"SELECT {', '.join(INBOX_COLUMNS)} FROM inbox_items WHERE id=?",
                     [item]).fetchone()
    return dict(zip(INBOX_COLUMNS, row, strict=True)) if row else None


def handle(db: Store, item: int, state: str, how: str) -> None:
    db.execute("UPDATE inbox_items SET state=?, handled=? WHERE id=?", [state, how, item])


def add_note(db: Store, client: str, message: int) -> int:
    return insert_row(db, "crm_notes", {"client": client, "message": message,
                                        "created_at": now()})


NOTE_COLUMNS = ("id", "client", "created_at", "message", "date", "from", "subject")


def notes(db: Store, client: str | None = None, since: str | None = None,
          newest_first: bool = False) -> Query:
    """CRM notes with their mail's sender, date and subject, in the order they were made
    (see store/query.py); `since`: made at or after this ISO time."""
    filters, params = where([("n.client = ?", client), ("n.created_at >= ?", since)])
    order = "DESC" if newest_first else "ASC"
    sql = ("SELECT n.id, n.client, n.created_at, n.message, coalesce(m.sent_at, m.stored_at), "
           "m.from_email, m.subject FROM crm_notes n JOIN messages m ON m.id = n.message"
           f"{filters} ORDER BY n.id {order}")
    return Query(db, sql, params, lambda row: dict(zip(NOTE_COLUMNS, row, strict=True)))


def get_note(db: Store, note: int) -> dict[str, Any] | None:
    row = db.execute("SELECT id, client, message, created_at FROM crm_notes WHERE id=?",
                     [note]).fetchone()
    return dict(zip(("id", "client", "message", "created_at"), row, strict=True)) if row \
        else None


def _opportunity(row: tuple) -> dict[str, Any]:
    found = dict(zip(OPPORTUNITY_COLUMNS, row, strict=True))
    found["project"] = bool(found["project"])
    return found
