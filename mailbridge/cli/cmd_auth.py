"""`auth login` and `auth status`: Microsoft 365 sign-in."""

from __future__ import annotations

import typer

from mailbridge.cli.output import FORMAT_OPTION, Format, emit, note
from mailbridge.cli.state import state
from mailbridge.errors import EXIT_AUTH

auth = typer.Typer(help="Microsoft 365 sign-in: device-code login for delegated apps, and "
                        "the state of every app's tokens.", no_args_is_help=True)


@auth.command("login")
def login(ctx: typer.Context,
          app: str = typer.Argument(..., help="The [[m365]] app's name."),
          mailbox: str = typer.Option(None, "--mailbox", help="Sign in this mailbox's own "
                                      "user (one sign-in per mailbox under a shared app); "
                                      "default: one account for every mailbox."),
          replace: bool = typer.Option(False, "--replace", help="Start a new token cache "
                                       "holding this sign-in alone (the app's other "
                                       "sign-ins are dropped), e.g. after token_cache_key "
                                       "changed.")) -> None:
    """Sign in with the device-code flow: open the URL printed here on any device and enter
    the code. The token cache is saved after every refresh: through the app's token_cache
    secret reference (default: the keyring entry mailbridge/m365/APP/token-cache), or with
    token_cache_key in the store, encrypted, where every host sharing the store uses it.

    Example: mailbridge auth login contoso --mailbox sales@contoso.com"""
    from mailbridge.services import m365  # MSAL loads only for Microsoft 365 commands

    who = m365.login(state(ctx).config(), app, note, mailbox, replace)
    note(f"signed in as {who} for app {app}")


@auth.command("status")
def status(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Per app and signed-in account: the access token's expiry and whether a silent refresh
    works now (its error if not). Exit 3 if any app cannot get a token."""
    from mailbridge.services import m365

    rows = m365.status(state(ctx).config())
    emit(rows, fmt, ("app", "auth", "account", "token_expires", "ok", "error"))
    if not all(r["ok"] for r in rows):
        raise typer.Exit(EXIT_AUTH)


def register(app: typer.Typer) -> None:
    app.add_typer(auth, name="auth")
