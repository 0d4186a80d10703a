"""`store info|migrate` and `leases list|hosts|release`: the store itself, and how hosts that
share one divide its channels."""

from __future__ import annotations

import sys

import typer

from mailbridge.cli.output import (
    FORMAT_OPTION,
    SHOW_FORMAT_OPTION,
    Format,
    emit,
    emit_record,
    err_console,
    note,
    write,
)
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line

store_group = typer.Typer(help="The store: what it is, and moving it to PostgreSQL.",
                          no_args_is_help=True)
leases_group = typer.Typer(help="Which host syncs which channel when several share a "
                                "PostgreSQL store.", no_args_is_help=True)


@store_group.command("info")
def info(ctx: typer.Context, fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """The store's backend and version, schema version and row counts.

    Example: mailbridge store info --format json | jq .rows.messages"""
    from mailbridge.services import store_admin

    found = store_admin.info(state(ctx).config())

    def page() -> None:
        if not found["created"]:
            print_line(f"{found['where']}: not created yet (the first `mailbridge sync` "
                       "creates it)")
            return
        print_line(f"{found['backend']} store {found['where']}: {found['version']}, schema "
                   f"version {found['schema_version']} ({found['schema_latest']})")
        write([{"table": t, "rows": n} for t, n in found["rows"].items()], Format.table,
              ("table", "rows"))
    emit_record(found, fmt, page)


@store_group.command("migrate")
def migrate(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", metavar="URL",
                           help="The target: postgresql://USER@HOST/DB (libpq keywords as "
                                "?key=value), or sqlite:///PATH."),
    password: str = typer.Option(None, "--password", metavar="REF",
                                 help="The target's password as a secret reference: env:VAR, "
                                      "file:PATH, keyring:NAME or command:PROG ARGS (default: "
                                      "libpq's PGPASSWORD or ~/.pgpass)."),
    resume: bool = typer.Option(False, "--resume", help="Go on with a copy that was cut off "
                                "(the target already holds part of it)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Copy this config's store into an empty database: every table, raw messages byte for
    byte, cursors and ledger, so nothing is fetched twice afterwards. Sync stays off
    meanwhile (the source is locked). Then point [store] url at the target.

    Example: mailbridge store migrate --to postgresql://mailbridge@db.example/mailbridge
    --password env:PGPASSWORD"""
    from mailbridge.config.channel_keys import secret_ref
    from mailbridge.services import store_admin

    config = state(ctx).config()
    target = store_admin.target_settings(to, secret_ref(password) if password else None,
                                         config.store.lease_seconds)
    with _Bar() as bar:
        result = store_admin.migrate(config, target, resume, bar.update)
    emit([{"table": c.table, "rows": c.target} for c in result], fmt, ("table", "rows"))
    note(f"copied into {target}; to use it, set in {config.path}:")
    note(f'  [store]\n  url = "{target.url}"' + (
        f"\n  password = {{ {next(iter(target.password_ref))} = "
        f'"{next(iter(target.password_ref.values()))}" }}' if target.password_ref else ""))


class _Bar:
    """A progress bar per table on a terminal; nothing in a pipe or under cron."""

    def __init__(self) -> None:
        self.progress = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Bar:
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.progress = Progress(console=err_console(), transient=False)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, table: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if table not in self.tasks:
            self.tasks[table] = self.progress.add_task(table, total=max(total, 1))
        self.progress.update(self.tasks[table], completed=done if total else 1)


LEASE_COLUMNS = ("channel", "mailbox", "owner", "fence", "expires_in", "due_in")
HOST_COLUMNS = ("owner", "host", "pid", "up_seconds", "heartbeat_age", "alive")


@leases_group.command("list")
def leases_list(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every channel (and Microsoft 365 mailbox): the host holding it, seconds left on its
    lease, seconds until it is due. Empty on SQLite."""
    from mailbridge.services import fleet

    emit(fleet.lease_rows(state(ctx).config()), fmt, LEASE_COLUMNS)


@leases_group.command("hosts")
def leases_hosts(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """The hosts serving the store and the age of their last heartbeat (alive: within
    [store] lease_seconds)."""
    from mailbridge.services import fleet

    emit(fleet.host_rows(state(ctx).config()), fmt, HOST_COLUMNS)


@leases_group.command("release")
def leases_release(
    ctx: typer.Context,
    channel: str = typer.Argument(..., metavar="CHANNEL"),
    mailbox: str = typer.Option(None, "--mailbox", metavar="ADDR",
                                help="Only this Microsoft 365 mailbox's lease."),
) -> None:
    """Free a channel's lease by hand (a host that is stuck but not dead). Its holder cannot
    write anything afterwards: the lease's fencing counter moves on. Another host takes the
    channel at its next look.

    Example: mailbridge leases release support"""
    from mailbridge.services import fleet

    former = fleet.release_by_hand(state(ctx).config(), channel, mailbox)
    note(f"released {channel}: it was held by {', '.join(former)}" if former
         else f"{channel}: no host held it")


def register(app: typer.Typer) -> None:
    app.add_typer(store_group, name="store")
    app.add_typer(leases_group, name="leases")
