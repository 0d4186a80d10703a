"""The names the store knows, per kind, so that a filter or a reference naming something that
does not exist is an error with "did you mean" (mailbridge.domain.checks.pick), not an empty
list."""

from __future__ import annotations

from mailbridge.store.db import Store

_SQL = {
    "queue": "SELECT name FROM queues",
    "client": "SELECT name FROM clients",
    # contacts, and those of stored engagements (a contact removed since)
    "contact": "SELECT email FROM contacts UNION SELECT DISTINCT contact FROM "
               "engagement_contacts",
    "agent": "SELECT name FROM agents",  # `agents add`: signatures, alert mail
    # agents, and whom tickets are assigned to (an agent removed since)
    "assignee": "SELECT name FROM agents UNION SELECT DISTINCT assignee FROM tickets",
    # sales agents, whose My Inbox holds mail (named in the config, else a mailbox address)
    "inbox agent": "SELECT name FROM agents UNION SELECT DISTINCT agent FROM inbox_items",
}


def known(db: Store, kind: str) -> set[str]:
    return {row[0] for row in db.execute(_SQL[kind]) if row[0]}
