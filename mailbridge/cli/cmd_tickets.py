"""`tickets list/show/comment/move/close/reopen` (reply and forward: cmd_outgoing.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailbridge.cli import editor
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
from mailbridge.cli.params import ID, QUEUE, STATUS
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line, print_text
from mailbridge.services import queries, search, triage

group = typer.Typer(help="Read, answer, comment on, move, close and reopen tickets.",
                    no_args_is_help=True)


# What a table shows of a ticket on a terminal; --format tsv or json has every field.
TICKET_TABLE = {"id": "id", "status": "status", "queue": "queue", "requester_email": "from",
                "subject": "subject", "message_count": "msgs", "updated_at": "updated"}


@group.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    queue: str = typer.Option(None, "--queue", help="Only this queue."),
    status: str = typer.Option("open", "--status", parser=STATUS,
                                help="open, closed or all."),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List tickets, oldest first. JSON fields: id, channel, queue, status, kind,
    requester_email, subject, message_count, created_at, updated_at."""
    found = queries.list_tickets(state(ctx).config(), channel=channel, queue=queue,
                                 status=None if status == "all" else status,
                                 limit=row_limit(limit, every))
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
    status: str = typer.Option("all", "--status", parser=STATUS,
                                help="open, closed or all (the default)."),
    since: str = typer.Option(None, "--since", help="Only tickets updated since: 12h, 7d, 2w "
                              "or a date."),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Search tickets by the subject, text, sender (name or address) and attachment names of
    their messages, best match first, each with a snippet of its best message. JSON fields:
    id, channel, queue, status, requester_email, subject, updated_at, message (the best
    matching message), score, snippet."""
    found = search.search_tickets(state(ctx).config(), " ".join(query), channel=channel,
                                  queue=queue, status=None if status == "all" else status,
                                  since=since, limit=row_limit(limit, every))
    emit_hits(found, fmt, search.TICKET_COLUMNS, HIT_TABLE, "tickets")


@group.command("show")
def show(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    fmt: Format = SHOW_FORMAT_OPTION,
    raw: bool = typer.Option(False, "--raw", help="Write the stored raw message bytes (an mbox "
                             "when the ticket has several messages)."),
) -> None:
    """Show a ticket and its messages."""
    config = state(ctx).config()
    if raw:
        write_raw(queries.raw_messages(config, ticket))
        return
    data = queries.show_ticket(config, ticket)
    emit_record(data, fmt, lambda: _page(data))


def _page(data: dict) -> None:
    print_line(f"#{data['id']} [{data['status']}] {data['subject']}")
    print_line(f"channel: {data['channel']}  queue: {data['queue']}  kind: {data['kind']}  "
               f"requester: {data['requester_email']}")
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
    agent: str = typer.Option(None, "--as", help="The agent writing it."),
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
    """Reopen tickets."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "open"):
        note(f"ticket #{ticket}: {previous} → open")


# Here, not in register(), which runs once per command table built (each test invocation).
group.command("reply")(reply)
group.command("forward")(forward)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="tickets")
