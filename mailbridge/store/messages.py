"""Stored messages: the raw bytes always, the parsed fields when parsing worked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from mailbridge.domain.message import Address, ParsedMessage
from mailbridge.store.db import Store, as_read, insert_row, now, update_row
from mailbridge.store.query import Query, where

# A raw message this large is kept in `message_raws` (m018), where the SQLite store writes it
# without copying it; smaller ones stay in their `messages` row, read in one lookup.
LARGE_RAW_BYTES = 1 << 20


def ids_by_fingerprint(db: Store, channel: str, fingerprints: Iterable[str]) -> dict[str, int]:
    """The stored message of each of these fingerprints that `channel` has (500 a query)."""
    wanted = {as_read(f): f for f in fingerprints}  # a NUL comes back as U+FFFD
    found: dict[str, int] = {}
    asked = list(wanted.values())
    for start in range(0, len(asked), 500):  # stay under SQLite's bound-parameter limit
        chunk = asked[start:start + 500]
        found.update((wanted[as_read(fingerprint)], ident) for fingerprint, ident in db.execute(
            f"SELECT fingerprint, id FROM messages WHERE channel=? AND fingerprint IN "
            f"({','.join('?' * len(chunk))})", [channel, *chunk]))
    return found


def sent_from_here(db: Store, channel: str, message_id: str) -> int | None:
    """`channel`'s own outgoing message with this Message-ID: the mail a copy read back from
    Sent Items is, even where the server rewrote some of its headers."""
    row = db.execute("SELECT id FROM messages WHERE channel=? AND message_id=? AND "
                     "direction='out' ORDER BY id LIMIT 1", [channel, message_id]).fetchone()
    return row[0] if row else None


def newest_received(db: Store, channel: str) -> str | None:
    return db.execute("SELECT max(stored_at) FROM messages WHERE channel=? AND direction='in'",
                      [channel]).fetchone()[0]


def oldest_received(db: Store, channel: str) -> str | None:
    return db.execute("SELECT min(stored_at) FROM messages WHERE channel=? AND direction='in'",
                      [channel]).fetchone()[0]


def unparsed_count(db: Store, channel: str) -> int:
    """Messages of `channel` stored raw only: their last parse failed."""
    return db.execute("SELECT count(*) FROM messages WHERE channel=? AND parse_error IS NOT "
                      "NULL", [channel]).fetchone()[0]


def received_since(db: Store, channel: str, since: str) -> int:
    return db.execute("SELECT count(*) FROM messages WHERE channel=? AND direction='in' "
                      "AND stored_at >= ?", [channel, since]).fetchone()[0]


def parsed_columns(parsed: ParsedMessage | None, classification: str | None,
                   parse_error: str | None) -> dict[str, Any]:
    if parsed is None:
        return {"parse_error": parse_error, "classification": None}
    sender = parsed.sender or Address("", "")
    return {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references_json": json.dumps(list(parsed.references)),
        "subject": parsed.subject,
        "from_name": sender.name,
        "from_email": sender.email,
        "to_json": _addresses(parsed.to),
        "cc_json": _addresses(parsed.cc),
        "reply_to_json": _addresses(parsed.reply_to),
        "sent_at": parsed.date.isoformat() if parsed.date else None,
        "headers_json": json.dumps(list(parsed.headers)),
        "text": parsed.text,
        "html": parsed.html,
        "classification": classification,
        "defects_json": json.dumps(list(parsed.defects)),
        "parse_error": None,
    }


# What a message row holds where its parse failed: the columns' own defaults (m001), named so
# that a batch of rows, parsed or not, is one multi-row INSERT with one set of columns.
_UNPARSED = {"message_id": None, "in_reply_to": None, "references_json": "[]", "subject": "",
             "from_name": "", "from_email": "", "to_json": "[]", "cc_json": "[]",
             "reply_to_json": "[]", "sent_at": None, "headers_json": "[]", "text": "",
             "html": None, "defects_json": "[]"}

Entry = tuple[str, bytes, ParsedMessage | None, str | None, str | None]
"""A message to store: (fingerprint, raw, parsed, classification, parse_error)."""


def insert(db: Store, channel: str, fingerprint: str, raw: bytes,
           parsed: ParsedMessage | None, classification: str | None,
           parse_error: str | None, direction: str = "in") -> int:
    """Store a message and index it for search."""
    message = insert_many(db, channel, [(fingerprint, raw, parsed, classification,
                                         parse_error)], direction)[fingerprint]
    db.fulltext.add([message])
    return message


def insert_many(db: Store, channel: str, entries: Sequence[Entry], direction: str = "in"
                ) -> dict[str, int]:
    """Store messages whose fingerprints are new to the channel and to each other, in one
    statement for the rows and one for their attachments; their ids by fingerprint. The
    caller indexes them (`db.fulltext.add`) before the transaction ends."""
    stamp = now()
    rows = [{"channel": channel, "fingerprint": fingerprint,
             "raw": b"" if len(raw) >= LARGE_RAW_BYTES else raw, "size": len(raw),
             "sha256": hashlib.sha256(raw).hexdigest(), "direction": direction,
             "stored_at": stamp, **_UNPARSED,
             **parsed_columns(parsed, classification, parse_error)}
            for fingerprint, raw, parsed, classification, parse_error in entries]
    if not rows:
        return {}
    columns = list(rows[0])
    made = {as_read(fingerprint): ident for fingerprint, ident in db.insert_many(
        f"INSERT INTO messages ({', '.join(columns)}) VALUES "
        f"({', '.join('?' * len(columns))}) RETURNING fingerprint, id",
        [[row[c] for c in columns] for row in rows])}
    ids = {fingerprint: made[as_read(fingerprint)] for fingerprint, *_ in entries}
    for fingerprint, raw, *_ in entries:
        if len(raw) >= LARGE_RAW_BYTES:
            insert_row(db, "message_raws", {"message": ids[fingerprint], "raw": raw}, key=None)
    _insert_attachments(db, [row for fingerprint, _, parsed, *_ in entries
                             for row in _attachment_rows(ids[fingerprint], parsed)])
    return ids


def update_parse(db: Store, message: int, parsed: ParsedMessage | None,
                 classification: str | None, parse_error: str | None) -> None:
    """Re-parse results for `reprocess`; the raw bytes are never touched. The search index
    follows the new subject, text, sender and attachments."""
    db.fulltext.remove([message])
    update_row(db, "messages", message, parsed_columns(parsed, classification, parse_error))
    db.execute("DELETE FROM attachments WHERE message=?", [message])
    _insert_attachments(db, _attachment_rows(message, parsed))
    db.fulltext.add([message])


def to_reprocess(db: Store, only_failed: bool) -> list[tuple[int, str, bool]]:
    """(id, channel, whether its last parse failed) of the messages `reprocess` looks at."""
    sql = "SELECT id, channel, parse_error IS NOT NULL FROM messages"
    if only_failed:
        sql += " WHERE parse_error IS NOT NULL"
    return [(i, c, bool(f)) for i, c, f in db.execute(sql + " ORDER BY id").fetchall()]


def thread_ids(db: Store, message: int) -> tuple[str | None, tuple[str, ...]]:
    """(Message-ID, References) of a stored message: what a reply to it must carry."""
    mid, refs = db.execute("SELECT message_id, references_json FROM messages WHERE id=?",
                           [message]).fetchone()
    return mid, tuple(json.loads(refs or "[]"))


def set_text(db: Store, message: int, text: str) -> None:
    db.fulltext.remove([message])
    db.execute("UPDATE messages SET text=? WHERE id=?", [text, message])
    db.fulltext.add([message])


DETAIL_COLUMNS = ("id", "message_id", "direction", "classification", "from_name", "from_email",
                  "to_json", "cc_json", "reply_to_json", "subject", "sent_at", "stored_at",
                  "text", "size", "parse_error")


def details(db: Store, message: int) -> dict[str, Any]:
    """A stored message as `tickets show` and `engagements show` print it."""
    row = db.execute(f"SELECT {', '.join(DETAIL_COLUMNS)} FROM messages WHERE id=?",
                     [message]).fetchone()
    found = dict(zip(DETAIL_COLUMNS, row, strict=True))
    found["to"] = json.loads(found.pop("to_json"))
    found["cc"] = json.loads(found.pop("cc_json"))
    found["reply_to"] = json.loads(found.pop("reply_to_json"))
    found["attachments"] = [
        dict(zip(("filename", "content_type", "size", "sha256"), a, strict=True))
        for a in db.execute("SELECT filename, content_type, size, sha256 FROM attachments "
                            "WHERE message=? ORDER BY position", [message])]
    return found


LIST_COLUMNS = ("id", "channel", "direction", "stored_at", "from_email", "subject",
                "classification", "size", "parse_error")


def list_messages(db: Store, channel: str | None = None, unparsed: bool = False) -> Query:
    """Stored messages, oldest first; `unparsed`: only those stored raw (see store/query.py)."""
    filters, params = where([("channel = ?", channel),
                             ("parse_error IS NOT NULL", unparsed)])
    return Query(db, f"SELECT {', '.join(LIST_COLUMNS)} FROM messages{filters} ORDER BY id",
                 params, lambda row: dict(zip(LIST_COLUMNS, row, strict=True)))


def channel_of(db: Store, message: int) -> str | None:
    found = db.execute("SELECT channel FROM messages WHERE id=?", [message]).fetchone()
    return found[0] if found else None


ATTACHMENT_COLUMNS = ("message", "position", "filename", "content_type", "size", "sha256",
                      "inline")


def attachments_of_ticket(db: Store, ticket: int) -> list[dict[str, Any]]:
    """Every attachment of a ticket's messages, message by message, in their order."""
    rows = db.execute(
        f"SELECT {', '.join('a.' + c for c in ATTACHMENT_COLUMNS)} FROM attachments a "
        "JOIN ticket_messages tm ON tm.message = a.message WHERE tm.ticket=? "
        "ORDER BY a.message, a.position", [ticket])
    return [dict(zip(ATTACHMENT_COLUMNS, r, strict=True)) | {"inline": bool(r[-1])}
            for r in rows]


