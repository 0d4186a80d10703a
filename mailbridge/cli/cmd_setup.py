"""`init`, `add-channel` (the wizard) and `demo`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from mailbridge.cli.invocation import program, shell_line
from mailbridge.cli.output import emit, note
from mailbridge.cli.params import ADDRESS, PORT, QUEUE, Checked, number, one_of
from mailbridge.cli.report import CliReporter
from mailbridge.cli.state import state
from mailbridge.config import channel_keys, providers
from mailbridge.config.model import default_owner
from mailbridge.config.schema import CHANNEL, INCOMING, MODES, SENDER_KEYS
from mailbridge.config.schema import schedule as schedule_rule
from mailbridge.connectors.imap_session import DEFAULT_PORTS
from mailbridge.connectors.smtp import DEFAULT_PORTS as SMTP_PORTS
from mailbridge.domain.checks import pick
from mailbridge.errors import MailbridgeError, UsageError
from mailbridge.services import channels, demo, setup, sync
from mailbridge.services import secrets as secrets_service
from mailbridge.services.queries import TICKET_COLUMNS, list_tickets

BACKFILL_HOURS = number("--backfill-hours", 0, 24 * 3660, "HOURS")  # ten years back at most


def init(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
    example: bool = typer.Option(False, "--example", help="Print the example config that "
                                 "documents every key instead (nothing is written)."),
) -> None:
    """Write a commented starting config (at --config, or the platform config path)."""
    if example:
        sys.stdout.write(setup.example_config())
        return
    path = state(ctx).path
    setup.init_config(path, force)
    note(f"wrote {path}; next: `{shell_line(program())} add-channel`")


ATTEMPTS = 5  # answers to one question before the wizard gives up

# What each answer (and the flag of the same name) must be: the config's rule for the key.
NAME = Checked("channel name", CHANNEL["name"].check, "NAME")
MODE = one_of("mode", *MODES)
INCOMING_KINDS = one_of("incoming connection", "drop", "imap", "m365")
SECURITY = one_of("security", "ssl", "starttls", "none")
HOST = Checked("host", INCOMING["imap"]["host"].check, "HOST")
USERNAME = Checked("username", INCOMING["imap"]["username"].check, "NAME")
SCHEDULE = Checked("schedule", schedule_rule, "SCHEDULE")


def _ask(value: Any, prompt: str, default: Any, interactive: bool,
         check: Callable[[Any], Any] = lambda v: v) -> Any:
    """A flag's value, checked (a wrong one ends the command, exit 2); else on a terminal
    the answer to `prompt`, checked when it is given and asked for again until `check`
    takes it; else `default`. `check` returns the value or raises a MailbridgeError."""
    if value is not None:
        return check(value)
    if not interactive:
        return default
    for _ in range(ATTEMPTS):
        answer = typer.prompt(prompt, default=default, err=True, show_default=bool(default))
        try:
            return check(answer)
        except MailbridgeError as exc:
            note(f"{exc.message}; try again")
    raise UsageError(f"{prompt}: no answer taken after {ATTEMPTS} tries")


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A check that also takes a blank answer (as "")."""
    return lambda v: "" if isinstance(v, str) and not v.strip() else check(v)


def _addresses(text: str) -> list[str]:
    found = [ADDRESS(a.strip()) for a in text.split(",") if a.strip()]
    if not found:
        raise UsageError("give at least one address")
    return found


CARD = "The mail block (Usedesk's channel card)"
ROUTING = "Routing (Agent Desktop queues)"
MODES_PANEL = "Engagements and sales modes"


