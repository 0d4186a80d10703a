"""`init`, `add-channel` (the wizard) and `demo`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from mailbridge.cli.output import emit, note
from mailbridge.cli.report import CliReporter
from mailbridge.cli.state import state
from mailbridge.config import providers
from mailbridge.config.schema import MODES
from mailbridge.connectors.imap_session import DEFAULT_PORTS
from mailbridge.connectors.smtp import DEFAULT_PORTS as SMTP_PORTS
from mailbridge.errors import UsageError
from mailbridge.services import channels, demo, setup, sync
from mailbridge.services import secrets as secrets_service
from mailbridge.services.queries import TICKET_COLUMNS, list_tickets


def init(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
) -> None:
    """Write a commented starting config (at --config, or the platform config path)."""
    path = state(ctx).path
    setup.init_config(path, force)
    note(f"wrote {path}; next: `mailbridge add-channel`")


def _ask(value: Any, prompt: str, default: Any, interactive: bool, **kw: Any) -> Any:
    if value is not None:
        return value
    if interactive:
        return typer.prompt(prompt, default=default, err=True, **kw)
    return default


def _choose(value: str | None, prompt: str, choices: list[str], default: str,
            interactive: bool) -> str:
    answer = _ask(value, f"{prompt} ({'/'.join(choices)})", default, interactive)
    if answer not in choices:
        raise UsageError(f"{prompt.lower()} must be one of {', '.join(choices)}, not {answer!r}")
    return answer


def add_channel(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", help="Channel name: lowercase letters, digits, -_."),
    mode: str = typer.Option(None, "--mode", help="tickets | engagements | sales."),
    owner: str = typer.Option(None, "--owner", help="Engagements, sales: the mailbox owner's "
                              "address (default: the mailbox address)."),
    backfill_hours: float = typer.Option(0.0, "--backfill-hours", min=0, help="Engagements, "
                                         "sales: also copy mail this many hours older."),
    email: str = typer.Option(None, "--email", help="The mailbox address: fills in IMAP and "
                              "SMTP for known providers (Gmail, Outlook.com, Yahoo, iCloud, "
                              "Yandex, Mail.ru, GMX, Zoho, Fastmail), else tries "
                              "imap./mail.<domain>."),
    incoming: str = typer.Option(None, "--incoming", help="Incoming connection: drop | imap | "
                                 "m365."),
    app: str = typer.Option(None, "--app", help="Microsoft 365: the [[m365]] app entry to "
                            "sign in with."),
    mailbox: list[str] = typer.Option(None, "--mailbox", help="Microsoft 365: a mailbox to "
                                      "read (repeat for several; default: --email)."),
    spool: Path = typer.Option(None, "--spool", help="Maildir spool of a drop channel "
                               "(default: <data dir>/spool/<name>)."),
    host: str = typer.Option(None, "--host", help="IMAP server host name."),
    security: str = typer.Option(None, "--security", help="IMAP security: ssl | starttls | none."),
    port: int = typer.Option(None, "--port", help="IMAP port (default: 993 ssl, 143 otherwise)."),
    username: str = typer.Option(None, "--username", help="IMAP login name."),
    password: str = typer.Option(None, "--password", help="IMAP password as a reference: "
                                 "env:VAR, file:PATH, keyring:NAME or command:PROG ARGS "
                                 "(default on a terminal: prompt, kept in the OS keyring)."),
    folders: str = typer.Option(None, "--folders", help='Folders, comma-separated, or "*" '
                                "for all but Junk/Trash/Drafts/Sent (default: INBOX)."),
    ca_file: Path = typer.Option(None, "--ca-file", help="Extra CA to trust (private server)."),
    smtp_host: str = typer.Option(None, "--smtp-host", help="SMTP server for replies "
                                  "(default with --email: the provider's)."),
    smtp_security: str = typer.Option(None, "--smtp-security", help="ssl | starttls | none."),
    smtp_port: int = typer.Option(None, "--smtp-port", help="SMTP port (default: 465 ssl, "
                                  "587 starttls, 25 none)."),
    no_outgoing: bool = typer.Option(False, "--no-outgoing", help="No outgoing connection, "
                                     "even with --email."),
    main_email: str = typer.Option(None, "--main-email", help="The address customers write to."),
    default_queue: str = typer.Option(None, "--default-queue", help="Queue for new tickets."),
    schedule: str = typer.Option(None, "--schedule", help='How often `run` syncs: "5m", cron.'),
    skip_test: bool = typer.Option(False, "--skip-test", help="Write the channel without "
                                   "testing the connection first."),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt; use flags/defaults."),
) -> None:
    """Add a channel (a wizard on a terminal; every prompt is also a flag). The connection is
    tested before anything is written."""
    interactive = not no_input and sys.stdin.isatty()
    name = _ask(name, "Channel name", None, interactive)
    if not name:
        raise UsageError("a channel needs a name", "pass --name NAME")
    entry: dict[str, Any] = {
        "name": name,
        "mode": _choose(mode, "Mode", list(MODES), "tickets", interactive),
    }
    provider = providers.lookup(email) if email else None
    guessing = bool(email) and provider is None and host is None
    if provider is not None:
        note(f"{email}: {provider.name}; its IMAP and SMTP settings are filled in")
        if provider.password_note:
            note(f"note: {provider.password_note}")
    elif guessing:
        if skip_test:
            raise UsageError(f"{email}: not a provider mailbridge knows, and guessed servers "
                             "are only used once a test confirms them",
                             "drop --skip-test, or pass --host")
        note(f"{email}: unknown provider; trying imap.{providers.domain_of(email)} and "
             f"mail.{providers.domain_of(email)}")
    kind = _choose(incoming, "Incoming connection", ["drop", "imap", "m365"],
                   "imap" if email else "drop", interactive)
    candidates = providers.guesses(email) if guessing else [provider]
    if entry["mode"] in ("engagements", "sales"):  # never reach back before this moment
        connected = datetime.now(UTC) - timedelta(hours=backfill_hours)
        entry["connected_at"] = connected.isoformat(timespec="seconds")
        if owner:
            entry["owner"] = owner
    if kind == "imap":
        server = provider.imap if provider else None
        entry["incoming"] = _imap_incoming(
            name, interactive, host or (server.host if server else None)
            or (candidates[0].imap.host if guessing else None),
            security or (server.security if server else None), port, username or email,
            password, folders or ("*" if entry["mode"] == "engagements" else None), ca_file)
        login = entry["incoming"]["username"]
        main_default = email or (login if "@" in login else "")
    elif kind == "m365":
        entry["incoming"] = _m365_incoming(interactive, app, mailbox or ([email] if email
                                                                          else []))
        main_default = email or entry["incoming"]["mailboxes"][0]
    else:
        entry["incoming"] = {"type": kind}
        if spool is not None:
            entry["incoming"]["spool"] = str(spool.expanduser().resolve())
        main_default = ""
    for key, value, prompt, default in (
        ("main_email", main_email, "Main e-mail address (blank: none)", main_default),
        ("default_queue", default_queue, "Default queue", "general"),
        ("schedule", schedule, "Schedule (blank: mode default)", ""),
    ):
        answer = _ask(value, prompt, default, interactive)
        if answer:
            entry[key] = answer
    wants_smtp = not no_outgoing and (email or smtp_host)
    if wants_smtp and kind == "imap":
        smtp = provider.smtp if provider else None
        security_out = smtp_security or (smtp.security if smtp else "starttls")
        entry["outgoing"] = {
            "type": "smtp", "host": smtp_host or (smtp.host if smtp else entry["incoming"]["host"]),
            "port": smtp_port or (smtp.port if smtp else SMTP_PORTS[security_out]),
            "security": security_out, "username": entry["incoming"]["username"],
            "password": entry["incoming"]["password"],
            **({"from_email": email} if email else {})}
    if not skip_test and kind != "drop":
        note(f"testing the {kind} connection…")
    if guessing and kind == "imap" and host is None:
        added = channels.add_first_working(
            state(ctx).path, [_with_servers(entry, c, smtp_host) for c in candidates])
    else:
        added = channels.add_channel(state(ctx).path, entry, test=not skip_test)
    note(f"added channel {added.name} to {state(ctx).path}")
    if added.incoming["type"] == "drop":
        note(f"deliver mail into {added.spool}/new (Maildir), "
             f"or pipe it to `mailbridge ingest {added.name}`")
    else:
        note(f"next: `mailbridge sync {added.name}`")


def _with_servers(entry: dict[str, Any], candidate: providers.Provider,
                  smtp_host: str | None) -> dict[str, Any]:
    """The entry with a guessed provider's IMAP (and SMTP) servers put in."""
    out = {**entry, "incoming": {**entry["incoming"], "host": candidate.imap.host,
                                 "port": candidate.imap.port,
                                 "security": candidate.imap.security}}
    if "outgoing" in entry and smtp_host is None:
        out["outgoing"] = {**entry["outgoing"], "host": candidate.smtp.host,
                           "port": candidate.smtp.port, "security": candidate.smtp.security}
    return out


