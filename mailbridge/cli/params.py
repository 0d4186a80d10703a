"""Command-line values checked as they are parsed, by the rules the config uses
(mailbridge.domain.checks). A wrong value is one line naming what it is, the value and what
it takes, exit 2, before the config or the store is opened. Every number a command takes has
a range here: an id of 23 digits is a usage error, not an internal one.

Each is a Typer `parser=`: it raises UsageError, which the CLI's boundary prints (click
would turn a ValueError into its own multi-line usage message)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import typer

from mailbridge.domain import checks, workflow


class Checked:
    """A parser applying `rule` to the text typed for `what`; `__name__` is what help shows
    after the option (Typer takes a parser's name as the metavar)."""

    def __init__(self, what: str, rule: Callable[[Any], Any], metavar: str,
                 convert: Callable[[str], Any] | None = None) -> None:
        self.what = what
        self.rule = rule
        self.convert = convert
        self.__name__ = metavar

    def __call__(self, value: Any) -> Any:
        return checks.require(self.what, self._converted, value)

    def _converted(self, value: Any) -> Any:
        if isinstance(value, str) and self.convert is not None:
            with contextlib.suppress(ValueError):  # text that does not convert: the rule says so
                value = self.convert(value.strip())
        return self.rule(value)


def whole(what: str, lo: int = 1, hi: int = checks.SQL_INT_MAX, metavar: str = "N") -> Checked:
    return Checked(what, checks.integer(lo, hi), metavar, int)


def number(what: str, lo: float, hi: float, metavar: str = "N") -> Checked:
    return Checked(what, checks.number(lo, hi), metavar, float)


def one_of(what: str, *options: str) -> Checked:
    return Checked(what, checks.choice(*options), "|".join(options))


ID = whole("id", metavar="ID")
LIMIT = whole("--limit")
PORT = whole("port", 1, 65535, "PORT")
STATUS = one_of("--status", "open", "closed", "all")
TICKET_STATUS = one_of("--status", *workflow.STATUSES, "all")
PRIORITY = one_of("priority", *workflow.PRIORITIES)
SORT = one_of("--sort", *workflow.SORTS)
QUEUE = Checked("queue", checks.name, "QUEUE")  # like channel names: lowercase, -, _
ADDRESS = Checked("address", checks.email, "ADDR")
AGENT = Checked("agent name", checks.label, "NAME")


def acting_agent(role: str = "The acting agent") -> Any:
    """The `--as AGENT` option of every command that acts as an agent; without it
    services/agents.acting takes $MAILBRIDGE_AGENT, then the config's [me] agent."""
    return typer.Option(None, "--as", parser=AGENT,
                        help=f"{role} (default: $MAILBRIDGE_AGENT, else [me] agent).")
