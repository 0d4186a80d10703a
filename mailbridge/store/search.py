"""Searching tickets, engagements and opportunities through the full-text index of their
messages (store/fulltext.py). A hit is the ticket (engagement, opportunity) with its best
matching message: its score ranks the hit, its snippet shows why it matched."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mailbridge.domain.search import Query as SearchQuery
from mailbridge.store import tickets
from mailbridge.store.db import Store
from mailbridge.store.query import Query, where

SNIPPET_BATCH = 100  # hits whose snippets are made with one statement


class Hits(Query):
    """A ranked search listing: rows as a Query reads them, each with the snippet of its
    best message. Snippets are made only for the rows read (a limit's worth), a batch at a
    time. `counting`: a SELECT of the hits' ids that neither ranks nor sorts them, so that
    the "… N more" count does not rank every match a second time."""

    def __init__(self, db: Store, search: SearchQuery, sql: str, params: Sequence[Any],
                 row: Callable[[tuple], dict[str, Any]],
                 counting: tuple[str, Sequence[Any]]) -> None:
        super().__init__(db, sql, params, row)
        self.search = search
        self.counting = counting

    def count(self) -> int:
        sql, params = self.counting
        return self.db.execute(f"SELECT count(*) FROM ({sql}) AS counted",
                               list(params)).fetchone()[0]

    def rows(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for found in super().rows(limit):
            batch.append(found)
            if len(batch) == SNIPPET_BATCH:
                yield from self._with_snippets(batch)
                batch = []
        yield from self._with_snippets(batch)

    def _with_snippets(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        snippets = self.db.fulltext.snippets(self.search, [h["message"] for h in batch])
        for hit in batch:
            hit["snippet"] = snippets.get(hit["message"], "")
        return batch


def _best(db: Store, search: SearchQuery, link: str, owner: str) -> tuple[str, list[Any]]:
    """A subquery of (owner, message, score): for each owner (a ticket, an opportunity) its
    best matching message by way of the `link` table."""
    matches, params = db.fulltext.matches(search)
    return (f"SELECT l.{owner} AS owner, h.message AS message, h.score AS score, "
            f"row_number() OVER (PARTITION BY l.{owner} ORDER BY h.score DESC, h.message DESC)"
            f" AS n FROM ({matches}) AS h JOIN {link} l ON l.message = h.message", params)


def _owners(db: Store, search: SearchQuery, table: str, link: str, owner: str, filters: str,
            params: list[Any]) -> tuple[str, list[Any]]:
    """The ids of `table` (an alias after its name) that have a message matching `search` by
    way of `link` and pass `filters` (` AND …`, with `params`)."""
    matching, ids = db.fulltext.matches(search, ranked=False)
    alias = table.split()[1]
    return (f"SELECT {alias}.id FROM {table} WHERE {alias}.id IN (SELECT l.{owner} FROM "
            f"{link} l WHERE l.message IN ({matching})){filters}", ids + params)


TICKET_COLUMNS = ("id", "channel", "queue", "status", "requester_email", "subject",
                  "updated_at", "message", "score")


def search_tickets(db: Store, search: SearchQuery, only: tickets.Filter,
                   since: str | None = None) -> Hits:
    """Tickets with a message matching `search` and passing `only`, best first; `since`:
    updated since then."""
    best, params = _best(db, search, "ticket_messages", "ticket")
    filters, more = where([*only.conditions("t."), ("t.updated_at >= ?", since)])
    filters = filters.replace(" WHERE ", " AND ", 1)
    sql = (f"SELECT t.id, t.channel, t.queue, t.status, t.requester_email, t.subject, "
           f"t.updated_at, b.message, b.score FROM ({best}) AS b JOIN tickets t ON t.id = b.owner"
           f" WHERE b.n = 1{filters} ORDER BY b.score DESC, t.id DESC")
    return Hits(db, search, sql, params + more, _row(TICKET_COLUMNS),
                _owners(db, search, "tickets t", "ticket_messages", "ticket", filters, more))


ENGAGEMENT_COLUMNS = ("id", "channel", "direction", "occurred_at", "from", "subject",
                      "message", "score")


def search_engagements(db: Store, search: SearchQuery, client: str | None = None,
                       contact: str | None = None, since: str | None = None) -> Hits:
    """Engagements whose message matches `search`, best first."""
    matches, params = db.fulltext.matches(search)
    filters, more = where([
        ("e.id IN (SELECT engagement FROM engagement_contacts WHERE client=?)", client),
        ("e.id IN (SELECT engagement FROM engagement_contacts WHERE contact=?)",
         contact.lower() if contact else None),
        ("coalesce(e.occurred_at, e.created_at) >= ?", since)])
    sql = (f"SELECT e.id, e.channel, e.direction, e.occurred_at, m.from_email, m.subject, "
           f"h.message, h.score FROM ({matches}) AS h JOIN engagements e ON e.message = h.message"
           f" JOIN messages m ON m.id = h.message{filters} ORDER BY h.score DESC, e.id DESC")
    matching, ids = db.fulltext.matches(search, ranked=False)
    return Hits(db, search, sql, params + more, _row(ENGAGEMENT_COLUMNS),
                (f"SELECT e.id FROM engagements e WHERE e.message IN ({matching})"
                 f"{filters.replace(' WHERE ', ' AND ', 1)}", ids + more))


OPPORTUNITY_COLUMNS = ("id", "status", "project", "type", "client", "contact_email",
                       "summary", "updated_at", "message", "score")


def search_opportunities(db: Store, search: SearchQuery, status: str | None = None,
                         project: bool | None = None) -> Hits:
    """Opportunities (and projects) with a matched message matching `search`, best first."""
    best, params = _best(db, search, "opportunity_messages", "opportunity")
    filters, more = where([("o.status = ?", status),
                           ("o.project = ?", None if project is None else int(project))])
    filters = filters.replace(" WHERE ", " AND ", 1)
    sql = (f"SELECT o.id, o.status, o.project, o.type, o.client, o.contact_email, o.summary, "
           f"o.updated_at, b.message, b.score FROM ({best}) AS b "
           f"JOIN opportunities o ON o.id = b.owner WHERE b.n = 1{filters} "
           f"ORDER BY b.score DESC, o.id DESC")
    return Hits(db, search, sql, params + more, _opportunity,
                _owners(db, search, "opportunities o", "opportunity_messages", "opportunity",
                        filters, more))


def _row(columns: Sequence[str]) -> Callable[[tuple], dict[str, Any]]:
    def row(found: tuple) -> dict[str, Any]:
        hit = dict(zip(columns, found, strict=True))
        hit["score"] = round(float(hit["score"]), 4)
        return hit
    return row


def _opportunity(found: tuple) -> dict[str, Any]:
    hit = _row(OPPORTUNITY_COLUMNS)(found)
    hit["project"] = bool(hit["project"])
    return hit
