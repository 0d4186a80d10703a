"""The `mailbridge` command and its one error boundary: every MailbridgeError becomes one line
on stderr and its exit code; anything else is an internal error (traceback only with -vv)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import NoReturn

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup

from mailbridge import __version__, redact
from mailbridge.cli import examples
from mailbridge.cli.output import note
from mailbridge.cli.state import global_options, setup_logging, state
from mailbridge.errors import EXIT_INTERNAL, EXIT_USAGE, ConfigError, MailbridgeError


def report_error(exc: MailbridgeError) -> None:
    """Our own words: the connectors masked secrets in any server text they quote. A
    traceback or an unexpected exception's text is library text, so that is scrubbed."""
    problems = exc.problems if isinstance(exc, ConfigError) else [exc.message]
    for problem in problems:
        note(f"mailbridge: error: {problem}")
    if exc.hint:
        note(f"mailbridge: hint: {exc.hint}")
    _notes(exc)


def _notes(exc: BaseException) -> None:
    """What a command added to the error on its way out (`add_note`), such as where the text
    of a reply that could not be queued is kept."""
    for line in getattr(exc, "__notes__", ()):
        note(f"mailbridge: note: {line}")


# Every top-level command and group, in the order help lists them, and the module under
# mailbridge/cli/ whose register() defines it. Only the module of the command being run is
# imported and built: building all of Typer's commands and importing every service was about
# a third of a cron poll's 0.3 s.
COMMANDS = {
    "init": "cmd_setup", "add-channel": "cmd_setup", "demo": "cmd_setup",
    "sync": "cmd_sync", "ingest": "cmd_sync", "reprocess": "cmd_sync",
    "run": "cmd_ops", "status": "cmd_ops", "doctor": "cmd_admin",
    "channels": "cmd_channels", "queues": "cmd_ops", "tickets": "cmd_tickets",
    "messages": "cmd_messages", "events": "cmd_events",
    "outbox": "cmd_outgoing", "agents": "cmd_outgoing",
    "clients": "cmd_engagements", "contacts": "cmd_engagements",
    "engagements": "cmd_engagements", "opportunities": "cmd_sales", "inbox": "cmd_sales",
    "notes": "cmd_sales", "campaigns": "cmd_campaigns",
    "secrets": "cmd_admin", "auth": "cmd_auth", "store": "cmd_store", "leases": "cmd_store",
}


def module_commands(module: str) -> dict[str, TyperCommand | TyperGroup]:
    """The commands one cmd_* module registers, built as Typer builds them, each finished
    (`_finish`)."""
    holder = typer.Typer()
    import_module(f"mailbridge.cli.{module}").register(holder)
    commands = dict(typer.main.get_group(holder).commands)
    for name, command in commands.items():
        _finish(command, name)
    return commands


class NamedArgument(TyperArgument):
    """An argument shown by its name in the usage line, as git and gh show them (`TICKET`,
    `[CHANNEL]...`), where Typer writes `{ticket}`."""

    def make_metavar(self, ctx: typer.Context, *, usage: bool = False) -> str:
        shown = (self.metavar or "").removesuffix("...")
        more = "..." if self.nargs != 1 else ""
        return f"[{shown}]{more}" if usage and not self.required else shown + more


def _finish(command: TyperCommand | TyperGroup, path: str) -> None:
    """A command as every command is shown: taking the global options, its arguments by
    name, its examples last, and its help as plain text (Rich markup would take
    `[[m365]]` or `[store] url` for style tags and drop them)."""
    command.params.extend(global_options(root=False))
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.__class__ = NamedArgument  # Typer builds every argument as TyperArgument
            param.metavar = param.metavar or (param.name or "").upper()
        param.help = _plain(getattr(param, "help", None))
    command.help = _plain(command.help)
    command.epilog = _plain(examples.epilog(path))
    for name, sub in getattr(command, "commands", {}).items():
        _finish(sub, f"{path} {name}")


def _plain(text: str | None) -> str | None:
    """Help text with each `[` escaped for Rich (not imported for this: a cron poll would
    pay for it)."""
    return text.replace("[", "\\[") if text else text


class LazyCommands(Mapping):
    """The root group's command table: names are known up front, a command is built when it
    is first looked up (click's "lazily loading subcommands", as a mapping so that Typer's
    listing, help and "did you mean" see every name)."""

    def __init__(self, built: dict[str, TyperCommand | TyperGroup]) -> None:
        self._built = built

    def __getitem__(self, name: str) -> TyperCommand | TyperGroup:
        if name not in self._built and name in COMMANDS:
            self._built.update(module_commands(COMMANDS[name]))
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._built if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self._built.keys())


class BoundaryGroup(TyperGroup):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(dict(self.commands))
        self.params[:0] = global_options(root=True)
        self.epilog = _plain(examples.epilog(""))

    def make_context(self, info_name, args, parent=None, **extra) -> typer.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as exc:  # a bad global option (the root's own)
            _usage_error(exc)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MailbridgeError as exc:
            if _verbosity(ctx) >= 2:
                note(redact.scrub(traceback.format_exc()))
            report_error(exc)
            ctx.exit(exc.exit_code)
        except typer.TyperException as exc:  # a subcommand's bad flag, value or argument
            _usage_error(exc)
        except typer.Abort:  # a declined confirmation, or end of input at a prompt
            note("mailbridge: cancelled; nothing was changed")
            ctx.exit(EXIT_USAGE)
        except typer.Exit:
            raise
        except KeyboardInterrupt as exc:
            note("mailbridge: interrupted")
            _notes(exc)
            ctx.exit(130)
        except BrokenPipeError:
            _reader_went_away()
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            if _verbosity(ctx) >= 2:
                note(redact.scrub(traceback.format_exc()))
            note(redact.scrub(f"mailbridge: internal error: {type(exc).__name__}: {exc}"))
            note("mailbridge: hint: rerun with -vv for the traceback and report it as a bug")
            _notes(exc)
            ctx.exit(EXIT_INTERNAL)


def _usage_error(exc: typer.TyperException) -> NoReturn:
    """Click's parse errors (an unknown command or flag, a bad value, a missing argument) as
    one `mailbridge: error:` line like every other error, exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: Typer has printed its help
        raise exc
    message = exc.format_message().rstrip(".")
    note(f"mailbridge: error: {message[:1].lower()}{message[1:]}")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        note(f"mailbridge: hint: see `{ctx.command_path} --help`")
    raise typer.Exit(EXIT_USAGE)


def _verbosity(ctx: typer.Context) -> int:
    obj = ctx.find_root().obj
    return getattr(obj, "verbosity", 0)


app = typer.Typer(
    cls=BoundaryGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """--config and -v are the global options (state.py), also taken after the command."""
    setup_logging(state(ctx).verbosity)


def _reader_went_away() -> None:
    """`mailbridge tickets list | head`: the reader is gone, which is not an error of ours.
    Exit as a process killed by SIGPIPE would (141), with stdout pointed at /dev/null so the
    interpreter's final flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


def main() -> None:
    app(prog_name="mailbridge")
