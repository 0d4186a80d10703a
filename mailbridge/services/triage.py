"""What an agent does to tickets by hand: move them between queues, close and reopen them,
comment on them."""

from __future__ import annotations

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError
from mailbridge.store import agents, comments, tickets
from mailbridge.store.session import write_transaction


def move_ticket(config: Config, ticket: int, queue: str) -> str:
    with write_transaction(config.store) as db:
        previous = tickets.move(db, ticket, queue)
    if previous is None:
        raise _missing(ticket)
    return previous


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


def add_comment(config: Config, ticket: int, text: str, agent: str | None = None) -> int:
    """An internal comment: shown with the ticket, never sent to the client. `agent`, when
    given, must be a known agent."""
    with write_transaction(config.store) as db:
        if tickets.get(db, ticket) is None:
            raise _missing(ticket)
        if agent is not None and agents.get(db, agent) is None:
            raise NotFoundError(f"no agent called {agent}", "see `mailbridge agents list`")
        return comments.add(db, ticket, agent or "", text)


def _missing(ticket: int) -> NotFoundError:
    return NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
