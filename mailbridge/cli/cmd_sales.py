"""Sales mode: `opportunities …` and the agents' `inbox …` (My Inbox). Services are imported
inside the commands (see cmd_outgoing.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mailbridge.cli import editor
from mailbridge.cli.cmd_outgoing import ATTACH_HELP, EDIT, FILE, FILE_HELP, MESSAGE
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
)
from mailbridge.cli.pages import echo_message
from mailbridge.cli.params import ID, STATUS, acting_agent
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line, print_text
from mailbridge.errors import EXIT_PARTIAL, UsageError
from mailbridge.services.briefs import Brief

if TYPE_CHECKING:
    from mailbridge.services.opportunity_mail import Queued, QuotePlan

OPPORTUNITY_COLUMNS = ("id", "status", "project", "type", "summary", "contact_email", "client",
                       "agent", "updated_at")
OPPORTUNITY_TABLE = {"id": "id", "status": "status", "project": "project",
                     "summary": "summary", "contact_email": "contact", "client": "client",
                     "agent": "agent", "updated_at": "updated"}
INBOX_COLUMNS = ("id", "agent", "from", "subject", "created_at")
NOTE_COLUMNS = ("id", "client", "created_at", "message", "date", "from", "subject")
NOTE_TABLE = {"id": "id", "client": "client", "created_at": "noted", "from": "from",
              "subject": "subject", "message": "message"}

ATTACH = typer.Option(None, "--attach", help=ATTACH_HELP)
AS_OPTION = acting_agent("The acting agent, whose own sales mailbox sends the mail")

opportunities_group = typer.Typer(help="Opportunities and projects mail is matched to.",
                                  no_args_is_help=True)
types_group = typer.Typer(help="Opportunity types (exclude some from matching).",
                          no_args_is_help=True)
inbox_group = typer.Typer(help="My Inbox: sales mail no opportunity took.", no_args_is_help=True)
notes_group = typer.Typer(help="CRM notes: mail kept for a client (`inbox note`).",
                          no_args_is_help=True)


@opportunities_group.command("add")
def add(
    ctx: typer.Context,
    summary: str = typer.Option(..., "--summary", help="What it is about; address_and_subject "
                                "matching compares it with the mail's subject."),
    contact: str = typer.Option(..., "--contact", help="The contact's address."),
    client: str = typer.Option("", "--client", help="Client name."),
    kind: str = typer.Option("", "--type", help="Opportunity type."),
    project: bool = typer.Option(False, "--project", help="A project, not an opportunity."),
    agent: str = typer.Option("", "--agent", help="Agent who owns it."),
) -> None:
    """Add an open opportunity (or project)."""
    from mailbridge.services import sales

    made = sales.add_opportunity(state(ctx).config(), summary, contact, client, kind, project,
                                 agent)
    note(f"{'project' if project else 'opportunity'} #{made} added")


@opportunities_group.command("list")
def list_cmd(
    ctx: typer.Context,
    status: str = typer.Option("open", "--status", parser=STATUS,
                               help="open, closed or all."),
    projects: bool = typer.Option(None, "--projects/--opportunities",
                                  help="Only projects, or only opportunities (default: both)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Opportunities and projects, oldest first."""
    from mailbridge.services import sales

    emit(sales.list_opportunities(state(ctx).config(), None if status == "all" else status,
                                  projects), fmt, OPPORTUNITY_COLUMNS, table=OPPORTUNITY_TABLE)


