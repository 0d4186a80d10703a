"""Read-only views of the store for `tickets list/show`; readers never take the write lock."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError
from mailbridge.store import messages, tickets
from mailbridge.store.session import exists, reading

TICKET_COLUMNS = tickets.LIST_COLUMNS  # what `tickets list` shows, in order


def list_tickets(config: Config, **filters: Any) -> list[dict[str, Any]]:
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        return tickets.list_tickets(db, **filters)


def show_ticket(config: Config, ticket_id: int) -> dict[str, Any]:
    with reading(config.store) as db:
        ticket = tickets.get(db, ticket_id)
        if ticket is None:
            raise NotFoundError(f"no ticket #{ticket_id}", "see `mailbridge tickets list`")
        ticket["messages"] = tickets.messages_of(db, ticket_id)
        return ticket


def raw_messages(config: Config, ticket_id: int) -> list[bytes]:
    ticket = show_ticket(config, ticket_id)
    with reading(config.store) as db:
        return [messages.raw_of(db, m["id"]) for m in ticket["messages"]]
