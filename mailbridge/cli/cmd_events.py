"""`events`: what happened in the store, in order, for scripts (services/events.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import typer

from mailbridge.cli.output import FORMAT, Format, emit
from mailbridge.cli.params import LIMIT, whole
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line
from mailbridge.errors import UsageError

COLUMNS = ("cursor", "created_at", "kind", "channel", "ticket", "engagement", "opportunity",
           "payload")
TABLE = {"cursor": "cursor", "created_at": "when", "kind": "kind", "channel": "channel",
         "ticket": "ticket", "payload": "details"}
CURSOR = whole("--after", 0, metavar="CURSOR")


def events(
    ctx: typer.Context,
    follow: bool = typer.Option(False, "--follow", "-F",
                                help="Keep printing events as they happen (polled every "
                                     "second) until interrupted."),
    after: int = typer.Option(0, "--after", parser=CURSOR,
                              help="Only events after this cursor (the `cursor` of the last "
                                   "event a script saw): resume where it stopped."),
    kind: str = typer.Option(None, "--kind", "-k", metavar="KIND,…",
                             help="Only these kinds, comma-separated (see below)."),
    limit: int = typer.Option(None, "--limit", "-n", parser=LIMIT,
                              help="At most this many (not with --follow)."),
    fmt: Format = typer.Option(None, "--format", "-f", parser=FORMAT,
                               help="jsonl (the default in a pipe: one event a line), json "
                                    "(one list), table (the default on a terminal), csv or "
                                    "tsv; --follow prints jsonl or table."),
) -> None:
    """Print what happened in the store, oldest first: tickets created, closed, reopened
    and moved, messages added, comments, replies queued and sent, engagements and
    opportunities. Each event carries its `cursor`; `--after CURSOR` resumes after it, so a
    script that keeps the last cursor it handled neither misses nor repeats an event.

    Kinds: ticket.created, message.added, ticket.closed, ticket.reopened, ticket.moved,
    comment.added, reply.queued, outbox.sent, outbox.failed, outbox.unknown,
    engagement.created, opportunity.created, opportunity.updated.

    With --follow: SIGINT or SIGTERM ends it with exit 0, and so does the reader closing
    the pipe."""
    from mailbridge.services import events as service

    kinds = service.check_kinds([k.strip() for k in kind.split(",") if k.strip()]
                                if kind else [])
    fmt = fmt or (Format.table if sys.stdout.isatty() else Format.jsonl)
    config = state(ctx).config()
    if not follow:
        emit(service.read(config, after, kinds, limit), fmt, COLUMNS, table=TABLE)
        return
    if fmt not in (Format.jsonl, Format.table) or limit is not None:
        raise UsageError("--follow prints events as they come: use --format jsonl or table, "
                         "without --limit")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        for event in service.follow(config, after, kinds,
                                    lambda: stop.is_set() or _reader_gone()):
            if fmt is Format.jsonl:
                sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
            else:
                print_line(_line(event))
            sys.stdout.flush()  # each event reaches the reader as it happens
    except BrokenPipeError:  # the reader went away: it has what it read, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _line(event: dict) -> str:
    """An event as --follow shows it on a terminal: one line as it happens (a table would
    need every row first to size its columns)."""
    about = next((f"{what} {event[what]}" for what in ("ticket", "engagement", "opportunity")
                  if event[what] is not None), "")
    return (f"{event['cursor']:>8}  {event['created_at']}  {event['kind']:<19}  "
            f"{event['channel'] or '-'}  {about}  {json.dumps(event['payload'])}")


def _reader_gone() -> bool:
    """Whether the reading end of stdout was closed (`events --follow | head -3`): seen
    while waiting for new events, not only at the next write, which may be hours away."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(flags & (select.POLLERR | select.POLLHUP) for _fd, flags in poller.poll(0))
    except (OSError, ValueError):  # not a file descriptor poll can watch
        return False


def register(app: typer.Typer) -> None:
    app.command("events")(events)
