"""`run` (the foreground service), `status` and `queues`."""

from __future__ import annotations

import signal
import threading

import typer

from mailbridge.cli.output import FORMAT_OPTION, Format, emit, print_fitted, write
from mailbridge.cli.state import setup_logging, state
from mailbridge.cli.terminal import print_line
from mailbridge.config.load import load_config
from mailbridge.errors import EXIT_PARTIAL

STATUS_COLUMNS = ("channel", "title", "enabled", "mode", "health", "last_success",
                  "last_message", "messages_24h", "failures", "last_error", "next_run", "outbox",
                  "problems", "unparsed", "unsent", "unassigned")
# A table on a terminal: the figures per channel; each problem follows as a line of its own.
STATUS_TABLE = {"channel": "channel", "health": "health", "last_success": "synced",
                "last_message": "last mail", "messages_24h": "24h", "unparsed": "unparsed",
                "outbox": "outbox", "unsent": "unsent", "next_run": "next"}

HOOK_COLUMNS = ("hook", "on", "cursor", "lag", "failures", "retry_in", "last_error")


def run(ctx: typer.Context) -> None:
    """Sync every enabled channel on its schedule until stopped (for systemd).

    Logs a line per channel run to stderr (no timestamps under journald). SIGTERM or Ctrl-C
    commits what was fetched and exits 0; SIGHUP re-reads the config."""
    from mailbridge.services.run import serve

    st = state(ctx)
    setup_logging(max(1, st.verbosity), service=True)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    serve(lambda: load_config(st.path), stop, reload)


def status(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Per channel: health, last sync and message, messages in 24 h, failures, next run;
    then each [[hook]]: its cursor, lag (events not yet run for), failures and last error.
    Exit 4 if any enabled channel is failing, quiet or never synced (a monitoring check)."""
    from mailbridge.services import health, hooks  # see cmd_outgoing.py

    config = state(ctx).config()
    rows = health.status(config)
    hook_rows = hooks.status(config)
    shared = any("held_by" in row for row in rows)  # a store several hosts share

    def problems_and_hosts() -> None:
        problems = [f"{row['channel']}: {problem}" for row in rows for problem in row["problems"]]
        if problems:
            print_line("")
        for problem in problems:
            print_fitted(problem)
        waiting = [f"{row['channel']} {row['unassigned']}" for row in rows if row["unassigned"]]
        if waiting:  # a line, not a column: the table is full at 80 columns
            print_line("")
            print_fitted("open tickets nobody is assigned to: " + ", ".join(waiting))
        if shared:
            from mailbridge.cli.cmd_store import HOST_COLUMNS
            from mailbridge.services import fleet

            print_line("")
            write(fleet.host_rows(config), Format.table, HOST_COLUMNS, title="hosts")
        if hook_rows:
            print_line("")
            write(hook_rows, Format.table, HOOK_COLUMNS, title="hooks")
    emit(rows, fmt, STATUS_COLUMNS + (("held_by",) if shared else ()),
         table=STATUS_TABLE | ({"held_by": "held by"} if shared else {}),
         after=problems_and_hosts)
    if not health.healthy(rows):
        raise typer.Exit(EXIT_PARTIAL)


queues_group = typer.Typer(help="Queues tickets are routed to.", no_args_is_help=True)


@queues_group.command("list")
def queues_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every queue with its open tickets, the open ones nobody is assigned to, the pending
    ones (waiting for the customer) and all. JSON fields: queue, open, unassigned, pending,
    total."""
    from mailbridge.services import queues

    emit(queues.list_queues(state(ctx).config()), fmt, queues.COLUMNS)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
    app.add_typer(queues_group, name="queues")
