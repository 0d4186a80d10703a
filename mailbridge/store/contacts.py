"""Clients, their mail domains and their contacts: who counts as a customer for engagements
mode, and whom sales mail is from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbridge.store.db import Store, now

CONTACT_COLUMNS = ("email", "name", "client", "created_at")


def add_client(db: Store, name: str) -> tuple[str, bool]:
    """The client called `name` in any case (its name as stored), made when there is none;
    and whether it was made. "acme" never starts a second client beside "ACME"."""
    exact = db.execute("SELECT name FROM clients WHERE name=?", [name]).fetchone()
    if exact is not None:  # by the key: a CSV import names the same clients row after row
        return exact[0], False
    for (known,) in db.execute("SELECT name FROM clients"):
        if known.casefold() == name.casefold():
            return known, False
    made = db.execute("INSERT INTO clients (name, created_at) VALUES (?, ?) "
                      "ON CONFLICT DO NOTHING", [name, now()]).rowcount > 0
    return name, made


def clients(db: Store) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT c.name, count(DISTINCT k.email), count(DISTINCT ec.engagement), "
        "count(DISTINCT n.id), c.quotation_mailbox, c.created_at "
        "FROM clients c LEFT JOIN contacts k ON k.client = c.name "
        "LEFT JOIN engagement_contacts ec ON ec.client = c.name "
        "LEFT JOIN crm_notes n ON n.client = c.name GROUP BY c.name ORDER BY c.name")
    domains = domains_by_client(db)
    return [{"name": name, "domains": domains.get(name, []), "contacts": contacts,
             "engagements": engagements, "notes": notes, "quotation_mailbox": mailbox,
             "created_at": created}
            for name, contacts, engagements, notes, mailbox, created in rows]


def quotation_mailbox(db: Store, client: str) -> str | None:
    """The mailbox that sends the client's quotations (None: the [sales] settings decide);
    `client` in any case, as an opportunity may spell it."""
    row = db.execute("SELECT quotation_mailbox FROM clients WHERE lower(name)=lower(?)",
                     [client]).fetchone()
    return row[0] if row else None


def set_quotation_mailbox(db: Store, client: str, address: str | None) -> None:
    db.execute("UPDATE clients SET quotation_mailbox=? WHERE name=?", [address, client])


def add_domain(db: Store, client: str, domain: str) -> str | None:
    """Give `client` the (lower-case) `domain`; the client that has it already, if any
    (itself included)."""
    row = db.execute("SELECT client FROM client_domains WHERE domain=?", [domain]).fetchone()
    if row is not None:
        return row[0]
    db.execute("INSERT INTO client_domains (domain, client, created_at) VALUES (?, ?, ?)",
               [domain, client, now()])
    return None


def remove_domain(db: Store, client: str, domain: str) -> bool:
    return db.execute("DELETE FROM client_domains WHERE client=? AND domain=?",
                      [client, domain]).rowcount > 0


def domains_by_client(db: Store) -> dict[str, list[str]]:
    """Each client's domains, sorted."""
    found: dict[str, list[str]] = {}
    for client, domain in db.execute("SELECT client, domain FROM client_domains "
                                     "ORDER BY client, domain"):
        found.setdefault(client, []).append(domain)
    return found


def client_of_domain(db: Store) -> dict[str, str]:
    """Every client domain and its client: what suggestions and matching need."""
    return dict(db.execute("SELECT domain, client FROM client_domains").fetchall())


def upsert_contact(db: Store, email: str, client: str, name: str | None) -> str:
    """'added', 'updated' or 'unchanged'. Addresses are kept in lower case."""
    email = email.lower()
    row = db.execute("SELECT name, client FROM contacts WHERE email=?", [email]).fetchone()
    if row is None:
        db.execute("INSERT INTO contacts (email, name, client, created_at) VALUES (?, ?, ?, ?)",
                   [email, name or "", client, now()])
        return "added"
    new_name = row[0] if name is None else name
    if (new_name, client) == tuple(row):
        return "unchanged"
    db.execute("UPDATE contacts SET name=?, client=? WHERE email=?", [new_name, client, email])
    return "updated"


def contacts(db: Store, client: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(CONTACT_COLUMNS)} FROM contacts"
    params: list[Any] = []
    if client:
        sql, params = sql + " WHERE client=?", [client]
    return [dict(zip(CONTACT_COLUMNS, r, strict=True))
            for r in db.execute(sql + " ORDER BY client, email", params)]


def client_for(db: Store, address: str) -> str:
    """The client `address` belongs to: its contact's, else the client whose domain it is
    (`clients set --domain`); "" for neither."""
    address = address.lower()
    row = db.execute("SELECT client FROM contacts WHERE email=?", [address]).fetchone()
    if row is None:
        row = db.execute("SELECT client FROM client_domains WHERE domain=?",
                         [address.rpartition("@")[2]]).fetchone()
    return row[0] if row else ""


def by_email(db: Store) -> dict[str, str]:
    """Every contact's address (lower case) and its client: what matching needs."""
    return {email.lower(): client for email, client in
            db.execute("SELECT email, client FROM contacts")}


def with_added(db: Store) -> dict[str, tuple[str, datetime]]:
    """Every contact's address (lower case), its client and when it was added: what
    engagement matching needs (a contact counts for mail up to window_hours before it)."""
    return {email.lower(): (client, datetime.fromisoformat(added)) for email, client, added in
            db.execute("SELECT email, client, created_at FROM contacts")}


def added_since(db: Store, since: datetime) -> list[datetime]:
    """When each contact added after `since` was added."""
    return [datetime.fromisoformat(r[0]) for r in db.execute(
        "SELECT created_at FROM contacts WHERE created_at > ?",
        [since.isoformat(timespec="seconds")])]


def remove_contact(db: Store, email: str) -> bool:
    return db.execute("DELETE FROM contacts WHERE email=?", [email.lower()]).rowcount > 0
