"""Agents: personal signatures for replies (`tickets reply --as NAME`), who gets the
quiet-channel alert mail (`--notify-no-messages`), who works a ticket, who "I" am (the acting
agent) and what the acting agent may do (its role: administrator or not)."""

from __future__ import annotations

import os
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain.checks import pick
from mailbridge.errors import UsageError
from mailbridge.store import agents, names
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, write_transaction

AGENT_ENV = "MAILBRIDGE_AGENT"
NO_AGENT_HINT = (f"pass --as NAME, set {AGENT_ENV}=NAME, or put [me] agent = \"NAME\" in the "
                 "config (agents: `mailbridge agents list`)")


def acting(db: Store, config: Config, given: str | None) -> str | None:
    """The acting agent, as stored: `given` (--as), else $MAILBRIDGE_AGENT, else the
    config's [me] agent; None when none of them names one. A name that is no agent is an
    error naming the known ones and where the name came from."""
    for value, source in ((given, "--as"), (os.environ.get(AGENT_ENV), AGENT_ENV),
                          (config.me_agent, "[me] agent")):
        if value and value.strip():
            return pick("agent", value, names.known(db, "agent"),
                        f"the name comes from {source}; add the agent with `mailbridge agents "
                        "add`, or see `mailbridge agents list`")
    return None


def require_acting(db: Store, config: Config, given: str | None, doing: str) -> str:
    """`acting`, for what needs an agent (`doing`: "--assignee me" …)."""
    found = acting(db, config, given)
    if found is None:
        raise UsageError(f"{doing} needs to know which agent you are", NO_AGENT_HINT)
    return found


def require_admin(db: Store, config: Config, given: str | None, command: str,
                  doing: str) -> str:
    """`require_acting`, for what only administrators may do (`command`: "inbox delete",
    `doing`: "delete mail from My Inbox"): an agent without the role is refused, and the hint
    names those who have it."""
    found = require_acting(db, config, given, command)
    agent = agents.get(db, found)
    if agent is None or not agent["admin"]:
        admins = [a["name"] for a in agents.list_agents(db) if a["admin"]]
        raise UsageError(f"agent {found} is not an administrator: only administrators {doing}",
                         (f"act as one with --as NAME (administrators: {', '.join(admins)}), or "
                          if admins else "no agent is one yet; ")
                         + f"`mailbridge agents set {found} --admin` gives the role")
    return found


def add(config: Config, name: str, fields: dict[str, Any]) -> bool:
    """Add the agent `name` with `fields` (email required), or change only the `fields` of
    the one it names; True when added."""
    with write_transaction(config.store) as db:
        return agents.upsert(db, name, fields)


def change(config: Config, name: str, fields: dict[str, Any]) -> str:
    """Change only the `fields` of the agent `name` names (ignoring case); returns its name as
    stored. Nothing to change is an error, so is an agent that does not exist."""
    if not fields:
        raise UsageError("nothing to change", "give at least one option: see `mailbridge agents "
                         "set --help`")
    with write_transaction(config.store) as db:
        found = pick("agent", name, names.known(db, "agent"),
                     "add it with `mailbridge agents add`, or see `mailbridge agents list`")
        agents.change(db, found, fields)
        return found


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
