"""The text of a reply, forward or comment: --message, --file, stdin, or an editor opened on a
template — the ticket's subject, the recipients and the latest message quoted as comment
lines, as `git commit` does. The command checks everything it can before the editor opens;
text that exists nowhere else (written in the editor, or piped on stdin) is kept as a draft
when it still cannot be queued, with the command that queues it."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import typer

from mailbridge.cli.invocation import command_line
from mailbridge.domain.compose import quote_text
from mailbridge.errors import UsageError
from mailbridge.services import drafts
from mailbridge.services.briefs import Brief

# $VISUAL and $EDITOR first; then what Debian sets up (sensible-editor asks once, `editor` is
# the alternatives system's choice), then the one POSIX promises.
FALLBACK_EDITORS = ("sensible-editor", "editor", "vi")
HELP = ("The text. Else --file, else stdin when it is not a terminal, else an editor "
        "($VISUAL, $EDITOR, sensible-editor, editor or vi).")
EDIT_HELP = ("Write the text in the editor even when stdin is not a terminal; with --message "
             "or --file, start from that text.")


@dataclass(frozen=True)
class Text:
    value: str
    draft: Path | None = None  # the draft file that holds it; removed once it is queued
    only_here: bool = False  # read from stdin: nowhere to be found again if it is not queued


def editor_command() -> list[str]:
    for variable in ("VISUAL", "EDITOR"):
        chosen = os.environ.get(variable, "").strip()
        if chosen:
            return shlex.split(chosen)
    for name in FALLBACK_EDITORS:
        found = shutil.which(name)
        if found:
            return [found]
    raise UsageError("no text given, and no editor to write it in ($VISUAL and $EDITOR are "
                     "unset; none of sensible-editor, editor, vi is installed)",
                     "pass --message TEXT or --file FILE, or set $EDITOR")


def template(brief: Brief, action: str, lines: Sequence[str], empty: str,
             noun: str = "ticket") -> str:
    """The comment block under the text: what is being written, to whom, what an empty text
    does, and the latest incoming message quoted (`noun`: what brief.ticket numbers)."""
    block = [f"{action} {noun} #{brief.ticket}: {brief.subject}", *lines,
             "", f'Write above this block. Lines starting with "# " are left out; {empty}.']
    if brief.last is not None:
        block += ["", *quote_text([brief.last]).split("\n")]
    return "\n\n" + "\n".join(f"# {line}".rstrip() for line in block) + "\n"


def without_comments(text: str) -> str:
    kept = [line.rstrip() for line in text.split("\n")
            if not (line == "#" or line.startswith("# "))]
    return "\n".join(kept).strip("\n")


def obtain(kind: str, brief: Brief, message: str | None, file: Path | None, edit: bool,
           comments: str, required: bool = True) -> Text:
    """The text from --message, --file (a draft given back), stdin when it is not a terminal,
    else the editor (or the editor anyway with --edit, starting from the text given)."""
    if file is not None:
        start = _read(file)
        draft = file if drafts.is_draft(file) else None
    else:
        start, draft = message, None
    if edit or (start is None and sys.stdin.isatty()):
        found = _edit(kind, brief.ticket, start or "", comments)
        if draft is not None and found.draft is not None:  # edited on: the new draft holds it
            drafts.discard(draft)
    elif start is not None:
        found = Text(start, draft)
    else:
        found = Text(sys.stdin.read(), only_here=True)
    if required and not found.value.strip():
        raise UsageError("the text is empty; nothing was done")
    return found


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read the text: {exc}") from None


def _edit(kind: str, ticket: int, start: str, comments: str) -> Text:
    """Open the editor on a new draft file; afterwards the file holds the text alone."""
    command = editor_command()
    path = drafts.create(kind, ticket, start + comments)
    try:
        editing = subprocess.Popen([*command, str(path)])
    except OSError as exc:
        drafts.discard(path)
        raise UsageError(f"cannot start the editor {command[0]}: {exc.strerror}",
                         "set $EDITOR to an editor that is installed") from None
    # As git does: while the editor runs, Ctrl-C is the editor's (vi uses it), not a reason
    # to stop waiting for it and kill it with the text unsaved.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = editing.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    text = without_comments(path.read_text(encoding="utf-8"))
    if not text.strip():
        drafts.discard(path)
        return Text("")
    path.write_text(text + "\n", encoding="utf-8")
    if code != 0:
        raise UsageError(f"the editor ({command[0]}) exited with status {code}; nothing was "
                         f"queued", f"the text is kept in {path}")
    return Text(text, path)


@contextlib.contextmanager
def kept_on_failure(ctx: typer.Context, text: Text, kind: str, ticket: int) -> Iterator[None]:
    """Queue the text inside: on success its draft is removed; on any failure the text is
    (still) in a draft, and the error is followed by a note naming it and the command that
    queues it."""
    try:
        yield
    except BaseException as exc:
        path = text.draft
        if path is None and text.only_here and text.value.strip():
            try:
                path = drafts.create(kind, ticket, text.value)
            except OSError as problem:
                exc.add_note(f"the text could not be kept as a draft: {problem.strerror}")
        if path is not None:
            again = command_line(ctx, {"message": None, "edit": None, "file": path})
            exc.add_note(f"the text is kept in {path}; queue it with: {again}")
        raise
    if text.draft is not None:
        drafts.discard(text.draft)
