"""`tickets list/show/comment/move/close/reopen` (reply and forward: cmd_outgoing.py;
assign, pending, priority: cmd_ticket_work.py; attachments: cmd_attachments.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailbridge.cli import cmd_ticket_work, editor
from mailbridge.cli.cmd_attachments import attachments_cmd, write_html
from mailbridge.cli.cmd_outgoing import EDIT, FILE, MESSAGE, forward, reply
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
from mailbridge.cli.pages import echo_message, write_raw
from mailbridge.cli.params import AGENT, ID, PRIORITY, QUEUE, SORT, TICKET_STATUS, acting_agent
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line, print_text
from mailbridge.services import queries, search, triage

group = typer.Typer(help="Read, answer, comment on, assign, move, prioritise, set pending, "
                         "close and reopen tickets; get their attachments out.",
                    no_args_is_help=True)


# Filters `tickets list` and `tickets search` share.
ASSIGNEE_OPTION = typer.Option(None, "--assignee", parser=AGENT, metavar="AGENT|me|none",
                               help="Only those of this agent, yours (me), or nobody's.")
PRIORITY_OPTION = typer.Option(None, "--priority", parser=PRIORITY,
                               help="Only those of this priority.")
ME_OPTION = acting_agent("Who `me` is")


# What a table shows of a ticket on a terminal; --format tsv or json has every field.
TICKET_TABLE = {"id": "id", "status": "status", "priority": "prio", "queue": "queue",
                "assignee": "assignee", "requester_email": "from", "subject": "subject",
                "message_count": "msgs", "updated_at": "updated"}


@group.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    queue: str = typer.Option(None, "--queue", help="Only this queue."),
    status: str = typer.Option("open", "--status", parser=TICKET_STATUS,
                                help="open (an agent's turn), pending (waiting for the "
                                     "customer), closed or all."),
    assignee: str = ASSIGNEE_OPTION,
    priority: str = PRIORITY_OPTION,
    sort: str = typer.Option("id", "--sort", parser=SORT,
                             help="id (oldest first), created or updated (newest first), "
                                  "priority (most urgent first, then last updated)."),
    agent: str = ME_OPTION,
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List tickets (by default the open ones, oldest first). JSON fields: id, channel,
    queue, status, priority, assignee (null: nobody), kind, requester_email, subject,
    message_count, created_at, updated_at."""
    found = queries.list_tickets(state(ctx).config(), channel=channel, queue=queue,
                                 status=None if status == "all" else status,
                                 limit=row_limit(limit, every), assignee=assignee,
                                 priority=priority, sort=sort, agent=agent)
    emit(found.rows, fmt, queries.TICKET_COLUMNS, table=TICKET_TABLE, more=found.more)


# What a table shows of a search hit (its snippet follows on a line of its own).
HIT_TABLE = {"id": "id", "status": "status", "queue": "queue", "requester_email": "from",
             "subject": "subject", "updated_at": "updated"}


