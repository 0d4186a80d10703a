"""Outgoing mail: `tickets reply/forward` (listed under `tickets` by cmd_tickets.py),
`outbox list/retry/cancel`, `agents …`.

The services are imported inside the commands, so each command loads only what it uses:
listing the outbox does not pay for composing mail."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from mailbridge.cli import editor
from mailbridge.cli.output import (
    ALL_OPTION,
    FORMAT_OPTION,
    LIMIT_OPTION,
    Format,
    emit,
    note,
    row_limit,
)
from mailbridge.cli.params import ADDRESS, AGENT, ID, acting_agent
from mailbridge.cli.state import state
from mailbridge.errors import UsageError
from mailbridge.services.briefs import Brief

OUTBOX_COLUMNS = ("id", "channel", "ticket", "kind", "recipients", "state", "attempts",
                  "last_error", "created_at", "sent_at", "opportunity", "campaign",
                  "not_before")
OUTBOX_TABLE = {"id": "id", "state": "state", "channel": "channel", "ticket": "ticket",
                "kind": "kind", "recipients": "to", "last_error": "error",
                "updated_at": "updated"}
AGENT_COLUMNS = ("name", "email", "admin", "notify_no_messages", "signature")

ATTACH_HELP = "A file to attach (repeatable)."
FILE_HELP = "Read the text from this file (a kept draft, for one)."
MESSAGE = typer.Option(None, "--message", "-m", help=editor.HELP)
FILE = typer.Option(None, "--file", help=FILE_HELP)
EDIT = typer.Option(False, "--edit", "-e", help=editor.EDIT_HELP)
SENDING_AGENT = acting_agent("The agent sending it, whose personal signature is used")


def reply(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    message: str = MESSAGE,
    file: Path = FILE,
    edit: bool = EDIT,
    agent: str = SENDING_AGENT,
    attach: list[Path] = typer.Option(None, "--attach", help=ATTACH_HELP),
    to: list[str] = typer.Option(None, "--to", help="Send to this address instead of the "
                                 "conversation's recipients (repeatable)."),
    cc: list[str] = typer.Option(None, "--cc", help="Also send to this address (repeatable)."),
    drop: list[str] = typer.Option(None, "--drop", help="Leave this address out (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Reply to a ticket an auto-reply or a "
                               "bounce opened without asking (scripts)."),
) -> None:
    """Queue a reply to everyone the client put on the conversation — the senders, To and Cc
    of every incoming mail of the ticket, less the channel's own addresses and automatic
    senders — one mail each; `sync` or `run` sends it. The recipients are printed first.

    Everything is checked before the editor opens; a text that still cannot be queued is kept
    as a draft (the line says where; --file takes it back). A reply to a closed ticket
    reopens it; a ticket an auto-reply or a bounce opened asks first (--force)."""
    from mailbridge.services import outgoing

    config = state(ctx).config()
    addressing = outgoing.Addressing(*(tuple(a.strip() for a in given or ())
                                       for given in (to, cc, drop)))
    attachments = tuple(attach or ())
    brief = outgoing.plan_reply(config, ticket, addressing, agent, attachments)
    _confirm_automatic(brief, force)
    note(f"ticket #{ticket}: reply to {', '.join(brief.recipients)}")
    reopens = ["The ticket is closed: this reply reopens it."] if brief.status == "closed" else []
    if reopens:
        note(f"ticket #{ticket} is closed; the reply reopens it")
    comments = editor.template(brief, "Reply to", [
        f"To: {', '.join(brief.recipients)} (one mail each)", *reopens],
        "an empty text cancels the reply")
    text = editor.obtain("reply", brief, message, file, edit, comments)
    with editor.kept_on_failure(ctx, text, "reply", ticket):
        queued = outgoing.reply(config, ticket, text.value, agent, attachments, brief.recipients)
    note(f"ticket #{queued.ticket}: reply queued for {', '.join(queued.recipients)} "
         f"(outbox {', '.join(f'#{i}' for i in queued.outbox)})")


def _confirm_automatic(brief: Brief, force: bool) -> None:
    """Answering an out-of-office reply or a bounce is rarely meant: ask on a terminal,
    refuse elsewhere unless --force."""
    if not brief.automatic or force:
        return
    what = "an auto-reply" if brief.kind == "auto_reply" else "a bounce"
    sender = f" from {brief.last.email}" if brief.last and brief.last.email else ""
    if not sys.stdin.isatty():
        raise UsageError(f"ticket #{brief.ticket} was opened by {what}{sender}, not a person",
                         "pass --force to reply anyway")
    typer.confirm(f"ticket #{brief.ticket} was opened by {what}{sender}, not a person; "
                  "reply anyway?", abort=True, err=True)


def forward(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    to: str = typer.Option(..., "--to", parser=ADDRESS,
                          help="Address to forward the conversation to."),
    message: str = MESSAGE,
    file: Path = FILE,
    edit: bool = EDIT,
    agent: str = SENDING_AGENT,
    attach: list[Path] = typer.Option(None, "--attach", help=ATTACH_HELP),
) -> None:
    """Queue the whole conversation to another address. With the channel's
    forward_creates_ticket (default), the forward opens a new ticket of its own; else it
    stays in this one (and reopens it when closed)."""
    from mailbridge.services import outgoing

    config = state(ctx).config()
    attachments = tuple(attach or ())
    brief = outgoing.plan_forward(config, ticket, agent, attachments)
    comments = editor.template(brief, "Forward of", [
        f"To: {to}, with the whole conversation"], "an empty text forwards without a note")
    text = editor.obtain("forward", brief, message, file, edit, comments, required=False)
    with editor.kept_on_failure(ctx, text, "forward", ticket):
        queued = outgoing.forward(config, ticket, to, text.value, agent, attachments)
    where = "new ticket" if queued.ticket != ticket else "ticket"
    note(f"{where} #{queued.ticket}: forward to {to} queued (outbox #{queued.outbox[0]})")


outbox_group = typer.Typer(help="Outgoing mail waiting, sent, failed or unknown.",
                           no_args_is_help=True)


@outbox_group.command("list")
def outbox_list(
    ctx: typer.Context,
    states: list[str] = typer.Option(None, "--state", help="pending, sending, sent, failed, "
                                     "unknown or cancelled (repeatable) (default: all)"),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The outbox, oldest first. `sending`: in flight, a running sync or `run` is handing it
    to the server. `unknown`: the connection broke (or the process died) after the message
    was handed over; it may have arrived, so it is never re-sent by itself."""
    from mailbridge.services import outgoing

    found = outgoing.list_outbox(state(ctx).config(), tuple(states or ()),
                                 row_limit(limit, every))
    emit(found.rows, fmt, OUTBOX_COLUMNS, table=OUTBOX_TABLE, more=found.more)


