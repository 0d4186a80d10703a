"""Read-only views of the store for `tickets list/show` (messages and comments) and
`messages list/show`; readers never take the write lock."""

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
    channel, queue = ticket_filters(config, channel, queue)
    return listed(config.store, lambda db: tickets.list_tickets(db, channel, queue, status),
                  limit)


def ticket_filters(config: Config, channel: str | None, queue: str | None
                   ) -> tuple[str | None, str | None]:
    """The channel and queue a filter names, as they are spelled; one that does not exist is
    an error naming those that do."""
    if channel:
        channel = config.require(channel).name
    if queue:
        known = config.queues()
        if exists(config.store):
            with reading(config.store) as db:
                known |= names.known(db, "queue")
        queue = pick("queue", queue, known, QUEUES_HINT)
    return channel, queue


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


MESSAGE_COLUMNS = messages.LIST_COLUMNS  # what `messages list` shows, in order


def list_messages(config: Config, channel: str | None = None, unparsed: bool = False,
                  limit: int | None = None) -> Listing:
    """Every stored message, or (`unparsed`) those stored raw only, oldest first."""
    if channel:
        channel = config.require(channel).name
    return listed(config.store, lambda db: messages.list_messages(db, channel, unparsed),
                  limit)


def show_message(config: Config, message: int) -> dict[str, Any]:
    """A stored message with its channel, as `tickets show` prints each of its messages."""
    missing = NotFoundError(f"no message {message}", "see `mailbridge messages list`")
    if not exists(config.store):
        raise missing
    with reading(config.store) as db:
        channel = messages.channel_of(db, message)
        if channel is None:
            raise missing
        return {"channel": channel, **messages.details(db, message)}


def raw_message(config: Config, message: int) -> bytes:
    show_message(config, message)  # says so when there is no such message
    with reading(config.store) as db:
        return messages.raw_of(db, message)
