"""Tickets mode: thread a stored message into its conversation or open a new ticket."""

from __future__ import annotations

from mailbridge.domain.classify import HUMAN, OWN_LOOP
from mailbridge.domain.message import ParsedMessage
from mailbridge.domain.routing import route_queue
from mailbridge.domain.threading import related_ids, ticket_token
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import NEW_TICKET, NO_TICKET, THREADED
from mailbridge.store import tickets
from mailbridge.store.db import Store


def file_message(db: Store, plan: ChannelPlan, message: int, parsed: ParsedMessage,
                 classification: str, mailbox: str = "") -> tuple[str, int | None]:
    """Returns (outcome kind, ticket id). A new ticket goes to the first matching route's
    queue (the mailbox's own routes, else the channel's), else the mailbox's own queue, else
    the channel's default queue."""
    if classification == OWN_LOOP:
        return NO_TICKET, None  # our own mail coming back must not open tickets in a loop
    ticket = tickets.find_for_thread(db, plan.name, related_ids(parsed),
                                     ticket_token(parsed.subject), parsed.message_id)
    if ticket is not None:
        tickets.add_message(db, ticket, message, reopen=classification == HUMAN)
        return THREADED, ticket
    sender = parsed.sender
    ticket = tickets.create(
        db, plan.name,
        queue=route_queue(parsed.subject, plan.routes_for(mailbox), plan.queue_for(mailbox)),
        subject=parsed.subject or "(no subject)",
        requester_name=sender.name if sender else "",
        requester_email=sender.email if sender else "",
        kind=classification,
    )
    tickets.add_message(db, ticket, message)
    return NEW_TICKET, ticket
