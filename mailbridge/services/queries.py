"""Read-only views of the store for `tickets list/show` (messages and comments) and
`messages list/show`; readers never take the write lock."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.errors import NotFoundError
from mailbridge.services.agents import require_acting
from mailbridge.services.listing import Listing, listed
from mailbridge.store import comments, messages, names, tickets
from mailbridge.store.session import exists, reading

TICKET_COLUMNS = tickets.LIST_COLUMNS  # what `tickets list` shows, in order

QUEUES_HINT = "see `mailbridge queues list`"


def list_tickets(config: Config, channel: str | None = None, queue: str | None = None,
                 status: str | None = None, limit: int | None = None,
                 assignee: str | None = None, priority: str | None = None, sort: str = "id",
                 agent: str | None = None) -> Listing:
    """Tickets in the order `sort` names (tickets.ORDER), narrowed as `ticket_filter` says."""
    only = ticket_filter(config, channel, queue, status, priority, assignee, agent)
    if not exists(config.store):
        return Listing(())
    return listed(config.store, lambda db: tickets.list_tickets(db, only, sort), limit)


def ticket_filter(config: Config, channel: str | None = None, queue: str | None = None,
                  status: str | None = None, priority: str | None = None,
                  assignee: str | None = None, agent: str | None = None) -> tickets.Filter:
    """What `tickets list` and `tickets search` narrow to. A channel, queue or assignee must
    name one that exists (a typo is an error, not an empty list); `assignee` is an agent,
    "me" (the acting agent, `agent` being --as) or "none" (unassigned)."""
    if channel:
        channel = config.require(channel).name
    unassigned = assignee == "none"
    if not exists(config.store):  # no tickets yet; a queue can still be a typo
        if queue:
            pick("queue", queue, config.queues(), QUEUES_HINT)
    elif queue or (assignee and not unassigned):
        with reading(config.store) as db:
            if queue:
                queue = pick("queue", queue, config.queues() | names.known(db, "queue"),
                             QUEUES_HINT)
            if assignee == "me":
                assignee = require_acting(db, config, agent, "--assignee me")
            elif assignee and not unassigned:
                assignee = pick("assignee", assignee, names.known(db, "assignee"),
                                "an agent (`mailbridge agents list`), me or none")
    return tickets.Filter(channel, queue, status, priority,
                          None if unassigned else assignee, unassigned)


def show_ticket(config: Config, ticket_id: int) -> dict[str, Any]:
    with reading(config.store) as db:
        ticket = tickets.get(db, ticket_id)
        if ticket is None:
            raise NotFoundError(f"no ticket #{ticket_id}", "see `mailbridge tickets list`")
        ticket["messages"] = tickets.messages_of(db, ticket_id)
        ticket["comments"] = comments.of(db, ticket_id)
        return ticket


def html_parts(config: Config, ticket_id: int) -> list[tuple[int, str]]:
    """(message, HTML part) of the ticket's messages that have one; none is an error."""
    show_ticket(config, ticket_id)  # says so when there is no such ticket
    with reading(config.store) as db:
        found = messages.html_of_ticket(db, ticket_id)
    if not found:
        raise NotFoundError(f"ticket #{ticket_id} has no HTML part",
                            f"`mailbridge tickets show {ticket_id}` shows its text")
    return found


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
