"""Commands printed for the user to run (the demo's next step, the command that queues a kept
draft) written so that they work as typed: the program as the shell finds it, and the
options given to this run."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import typer

import mailbridge
from mailbridge.cli.state import state


def program() -> list[str]:
    """`mailbridge` when that is what the shell runs, else the path of this one (installed in
    a virtualenv that is not on PATH), or `python -m mailbridge` as it was started."""
    started = Path(sys.argv[0])
    if started.resolve() == Path(mailbridge.__file__).resolve().with_name("__main__.py"):
        return [sys.executable, "-m", "mailbridge"]
    if started.name != "mailbridge":  # embedded (tests): no better guess
        return ["mailbridge"]
    found = shutil.which("mailbridge")
    if found and Path(found).resolve() == started.resolve():
        return ["mailbridge"]
    return [str(started.absolute())]


def shell_line(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def command_line(ctx: typer.Context, replace: dict[str, Any] | None = None) -> str:
    """The command being run as one line to type again: its arguments and the options given
    on the command line, with `replace` (parameter name → value; None leaves it out)."""
    replace = replace or {}
    words = program()
    config = state(ctx).config_path
    if config is not None:
        words += ["--config", str(config)]
    words += ctx.command_path.split()[1:]
    for param in ctx.command.params:
        if not param.expose_value or param.name is None:
            continue
        if param.name in replace:
            value = replace[param.name]
        elif ctx.get_parameter_source(param.name).name.startswith("DEFAULT"):
            continue
        else:
            value = ctx.params.get(param.name)
        words += _words(param, value)
    return shell_line(words)


def _words(param: Any, value: Any) -> list[str]:
    if value is None:
        return []
    if getattr(param, "is_flag", False):  # --force; --matching/--no-matching
        flags = param.opts if value else param.secondary_opts
        return [max(flags, key=len)] if flags else []
    values = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    if param.param_type_name == "argument":
        return values
    flag = max(param.opts, key=len)
    return [word for v in values for word in (flag, v)]
