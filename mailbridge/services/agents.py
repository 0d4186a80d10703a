"""Agents: personal signatures for replies (`tickets reply --as NAME`) and who gets the
quiet-channel alert mail (`--notify-no-messages`)."""

from __future__ import annotations

from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError
from mailbridge.store import agents
from mailbridge.store.session import exists, reading, write_transaction


def add(config: Config, name: str, email: str, signature: str | None,
        notify_no_messages: bool | None) -> bool:
    with write_transaction(config.store) as db:
        return agents.upsert(db, name, email, signature, notify_no_messages)


def remove(config: Config, name: str) -> None:
    with write_transaction(config.store) as db:
        if not agents.remove(db, name):
            raise NotFoundError(f"no agent called {name}", "see `mailbridge agents list`")


def list_agents(config: Config) -> list[dict[str, Any]]:
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        return agents.list_agents(db)
