"""`sync`, `ingest` and `reprocess`: the commands that write to the store."""

from __future__ import annotations

import sys

import typer

from mailbridge.cli.output import FORMAT, FORMAT_OPTION, Format, emit, note
from mailbridge.cli.params import number
from mailbridge.cli.report import CliReporter
from mailbridge.cli.state import state
from mailbridge.domain.health import QUIET
from mailbridge.errors import MailbridgeError, TemporaryError
from mailbridge.pipeline.report import UNPARSED
from mailbridge.services import sync as sync_service
from mailbridge.services.health import RAISED
from mailbridge.services.maintenance import reprocess_store

RESULT_COLUMNS = ("channel", "status", "fetched", "stored", "duplicates", "failed", "unparsed",
                  "error")


def sync(
    ctx: typer.Context,
    channels: list[str] = typer.Argument(None, metavar="CHANNEL",
                                         help="Channels to sync (default: all enabled)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success (cron)."),
    fmt: Format = typer.Option(None, "--format", "-f", parser=FORMAT,
                               help="Print per-channel results as table/json/jsonl/csv/tsv "
                               "on stdout."),
    no_send: bool = typer.Option(False, "--no-send", help="Hold the outbox: fetch only."),
    wait: float = typer.Option(30.0, "--wait", parser=number("--wait", 0, 3600, "SECONDS"),
                               help="Seconds a commit waits for "
                               "another writer (`ingest`, `reprocess`) before exit 75."),
) -> None:
    """Fetch new mail for each channel once and file it, raise and clear alerts as `run`
    does (a channel gone quiet is said once on stderr and mailed to the agents who opted
    in), then send the outbox (for cron). Exit 4 if any channel or any outgoing mail
    failed."""
    st = state(ctx)
    with CliReporter(st.verbosity, quiet) as reporter:
        run = sync_service.sync(st.config(), channels or [], reporter, send=not no_send,
                                wait_seconds=wait)
    results = run.channels
    rows = [r.as_dict() for r in results]
    if fmt is not None:
        emit(rows, fmt, RESULT_COLUMNS)
    for r in results:
        if r.status != "ok":
            note(f"mailbridge: {r.channel}: {r.status}: {r.problem}")
            if r.error and r.error.hint:
                note(f"mailbridge: hint: {r.error.hint}")
            elif r.counts.unparsed:
                note("mailbridge: hint: `mailbridge messages list --unparsed` lists what was "
                     "stored raw")
        elif not quiet and fmt is None:
            c = r.counts
            ignored = f", {c.ignored} not copied" if c.ignored else ""  # copy modes
            note(f"{r.channel}: {c.stored} new, {c.duplicates} already stored{ignored}")
    for sent in run.sends:  # every outbox row it touched: a problem even with --quiet
        for row in sent.rows:
            if row.problem:
                note(f"mailbridge: {sent.channel}: {row.line()}")
            elif not quiet:
                note(f"{sent.channel}: {row.line()}")
        if sent.error and sent.error.hint:
            note(f"mailbridge: hint: {sent.error.hint}")
        if sent.rows and not (quiet and sync_service.send_problem(sent) is None):
            note(f"{sent.channel}: outbox: {sent.summary()}")
        if sent.waiting and not quiet:
            note(f"{sent.channel}: outbox: {sent.waiting} campaign mails wait for their time "
                 "or the [campaigns] pace (`mailbridge campaigns list`)")
    for alert in run.alerts:
        # a failing channel's error is printed above; a quiet one says so once per period
        if alert.kind == QUIET and (alert.event == RAISED or not quiet):
            note(f"mailbridge: {alert.channel}: {alert.kind} alert {alert.event}: "
                 f"{alert.detail}")
    code = sync_service.exit_code(results, run.sends)
    if code:
        raise typer.Exit(code)


def ingest(
    ctx: typer.Context,
    channel: str = typer.Argument(..., help="Channel that receives the message."),
    wait: float = typer.Option(30.0, "--wait", parser=number("--wait", 0, 3600, "SECONDS"),
                               help="Seconds to wait for a busy store."),
) -> None:
    """Store one RFC 5322 message from stdin (for an MTA pipe). Exit 0 once it is committed;
    75 on any failure, so the MTA keeps the message and retries."""
    st = state(ctx)
    try:
        raw = sys.stdin.buffer.read()
        outcome = sync_service.ingest_one(st.config(), channel, raw,
                                          CliReporter(st.verbosity, quiet=True), wait)
    except MailbridgeError as exc:
        raise TemporaryError(exc.message, exc.hint) from None
    except Exception as exc:  # noqa: BLE001 - exit 1 would make the MTA bounce the mail
        raise TemporaryError(f"internal error: {type(exc).__name__}: {exc}",
                             "the MTA keeps the message and retries; rerun with -vv for the "
                             "traceback and report it as a bug") from exc
    if outcome.kind == UNPARSED:  # kept (exit 0: the MTA must not send it again), not filed
        note(f"mailbridge: warning: {channel}: message {outcome.message} could not be parsed "
             f"({outcome.detail}); stored raw: see `mailbridge messages list --unparsed`")
    elif st.verbosity:
        note(f"{channel}: {outcome.kind} (message {outcome.message}, ticket {outcome.ticket})")


def reprocess(
    ctx: typer.Context,
    all_messages: bool = typer.Option(False, "--all", help="Re-parse every stored message, not "
                                      "only those that failed to parse."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Re-parse stored raw mail (after an upgrade fixed the parser) and file what now parses."""
    result = reprocess_store(state(ctx).config(), only_failed=not all_messages)
    emit([result], fmt, tuple(result))


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.command("ingest")(ingest)
    app.command("reprocess")(reprocess)