@opportunities_group.command("search")
def search_cmd(
    ctx: typer.Context,
    query: list[str] = QUERY,
    status: str = typer.Option("all", "--status", parser=STATUS,
                               help="open, closed or all (the default)."),
    projects: bool = typer.Option(None, "--projects/--opportunities",
                                  help="Only projects, or only opportunities (default: both)."),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Search opportunities and projects by the mail matched to them (subject, text, sender,
    attachment names), best match first, each with a snippet. JSON fields: id, status,
    project, type, client, contact_email, summary, updated_at, message, score, snippet."""
    from mailbridge.services import search

    found = search.search_opportunities(state(ctx).config(), " ".join(query),
                                        None if status == "all" else status, projects,
                                        row_limit(limit, every))
    emit_hits(found, fmt, search.OPPORTUNITY_COLUMNS, OPPORTUNITY_HIT_TABLE, "opportunities")


OPPORTUNITY_HIT_TABLE = {"id": "id", "status": "status", "project": "project",
                         "summary": "summary", "contact_email": "contact",
                         "updated_at": "updated"}


@opportunities_group.command("show")
def show(ctx: typer.Context, opportunity: int = typer.Argument(..., parser=ID),
         fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """One opportunity and the mail matched to it, in order."""
    from mailbridge.services import sales

    found = sales.show_opportunity(state(ctx).config(), opportunity)
    emit_record(found, fmt, lambda: _page(found))


def _page(found: dict) -> None:
    kind = "project" if found["project"] else "opportunity"
    print_line(f"{kind} #{found['id']} [{found['status']}] {found['summary']}")
    print_line(f"contact: {found['contact_email']}  client: {found['client'] or '-'}  "
               f"type: {found['type'] or '-'}  agent: {found['agent'] or '-'}")
    for m in found["messages"]:
        print_line("")
        print_line(f"--- message {m['message']} ({m['how']}) {m['date']} from {m['from']}: "
                   f"{m['subject']}")
        if m["note"]:
            print_line(f"note: {m['note']}")
        print_text(m["text"].rstrip())


@opportunities_group.command("reply")
def reply(
    ctx: typer.Context,
    opportunity: int = typer.Argument(..., parser=ID, help="Opportunity id."),
    message: str = MESSAGE,
    file: Path = FILE,
    edit: bool = EDIT,
    agent: str = AS_OPTION,
    attach: list[Path] = ATTACH,
) -> None:
    """Answer the opportunity's latest incoming mail from the acting agent's own sales
    mailbox (a Microsoft 365 sales mailbox whose agent they are, as that mailbox; an IMAP
    sales channel's, over its [channel.outgoing]), threaded so the answer comes back to the
    opportunity. Queued in the outbox; `sync` or `run` sends it. An agent without a sales
    mailbox cannot send; nobody sends from another agent's."""
    from mailbridge.services import opportunity_mail

    config = state(ctx).config()
    attachments = tuple(attach or ())
    brief = opportunity_mail.plan_reply(config, opportunity, agent, attachments)
    _send_text(ctx, brief, "Reply on", message, file, edit, lambda text: opportunity_mail.reply(
        config, opportunity, text, agent, attachments))


@opportunities_group.command("mail")
def mail(
    ctx: typer.Context,
    opportunity: int = typer.Argument(..., parser=ID, help="Opportunity id."),
    to: list[str] = typer.Option(None, "--to", help="Recipient (repeatable; default: the "
                                 "opportunity's contact)."),
    cc: list[str] = typer.Option(None, "--cc", help="Also to this address (repeatable)."),
    subject: str = typer.Option(None, "--subject", help="Default: the opportunity's summary."),
    message: str = MESSAGE,
    file: Path = FILE,
    edit: bool = EDIT,
    agent: str = AS_OPTION,
    attach: list[Path] = ATTACH,
) -> None:
    """Start a new mail on the opportunity from the acting agent's own sales mailbox, one
    mail to each recipient; the answer comes back to the opportunity. Queued in the outbox;
    `sync` or `run` sends it."""
    from mailbridge.services import opportunity_mail

    config = state(ctx).config()
    attachments = tuple(attach or ())
    to_list, cc_list = (tuple(a.strip() for a in given or ()) for given in (to, cc))
    brief = opportunity_mail.plan_mail(config, opportunity, agent, to_list, cc_list,
                                       attachments)
    _send_text(ctx, brief, "Mail on", message, file, edit, lambda text: opportunity_mail.mail(
        config, opportunity, text, agent, subject, to_list, cc_list, attachments))


@opportunities_group.command("quote")
def quote(
    ctx: typer.Context,
    opportunity: int = typer.Argument(..., parser=ID, help="Opportunity id."),
    file: Path = typer.Option(..., "--file", help="The quotation (a PDF, say), attached."),
    subject: str = typer.Option(None, "--subject", help="Default: \"Quotation: <the "
                                "opportunity's summary>\"."),
    message: str = typer.Option(None, "--message", "-m", help="The text (default: a line "
                                "saying the quotation is attached)."),
    text_file: Path = typer.Option(None, "--file-text", help=FILE_HELP),
    edit: bool = typer.Option(False, "--edit", "-e", help="Write the text in the editor, "
                              "starting from --message, --file-text or the default text."),
    sender: str = typer.Option(None, "--from", metavar="ADDR", help="Send from this sales "
                               "mailbox: wins over the client's quotation mailbox and "
                               "[sales]; your own, one no agent is named for, or one the "
                               "settings name for quotations."),
    agent: str = acting_agent(),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which mailbox would send it "
                                 "and why; queue nothing."),
    fmt: Format = SHOW_FORMAT_OPTION,
) -> None:
    """Mail a quotation to the opportunity's contact, the file attached, from the mailbox
    the quotation rules pick (first that applies): --from; the client's quotation mailbox
    (`clients set --quotation-mailbox`); [sales] quotation_from = ADDR; the acting agent's
    own sales mailbox; [sales] fallback_mailbox. Queued in the outbox; `sync` or `run`
    sends it; the answer comes back to the opportunity. --format applies to --dry-run (JSON
    fields: opportunity, agent, from, rule, reason, to, subject, file)."""
    from mailbridge.services import opportunity_mail

    if fmt is not None and not dry_run:
        raise UsageError("--format applies to --dry-run only", "add --dry-run, or leave "
                         "--format out")
    config = state(ctx).config()
    plan = opportunity_mail.plan_quote(config, opportunity, agent, file, sender, subject)
    if dry_run:
        _dry_run(plan, fmt)
        return
    note(f"opportunity #{opportunity}: quotation from {plan.sender.address} "
         f"({plan.sender.reason})")
    start = plan.text if message is None and text_file is None else message
    _send_text(ctx, plan.brief, "Quotation on", start, text_file, edit,
               lambda text: opportunity_mail.quote(config, opportunity, text, agent, file,
                                                   sender, subject))


def _dry_run(plan: QuotePlan, fmt: Format | None) -> None:
    record = {"opportunity": plan.brief.ticket, "agent": plan.agent,
              "from": plan.sender.address, "rule": plan.sender.rule,
              "reason": plan.sender.reason, "to": list(plan.brief.recipients),
              "subject": plan.subject, "file": plan.file}

    def page() -> None:
        print_line(f"opportunity #{record['opportunity']}: the quotation ({plan.file}) would "
                   f"go from {plan.sender.address} to {', '.join(plan.brief.recipients)}")
        print_line(f"why: {plan.sender.reason}")
        print_line("nothing was queued (--dry-run)")
    emit_record(record, fmt, page)


def _send_text(ctx: typer.Context, brief: Brief, action: str, message: str | None,
               file: Path | None, edit: bool, queue: Callable[[str], Queued]) -> None:
    """Print the recipients, take the text (--message, --file, stdin or the editor), queue
    it; a text that cannot be queued is kept as a draft."""
    opportunity = brief.ticket
    note(f"opportunity #{opportunity}: {action.split()[0].lower()} to "
         f"{', '.join(brief.recipients)}")
    comments = editor.template(brief, action, [f"To: {', '.join(brief.recipients)} (one mail "
                                               "each)"], "an empty text cancels it",
                               noun="opportunity")
    text = editor.obtain("opportunity", brief, message, file, edit, comments)
    with editor.kept_on_failure(ctx, text, "opportunity", opportunity):
        queued = queue(text.value)
    note(f"opportunity #{opportunity}: from {queued.sent_from} ({queued.agent}), queued "
         f"for {', '.join(queued.recipients)} "
         f"(outbox {', '.join(f'#{i}' for i in queued.outbox)})")


def _set(ctx: typer.Context, opportunity: int, status: str) -> None:
    from mailbridge.services import sales

    previous = sales.set_status(state(ctx).config(), opportunity, status)
    note(f"opportunity #{opportunity}: {previous} → {status}")


@opportunities_group.command("close")
def close(ctx: typer.Context, opportunity: int = typer.Argument(..., parser=ID)) -> None:
    """Close it: closed ones are never matched."""
    _set(ctx, opportunity, "closed")


@opportunities_group.command("reopen")
def reopen(ctx: typer.Context, opportunity: int = typer.Argument(..., parser=ID)) -> None:
    """Reopen it."""
    _set(ctx, opportunity, "open")


@opportunities_group.command("import")
def import_cmd(ctx: typer.Context,
               path: Path = typer.Argument(..., help="CSV: summary, contact, client, type, "
                                           "project (yes/no)."),
               fmt: Format = FORMAT_OPTION) -> None:
    """Import opportunities from CSV; a line per row; exit 4 if a row was rejected."""
    from mailbridge.services import sales

    rows = sales.import_opportunities(state(ctx).config(), path)
    emit(rows, fmt, ("line", "id", "result", "reason"))
    if any(r["result"] == "rejected" for r in rows):
        raise typer.Exit(EXIT_PARTIAL)


@types_group.command("add")
def types_add(ctx: typer.Context, name: str = typer.Argument(...),
              exclude: bool = typer.Option(False, "--exclude-from-matching",
                                           help="Mail is never matched to these.")) -> None:
    """Add or change an opportunity type."""
    from mailbridge.services import sales

    sales.add_type(state(ctx).config(), name, exclude)
    note(f"type {name}{' (excluded from matching)' if exclude else ''}")


@types_group.command("list")
def types_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Opportunity types."""
    from mailbridge.services import sales

    emit(sales.list_types(state(ctx).config()), fmt, ("name", "exclude_from_matching"))


@inbox_group.command("list")
def inbox_list(ctx: typer.Context,
               agent: str = typer.Option(None, "--agent", help="Only this agent's."),
               limit: int = LIMIT_OPTION, every: bool = ALL_OPTION,
               fmt: Format = FORMAT_OPTION) -> None:
    """Mail waiting for manual handling, oldest first."""
    from mailbridge.services import sales

    found = sales.inbox(state(ctx).config(), agent, row_limit(limit, every))
    emit(found.rows, fmt, INBOX_COLUMNS, more=found.more)


@inbox_group.command("show")
def inbox_show(ctx: typer.Context, item: int = typer.Argument(..., parser=ID),
               fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """One My Inbox item: its mail and the client `inbox note` would file it to, and why.
    JSON fields: id, channel, agent, message, state, handled, created_at, suggestion
    (client, reason), mail (from_email, to, cc, subject, sent_at, text, attachments, …)."""
    from mailbridge.services import sales

    found = sales.inbox_show(state(ctx).config(), item)
    emit_record(found, fmt, lambda: _inbox_page(found))


def _inbox_page(found: dict) -> None:
    handled = f" ({found['handled']})" if found["handled"] else ""
    print_line(f"inbox #{found['id']} [{found['state']}]{handled} agent: {found['agent']}  "
               f"channel: {found['channel']}")
    suggested = found["suggestion"]
    print_line(f"suggested client: {suggested['client'] or '-'} ({suggested['reason']})")
    echo_message(found["mail"])


@inbox_group.command("assign")
def inbox_assign(ctx: typer.Context, item: int = typer.Argument(..., parser=ID),
                 opportunity: int = typer.Option(..., "--opportunity", parser=ID,
                                                 help="Opportunity to add it to.")) -> None:
    """Add the mail to an existing opportunity."""
    from mailbridge.services import sales

    sales.inbox_assign(state(ctx).config(), item, opportunity)
    note(f"inbox #{item} → opportunity #{opportunity}")


@inbox_group.command("new-opportunity")
def inbox_new(ctx: typer.Context, item: int = typer.Argument(..., parser=ID),
              project: bool = typer.Option(False, "--project", help="Open a project.")) -> None:
    """Open a new opportunity from the mail (its body as details, its sender as contact)."""
    from mailbridge.services import sales

    opened = sales.inbox_new_opportunity(state(ctx).config(), item, project)
    note(f"inbox #{item} → new opportunity #{opened}")


@inbox_group.command("note")
def inbox_note(ctx: typer.Context, item: int = typer.Argument(..., parser=ID),
               client: str = typer.Option(None, "--client", help="Client (default: the one "
                                          "`inbox show` suggests); one that exists, unless "
                                          "--create-client."),
               create: bool = typer.Option(False, "--create-client",
                                           help="Add the --client if it is new.")) -> None:
    """Keep the mail as a CRM note of a client (`notes list` and `clients show` list them)."""
    from mailbridge.services import sales

    chosen, created = sales.inbox_note(state(ctx).config(), item, client, create)
    if created:
        note(f"client {chosen} added")
    note(f"inbox #{item} → CRM note of {chosen}")


@inbox_group.command("delete")
def inbox_delete(ctx: typer.Context, item: int = typer.Argument(..., parser=ID),
                 agent: str = acting_agent("The agent you are, an administrator")) -> None:
    """Remove the mail from My Inbox (the stored copy stays). Only administrators may: the
    acting agent's role (`agents set NAME --admin`) decides."""
    from mailbridge.services import sales

    who = sales.inbox_delete(state(ctx).config(), item, agent)
    note(f"inbox #{item} deleted by {who}")


@notes_group.command("list")
def notes_list(
    ctx: typer.Context,
    client: str = typer.Option(None, "--client", help="Only this client's."),
    since: str = typer.Option(None, "--since", help="Only notes made since: 12h, 7d, 2w or a "
                              "date."),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """CRM notes, oldest first. JSON fields: id, client, created_at (when noted), message
    (`messages show` has it whole), date, from, subject."""
    from mailbridge.services import sales

    found = sales.list_notes(state(ctx).config(), client, since, row_limit(limit, every))
    emit(found.rows, fmt, NOTE_COLUMNS, table=NOTE_TABLE, more=found.more)


@notes_group.command("show")
def notes_show(ctx: typer.Context, note_id: int = typer.Argument(..., parser=ID, metavar="NOTE"),
               fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """One CRM note: its client and its mail. JSON fields: id, client, message, created_at,
    mail (from_email, to, cc, subject, sent_at, text, attachments, …)."""
    from mailbridge.services import sales

    found = sales.show_note(state(ctx).config(), note_id)

    def page() -> None:
        print_line(f"CRM note #{found['id']} of {found['client']}, {found['created_at']}")
        echo_message(found["mail"])
    emit_record(found, fmt, page)


def register(app: typer.Typer) -> None:
    opportunities_group.add_typer(types_group, name="types")
    app.add_typer(opportunities_group, name="opportunities")
    app.add_typer(inbox_group, name="inbox")
    app.add_typer(notes_group, name="notes")
