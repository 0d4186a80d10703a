"""Read-only views of the store for `tickets list/show` (messages and comments); readers
never take the write lock."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.errors import NotFoundError
from mailbridge.services.listing import Listing, listed
from mailbridge.store import comments, messages, names, tickets
from mailbridge.store.session import exists, reading

TICKET_COLUMNS = tickets.LIST_COLUMNS  # what `tickets list` shows, in order

QUEUES_HINT = "see `mailbridge queues list`"


def list_tickets(config: Config, channel: str | None = None, queue: str | None = None,
                 status: str | None = None, limit: int | None = None) -> Listing:
    """Tickets, oldest first; a channel or queue filter must name one that exists (a typo is
    an error, not an empty list)."""
    if channel:
        channel = config.require(channel).name
    if queue:
        known = config.queues()
        if exists(config.store):
            with reading(config.store) as db:
                known |= names.known(db, "queue")
        queue = pick("queue", queue, known, QUEUES_HINT)
    return listed(config.store, lambda db: tickets.list_tickets(db, channel, queue, status),
                  limit)


def show_ticket(config: Config, ticket_id: int) -> dict[str, Any]:
    with reading(config.store) as db:
        ticket = tickets.get(db, ticket_id)
        if ticket is None:
            raise NotFoundError(f"no ticket #{ticket_id}", "see `mailbridge tickets list`")
        ticket["messages"] = tickets.messages_of(db, ticket_id)
        ticket["comments"] = comments.of(db, ticket_id)
        return ticket


def raw_messages(config: Config, ticket_id: int) -> list[bytes]:
    ticket = show_ticket(config, ticket_id)
    with reading(config.store) as db:
        return [messages.raw_of(db, m["id"]) for m in ticket["messages"]]
