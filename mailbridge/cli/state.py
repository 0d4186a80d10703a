"""The global options (config path and verbosity), accepted before or after the command
(`mailbridge status --config X`, `mailbridge tickets list -v`), and the logging they set."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import typer
from typer.core import TyperOption

from mailbridge import redact
from mailbridge.cli.terminal import for_terminal
from mailbridge.config.load import load_config
from mailbridge.config.model import Config
from mailbridge.config.paths import default_config_path
from mailbridge.redact import RedactingFilter


@dataclass
class State:
    config_path: Path | None = None
    verbosity: int = 0
    _config: Config | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.config_path or default_config_path()

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.path)
        return self._config


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def _set_config(ctx: typer.Context, _param: object, value: str | None) -> None:
    if value is not None:
        state(ctx).config_path = Path(value)


def _add_verbosity(ctx: typer.Context, _param: object, value: int) -> None:
    if value:  # -v before the command and -v after it add up
        st = state(ctx)
        st.verbosity += value
        setup_logging(st.verbosity)


def global_options(root: bool) -> list[TyperOption]:
    """--config and -v/-vv as options of the root (which also reads $MAILBRIDGE_CONFIG) and,
    shown under "Global options", of every command."""
    panel = None if root else "Global options"
    return [
        TyperOption(param_decls=["--config", "-c"], metavar="PATH", callback=_set_config,
                    expose_value=False, envvar="MAILBRIDGE_CONFIG" if root else None,
                    show_envvar=root, rich_help_panel=panel,
                    help="Config file (default: $MAILBRIDGE_CONFIG, else the platform "
                         "config dir)."),
        TyperOption(param_decls=["--verbose", "-v"], count=True, metavar="",
                    callback=_add_verbosity, expose_value=False, rich_help_panel=panel,
                    help="-v: a line per message; -vv: debug logs (libraries' too) and "
                         "tracebacks."),
    ]


class TerminalFormatter(logging.Formatter):
    """Log lines quote servers and mail (folder names, subjects): shown harmlessly. A
    traceback quotes library errors: secrets in it are masked."""

    def format(self, record: logging.LogRecord) -> str:
        return for_terminal(super().format(record), lines=True)

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return redact.scrub(super().formatException(ei))


class CommandLineFormatter(TerminalFormatter):
    """A warning of a command as the error boundary writes errors: `mailbridge: warning: …`."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return f"mailbridge: {record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbosity: int, service: bool = False) -> None:
    """mailbridge's own loggers at WARNING, INFO with -v, DEBUG with -vv; libraries' (such as
    APScheduler's lines around every job) at WARNING unless -vv. A command's warnings are
    `mailbridge: warning: …` lines; the service (`run`) and -v/-vv log with the time (unless
    journald adds its own), level and logger."""
    own = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    if service or verbosity:
        fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") \
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(TerminalFormatter(fmt))
    else:
        handler.setFormatter(CommandLineFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("mailbridge").setLevel(own)
