"""`secrets set/check` and `doctor`."""

from __future__ import annotations

import sys

import typer

from mailbridge.cli.output import FORMAT_OPTION, Format, emit, note
from mailbridge.cli.state import state
from mailbridge.errors import EXIT_PARTIAL, EXIT_USAGE, UsageError
from mailbridge.services import secrets as secrets_service

secrets = typer.Typer(help="Store secrets in the OS keyring and check references.",
                      no_args_is_help=True)


@secrets.command("set")
def set_cmd(name: str = typer.Argument(..., help='Keyring entry, as in { keyring = "NAME" }.')
            ) -> None:
    """Store a secret in the OS keyring (prompted without echo, or the first line of stdin).
    Refused when the keyring would keep it in a plain file (keyrings.alt)."""
    secrets_service.check_keyring()
    if sys.stdin.isatty():
        value = typer.prompt(f"Value for {name}", hide_input=True, err=True)
    else:
        value = sys.stdin.read()
    if not value.strip("\r\n"):
        raise UsageError("an empty secret was given", "type or pipe the value")
    secrets_service.set_secret(name, value)
    note(f"stored {name} in the keyring")


@secrets.command("check")
def check(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Check that every secret reference in the config resolves (values are never shown)."""
    rows = secrets_service.check_secrets(state(ctx).config())
    emit(rows, fmt, ("key", "reference", "ok", "problem"))
    if not all(r["ok"] for r in rows):
        raise typer.Exit(3)


def doctor(
    ctx: typer.Context,
    fmt: Format = FORMAT_OPTION,
    offline: bool = typer.Option(False, "--offline", help="Skip logging in to each channel's "
                                 "server (no network)."),
) -> None:
    """Check the config, the store and its integrity, the keyring, every channel's health
    and (unless --offline) that each enabled channel's server accepts our login.
    Exit 4 if a check fails, 2 if the config is invalid."""
    from mailbridge.services import doctor as doctor_service  # see cmd_outgoing.py

    checks = doctor_service.diagnose(state(ctx).path, connect=not offline)
    emit(checks, fmt, ("check", "status", "detail"))
    if any(c["status"] == "fail" for c in checks):
        config_bad = any(c["check"] == "config" and c["status"] == "fail" for c in checks)
        raise typer.Exit(EXIT_USAGE if config_bad else EXIT_PARTIAL)


def register(app: typer.Typer) -> None:
    app.add_typer(secrets, name="secrets")
    app.command("doctor")(doctor)