def _m365_incoming(interactive: bool, app: str | None, mailboxes: list[str]
                   ) -> dict[str, Any]:
    app = _ask(app, "Microsoft 365 app (an [[m365]] name in the config)", None, interactive)
    if not app:
        raise UsageError("a Microsoft 365 channel needs an app",
                         "add an [[m365]] entry to the config (see config.example.toml), "
                         "then pass --app NAME")
    if not mailboxes:
        answer = _ask(None, "Mailboxes (comma-separated)", None, interactive) or ""
        mailboxes = [m.strip() for m in answer.split(",") if m.strip()]
    if not mailboxes:
        raise UsageError("a Microsoft 365 channel needs at least one mailbox",
                         "pass --mailbox ADDRESS (repeat for several)")
    return {"type": "m365", "app": app, "mailboxes": mailboxes}


def _imap_incoming(name: str, interactive: bool, host: str | None, security: str | None,
                   port: int | None, username: str | None, password: str | None,
                   folders: str | None, ca_file: Path | None) -> dict[str, Any]:
    host = _ask(host, "IMAP host", None, interactive)
    if not host:
        raise UsageError("an IMAP channel needs a host", "pass --host HOST")
    security = _choose(security, "Security", ["ssl", "starttls", "none"], "ssl", interactive)
    port = _ask(port, "Port", DEFAULT_PORTS[security], interactive, type=int)
    username = _ask(username, "Username", None, interactive)
    if not username:
        raise UsageError("an IMAP channel needs a username", "pass --username NAME")
    if password is not None:
        ref = channels.parse_secret_ref(password)
    elif interactive:
        secret = typer.prompt("Password (kept in the OS keyring)", hide_input=True, err=True)
        ref = {"keyring": f"mailbridge/{name}"}
        secrets_service.set_secret(ref["keyring"], secret)
    else:
        raise UsageError("an IMAP channel needs a password reference",
                         "pass --password env:VAR (or file:, keyring:, command:)")
    chosen = _ask(folders, 'Folders (comma-separated, or "*")', "INBOX", interactive)
    out: dict[str, Any] = {
        "type": "imap", "host": host, "port": port, "security": security,
        "username": username, "password": ref,
        "folders": "*" if chosen.strip() == "*" else [f.strip() for f in chosen.split(",")
                                                      if f.strip()],
    }
    if ca_file is not None:
        out["ca_file"] = str(ca_file.expanduser().resolve())
    return out


def demo_cmd(
    ctx: typer.Context,
    directory: Path = typer.Option(None, "--dir", help="Folder for the demo (default: a new "
                                   "temporary folder)."),
) -> None:
    """Sync the sample mail shipped with mailbridge into a throwaway store and list the tickets."""
    config = demo.create_demo(directory)
    run = sync.sync(config, [], CliReporter(state(ctx).verbosity))
    emit(list_tickets(config), None, TICKET_COLUMNS, title="demo tickets")
    note(f"demo store: {config.store}")
    note(f"explore it: mailbridge --config {config.path} tickets show 1")
    code = sync.exit_code(run.channels, run.sends)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("add-channel")(add_channel)
    app.command("demo")(demo_cmd)
