"""How a sync looks in a terminal: a line per message with -v, a progress counter on a TTY."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mailbridge.cli.output import err_console, note
from mailbridge.pipeline.report import FAILED, Outcome

if TYPE_CHECKING:
    from rich.progress import Progress

LABELS = {
    "new_ticket": "new ticket #{ticket}",
    "threaded": "added to ticket #{ticket}",
    "no_ticket": "stored (own mail, no ticket)",
    "unparsed": "stored raw, unparseable ({detail})",
    "duplicate": "duplicate of message {message}",
    "seen": "already stored",
    "engaged": "engagement",
    "matched": "added to an opportunity",
    "opened": "opened a new opportunity",
    "inbox": "kept in My Inbox",
    "ignored": "not an engagement (no contact and owner on it, or arrived outside the window)",
    "failed": "FAILED: {detail}",
}


class CliReporter:
    def __init__(self, verbosity: int, quiet: bool = False) -> None:
        self.verbosity = verbosity
        self.quiet = quiet
        self.progress: Progress | None = None
        self.count = 0
        self.bytes = 0

    def __enter__(self) -> CliReporter:
        if not self.quiet and self.verbosity == 0 and sys.stderr.isatty():
            from rich.progress import Progress, SpinnerColumn, TextColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                     console=err_console(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("syncing")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def item(self, channel: str, outcome: Outcome, size: int) -> None:
        self.count += 1
        self.bytes += size
        if self.progress is not None:
            self.progress.update(self.task, description=f"{channel}: {self.count} messages, "
                                                        f"{self.bytes / 1e6:.1f} MB")
        if self.verbosity >= 1 or (outcome.kind == FAILED and not self.quiet):
            label = LABELS[outcome.kind].format(ticket=outcome.ticket, detail=outcome.detail,
                                                message=outcome.message)
            subject = f" {outcome.subject!r}" if outcome.subject else ""
            note(f"{channel}: {outcome.ref.key}: {label}{subject}")