def add_channel(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", parser=NAME,
                             help="Channel name: lowercase letters, digits, -_."),
    mode: str = typer.Option(None, "--mode", parser=MODE, help="tickets | engagements | sales."),
    owner: str = typer.Option(None, "--owner", parser=ADDRESS,
                              help="Engagements, sales: the mailbox owner's "
                              "address (default: the mailbox address; engagements without "
                              "one ask on a terminal, else refuse)."),
    backfill_hours: float = typer.Option(0.0, "--backfill-hours", parser=BACKFILL_HOURS,
                                         help="Engagements, sales: also copy mail this many "
                                         "hours older."),
    email: str = typer.Option(None, "--email", parser=ADDRESS,
                              help="The mailbox address: fills in IMAP and "
                              "SMTP for known providers (Gmail, Outlook.com, Yahoo, iCloud, "
                              "Yandex, Mail.ru, GMX, Zoho, Fastmail), else tries "
                              "imap./mail.<domain>."),
    incoming: str = typer.Option(None, "--incoming", parser=INCOMING_KINDS,
                                 help="Incoming connection: drop | imap | m365."),
    app: str = typer.Option(None, "--app", help="Microsoft 365: the [[m365]] app entry to "
                            "sign in with."),
    mailbox: list[str] = typer.Option(None, "--mailbox", parser=ADDRESS,
                                      help="Microsoft 365: a mailbox to "
                                      "read (repeat for several; default: --email)."),
    spool: Path = typer.Option(None, "--spool", help="Maildir spool of a drop channel "
                               "(default: <data dir>/spool/<name>)."),
    host: str = typer.Option(None, "--host", parser=HOST, help="IMAP server host name."),
    security: str = typer.Option(None, "--security", parser=SECURITY,
                                 help="IMAP security: ssl | starttls | none."),
    port: int = typer.Option(None, "--port", parser=PORT,
                              help="IMAP port (default: 993 ssl, 143 otherwise)."),
    username: str = typer.Option(None, "--username", parser=USERNAME,
                                 help="IMAP login name."),
    password: str = typer.Option(None, "--password", help="IMAP password as a reference: "
                                 "env:VAR, file:PATH, keyring:NAME or command:PROG ARGS "
                                 "(default on a terminal: prompt, kept in the OS keyring)."),
    folders: str = typer.Option(None, "--folders", help='Folders, comma-separated, or "*" '
                                "for all the mode reads: never junk, drafts, calendar, RSS "
                                "feeds and the like (default: INBOX; engagements: *)."),
    ca_file: Path = typer.Option(None, "--ca-file", help="Extra CA to trust (private server)."),
    smtp_host: str = typer.Option(None, "--smtp-host", help="SMTP server for replies "
                                  "(default with --email: the provider's)."),
    smtp_security: str = typer.Option(None, "--smtp-security", parser=SECURITY,
                                      help="ssl | starttls | none."),
    smtp_port: int = typer.Option(None, "--smtp-port", parser=PORT,
                                   help="SMTP port (default: 465 ssl, "
                                  "587 starttls, 25 none)."),
    no_outgoing: bool = typer.Option(False, "--no-outgoing", help="No outgoing connection, "
                                     "even with --email."),
    outgoing: str = typer.Option(None, "--outgoing", help="Outgoing connection: smtp (the "
                                 "default for IMAP with --email or --smtp-host), sendmail (the "
                                 "local MTA: Usedesk's internal connection), m365 (with --app; "
                                 "sends as --email, else the main e-mail) or none."),
    main_email: str = typer.Option(None, "--main-email", parser=ADDRESS,
                                   help="Main e-mail: the address customers write to."),
    default_queue: str = typer.Option(None, "--default-queue", parser=QUEUE,
                                      help="Default queue: where new "
                                      "tickets go that no --route matches (general).",
                                      rich_help_panel=ROUTING),
    routes: list[str] = typer.Option(None, "--route", metavar="QUEUE:KEYWORD,…", help="Additional "
                                     "routing: a new ticket whose subject has one of the "
                                     "keywords goes to QUEUE (repeatable; the first match "
                                     "wins).", rich_help_panel=ROUTING),
    schedule: str = typer.Option(None, "--schedule", parser=SCHEDULE,
                                 help='How often `run` syncs: "5m", cron.'),
    additional_email: str = typer.Option(None, "--additional-email", help="Additional e-mail: "
                                         "sends when the main mailbox is closed to external "
                                         "connections.", rich_help_panel=CARD),
    from_name: str = typer.Option(None, "--from-name", help="From (name): the company, person "
                                  "or channel name clients see.", rich_help_panel=CARD),
    from_email: str = typer.Option(None, "--from-email", help="From email: the address "
                                   "replies are sent from (default: the additional, else the "
                                   "main e-mail).", rich_help_panel=CARD),
    bcc: str = typer.Option(None, "--bcc", help="Blind carbon copy: gets a hidden copy of every "
                            "outgoing mail (for servers that keep no Sent copy).",
                            rich_help_panel=CARD),
    signature: str = typer.Option(None, "--signature", help="Signature: the channel's common "
                                  "signature under replies; an agent's personal one comes "
                                  "first.", rich_help_panel=CARD),
    use_common_signature: bool = typer.Option(None, "--use-common-signature/"
                                              "--no-use-common-signature", help="Use a common "
                                              "signature: agents without a personal one sign "
                                              "with --signature.", rich_help_panel=CARD),
    quoting: str = typer.Option(None, "--quoting", help="Quoting: none (don't use), "
                                "send_to_client (history in the mail only) or display_and_send "
                                "(in the ticket and the mail; the default).",
                                rich_help_panel=CARD),
    forward_creates_ticket: bool = typer.Option(None, "--forward-creates-ticket/"
                                                "--no-forward-creates-ticket", help="Forwarding "
                                                "— a new ticket: a forward opens a new ticket "
                                                "(the default), or stays in its own.",
                                                rich_help_panel=CARD),
    no_messages_hours: float = typer.Option(None, "--no-messages-hours", parser=number(
        "--no-messages-hours", 0, 24 * 365, "HOURS"), help="No "
                                            "messages (h): alert when nothing arrived for this "
                                            "many hours (0: off, the default).",
                                            rich_help_panel=CARD),
    owner_aliases: list[str] = typer.Option(None, "--owner-alias", help="Another address of "
                                            "the owner (repeatable).", rich_help_panel=MODES_PANEL),
    window_hours: float = typer.Option(None, "--window-hours", parser=number(
        "--window-hours", 1, 24 * 90, "HOURS"), help="Engagements: how far "
                                       "back each run looks (24).", rich_help_panel=MODES_PANEL),
    agent: str = typer.Option(None, "--agent", help="Sales: the agent whose My Inbox gets "
                              "what is not matched.", rich_help_panel=MODES_PANEL),
    matching: bool = typer.Option(None, "--matching/--no-matching", help="Sales: Enable Email "
                                  "matching (the default), or all to My Inbox.",
                                  rich_help_panel=MODES_PANEL),
    match_to: str = typer.Option(None, "--match-to", help="Sales: emails are matched to "
                                 "opportunities (the default) or projects.",
                                 rich_help_panel=MODES_PANEL),
    matching_type: str = typer.Option(None, "--matching-type", help="Sales: "
                                      "address_and_subject (the default) or domain.",
                                      rich_help_panel=MODES_PANEL),
    import_sent_items: bool = typer.Option(None, "--import-sent-items/--no-import-sent-items",
                                           help="Sales: also file the owner's sent mail.",
                                           rich_help_panel=MODES_PANEL),
    hide_email_chain: bool = typer.Option(None, "--hide-email-chain/--no-hide-email-chain",
                                          help="Sales: mail that updates an opportunity keeps "
                                          "only its new part.", rich_help_panel=MODES_PANEL),
    settings: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Any other "
                                       "channel key, read as by `channels set` (repeatable), "
                                       "e.g. --set incoming.max_message_mb=20."),
    skip_test: bool = typer.Option(False, "--skip-test", help="Write the channel without "
                                   "testing the connection first."),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt; use flags/defaults."),
) -> None:
    """Add a channel (a wizard on a terminal; every prompt is also a flag). The connection is
    tested before anything is written."""
    interactive = not no_input and sys.stdin.isatty()
    path = state(ctx).path
    name = _ask(name, "Channel name", None, interactive, lambda v: channels.new_name(path, v))
    if not name:
        raise UsageError("a channel needs a name", "pass --name NAME")
    entry: dict[str, Any] = {
        "name": name,
        "mode": _ask(mode, f"Mode ({'/'.join(MODES)})", "tickets", interactive, MODE),
    }
    provider = providers.lookup(email) if email else None
    guessing = bool(email) and provider is None and host is None and incoming in (None, "imap")
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
    kind = _ask(incoming, "Incoming connection (drop/imap/m365)", "imap" if email else "drop",
                interactive, INCOMING_KINDS)
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
        entry["incoming"] = _m365_incoming(path, interactive, app,
                                           mailbox or ([email] if email else []))
        main_default = email or entry["incoming"]["mailboxes"][0]
    else:
        entry["incoming"] = {"type": kind}
        if spool is not None:
            entry["incoming"]["spool"] = str(spool.expanduser().resolve())
        main_default = ""
    for key, value, prompt, default, check in (
        ("main_email", main_email, "Main e-mail address (blank: none)", main_default,
         _optional(ADDRESS)),
        ("default_queue", default_queue, "Default queue", "general", QUEUE),
        ("schedule", schedule, "Schedule (blank: mode default)", "", _optional(SCHEDULE)),
    ):
        answer = _ask(value, prompt, default, interactive, check)
        if answer:
            entry[key] = answer
    out_kind = outgoing or ("smtp" if kind == "imap" and (email or smtp_host) and not no_outgoing
                            else "none")
    if out_kind != "none":
        entry["outgoing"] = _outgoing(out_kind, entry, provider, email, app, smtp_host,
                                      smtp_security, smtp_port)
    _card(ctx.params, entry)
    if entry["mode"] == "engagements" and not _owner_known(entry):
        _ask_owner(entry, interactive)
    if not skip_test and kind != "drop":
        note(f"testing the {kind} connection…")
    if guessing and kind == "imap" and host is None:
        added = channels.add_first_working(
            path, [_with_servers(entry, c, smtp_host) for c in candidates])
    else:
        added = channels.add_channel(path, entry, test=not skip_test)
    note(f"added channel {added.name} to {path}")
    if added.incoming["type"] == "drop":
        note(f"deliver mail into {added.spool}/new (Maildir), "
             f"or pipe it to `mailbridge ingest {added.name}`")
    else:
        note(f"next: `mailbridge sync {added.name}`")


