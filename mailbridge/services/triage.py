"""What an agent does to tickets by hand: move them between queues, close and reopen them,
comment on them."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.errors import NotFoundError
from mailbridge.services.briefs import Brief, brief
from mailbridge.store import agents, comments, names, tickets
from mailbridge.store.db import Store
from mailbridge.store.session import reading, write_transaction


def move_ticket(config: Config, ticket: int, queue: str, create: bool = False
                ) -> tuple[str, str]:
    """Move a ticket to a queue that exists (in the config or the store), or with `create`
    to a new one: a typo must not open a queue nobody watches. Returns the queue it was in
    and the one it is in now (as the queue is spelled)."""
    with write_transaction(config.store) as db:
        _existing(db, ticket)
        if not create:
            queue = pick("queue", queue, config.queues() | names.known(db, "queue"),
                         f"pass --create to make queue {queue}, or see `mailbridge queues list`")
        return tickets.move(db, ticket, queue), queue


def set_status(config: Config, ids: list[int], status: str) -> list[tuple[int, str]]:
    """Close or reopen tickets; returns (ticket, previous status). All or nothing."""
    with write_transaction(config.store) as db:
        changed = []
        for ticket in ids:
            previous = tickets.set_status(db, ticket, status)
            if previous is None:
                raise _missing(ticket)
            changed.append((ticket, previous))
        return changed


def plan_comment(config: Config, ticket: int, agent: str | None = None) -> Brief:
    """What a comment can be checked for before its text is written (read-only): the ticket
    and the agent exist."""
    with reading(config.store) as db:
        row = _existing(db, ticket)
        _check_agent(db, agent)
        return brief(db, row)


def add_comment(config: Config, ticket: int, text: str, agent: str | None = None) -> int:
    """An internal comment: shown with the ticket, never sent to the client. `agent`, when
    given, must be a known agent."""
    with write_transaction(config.store) as db:
        _existing(db, ticket)
        _check_agent(db, agent)
        return comments.add(db, ticket, agent or "", text)


def _existing(db: Store, ticket: int) -> dict[str, Any]:
    row = tickets.get(db, ticket)
    if row is None:
        raise _missing(ticket)
    return row


def _check_agent(db: Store, agent: str | None) -> None:
    if agent is not None and agents.get(db, agent) is None:
        raise NotFoundError(f"no agent called {agent}", "see `mailbridge agents list`")


def _missing(ticket: int) -> NotFoundError:
    return NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
