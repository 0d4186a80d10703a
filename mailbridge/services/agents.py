"""Agents: personal signatures for replies (`tickets reply --as NAME`) and who gets the
quiet-channel alert mail (`--notify-no-messages`)."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.store import agents, names
from mailbridge.store.session import exists, reading, write_transaction


def add(config: Config, name: str, email: str, signature: str | None,
        notify_no_messages: bool | None) -> bool:
    with write_transaction(config.store) as db:
        return agents.upsert(db, name, email, signature, notify_no_messages)


def remove(config: Config, name: str) -> str:
    """Remove the agent `name` names (ignoring case); returns its name as stored."""
    with write_transaction(config.store) as db:
        found = pick("agent", name, names.known(db, "agent"), "see `mailbridge agents list`")
        agents.remove(db, found)
        return found


def list_agents(config: Config) -> list[dict[str, Any]]:
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        return agents.list_agents(db)
