"""`tickets list/show/move/close/reopen` (reply and forward: cmd_outgoing.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.utils import format_datetime

import typer

from mailbridge.cli.cmd_outgoing import forward, reply
from mailbridge.cli.output import FORMAT_OPTION, Format, emit, emit_json, note
from mailbridge.cli.state import state
from mailbridge.services import queries, triage

group = typer.Typer(help="Read, answer, move, close and reopen tickets.",
                    no_args_is_help=True)


@group.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    queue: str = typer.Option(None, "--queue", help="Only this queue."),
    status: str = typer.Option("open", "--status", help="open, closed or all."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List tickets, oldest first. JSON fields: id, channel, queue, status, kind,
    requester_email, subject, message_count, created_at, updated_at."""
    rows = queries.list_tickets(state(ctx).config(), channel=channel, queue=queue,
                                status=None if status == "all" else status, limit=limit)
    emit(rows, fmt, queries.TICKET_COLUMNS)


@group.command("show")
def show(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., help="Ticket id."),
    fmt: Format = typer.Option(None, "--format", "-f", help="json for scripts."),
    raw: bool = typer.Option(False, "--raw", help="Write the stored raw message bytes (an mbox "
                             "when the ticket has several messages)."),
) -> None:
    """Show a ticket and its messages."""
    config = state(ctx).config()
    if raw:
        blobs = queries.raw_messages(config, ticket)
        out = sys.stdout.buffer
        stamp = format_datetime(datetime.now(UTC)).replace(",", "")
        for blob in blobs:
            if len(blobs) > 1:
                out.write(f"From mailbridge {stamp}\n".encode())
            out.write(blob)
            if len(blobs) > 1:
                out.write(b"\n")
        out.flush()
        return
    data = queries.show_ticket(config, ticket)
    if fmt in (Format.json, Format.jsonl):
        emit_json(data)
        return
    typer.echo(f"#{data['id']} [{data['status']}] {data['subject']}")
    typer.echo(f"channel: {data['channel']}  queue: {data['queue']}  kind: {data['kind']}  "
               f"requester: {data['requester_email']}")
    for m in data["messages"]:
        typer.echo("")
        typer.echo(f"--- message {m['id']} ({m['classification'] or 'unparsed'}) "
                   f"{m['sent_at'] or m['stored_at']}")
        typer.echo(f"From: {m['from_name']} <{m['from_email']}>".replace(" <>", ""))
        typer.echo("To: " + ", ".join(a["email"] for a in m["to"]))
        typer.echo(f"Subject: {m['subject']}")
        for a in m["attachments"]:
            typer.echo(f"Attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
        typer.echo("")
        typer.echo(m["text"].rstrip() if m["text"] else f"(no text: {m['parse_error'] or ''})")


@group.command("move")
def move(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., help="Ticket id."),
    queue: str = typer.Option(..., "--queue", "-q", help="Queue to move it to."),
) -> None:
    """Move a ticket to another queue (created if new)."""
    previous = triage.move_ticket(state(ctx).config(), ticket, queue)
    note(f"ticket #{ticket}: {previous} → {queue}")


@group.command("close")
def close(ctx: typer.Context,
          tickets: list[int] = typer.Argument(..., help="Ticket ids.")) -> None:
    """Close tickets. A customer's next message reopens a closed ticket (an auto-reply or a
    bounce does not)."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "closed"):
        note(f"ticket #{ticket}: {previous} → closed")


@group.command("reopen")
def reopen(ctx: typer.Context,
           tickets: list[int] = typer.Argument(..., help="Ticket ids.")) -> None:
    """Reopen tickets."""
    for ticket, previous in triage.set_status(state(ctx).config(), tickets, "open"):
        note(f"ticket #{ticket}: {previous} → open")


# Here, not in register(), which runs once per command table built (each test invocation).
group.command("reply")(reply)
group.command("forward")(forward)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="tickets")