def _outgoing(kind: str, entry: dict[str, Any], provider: providers.Provider | None,
              email: str | None, app: str | None, smtp_host: str | None,
              smtp_security: str | None, smtp_port: int | None) -> dict[str, Any]:
    incoming = entry["incoming"]
    if kind == "sendmail":
        return {"type": "sendmail"}
    if kind == "m365":
        app = app or incoming.get("app")
        sender = email or entry.get("main_email") or next(iter(incoming.get("mailboxes", [])),
                                                          None)
        if not app or not sender:
            raise UsageError("a Microsoft 365 outgoing connection needs an app and a mailbox",
                             "pass --app NAME and --email ADDRESS (the mailbox it sends as)")
        return {"type": "m365", "app": app, "mailbox": sender}
    if kind != "smtp":
        raise UsageError(f"outgoing connection must be one of smtp, sendmail, m365, none, "
                         f"not {kind!r}")
    smtp = provider.smtp if provider else None
    host = smtp_host or (smtp.host if smtp else incoming.get("host"))
    if not host:
        raise UsageError("an SMTP outgoing connection needs a host", "pass --smtp-host HOST")
    security = smtp_security or (smtp.security if smtp else "starttls")
    login = {k: incoming[k] for k in ("username", "password") if k in incoming}
    return {"type": "smtp", "host": host,
            "port": smtp_port or (smtp.port if smtp else SMTP_PORTS[security]),
            "security": security, **login, **({"from_email": email} if email else {})}


