"""Mail campaigns: `campaigns send/list/show`. The service is imported inside the commands
(see cmd_outgoing.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailbridge.cli.cmd_sales import AS_OPTION
from mailbridge.cli.output import (
    FORMAT_OPTION,
    SHOW_FORMAT_OPTION,
    Format,
    emit,
    emit_record,
    note,
    write,
)
from mailbridge.cli.params import ID
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line, print_text
from mailbridge.errors import UsageError

LIST_COLUMNS = ("id", "name", "agent", "sent_from", "subject", "total", "queued", "sending",
                "sent", "failed", "unknown", "cancelled", "created_at")
LIST_TABLE = {"id": "id", "name": "name", "agent": "agent", "total": "mails",
              "queued": "queued", "sent": "sent", "failed": "failed", "unknown": "unknown",
              "created_at": "created"}
RECIPIENT_COLUMNS = ("campaign", "email", "name", "client", "state", "outbox", "not_before",
                     "sent_at", "last_error")
RECIPIENT_TABLE = {"email": "to", "name": "name", "client": "client", "state": "state",
                   "outbox": "outbox", "not_before": "not before", "sent_at": "sent",
                   "last_error": "error"}

campaigns_group = typer.Typer(help="Mail campaigns from the agents' own sales mailboxes.",
                              no_args_is_help=True)


@campaigns_group.command("send")
def send(
    ctx: typer.Context,
    subject: str = typer.Option(..., "--subject", help="The subject (placeholders as in "
                                "the text)."),
    body_file: Path = typer.Option(..., "--body-file", help="The text, UTF-8: the words "
                                   "name and client in curly braces are filled per "
                                   "recipient; a doubled brace is a brace."),
    client: str = typer.Option(None, "--client", help="Mail every contact of this client."),
    contacts: Path = typer.Option(None, "--contacts", help="Mail the rows of this CSV: a "
                                  "header, then email[,name[,client]]."),
    agent: str = AS_OPTION,
    name: str = typer.Option(None, "--name", help="The campaign's name (default: the "
                             "subject); run again under it, only those not mailed yet are."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check everything and show the "
                                 "first mail; queue nothing."),
) -> None:
    """Queue one mail per contact from the acting agent's own sales mailbox, through the
    outbox; `sync` or `run` sends them at the pace of [campaigns] per_minute and per_day.
    Everything is checked before anything is queued; a rerun of the campaign (same name)
    queues only the contacts it has not queued yet."""
    from mailbridge.services import campaigns

    if (client is None) == (contacts is None):
        raise UsageError("give one of --client NAME and --contacts FILE.csv")
    done = campaigns.send(state(ctx).config(), subject, body_file, agent, client, contacts,
                          name, dry_run)
    plan = done if isinstance(done, campaigns.Plan) else done.plan
    which = f"campaign {plan.name!r}" + (f" (#{plan.campaign})" if plan.campaign else "")
    already = f"; {plan.already} queued before" if plan.already else ""
    if not plan.recipients or (isinstance(done, campaigns.Sent) and not done.queued):
        note(f"{which}: nothing to queue{already}")
    elif isinstance(done, campaigns.Plan):
        note(f"{which}: would queue {_mails(len(plan.recipients))} from {plan.sent_from} "
             f"({plan.agent}){already}; nothing was queued (--dry-run). The first:")
        print_line(f"To: {plan.recipients[0].email}")
        print_line(f"Subject: {plan.preview[0]}")
        print_line("")
        print_text(plan.preview[1].rstrip())
    else:
        note(f"campaign {plan.name!r} (#{done.campaign}): {_mails(done.queued)} queued from "
             f"{plan.sent_from} ({plan.agent}){already}; they go from {done.first} to "
             f"{done.last} at the earliest (`mailbridge campaigns show {done.campaign}`)")


def _mails(count: int) -> str:
    return f"{count} mail" + ("" if count == 1 else "s")


@campaigns_group.command("list")
def list_(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every campaign, newest first, with how many of its mails are queued, sent, failed or
    unknown."""
    from mailbridge.services import campaigns

    emit(campaigns.list_campaigns(state(ctx).config()), fmt, LIST_COLUMNS, table=LIST_TABLE)


@campaigns_group.command("show")
def show(ctx: typer.Context, campaign: int = typer.Argument(..., parser=ID),
         fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """The campaign and each recipient's result (queued, sending, sent, failed, unknown,
    cancelled) from its outbox row. json: the campaign with `recipients`; jsonl, csv and
    tsv: one row per recipient."""
    from mailbridge.services import campaigns

    found = campaigns.show(state(ctx).config(), campaign)
    rows = [{"campaign": found["id"], **r} for r in found["recipients"]]
    if fmt in (None, Format.table, Format.json):
        emit_record(found, fmt, lambda: _page(found, rows))
    else:
        emit(rows, fmt, RECIPIENT_COLUMNS)


def _page(found: dict, rows: list[dict]) -> None:
    print_line(f"campaign #{found['id']} {found['name']!r}: from {found['sent_from']} "
               f"({found['agent']}), {found['created_at']}")
    print_line(f"subject: {found['subject']}")
    print_line(", ".join(f"{found[s]} {s}" for s in ("queued", "sending", "sent", "failed",
                                                      "unknown", "cancelled") if found[s])
               or "no mails")
    print_line("")
    write(rows, Format.table, RECIPIENT_COLUMNS, table=RECIPIENT_TABLE)


def register(app: typer.Typer) -> None:
    app.add_typer(campaigns_group, name="campaigns")
