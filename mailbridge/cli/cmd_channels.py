"""`channels list/show/test/enable/disable/remove`."""

from __future__ import annotations

import typer

from mailbridge.cli.output import FORMAT_OPTION, Format, emit, emit_json, note
from mailbridge.cli.state import state
from mailbridge.errors import UsageError
from mailbridge.services import channels as service
from mailbridge.services import connectors

group = typer.Typer(help="List, inspect, enable, disable and remove channels.",
                    no_args_is_help=True)
COLUMNS = ("name", "enabled", "mode", "incoming", "outgoing", "schedule", "default_queue")


@group.command("list")
def list_cmd(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """List the configured channels."""
    emit([service.summary(c) for c in state(ctx).config().channels], fmt, COLUMNS)


@group.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
         fmt: Format = typer.Option(None, "--format", "-f", help="json for scripts.")) -> None:
    """Show one channel's settings (secret references are shown, never their values)."""
    details = service.details(state(ctx).config(), name)
    if fmt in (Format.json, Format.jsonl):
        emit_json(details)
        return
    for key, value in details.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                typer.echo(f"{key}.{sub}: {v}")
        else:
            typer.echo(f"{key}: {value}")


@group.command("test")
def test(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
         fmt: Format = typer.Option(None, "--format", "-f", help="json for scripts."),
         send_test_to: str = typer.Option(None, "--send-test-to", help="Also send one test "
                                          "mail to this address through the outgoing side.")
         ) -> None:
    """Test a channel's connections: incoming (log in, list folders, peek at one header;
    nothing is marked read) and outgoing (log in without sending, unless --send-test-to).
    Exit 0 when they work, else the error's exit code."""
    channel = state(ctx).config().require(name)
    report = connectors.test_connection(channel)
    if channel.outgoing is not None:
        from mailbridge.services import outgoing  # see cmd_outgoing.py

        report["outgoing"] = outgoing.test_outgoing(channel, send_test_to)
    elif send_test_to:
        raise UsageError(f"channel {name} has no outgoing connection to send through")
    if fmt in (Format.json, Format.jsonl):
        emit_json(report)
        return
    _print_incoming(name, report)
    out = report.get("outgoing")
    if out:
        where = (f"{out['host']}:{out['port']} ({out['security']})" if "host" in out
                 else out["program"])
        typer.echo(f"{name}: outgoing {out['type']} {where}: login {out['login']}")
        if "test_mail" in out:
            typer.echo(f"  test mail to {out['test_mail']['to']}: accepted "
                       f"(Message-ID <{out['test_mail']['message_id']}>)")


def _print_incoming(name: str, report: dict) -> None:
    if report["type"] == "drop":
        typer.echo(f"{name}: spool {report['spool']}: ok, {report['waiting']} file(s) waiting")
        return
    typer.echo(f"{name}: login to {report['host']}:{report['port']} ({report['security']}) "
               f"as {report['username']}: ok")
    for folder in report["folders"]:
        mark = "sync" if folder["synced"] else "    "
        typer.echo(f"  [{mark}] {folder['name']} {' '.join(folder['flags'])}".rstrip())
    for f in report["synced"]:
        typer.echo(f"  {f['folder']}: UIDVALIDITY {f['uidvalidity']}, {f['messages']} "
                   f"message(s), {f['unread']} unread")
        if f["latest_header"]:
            typer.echo(f"    latest: {f['latest_header']}")


@group.command("enable")
def enable(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name.")) -> None:
    """Enable a channel: `sync` and `run` include it again."""
    service.set_enabled(state(ctx).path, name, True)
    note(f"channel {name} enabled")


@group.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name.")) -> None:
    """Disable a channel: kept in the config and store, but not synced."""
    service.set_enabled(state(ctx).path, name, False)
    note(f"channel {name} disabled")


@group.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
           ) -> None:
    """Remove a channel from the config (its stored tickets stay in the store)."""
    if not yes and not typer.confirm(f"Remove channel {name} from the config?", err=True):
        raise typer.Exit(1)
    service.remove_channel(state(ctx).path, name)
    note(f"channel {name} removed from {state(ctx).path}; its tickets stay in the store")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="channels")
