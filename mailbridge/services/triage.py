"""What an agent does to tickets by hand: move them between queues, assign them, set their
state (open, pending, closed) and priority, comment on them."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.errors import NotFoundError
from mailbridge.services.agents import acting, require_acting
from mailbridge.services.briefs import Brief, brief
from mailbridge.store import comments, names, tickets
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
    """Open, set pending or close tickets; returns (ticket, previous status). All or
    nothing."""
    with write_transaction(config.store) as db:
        return _change_all(db, ids, "status", status)


def set_priority(config: Config, ids: list[int], priority: str) -> list[tuple[int, str]]:
    """Returns (ticket, previous priority). All or nothing."""
    with write_transaction(config.store) as db:
        return _change_all(db, ids, "priority", priority)


def assign(config: Config, ids: list[int], to: str | None, agent: str | None = None
           ) -> tuple[str | None, list[tuple[int, str | None]]]:
    """Assign tickets to the agent `to` names ("me": the acting agent, `agent` being --as),
    or (None) to nobody. Returns the agent as stored and (ticket, previous assignee). All or
    nothing."""
    with write_transaction(config.store) as db:
        if to is not None:
            to = (require_acting(db, config, agent, "--to me") if to == "me"
                  else pick("agent", to, names.known(db, "agent"), "see `mailbridge agents list`"))
        return to, _change_all(db, ids, "assignee", to)


def _change_all(db: Store, ids: list[int], field: str, value: str | None
                ) -> list[tuple[int, Any]]:
    changed = []
    for ticket in ids:
        found, previous = tickets.change(db, ticket, field, value)
        if not found:
            raise _missing(ticket)
        changed.append((ticket, previous))
    return changed


def plan_comment(config: Config, ticket: int, agent: str | None = None) -> Brief:
    """What a comment can be checked for before its text is written (read-only): the ticket
    and the acting agent (if any) exist."""
    with reading(config.store) as db:
        row = _existing(db, ticket)
        acting(db, config, agent)
        return brief(db, row)


def add_comment(config: Config, ticket: int, text: str, agent: str | None = None) -> int:
    """An internal comment: shown with the ticket, never sent to the client. Its author is
    the acting agent (`agent` being --as), if any."""
    with write_transaction(config.store) as db:
        _existing(db, ticket)
        return comments.add(db, ticket, acting(db, config, agent) or "", text)


def _existing(db: Store, ticket: int) -> dict[str, Any]:
    row = tickets.get(db, ticket)
    if row is None:
        raise _missing(ticket)
    return row


def _missing(ticket: int) -> NotFoundError:
    return NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
