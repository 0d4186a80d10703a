"""Clients and contacts for engagements mode: add, list, import from CSV, remove."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services.csv_rows import read_rows
from mailbridge.store import contacts, engagements
from mailbridge.store.db import Store
from mailbridge.store.session import reading, write_transaction

EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
CSV_COLUMNS = ("email", "name", "client")


def add_client(config: Config, name: str) -> bool:
    _check_name(name)
    with write_transaction(config.store_path) as db:
        return contacts.add_client(db, name)


def add_contact(config: Config, email: str, client: str, name: str | None
                ) -> tuple[str, bool, int]:
    """(added | updated | unchanged, whether the client was created for it, how many recent
    engagements it was linked to)."""
    if not EMAIL_RE.match(email):
        raise UsageError(f"{email!r} is not an e-mail address")
    _check_name(client)
    with write_transaction(config.store_path) as db:
        created = contacts.add_client(db, client)
        outcome = contacts.upsert_contact(db, email, client, name)
        linked = _link_new(db, config, email, client) if outcome == "added" else 0
        return outcome, created, linked


def import_contacts(config: Config, path: Path) -> list[dict[str, Any]]:
    """One result row per CSV row: added, updated, unchanged or rejected with the reason.
    Rows are checked first and written in one transaction."""
    rows = read_rows(path, ("email", "client"), CSV_COLUMNS)
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    with write_transaction(config.store_path) as db:
        for line, row in rows:
            email, client, name = row.get("email", ""), row.get("client", ""), row.get("name", "")
            reason = None
            if not EMAIL_RE.match(email):
                reason = "not an e-mail address" if email else "no email"
            elif not client:
                reason = "no client"
            elif email.lower() in seen:
                reason = "the same email is on an earlier line"
            if reason:
                results.append({"line": line, "email": email, "result": "rejected",
                                "reason": reason})
                continue
            seen.add(email.lower())
            contacts.add_client(db, client)
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
    return _read(config, contacts.clients) if config.store_path.exists() else []


def show_client(config: Config, name: str) -> dict[str, Any]:
    def read(db):
        if not contacts.client_exists(db, name):
            raise NotFoundError(f"no client called {name}", "see `mailbridge clients list`")
        return {"name": name, "contacts": contacts.contacts(db, name),
                "engagements": engagements.list_engagements(db, client=name, limit=20)}
    if not config.store_path.exists():
        raise NotFoundError(f"no client called {name}", "see `mailbridge clients list`")
    return _read(config, read)


def list_contacts(config: Config, client: str | None) -> list[dict[str, Any]]:
    if not config.store_path.exists():
        return []
    return _read(config, lambda db: contacts.contacts(db, client))


def remove_contact(config: Config, email: str) -> None:
    with write_transaction(config.store_path) as db:
        if not contacts.remove_contact(db, email):
            raise NotFoundError(f"no contact {email}", "see `mailbridge contacts list`")


def _read(config: Config, fn: Callable[[Store], Any]) -> Any:
    with reading(config.store_path) as db:
        return fn(db)


def _check_name(name: str) -> None:
    if not name.strip():
        raise UsageError("a client needs a name")
