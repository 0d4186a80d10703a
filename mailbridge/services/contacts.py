"""Clients and contacts for engagements mode: add, list, import from CSV, remove."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services.csv_rows import read_rows
from mailbridge.store import contacts, engagements
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, write_transaction

EMAIL_RE = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
CSV_COLUMNS = ("email", "name", "client")


def add_client(config: Config, name: str) -> bool:
    _check_name(name)
    with write_transaction(config.store) as db:
        return contacts.add_client(db, name)


def add_contact(config: Config, email: str, client: str, name: str | None) -> tuple[str, bool]:
    """(added | updated | unchanged, whether the client was created for it)."""
    if not EMAIL_RE.match(email):
        raise UsageError(f"{email!r} is not an e-mail address")
    _check_name(client)
    with write_transaction(config.store) as db:
        created = contacts.add_client(db, client)
        return contacts.upsert_contact(db, email, client, name), created


def import_contacts(config: Config, path: Path) -> list[dict[str, Any]]:
    """One result row per CSV row: added, updated, unchanged or rejected with the reason.
    Rows are checked first and written in one transaction."""
    rows = read_rows(path, ("email", "client"), CSV_COLUMNS)
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    with write_transaction(config.store) as db:
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
            results.append({"line": line, "email": email, "result": outcome, "reason": ""})
    return results


def list_clients(config: Config) -> list[dict[str, Any]]:
    return _read(config, contacts.clients) if exists(config.store) else []


def show_client(config: Config, name: str) -> dict[str, Any]:
    def read(db):
        if not contacts.client_exists(db, name):
            raise NotFoundError(f"no client called {name}", "see `mailbridge clients list`")
        return {"name": name, "contacts": contacts.contacts(db, name),
                "engagements": engagements.list_engagements(db, client=name, limit=20)}
    if not exists(config.store):
        raise NotFoundError(f"no client called {name}", "see `mailbridge clients list`")
    return _read(config, read)


def list_contacts(config: Config, client: str | None) -> list[dict[str, Any]]:
    if not exists(config.store):
        return []
    return _read(config, lambda db: contacts.contacts(db, client))


def remove_contact(config: Config, email: str) -> None:
    with write_transaction(config.store) as db:
        if not contacts.remove_contact(db, email):
            raise NotFoundError(f"no contact {email}", "see `mailbridge contacts list`")


def _read(config: Config, fn: Callable[[Store], Any]) -> Any:
    with reading(config.store) as db:
        return fn(db)


def _check_name(name: str) -> None:
    if not name.strip():
        raise UsageError("a client needs a name")