@group.command("search")
def search_cmd(
    ctx: typer.Context,
    query: list[str] = QUERY,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    queue: str = typer.Option(None, "--queue", help="Only this queue."),
    status: str = typer.Option("all", "--status", parser=TICKET_STATUS,
                                help="open, pending, closed or all (the default)."),
    assignee: str = ASSIGNEE_OPTION,
    priority: str = PRIORITY_OPTION,
    since: str = typer.Option(None, "--since", help="Only tickets updated since: 12h, 7d, 2w "
                              "or a date."),
    agent: str = ME_OPTION,
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Search tickets by the subject, text, sender (name or address) and attachment names of
    their messages, best match first, each with a snippet of its best message; the filters
    are those of `tickets list`. JSON fields: id, channel, queue, status, requester_email,
    subject, updated_at, message (the best matching message), score, snippet."""
    found = search.search_tickets(state(ctx).config(), " ".join(query), channel=channel,
                                  queue=queue, status=None if status == "all" else status,
                                  since=since, limit=row_limit(limit, every),
                                  assignee=assignee, priority=priority, agent=agent)
    emit_hits(found, fmt, search.TICKET_COLUMNS, HIT_TABLE, "tickets")


@group.command("show")
def show(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    fmt: Format = SHOW_FORMAT_OPTION,
    raw: bool = typer.Option(False, "--raw", help="Write the stored raw message bytes (an mbox "
                             "when the ticket has several messages)."),
    html: bool = typer.Option(False, "--html", help="Write the HTML part of its messages, for "
                              "a browser (on a terminal: as text, escapes shown)."),
) -> None:
    """Show a ticket and its messages."""
    config = state(ctx).config()
    if raw:
        write_raw(queries.raw_messages(config, ticket))
        return
    if html:
        write_html(queries.html_parts(config, ticket))
        return
    data = queries.show_ticket(config, ticket)
    emit_record(data, fmt, lambda: _page(data))


def _page(data: dict) -> None:
    print_line(f"#{data['id']} [{data['status']}] {data['subject']}")
    print_line(f"channel: {data['channel']}  queue: {data['queue']}  kind: {data['kind']}  "
               f"requester: {data['requester_email']}")
    print_line(f"priority: {data['priority']}  assignee: {data['assignee'] or 'nobody'}")
    waiting = list(data["comments"])  # each shown where it was written, among the messages
    for m in data["messages"]:
        while waiting and waiting[0]["created_at"] < m["stored_at"]:
            _echo_comment(waiting.pop(0))
        echo_message(m)
    for c in waiting:
        _echo_comment(c)


def _echo_comment(c: dict) -> None:
    print_line("")
    by = f" by {c['author']}" if c["author"] else ""
    print_line(f"--- comment {c['id']}{by} {c['created_at']} (internal, never sent)")
    print_line("")
    print_text(c["text"].rstrip())


@group.command("comment")
def comment(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    message: str = MESSAGE,
    file: Path = FILE,
    edit: bool = EDIT,
    agent: str = acting_agent("The agent writing it"),
) -> None:
    """Add an internal comment to a ticket: shown by `tickets show`, never sent to the client.
    The ticket and the agent are checked before the editor opens."""
    config = state(ctx).config()
    brief = triage.plan_comment(config, ticket, agent)
    comments = editor.template(brief, "Internal comment on", [
        "Shown with the ticket, never sent to the client."], "an empty text adds nothing")
    text = editor.obtain("comment", brief, message, file, edit, comments)
    with editor.kept_on_failure(ctx, text, "comment", ticket):
        comment_id = triage.add_comment(config, ticket, text.value, agent)
    note(f"ticket #{ticket}: comment #{comment_id} added")


@group.command("move")
def move(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    queue: str = typer.Option(..., "--queue", "-q", parser=QUEUE,
                               help="Queue to move it to: one that exists, unless --create."),
    create: bool = typer.Option(False, "--create", help="Make the queue if it is new."),
) -> None:
    """Move a ticket to another queue."""
    previous, queue = triage.move_ticket(state(ctx).config(), ticket, queue, create)
    note(f"ticket #{ticket}: {previous} → {queue}")


@group.command("close")
def close(ctx: typer.Context,
          tickets: list[int] = typer.Argument(..., parser=ID, metavar="TICKET",
                                              help="Ticket ids.")) -> None:
    """Close tickets. A customer's next message reopens a closed ticket (an auto-reply or a
    bounce does not)."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "closed"):
        note(f"ticket #{ticket}: {previous} → closed")


@group.command("reopen")
def reopen(ctx: typer.Context,
           tickets: list[int] = typer.Argument(..., parser=ID, metavar="TICKET",
                                              help="Ticket ids.")) -> None:
    """Reopen tickets: closed or pending ones are open again (an agent's turn)."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "open"):
        note(f"ticket #{ticket}: {previous} → open")


# Here, not in register(), which runs once per command table built (each test invocation).
group.command("reply")(reply)
group.command("forward")(forward)
group.command("assign")(cmd_ticket_work.assign)
group.command("unassign")(cmd_ticket_work.unassign_cmd)
group.command("pending")(cmd_ticket_work.pending)
group.command("priority")(cmd_ticket_work.priority)
group.command("attachments")(attachments_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="tickets")
