"""Tickets mode: thread a stored message into its conversation or open a new ticket."""

from __future__ import annotations

from mailbridge.domain.classify import HUMAN, OWN_LOOP
from mailbridge.domain.message import ParsedMessage
from mailbridge.domain.routing import first_route
from mailbridge.domain.threading import related_ids, ticket_token
from mailbridge.domain.workflow import DEFAULT_PRIORITY, WOKEN_BY_CUSTOMER
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import NEW_TICKET, NO_TICKET, THREADED
from mailbridge.store import tickets
from mailbridge.store.db import Store


def lookup(parsed: ParsedMessage) -> tickets.Lookup:
    """What threading asks of a message (tickets.Threads)."""
    return related_ids(parsed), ticket_token(parsed.subject), parsed.message_id


def file_message(db: Store, plan: ChannelPlan, message: int, parsed: ParsedMessage,
                 classification: str, mailbox: str = "",
                 threads: tickets.Threads | None = None) -> tuple[str, int | None]:
    """Returns (outcome kind, ticket id). A new ticket goes to the first matching route's
    queue, with its priority (the mailbox's own routes, else the channel's), else the
    mailbox's own queue, else the channel's default queue. A customer's mail to a pending or
    closed ticket makes it open again; an auto-reply or a bounce does not. `threads`: what
    the batch's messages may thread into, read for all of them at once (else read now)."""
    if classification == OWN_LOOP:
        return NO_TICKET, None  # our own mail coming back must not open tickets in a loop
    asked = lookup(parsed)
    if threads is None:
        threads = tickets.Threads.read(db, plan.name, [asked])
    ticket = threads.find(*asked)
    if ticket is not None:
        threads.add(db, ticket, message, parsed.sender.email if parsed.sender else "",
                    wakes=WOKEN_BY_CUSTOMER if classification == HUMAN else ())
        threads.filed(parsed.message_id, parsed.in_reply_to, ticket, created=False)
        return THREADED, ticket
    sender = parsed.sender
    route = first_route(parsed.subject, plan.routes_for(mailbox))
    ticket = tickets.create(
        db, plan.name,
        queue=route.queue if route else plan.queue_for(mailbox),
        subject=parsed.subject or "(no subject)",
        requester_name=sender.name if sender else "",
        requester_email=sender.email if sender else "",
        kind=classification,
        priority=route.priority if route else DEFAULT_PRIORITY,
        message=message,
    )
    threads.filed(parsed.message_id, parsed.in_reply_to, ticket, created=True)
    return NEW_TICKET, ticket