@outbox_group.command("retry")
def outbox_retry(ctx: typer.Context,
                 ids: list[int] = typer.Argument(..., parser=ID, metavar="ID",
                                                  help="Outbox row ids.")) -> None:
    """Send failed or unknown rows again at the next drain (unknown ones may double)."""
    from mailbridge.services import outgoing

    for row in outgoing.change_outbox(state(ctx).config(), ids, "retry"):
        note(f"outbox #{row['id']}: pending again")


@outbox_group.command("cancel")
def outbox_cancel(ctx: typer.Context,
                  ids: list[int] = typer.Argument(..., parser=ID, metavar="ID",
                                                   help="Outbox row ids.")) -> None:
    """Never send these rows."""
    from mailbridge.services import outgoing

    for row in outgoing.change_outbox(state(ctx).config(), ids, "cancel"):
        note(f"outbox #{row['id']}: cancelled")


agents_group = typer.Typer(help="Agents: signatures, alert mail and roles.",
                           no_args_is_help=True)
SIGNATURE = typer.Option(None, "--signature", help="Personal signature; it wins over the "
                         "channel's common one. Plain text, Markdown-like (**bold**, "
                         "[text](url)) or simple HTML.")
NOTIFY = typer.Option(None, "--notify-no-messages/--no-notify-no-messages",
                      help="Mail this agent when a channel goes quiet.")
ADMIN = typer.Option(None, "--admin/--no-admin", help="An administrator: may delete from My "
                     "Inbox (a new agent is not one).")


def _fields(email: str | None, signature: str | None, notify: bool | None,
            admin: bool | None) -> dict[str, Any]:
    """The options given, as the agent's fields."""
    given = {"email": email, "signature": signature, "notify_no_messages": notify,
             "admin": admin}
    return {field: value for field, value in given.items() if value is not None}


@agents_group.command("add")
def agents_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., parser=AGENT, help="Agent name, as used with --as."),
    email: str = typer.Option(..., "--email", parser=ADDRESS,
                              help="The agent's address (alert mail)."),
    signature: str = SIGNATURE, notify: bool = NOTIFY, admin: bool = ADMIN,
) -> None:
    """Add an agent, or change one (only the options given)."""
    from mailbridge.services import agents as agents_service

    added = agents_service.add(state(ctx).config(), name,
                               _fields(email, signature, notify, admin))
    note(f"agent {name} {'added' if added else 'updated'}")


@agents_group.command("set")
def agents_set(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name (see `mailbridge agents list`)."),
    email: str = typer.Option(None, "--email", parser=ADDRESS, help="The agent's address."),
    signature: str = SIGNATURE, notify: bool = NOTIFY, admin: bool = ADMIN,
) -> None:
    """Change an agent: only the options given (its role with --admin/--no-admin)."""
    from mailbridge.services import agents as agents_service

    fields = _fields(email, signature, notify, admin)
    found = agents_service.change(state(ctx).config(), name, fields)
    role = {True: ": an administrator", False: ": not an administrator"}
    note(f"agent {found} updated{role.get(fields.get('admin'), '')}")


@agents_group.command("list")
def agents_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Agents. JSON fields: name, email, signature, notify_no_messages, admin, created_at."""
    from mailbridge.services import agents as agents_service

    emit(agents_service.list_agents(state(ctx).config()), fmt, AGENT_COLUMNS)


@agents_group.command("remove")
def agents_remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Remove an agent (tickets and sent mail stay)."""
    from mailbridge.services import agents as agents_service

    note(f"agent {agents_service.remove(state(ctx).config(), name)} removed")


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_group, name="outbox")
    app.add_typer(agents_group, name="agents")
