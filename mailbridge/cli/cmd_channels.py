"""`channels list/show/test/set/unset/enable/disable/remove`."""

from __future__ import annotations

import typer

from mailbridge.cli.output import (
    FORMAT_OPTION,
    SHOW_FORMAT_OPTION,
    Format,
    confirm,
    emit,
    emit_record,
    note,
)
from mailbridge.cli.params import ADDRESS
from mailbridge.cli.state import state
from mailbridge.cli.terminal import print_line
from mailbridge.cli.values import shown
from mailbridge.config.channel_keys import describe_paths
from mailbridge.errors import EXIT_PARTIAL, UsageError
from mailbridge.services import channels as service
from mailbridge.services import connectors

group = typer.Typer(help="List, inspect, change, enable, disable and remove channels.",
                    no_args_is_help=True)
COLUMNS = ("name", "title", "enabled", "mode", "incoming", "outgoing", "schedule",
           "default_queue")


@group.command("list")
def list_cmd(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """List the configured channels."""
    emit([service.summary(c) for c in state(ctx).config().channels], fmt, COLUMNS)


@group.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
         fmt: Format = SHOW_FORMAT_OPTION) -> None:
    """Show one channel's settings (secret references are shown, never their values)."""
    details = service.details(state(ctx).config(), name)

    def page() -> None:
        for key, value in details.items():
            for sub, v in value.items() if isinstance(value, dict) else ((None, value),):
                print_line(f"{key}{'.' + sub if sub else ''}: {shown(v)}")
    emit_record(details, fmt, page)