def _card(params: dict[str, Any], entry: dict[str, Any]) -> None:
    """Put the flags named after a channel key (--bcc: bcc, --owner-alias: owner_aliases…)
    where the schema has that key: on the channel, or on its outgoing connection; then the
    routes and every --set."""
    for key, value in params.items():
        if value is None or isinstance(value, str | list | tuple) and not value or key in entry:
            continue
        if isinstance(value, list | tuple):
            value = list(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)  # 24, not 24.0
        if key in CHANNEL:
            entry[key] = value
        elif key in SENDER_KEYS:
            if "outgoing" not in entry:
                raise UsageError(f"--{key.replace('_', '-')} is for the outgoing connection",
                                 "pass --outgoing sendmail, or --smtp-host HOST (or --email) "
                                 "for SMTP")
            entry["outgoing"][key] = value
    if params.get("routes"):
        entry["routes"] = [_route(text) for text in params["routes"]]
    for setting in params.get("settings") or ():
        key, sep, word = setting.partition("=")
        if not sep:
            raise UsageError(f"--set {setting}: not KEY=VALUE", "e.g. --set schedule=15m")
        channel_keys.assign(entry, key.strip(), word)


def _route(text: str) -> dict[str, Any]:
    queue, _, words = text.partition(":")
    keywords = [w.strip() for w in words.split(",") if w.strip()]
    if not queue.strip() or not keywords:
        raise UsageError(f"--route {text}: not QUEUE:KEYWORD,KEYWORD…",
                         'e.g. --route "billing:invoice,refund"')
    return {"queue": queue.strip(), "keywords": keywords}


def _owner_known(entry: dict[str, Any]) -> bool:
    """Whether the channel's owner is given or can be taken from its mailbox (a Microsoft
    365 mailbox, an IMAP login that is an address, main_email)."""
    incoming = entry["incoming"]
    return bool(entry.get("owner") or incoming.get("mailboxes")
                or default_owner(incoming.get("username"), entry.get("main_email")))


def _ask_owner(entry: dict[str, Any], interactive: bool) -> None:
    """Engagements are mail between the owner and contacts: a channel without an owner
    could never run, so ask (on a terminal) or refuse with the flag to pass."""
    answer = _ask(None, "The mailbox owner's address", None, interactive, ADDRESS)
    if not answer:
        raise UsageError(f"channel {entry['name']}: engagements need the mailbox owner's "
                         "address, and neither --email, an address as --username nor "
                         "--main-email gives one", "pass --owner ADDRESS")
    entry["owner"] = answer


