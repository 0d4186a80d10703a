"""The `mailbridge` command and its one error boundary: every MailbridgeError becomes one line
on stderr and its exit code; anything else is an internal error (traceback only with -vv)."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer
from typer.core import TyperGroup

from mailbridge import __version__, redact
from mailbridge.cli import (
    cmd_admin,
    cmd_auth,
    cmd_channels,
    cmd_engagements,
    cmd_ops,
    cmd_outgoing,
    cmd_sales,
    cmd_setup,
    cmd_sync,
    cmd_tickets,
)
from mailbridge.cli.output import note
from mailbridge.cli.state import setup_logging, state
from mailbridge.errors import EXIT_INTERNAL, ConfigError, MailbridgeError


def report_error(exc: MailbridgeError) -> None:
    problems = exc.problems if isinstance(exc, ConfigError) else [exc.message]
    for problem in problems:
        note(redact.scrub(f"mailbridge: error: {problem}"))
    if exc.hint:
        note(redact.scrub(f"mailbridge: hint: {exc.hint}"))


class BoundaryGroup(TyperGroup):
    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MailbridgeError as exc:
            if _verbosity(ctx) >= 2:
                note(redact.scrub(traceback.format_exc()))
            report_error(exc)
            ctx.exit(exc.exit_code)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            note("mailbridge: interrupted")
            ctx.exit(130)
        except BrokenPipeError:
            _reader_went_away()
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            if _verbosity(ctx) >= 2:
                note(redact.scrub(traceback.format_exc()))
            note(redact.scrub(f"mailbridge: internal error: {type(exc).__name__}: {exc}"))
            note("mailbridge: hint: rerun with -vv for the traceback and report it as a bug")
            ctx.exit(EXIT_INTERNAL)


def _verbosity(ctx: typer.Context) -> int:
    obj = ctx.find_root().obj
    return getattr(obj, "verbosity", 0)


app = typer.Typer(
    cls=BoundaryGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Turn mailboxes into tickets, engagements and opportunity updates in a local "
         "SQLite store. "
         "Exit codes: 0 ok, 1 internal error, 2 usage or config, 3 auth or credentials, "
         "4 partial failure, 75 temporary (retry later).",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mailbridge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", "-c", envvar="MAILBRIDGE_CONFIG",
                                help="Config file (default: the platform config dir)."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="-v: a line per message; -vv: debug logs and tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    st = state(ctx)
    st.config_path = config
    st.verbosity = verbose
    setup_logging(verbose)


cmd_setup.register(app)
cmd_channels.register(app)
cmd_sync.register(app)
cmd_ops.register(app)
cmd_tickets.register(app)
cmd_outgoing.register(app, cmd_tickets.group)
cmd_engagements.register(app)
cmd_sales.register(app)
cmd_admin.register(app)
cmd_auth.register(app)


def _reader_went_away() -> None:
    """`mailbridge tickets list | head`: the reader is gone, which is not an error of ours.
    Exit as a process killed by SIGPIPE would (141), with stdout pointed at /dev/null so the
    interpreter's final flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


def main() -> None:
    app(prog_name="mailbridge")
