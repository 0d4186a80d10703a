"""Clients (with their mail domains) and contacts: add, change, list, import from CSV,
remove."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain import checks
from mailbridge.domain.checks import label, pick, refusal, require
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services import opportunity_mail
from mailbridge.services.csv_rows import read_rows
from mailbridge.store import contacts, engagements, names, sales
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, write_transaction

CLIENTS_HINT = "see `mailbridge clients list`"
CSV_COLUMNS = ("email", "name", "client")


SHOWN_NOTES = 20  # `clients show`: its latest notes; `notes list --client` has them all


def add_client(config: Config, name: str, domains: Sequence[str] = ()) -> tuple[str, bool]:
    """The client's name as stored (one of that name in any case is it) and whether it is
    new; an existing one gets the domains too."""
    name = require("client name", label, name)
    wanted = _domains(domains)
    with write_transaction(config.store) as db:
        name, added = contacts.add_client(db, name)
        _give(db, name, wanted)
        return name, added


@dataclass(frozen=True)
class ClientChange:
    """What `clients set` changes: domains to add and take away, and the quotation mailbox
    (`quotation_mailbox` an address, or `no_quotation_mailbox` to go back to [sales])."""

    add: Sequence[str] = ()
    remove: Sequence[str] = ()
    quotation_mailbox: str | None = None
    no_quotation_mailbox: bool = False


def set_client(config: Config, name: str, change: ClientChange) -> dict[str, Any]:
    """Give a client domains and take others away, set or clear its quotation mailbox (one
    mailbridge sends from); its domains and quotation mailbox afterwards."""
    if change.quotation_mailbox and change.no_quotation_mailbox:
        raise UsageError("--quotation-mailbox and --no-quotation-mailbox contradict each other")
    if not (change.add or change.remove or change.quotation_mailbox
            or change.no_quotation_mailbox):
        raise UsageError("nothing to change", "pass --domain DOMAIN, --no-domain DOMAIN, "
                         "--quotation-mailbox ADDR or --no-quotation-mailbox")
    wanted, unwanted = _domains(change.add), _domains(change.remove)
    mailbox = (opportunity_mail.require_sales_mailbox(config, change.quotation_mailbox,
                                                      "--quotation-mailbox")
               if change.quotation_mailbox else None)
    with write_transaction(config.store) as db:
        found = pick("client", name, names.known(db, "client"), CLIENTS_HINT)
        for domain in unwanted:
            if not contacts.remove_domain(db, found, domain):
                have = contacts.domains_by_client(db).get(found, [])
                raise UsageError(f"client {found} has no domain {domain} "
                                 f"(its domains: {', '.join(have) or 'none'})")
        _give(db, found, wanted)
        if mailbox or change.no_quotation_mailbox:
            contacts.set_quotation_mailbox(db, found, mailbox)
        return {"name": found, "domains": contacts.domains_by_client(db).get(found, []),
                "quotation_mailbox": contacts.quotation_mailbox(db, found)}


def _domains(given: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(require("domain", checks.mail_domain, d) for d in given))


def _give(db: Store, client: str, domains: Sequence[str]) -> None:
    """A domain is one client's: another client's is refused with the way to move it."""
    for domain in domains:
        holder = contacts.add_domain(db, client, domain)
        if holder not in (None, client):
            raise UsageError(f"domain {domain} is client {holder}'s already",
                             f"move it: `mailbridge clients set {shlex.quote(holder)} --no-domain "
                             f"{domain}`, then add it here")


def add_contact(config: Config, email: str, client: str, name: str | None,
                create: bool = False) -> tuple[str, bool, int]:
    """(added | updated | unchanged, whether the client was created for it, how many recent
    engagements it was linked to). The client must exist unless `create`: a typo must not
    start a client of its own."""
    email = require("contact", checks.email, email)
    client = require("client name", label, client)
    if name is not None:
        name = require("contact name", label, name)
    with write_transaction(config.store) as db:
        if not create:
            client = pick("client", client, names.known(db, "client"),
                          f"pass --create to add client {client}, or see "
                          "`mailbridge clients list`")
        client, created = contacts.add_client(db, client)
        outcome = contacts.upsert_contact(db, email, client, name)
        linked = _link_new(db, config, email, client) if outcome == "added" else 0
        return outcome, created, linked


def import_contacts(config: Config, path: Path) -> list[dict[str, Any]]:
    """One result row per CSV row: added, updated, unchanged or rejected with the reason.
    Rows are checked first and written in one transaction."""
    rows = read_rows(path, ("email", "client"), CSV_COLUMNS)
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    with write_transaction(config.store) as db:
        for line, row in rows:
            email, client, name = row.get("email", ""), row.get("client", ""), row.get("name", "")
            reason = (refusal("email", checks.email, email) or refusal("client", label, client)
                      or (name and refusal("name", label, name)))
            if not reason and email.lower() in seen:
                reason = "the same email is on an earlier line"
            if reason:
                results.append({"line": line, "email": email, "result": "rejected",
                                "reason": reason})
                continue
            seen.add(email.lower())
            client, _created = contacts.add_client(db, client)
            outcome = contacts.upsert_contact(db, email, client, name)
            if outcome == "added":
                _link_new(db, config, email, client)
            results.append({"line": line, "email": email, "result": outcome, "reason": ""})
    return results


def _link_new(db: Store, config: Config, email: str, client: str) -> int:
    """A new contact joins the engagements already stored for mail it is on that happened
    within each engagements channel's window_hours; mail it alone would bring in is found
    by the next sync (the ledger hands ignored mail back once contacts were added)."""
    now = datetime.now(UTC)
    since = {c.name: (now - timedelta(hours=c.window_hours)).isoformat(timespec="seconds")
             for c in config.channels if c.mode == "engagements"}
    return engagements.link_contact(db, email, client, since)


def list_clients(config: Config) -> list[dict[str, Any]]:
    return _read(config, contacts.clients) if exists(config.store) else []


def show_client(config: Config, name: str) -> dict[str, Any]:
    def read(db: Store) -> dict[str, Any]:
        found = pick("client", name, names.known(db, "client"), CLIENTS_HINT)
        return {"name": found,
                "domains": contacts.domains_by_client(db).get(found, []),
                "quotation_mailbox": contacts.quotation_mailbox(db, found),
                "contacts": contacts.contacts(db, found),
                "engagements": list(engagements.list_engagements(db, client=found).rows(20)),
                "notes": list(sales.notes(db, found, newest_first=True).rows(SHOWN_NOTES))}
    if not exists(config.store):
        pick("client", name, (), CLIENTS_HINT)
    return _read(config, read)


def list_contacts(config: Config, client: str | None) -> list[dict[str, Any]]:
    def read(db: Store) -> list[dict[str, Any]]:
        found = pick("client", client, names.known(db, "client"), CLIENTS_HINT) if client \
            else None
        return contacts.contacts(db, found)
    if not exists(config.store):
        if client:
            pick("client", client, (), CLIENTS_HINT)
        return []
    return _read(config, read)


def remove_contact(config: Config, email: str) -> None:
    with write_transaction(config.store) as db:
        if not contacts.remove_contact(db, email):
            raise NotFoundError(f"no contact {email}", "see `mailbridge contacts list`")


def _read(config: Config, fn: Callable[[Store], Any]) -> Any:
    with reading(config.store) as db:
        return fn(db)
