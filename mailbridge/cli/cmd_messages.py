"""`messages list/show`: every stored message, filed or not; above all, the ones that could
only be stored raw (`--unparsed`), which no ticket, engagement or opportunity shows."""

from __future__ import annotations

import typer

from mailbridge.cli.output import (
    ALL_OPTION,
    FORMAT_OPTION,
    LIMIT_OPTION,
    SHOW_FORMAT_OPTION,
    Format,
    emit,
    emit_record,
    row_limit,
)
from mailbridge.cli.pages import echo_message, write_raw
from mailbridge.cli.params import ID
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line
from mailbridge.services import queries

group = typer.Typer(help="Stored messages, above all those that could only be stored raw.",
                    no_args_is_help=True)
MESSAGE_TABLE = {"id": "id", "channel": "channel", "stored_at": "stored",
                 "from_email": "from", "subject": "subject", "classification": "class",
                 "parse_error": "parse error"}


@group.command("list")
def list_cmd(
    ctx: typer.Context,
    channel: str = typer.Option(None, "--channel", help="Only this channel."),
    unparsed: bool = typer.Option(False, "--unparsed", help="Only the messages that could "
                                  "not be parsed and were stored raw."),
    limit: int = LIMIT_OPTION,
    every: bool = ALL_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Stored messages, oldest first. JSON fields: id, channel, direction, stored_at,
    from_email, subject, classification, size, parse_error (empty once parsed)."""
    found = queries.list_messages(state(ctx).config(), channel, unparsed,
                                  row_limit(limit, every))
    emit(found.rows, fmt, queries.MESSAGE_COLUMNS, table=MESSAGE_TABLE, more=found.more)


@group.command("show")
def show(
    ctx: typer.Context,
    message: int = typer.Argument(..., parser=ID, help="Message id."),
    fmt: Format = SHOW_FORMAT_OPTION,
    raw: bool = typer.Option(False, "--raw", help="Write the stored raw bytes."),
) -> None:
    """One stored message: headers, attachments, text, and why it could not be parsed."""
    config = state(ctx).config()
    if raw:
        write_raw([queries.raw_message(config, message)])
        return
    found = queries.show_message(config, message)

    def page() -> None:
        print_line(f"message {found['id']} of channel {found['channel']} "
                   f"({found['direction']}, {found['size']} bytes)")
        if found["parse_error"]:
            print_line(f"not parsed: {found['parse_error']}")
        echo_message(found)
    emit_record(found, fmt, page)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="messages")
