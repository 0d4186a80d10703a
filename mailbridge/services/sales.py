"""Sales mode by hand: opportunities and projects, their types, the agents' My Inbox (show
with the suggested client, assign to an opportunity, open a new one, keep as a CRM note,
delete) and the CRM notes."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain import checks
from mailbridge.domain.checks import label, pick, refusal, require
from mailbridge.domain.sales import Suggestion, domain_of, suggest_client
from mailbridge.domain.threading import bare_subject
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services.agents import require_admin
from mailbridge.services.csv_rows import read_rows
from mailbridge.services.engagements import since_cutoff
from mailbridge.services.listing import Listing, listed
from mailbridge.store import contacts, messages, names, sales
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, write_transaction


def add_opportunity(config: Config, summary: str, contact: str, client: str, kind: str,
                    project: bool, agent: str) -> int:
    summary = require("summary", label, summary)
    contact = require("contact", checks.email, contact)
    client, kind, agent = (require(what, label, value) if value else ""
                           for what, value in (("client", client), ("type", kind),
                                               ("agent", agent)))
    with write_transaction(config.store) as db:
        return sales.add_opportunity(db, summary, contact, client, kind, project, agent)


def import_opportunities(config: Config, path: Path) -> list[dict[str, Any]]:
    """CSV with a header: summary, contact, and optionally client, type, project (yes/no)."""
    rows = read_rows(path, ("summary", "contact"),
                     ("summary", "contact", "client", "type", "project"))
    results = []
    with write_transaction(config.store) as db:
        for line, row in rows:
            summary, contact = row.get("summary", ""), row.get("contact", "")
            reason = (refusal("summary", label, summary)
                      or refusal("contact", checks.email, contact)
                      or (row.get("client") and refusal("client", label, row["client"]))
                      or (row.get("type") and refusal("type", label, row["type"])))
            if reason:
                results.append({"line": line, "id": None, "result": "rejected",
                                "reason": reason})
                continue
            made = sales.add_opportunity(
                db, summary, contact, row.get("client", ""), row.get("type", ""),
                row.get("project", "").lower() in ("yes", "true", "1"))
            results.append({"line": line, "id": made, "result": "added", "reason": ""})
    return results


def add_type(config: Config, name: str, exclude: bool) -> None:
    name = require("type name", label, name)
    with write_transaction(config.store) as db:
        sales.add_type(db, name, exclude)


def list_types(config: Config) -> list[dict[str, Any]]:
    return _read(config, sales.types, [])


def list_opportunities(config: Config, status: str | None, projects: bool | None
                       ) -> list[dict[str, Any]]:
    return _read(config, lambda db: sales.list_opportunities(db, status, projects), [])


def show_opportunity(config: Config, opportunity: int) -> dict[str, Any]:
    def read(db: Store) -> dict[str, Any]:
        found = sales.get(db, opportunity)
        if found is None:
            raise _no_opportunity(opportunity)
        found["messages"] = sales.messages_of(db, opportunity)
        return found
    if not exists(config.store):
        raise _no_opportunity(opportunity)
    return _read(config, read, {})


def set_status(config: Config, opportunity: int, status: str) -> str:
    with write_transaction(config.store) as db:
        previous = sales.set_status(db, opportunity, status)
    if previous is None:
        raise _no_opportunity(opportunity)
    return previous


def inbox(config: Config, agent: str | None, limit: int | None = None) -> Listing:
    """My Inbox, or one agent's (named in any case: "anna" finds Anna's)."""
    known = config.agents()
    if agent and exists(config.store):
        with reading(config.store) as db:
            known |= names.known(db, "inbox agent")
    found = pick("agent", agent, known, "see `mailbridge inbox list`") if agent else None
    return listed(config.store, lambda db: sales.inbox(db, found), limit)


def inbox_assign(config: Config, item: int, opportunity: int) -> None:
    with write_transaction(config.store) as db:
        found = _item(db, item)
        if sales.get(db, opportunity) is None:
            raise _no_opportunity(opportunity)
        details = messages.details(db, found["message"])
        sales.attach(db, opportunity, found["message"], details["text"], "assigned")
        sales.handle(db, item, "done", f"added to opportunity #{opportunity}")


def inbox_new_opportunity(config: Config, item: int, project: bool) -> int:
    """A new opportunity from the mail: its body as the details, whom it is with (the
    sender, or the recipient of the agent's sent mail) as the contact."""
    with write_transaction(config.store) as db:
        found = _item(db, item)
        details = messages.details(db, found["message"])
        contact = _counterpart(config, found, details)
        opened = sales.add_opportunity(
            db, bare_subject(details["subject"]) or "(no subject)", contact,
            client=contacts.client_for(db, contact), project=project, agent=found["agent"],
            details=details["text"])
        sales.attach(db, opened, found["message"], details["text"], "opened")
        sales.handle(db, item, "done", f"opened opportunity #{opened}")
        return opened


def inbox_show(config: Config, item: int) -> dict[str, Any]:
    """A My Inbox item (handled ones too), its mail, and the client a CRM note of it would
    go to, with the reason."""
    if not exists(config.store):
        raise _no_item(item)
    with reading(config.store) as db:
        found = sales.inbox_item(db, item)
        if found is None:
            raise _no_item(item)
        details = messages.details(db, found["message"])
        suggestion = _suggestion(config, db, found, details)
    return {**found, "suggestion": {"client": suggestion.client, "reason": suggestion.reason},
            "mail": details}


def inbox_note(config: Config, item: int, client: str | None, create: bool = False
               ) -> tuple[str, bool]:
    """Keep the mail as a CRM note of a client: the one given (which must exist unless
    `create`: a typo must not start a client of its own), else the suggested one (see
    `inbox show`). The client's name and whether it was created."""
    with write_transaction(config.store) as db:
        found = _item(db, item)
        if client:
            chosen = _client_named(db, require("client", label, client), create)
        else:
            suggestion = _suggestion(config, db, found, messages.details(db, found["message"]))
            if suggestion.client is None:
                raise UsageError(f"inbox #{item}: {suggestion.reason}; pass --client NAME")
            chosen = suggestion.client
        chosen, created = contacts.add_client(db, chosen)
        sales.add_note(db, chosen, found["message"])
        sales.handle(db, item, "done", f"CRM note of {chosen}")
        return chosen, created


def list_notes(config: Config, client: str | None, since: str | None,
               limit: int | None) -> Listing:
    """CRM notes, oldest first; a client filter must name one that exists."""
    cutoff = since_cutoff(since)
    if client and exists(config.store):
        with reading(config.store) as db:
            client = pick("client", client, names.known(db, "client"),
                          "see `mailbridge clients list`")
    elif client:
        pick("client", client, (), "see `mailbridge clients list`")
    return listed(config.store, lambda db: sales.notes(db, client, cutoff), limit)


def inbox_delete(config: Config, item: int, agent: str | None) -> str:
    """Remove the item from My Inbox (the stored mail stays) for the acting agent (`agent`:
    --as), who must be an administrator, as in Halo; returns that agent."""
    with write_transaction(config.store) as db:
        who = require_admin(db, config, agent, "inbox delete", "delete mail from My Inbox")
        _item(db, item)
        sales.handle(db, item, "deleted", f"deleted by {who}")
        return who


def _counterpart(config: Config, found: dict[str, Any], details: dict[str, Any]) -> str:
    """Whom the mail is with: its sender, or for mail from the channel's own mailboxes (an
    agent's sent items) its first recipient outside them."""
    channel = config.channel(found["channel"])
    own = set(channel.owner_addresses) if channel else set()
    sender = details["from_email"]
    if sender.lower() not in own:
        return sender
    others = [a["email"] for a in (*details["to"], *details["cc"])
              if a.get("email") and a["email"].lower() not in own]
    return others[0] if others else sender


def show_note(config: Config, note: int) -> dict[str, Any]:
    """A CRM note and its mail."""
    missing = NotFoundError(f"no CRM note #{note}", "see `mailbridge notes list`")
    if not exists(config.store):
        raise missing
    with reading(config.store) as db:
        found = sales.get_note(db, note)
        if found is None:
            raise missing
        return {**found, "mail": messages.details(db, found["message"])}


def _client_named(db: Store, name: str, create: bool) -> str:
    """The known client `name` names in any case; else with `create` the new one it names."""
    known = names.known(db, "client")
    if create and name.casefold() not in {k.casefold() for k in known}:
        return name
    return pick("client", name, known, f"pass --create-client to add it, or "
                f"`mailbridge clients add {shlex.quote(name)}` first")


def _suggestion(config: Config, db: Store, found: dict[str, Any],
                details: dict[str, Any]) -> Suggestion:
    channel = config.channel(found["channel"])
    own = {domain_of(a) for a in channel.owner_addresses} if channel else set()
    return suggest_client(_counterpart(config, found, details), contacts.by_email(db),
                          contacts.client_of_domain(db), own)


def _item(db: Store, item: int) -> dict[str, Any]:
    found = sales.inbox_item(db, item)
    if found is None or found["state"] != "new":
        raise NotFoundError(f"no open My Inbox item #{item}", "see `mailbridge inbox list`")
    return found


def _no_item(item: int) -> NotFoundError:
    return NotFoundError(f"no My Inbox item #{item}", "see `mailbridge inbox list`")


def _no_opportunity(opportunity: int) -> NotFoundError:
    return NotFoundError(f"no opportunity #{opportunity}", "see `mailbridge opportunities list`")


def _read(config: Config, fn: Callable[[Store], Any], empty: Any) -> Any:
    if not exists(config.store):
        return empty
    with reading(config.store) as db:
        return fn(db)