def _with_servers(entry: dict[str, Any], candidate: providers.Provider,
                  smtp_host: str | None) -> dict[str, Any]:
    """The entry with a guessed provider's IMAP (and SMTP) servers put in."""
    out = {**entry, "incoming": {**entry["incoming"], "host": candidate.imap.host,
                                 "port": candidate.imap.port,
                                 "security": candidate.imap.security}}
    if entry.get("outgoing", {}).get("type") == "smtp" and smtp_host is None:
        out["outgoing"] = {**entry["outgoing"], "host": candidate.smtp.host,
                           "port": candidate.smtp.port, "security": candidate.smtp.security}
    return out


def _m365_incoming(path: Path, interactive: bool, app: str | None, mailboxes: list[str]
                   ) -> dict[str, Any]:
    known = channels.app_names(path)
    if not known:
        raise UsageError("the config has no [[m365]] app entry for a Microsoft 365 channel to "
                         "sign in with", "add one (`mailbridge init --example` shows its keys), "
                         "then add the channel")
    app = _ask(app, "Microsoft 365 app (an [[m365]] name in the config)", None, interactive,
               lambda v: pick("[[m365]] app", v, known))
    if not app:
        raise UsageError("a Microsoft 365 channel needs an app", "pass --app NAME")
    if not mailboxes:
        mailboxes = _ask(None, "Mailboxes (comma-separated)", None, interactive, _addresses) or []
    if not mailboxes:
        raise UsageError("a Microsoft 365 channel needs at least one mailbox",
                         "pass --mailbox ADDRESS (repeat for several)")
    return {"type": "m365", "app": app, "mailboxes": mailboxes}


def _imap_incoming(name: str, interactive: bool, host: str | None, security: str | None,
                   port: int | None, username: str | None, password: str | None,
                   folders: str | None, ca_file: Path | None) -> dict[str, Any]:
    host = _ask(host, "IMAP host", None, interactive, HOST)
    if not host:
        raise UsageError("an IMAP channel needs a host", "pass --host HOST")
    security = _ask(security, "Security (ssl/starttls/none)", "ssl", interactive, SECURITY)
    port = _ask(port, "Port", DEFAULT_PORTS[security], interactive, PORT)
    username = _ask(username, "Username", None, interactive, USERNAME)
    if not username:
        raise UsageError("an IMAP channel needs a username", "pass --username NAME")
    if password is not None:
        ref = channel_keys.secret_ref(password)
    elif interactive:
        ref = _password(name)
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


def _password(name: str) -> dict[str, Any]:
    """The password, kept in the OS keyring; where no keyring is usable (a headless host),
    a reference to where it is kept instead, which must give a password now."""
    try:
        secrets_service.check_keyring()
    except MailbridgeError as exc:
        note(f"{exc.message}, so the password cannot be kept there. Give a reference to where "
             "it is kept instead: env:VAR (an environment variable), file:PATH (a file only "
             "mailbridge's user can read, such as a systemd credential) or command:PROGRAM "
             "ARGS (a password manager, e.g. command:pass show mail/desk)")
        return _ask(None, "Password reference", None, True, _working_reference)
    ref = {"keyring": f"mailbridge/{name}"}
    for _ in range(ATTEMPTS):
        secret = typer.prompt("Password (kept in the OS keyring)", hide_input=True, err=True)
        try:
            secrets_service.set_secret(ref["keyring"], secret)
            return ref
        except MailbridgeError as exc:
            note(f"{exc.message}; try again")
    raise UsageError(f"no password taken after {ATTEMPTS} tries")


def _working_reference(text: str) -> dict[str, Any]:
    ref = channel_keys.secret_ref(text.strip())
    secrets_service.check_reference(ref)
    return ref


def demo_cmd(
    ctx: typer.Context,
    directory: Path = typer.Option(None, "--dir", help="A new or empty folder for the demo "
                                   "(default: a new temporary folder)."),
) -> None:
    """Sync the sample mail shipped with mailbridge into a throwaway store and list the tickets."""
    config = demo.create_demo(directory)
    run = sync.sync(config, [], CliReporter(state(ctx).verbosity))
    emit(list_tickets(config), None, TICKET_COLUMNS, title="demo tickets")
    note(f"demo store: {config.store}")
    with_config = [*program(), "--config", str(config.path)]
    note(f"explore it: {shell_line([*with_config, 'tickets', 'show', '1'])}")
    note(f"remove it when done: {shell_line(['rm', '-r', str(config.path.parent)])}")
    code = sync.exit_code(run.channels, run.sends)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("add-channel")(add_channel)
    app.command("demo")(demo_cmd)
