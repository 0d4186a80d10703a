"""Engagements mode: `clients`, `contacts` and `engagements`. Services are imported inside
the commands (see cmd_outgoing.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailbridge.cli.hits import QUERY, emit_hits
from mailbridge.cli.output import (
    ALL_OPTION,
    FORMAT_OPTION,
    LIMIT_OPTION,
    SHOW_FORMAT_OPTION,
    Format,
    emit,
    emit_record,
    note,
    row_limit,
    write,
)
from mailbridge.cli.params import ID
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line, print_text
from mailbridge.errors import EXIT_PARTIAL

CONTACT_COLUMNS = ("email", "name", "client", "created_at")
NOTE_COLUMNS = ("id", "created_at", "from", "subject", "message")
ENGAGEMENT_COLUMNS = ("id", "occurred_at", "direction", "clients", "from", "to", "subject")

clients_group = typer.Typer(help="Clients: their mail domains, contacts and CRM notes.",
                            no_args_is_help=True)
contacts_group = typer.Typer(help="Contacts: the people of each client.", no_args_is_help=True)
engagements_group = typer.Typer(help="Copies of mail to or from contacts.",
                                no_args_is_help=True)


DOMAIN_HELP = ("A mail domain of the client, like acme.com (repeat for more): My Inbox "
               "suggests the client for mail from it, and domain matching gives its "
               "opportunities mail from it.")


@clients_group.command("add")
def clients_add(ctx: typer.Context, name: str = typer.Argument(..., help="Client name."),
                domains: list[str] = typer.Option([], "--domain", help=DOMAIN_HELP)) -> None:
    """Add a client (an existing one gets the --domain given)."""
    from mailbridge.services import contacts

    name, added = contacts.add_client(state(ctx).config(), name, domains)
    with_domains = f" (domains: {', '.join(domains)})" if domains else ""
    note(f"client {name} {'added' if added else 'exists already'}{with_domains}")


@clients_group.command("set")
def clients_set(ctx: typer.Context, name: str = typer.Argument(..., help="Client name."),
                add: list[str] = typer.Option([], "--domain", help=DOMAIN_HELP),
                remove: list[str] = typer.Option([], "--no-domain",
                                                 help="Take this domain away (repeat for "
                                                 "more)."),
                mailbox: str = typer.Option(None, "--quotation-mailbox", metavar="ADDR",
                                            help="The sales mailbox that sends this client's "
                                            "quotations (`opportunities quote`), whatever "
                                            "[sales] says; one mailbridge sends from."),
                no_mailbox: bool = typer.Option(False, "--no-quotation-mailbox",
                                                help="Let [sales] decide again.")) -> None:
    """Change a client: give it mail domains or take them away; set the mailbox its
    quotations go from (Halo's "Mailbox override for Quotation emails")."""
    from mailbridge.services import contacts

    changed = contacts.set_client(state(ctx).config(), name, contacts.ClientChange(
        add, remove, mailbox, no_mailbox))
    note(f"client {changed['name']}: domains {', '.join(changed['domains']) or 'none'}")
    if mailbox or no_mailbox:
        note(f"client {changed['name']}: quotations from "
             f"{changed['quotation_mailbox'] or 'the mailbox [sales] picks'}")


@clients_group.command("list")
def clients_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Clients with their domains and their numbers of contacts, engagements and CRM notes.
    JSON fields: name, domains, contacts, engagements, notes, quotation_mailbox (null: the
    [sales] settings decide), created_at."""
    from mailbridge.services import contacts

    emit(contacts.list_clients(state(ctx).config()), fmt,
         ("name", "domains", "contacts", "engagements", "notes", "quotation_mailbox",
          "created_at"))


@clients_group.command("show")
def clients_show(ctx: typer.Context, name: str = typer.Argument(..., help="Client name."),
                 fmt: Format = SHOW_FORMAT_OPTION
                 ) -> None:
    """A client: its domains, quotation mailbox, contacts, latest engagements and latest CRM
    notes."""
    from mailbridge.services import contacts

    found = contacts.show_client(state(ctx).config(), name)

    def page() -> None:
        print_line(f"client {found['name']}")
        print_line(f"domains: {', '.join(found['domains']) or '-'}")
        print_line("quotations from: "
                   f"{found['quotation_mailbox'] or '- (the mailbox [sales] picks)'}")
        print_line("")
        write(found["contacts"], Format.table, CONTACT_COLUMNS)
        print_line("")
        write(found["engagements"], Format.table, ENGAGEMENT_COLUMNS)
        print_line("")
        print_line(f"CRM notes (latest {contacts.SHOWN_NOTES}; `mailbridge notes list "
                   "--client` has them all):")
        write(found["notes"], Format.table, NOTE_COLUMNS)
    emit_record(found, fmt, page)


@contacts_group.command("add")
def contacts_add(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="The contact's address."),
    client: str = typer.Option(..., "--client", help="Client the contact belongs to (one "
                               "that exists, unless --create)."),
    name: str = typer.Option(None, "--name", help="Display name."),
    create: bool = typer.Option(False, "--create", help="Add the client if it is new."),
) -> None:
    """Add a contact, or move it to another client / rename it."""
    from mailbridge.services import contacts

    outcome, created, linked = contacts.add_contact(state(ctx).config(), email, client, name,
                                                    create)
    if created:
        note(f"client {client} added")
    also = f" (linked to {linked} recent engagement(s))" if linked else ""
    note(f"contact {email}: {outcome}{also}")


@contacts_group.command("import")
def contacts_import(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="CSV with a header row: email, name, client."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Import contacts from CSV. Prints a line per row (added, updated, unchanged or rejected
    with the reason); exit 4 if any row was rejected."""
    from mailbridge.services import contacts

    rows = contacts.import_contacts(state(ctx).config(), path)
    emit(rows, fmt, ("line", "email", "result", "reason"))
    counts = {k: sum(1 for r in rows if r["result"] == k)
              for k in ("added", "updated", "unchanged", "rejected")}
    note(", ".join(f"{n} {k}" for k, n in counts.items()))
    if counts["rejected"]:
        raise typer.Exit(EXIT_PARTIAL)


@contacts_group.command("list")
def contacts_list(ctx: typer.Context,
                  client: str = typer.Option(None, "--client", help="Only this client."),
                  fmt: Format = FORMAT_OPTION) -> None:
    """Contacts. JSON fields: email, name, client, created_at."""
    from mailbridge.services import contacts

    emit(contacts.list_contacts(state(ctx).config(), client), fmt, CONTACT_COLUMNS)


@contacts_group.command("remove")
def contacts_remove(ctx: typer.Context, email: str = typer.Argument(...)) -> None:
    """Remove a contact (engagements already stored stay)."""
    from mailbridge.services import contacts

    contacts.remove_contact(state(ctx).config(), email)
    note(f"contact {email} removed")


# the filters of `engagements list` and `engagements search`
CLIENT_OPTION = typer.Option(None, "--client", help="Only this client.")
CONTACT_OPTION = typer.Option(None, "--contact", help="Only this contact's address.")
SINCE_OPTION = typer.Option(None, "--since", help="Only newer: 12h, 7d, 2w or a date.")


@engagements_group.command("list")
def engagements_list(
    ctx: typer.Context,
    client: str = CLIENT_OPTION,
    contact: str = CONTACT_OPTION,
    since: str = SINCE_OPTION,
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Engagements, oldest first. JSON fields: id, channel, direction, occurred_at, from, to,
    subject, clients."""
    from mailbridge.services import engagements

    found = engagements.list_engagements(state(ctx).config(), client, contact, since,
                                         row_limit(limit, every))
    emit(found.rows, fmt, ENGAGEMENT_COLUMNS, more=found.more)


@engagements_group.command("search")
def engagements_search(
    ctx: typer.Context,
    query: list[str] = QUERY,
    client: str = CLIENT_OPTION,
    contact: str = CONTACT_OPTION,
    since: str = SINCE_OPTION,
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Search engagements by the subject, text, sender and attachment names of their mail,
    best match first, each with a snippet. JSON fields: id, channel, direction, occurred_at,
    from, subject, message, score, snippet."""
    from mailbridge.services import search

    found = search.search_engagements(state(ctx).config(), " ".join(query), client, contact,
                                      since, row_limit(limit, every))
    emit_hits(found, fmt, search.ENGAGEMENT_COLUMNS, ENGAGEMENT_HIT_TABLE, "engagements")


ENGAGEMENT_HIT_TABLE = {"id": "id", "direction": "dir", "occurred_at": "when", "from": "from",
                        "subject": "subject"}


@engagements_group.command("show")
def engagements_show(ctx: typer.Context, engagement: int = typer.Argument(..., parser=ID),
                     fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """One engagement: direction, matched contacts, headers, text, attachments."""
    from mailbridge.services import engagements

    found = engagements.show_engagement(state(ctx).config(), engagement)
    emit_record(found, fmt, lambda: _engagement_page(found))


def _engagement_page(found: dict) -> None:
    m = found["message_details"]
    print_line(f"engagement #{found['id']} ({found['direction']}) {found['occurred_at'] or ''}")
    print_line("contacts: " + ", ".join(f"{c['email']} ({c['client']})"
                                         for c in found["contacts"]))
    print_line(f"From: {m['from_name']} <{m['from_email']}>".replace(" <>", ""))
    print_line("To: " + ", ".join(a["email"] for a in m["to"]))
    if m["cc"]:
        print_line("Cc: " + ", ".join(a["email"] for a in m["cc"]))
    print_line(f"Subject: {m['subject']}")
    for a in m["attachments"]:
        print_line(f"Attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    print_line("")
    print_text((m["text"] or "").rstrip())


def register(app: typer.Typer) -> None:
    app.add_typer(clients_group, name="clients")
    app.add_typer(contacts_group, name="contacts")
    app.add_typer(engagements_group, name="engagements")