def html_of_ticket(db: Store, ticket: int) -> list[tuple[int, str]]:
    """(message, HTML part) of a ticket's messages that have one, oldest first."""
    return [(m, html) for m, html in db.execute(
        "SELECT m.id, m.html FROM messages m JOIN ticket_messages tm ON tm.message = m.id "
        "WHERE tm.ticket=? AND m.html IS NOT NULL ORDER BY m.id", [ticket])]


def raw_of(db: Store, message: int) -> bytes:
    return db.execute("SELECT coalesce(r.raw, m.raw) FROM messages m LEFT JOIN message_raws r "
                      "ON r.message = m.id WHERE m.id=?", [message]).fetchone()[0]


def _attachment_rows(message: int, parsed: ParsedMessage | None) -> list[tuple[Any, ...]]:
    if parsed is None:
        return []
    return [(message, i, a.filename, a.content_type, a.size, a.sha256, a.content_id,
             int(a.inline)) for i, a in enumerate(parsed.attachments)]


def _insert_attachments(db: Store, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        db.executemany(
            "INSERT INTO attachments (message, position, filename, content_type, size, "
            "sha256, content_id, inline) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _addresses(addrs: tuple[Address, ...]) -> str:
    return json.dumps([{"name": a.name, "email": a.email} for a in addrs], ensure_ascii=False)