@group.command("test")
def test(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
         fmt: Format = SHOW_FORMAT_OPTION,
         send_test_to: str = typer.Option(None, "--send-test-to", parser=ADDRESS,
                                          help="Also send one test "
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

    def page() -> None:
        _print_incoming(name, report)
        _print_outgoing(name, report)
    emit_record(report, fmt, page)
    if report.get("failed"):  # some mailboxes of several could not be used
        raise typer.Exit(EXIT_PARTIAL)


def _print_outgoing(name: str, report: dict) -> None:
    out = report.get("outgoing")
    if out:
        where = (f"{out['host']}:{out['port']} ({out['security']})" if "host" in out
                 else f"as {out['mailbox']} (Mail.Send {out['mail_send']})" if "mailbox" in out
                 else out["program"])
        print_line(f"{name}: outgoing {out['type']} {where}: login {out['login']}")
        if "test_mail" in out:
            print_line(f"  test mail to {out['test_mail']['to']}: accepted "
                       f"(Message-ID <{out['test_mail']['message_id']}>)")


def _print_incoming(name: str, report: dict) -> None:
    if report["type"] == "m365":
        for row in report["mailboxes"]:
            if row["problem"]:
                hint = f" ({row['hint']})" if row["hint"] else ""
                print_line(f"{name}: {row['mailbox']}: FAILED: {row['problem']}{hint}")
            else:
                print_line(f"{name}: {row['mailbox']}: read ok ({row['messages']} in the inbox, "
                           f"{row['unread']} unread), mark read {row['mark_read']}")
                if row["skipped"]:
                    print_line("  not read: " + "; ".join(
                        f"{f['folder']} ({f['reason']})" for f in row["skipped"]))
        return
    if report["type"] == "drop":
        print_line(f"{name}: spool {report['spool']}: ok, {report['waiting']} file(s) waiting")
        return
    print_line(f"{name}: login to {report['host']}:{report['port']} ({report['security']}) "
               f"as {report['username']}: ok")
    for folder in report["folders"]:
        mark = "sync" if folder["synced"] else "    "
        why = f"  (skipped: {folder['skipped']})" if folder["skipped"] else ""
        print_line(f"  [{mark}] {folder['name']} {' '.join(folder['flags'])}".rstrip() + why)
    for f in report["synced"]:
        print_line(f"  {f['folder']}: UIDVALIDITY {f['uidvalidity']}, {f['messages']} "
                   f"message(s), {f['unread']} unread")
        if f["latest_header"]:
            print_line(f"    latest: {f['latest_header']}")


MAILBOX_OPTION = typer.Option(None, "--mailbox", "-m", help="Only this mailbox of a "
                              "Microsoft 365 channel (repeatable).")


@group.command("enable")
def enable(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
           mailbox: list[str] = MAILBOX_OPTION) -> None:
    """Enable a channel, or single mailboxes of it: `sync` and `run` include them again."""
    _switch(ctx, name, mailbox, True)


@group.command("disable")
def disable(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
            mailbox: list[str] = MAILBOX_OPTION) -> None:
    """Disable a channel, or single mailboxes of it: kept in the config and store, not
    synced."""
    _switch(ctx, name, mailbox, False)


def _switch(ctx: typer.Context, name: str, mailboxes: list[str] | None, on: bool) -> None:
    word = "enabled" if on else "disabled"
    if mailboxes:
        service.set_mailboxes(state(ctx).path, name, mailboxes, on)
        note(f"channel {name}: {', '.join(mailboxes)} {word}")
    else:
        service.set_enabled(state(ctx).path, name, on)
        note(f"channel {name} {word}")


@group.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
           mailbox: list[str] = MAILBOX_OPTION,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
           ) -> None:
    """Remove a channel, or single mailboxes of it, from the config (what was stored stays
    in the store)."""
    if mailbox:
        _remove_mailboxes(ctx, name, mailbox, yes)
        return
    if not yes:
        confirm(f"Remove channel {name} from the config?")
    service.remove_channel(state(ctx).path, name)
    note(f"channel {name} removed from {state(ctx).path}; its tickets stay in the store")


@group.command("remove-mailbox")
def remove_mailbox(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
                   addresses: list[str] = typer.Argument(..., metavar="ADDRESS",
                                                         help="Mailboxes to remove."),
                   yes: bool = typer.Option(False, "--yes", "-y",
                                            help="Do not ask for confirmation.")) -> None:
    """Remove several mailboxes of a Microsoft 365 channel at once."""
    _remove_mailboxes(ctx, name, addresses, yes)


def _remove_mailboxes(ctx: typer.Context, name: str, addresses: list[str], yes: bool) -> None:
    listed = ", ".join(addresses)
    if not yes:
        confirm(f"Remove {listed} from channel {name}?")
    service.set_mailboxes(state(ctx).path, name, addresses, None)
    note(f"channel {name}: {listed} removed; what they brought stays in the store")


@group.command("set", epilog=describe_paths())
def set_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
            pairs: list[str] = typer.Argument(..., metavar="KEY VALUE [KEY VALUE]...",
                                              help="Keys and their values."),
            mailbox: str = typer.Option(None, "--mailbox", "-m", help="Set keys of this "
                                        "mailbox of a Microsoft 365 channel.")) -> None:
    """Set channel keys without an editor, e.g. `channels set support outgoing.from_name
    "Acme Support" incoming.port 993`. A value is read as its key's type (993, true, a text,
    a TOML value such as '[{ queue = "billing", keywords = ["invoice"] }]', a secret as
    env:VAR); the file is written only when the whole config is then valid, and keeps its
    comments."""
    if len(pairs) % 2:
        raise UsageError(f"{pairs[-1]} has no value", "give every KEY a VALUE; "
                         f"`mailbridge channels unset {name} KEY` removes a key")
    service.set_keys(state(ctx).path, name, list(zip(pairs[::2], pairs[1::2], strict=True)),
                     mailbox)
    where = f"channel {name}" + (f" mailbox {mailbox}" if mailbox else "")
    note(f"{where}: set {', '.join(pairs[::2])}")


@group.command("unset", epilog=describe_paths())
def unset_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Channel name."),
              keys: list[str] = typer.Argument(..., metavar="KEY", help="Keys to remove."),
              mailbox: str = typer.Option(None, "--mailbox", "-m", help="Remove keys of this "
                                          "mailbox of a Microsoft 365 channel.")) -> None:
    """Remove channel keys, so that their defaults apply again, e.g. `channels unset
    support schedule`; a required key stays (the config would be invalid)."""
    removed = service.unset_keys(state(ctx).path, name, keys, mailbox)
    where = f"channel {name}" + (f" mailbox {mailbox}" if mailbox else "")
    unset = [k for k in keys if k not in removed]
    if removed:
        note(f"{where}: removed {', '.join(removed)}")
    if unset:
        note(f"{where}: {', '.join(unset)} not set; nothing to remove")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="channels")
