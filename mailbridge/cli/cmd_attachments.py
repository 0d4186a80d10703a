"""`tickets attachments`: a ticket's attachments listed, or saved to a directory; and the
HTML of `tickets show --html`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mailbridge.cli import pager
from mailbridge.cli.output import FORMAT_OPTION, Format, emit, note
from mailbridge.cli.params import ID
from mailbridge.cli.state import state
from mailbridge.cli.terminal import for_terminal
from mailbridge.errors import UsageError
from mailbridge.services import attachments

TABLE = {"message": "msg", "filename": "name", "content_type": "type", "size": "size"}


def attachments_cmd(
    ctx: typer.Context,
    ticket: int = typer.Argument(..., parser=ID, help="Ticket id."),
    save: Path = typer.Option(None, "--save", metavar="DIR", file_okay=False,
                              help="Write them into DIR (made if missing) under safe names."),
    only: str = typer.Option(None, "--only", metavar="NAME",
                             help="Only the attachment(s) of this name (as listed)."),
    force: bool = typer.Option(False, "--force", help="With --save: replace files there."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """List a ticket's attachments, or save them. Saved names are plain file names: no
    directories, control characters or leading dots, at most 200 bytes (the extension
    kept); two of one name become `name.pdf`, `name (2).pdf`. A file already in DIR is an
    error (nothing is saved) unless --force. The bytes are the attachment's, decoded from
    the stored message. JSON fields: message, filename, content_type, size, inline, sha256;
    with --save also saved_as (the file written)."""
    config = state(ctx).config()
    if save is None:
        if only is not None or force:
            raise UsageError("--only and --force go with --save DIR",
                             f"e.g. `mailbridge tickets attachments {ticket} --save . --only "
                             "NAME`")
        emit(map(_row, attachments.list_attachments(config, ticket)), fmt,
             attachments.COLUMNS, table=TABLE)
        return
    done = attachments.save(config, ticket, save, only, force)
    emit([_row(s.attachment) | {"saved_as": str(s.path)} for s in done], fmt,
         (*attachments.COLUMNS, "saved_as"), table=TABLE | {"saved_as": "saved as"})
    note(f"ticket #{ticket}: {len(done)} attachment{'s' * (len(done) != 1)} saved in {save}")


def _row(attachment: dict) -> dict:
    return {k: attachment[k] for k in attachments.COLUMNS}


def write_html(parts: list[tuple[int, str]]) -> None:
    """HTML for a browser: as it is in a pipe or a file; on a terminal as text, its control
    characters shown as escapes (mail must not drive the terminal). Several messages' parts
    follow one another, each after an HTML comment naming it."""
    raw = not pager.to_terminal()
    for message, html in parts:
        text = (f"<!-- mailbridge: message {message} -->\n" if len(parts) > 1 else "") + html
        if raw:
            sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        else:
            sys.stdout.write(for_terminal(text, lines=True) + "\n")
    sys.stdout.flush()
