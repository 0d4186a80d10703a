"""Mail cannot drive the terminal: everything that came from mail is shown with its control
characters made visible and its bidi overrides neutralised in every human format (table,
tsv, csv, the `show` pages, stderr lines), while JSON keeps the exact text, escaped."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import drop

# Sets the window title, rings the bell, clears the screen, plants an OSC 8 hyperlink,
# reverses the text that follows and uses an 8-bit CSI.
HOSTILE = ("\x1b]0;pwned\x07\x1b[2J\x1b]8;;https://evil.test/\x1b\\click\x1b]8;;\x1b\\ "
           "\u202egnp.exe \x9b31m\rOK")
# What a terminal may act on: C0 controls but newline and tab, DEL, C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NOW = datetime.now(UTC)


def encoded(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def hostile_mail(sender: str, to: str, mid: str) -> bytes:
    body = base64.b64encode(f"Dear team,\n{HOSTILE}\nbye\n".encode()).decode()
    return (f"From: {encoded('Eve ' + HOSTILE)} <{sender}>\nTo: {to}\n"
            f"Subject: {encoded(HOSTILE)}\nMessage-ID: <{mid}>\n"
            f"Date: {format_datetime(NOW)}\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=b\n\n"
            "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            f"{body}\n--b\nContent-Type: application/octet-stream\n"
            f"Content-Disposition: attachment; filename=\"{encoded(HOSTILE)}\"\n"
            "Content-Transfer-Encoding: base64\n\naGk=\n--b--\n").encode()


@pytest.fixture
def hostile(mb):
    """A ticket, a reply in the outbox, an engagement, a My Inbox item turned opportunity
    and a failing channel, all carrying HOSTILE."""
    connected = (NOW - timedelta(hours=1)).isoformat()
    desk = mb.drop_channel("desk", outgoing={"type": "smtp", "host": "127.0.0.1", "port": 9,
                                             "security": "none"})
    cs = mb.drop_channel("cs", mode="engagements", owner="anna@us.test",
                         connected_at=connected)
    sales = mb.drop_channel("sales", mode="sales", owner="anna@us.test", agent="Anna",
                            matching=False, connected_at=connected)
    mb.drop_channel("gone", enabled=True)
    (mb.root / "spool" / "gone" / "new").rmdir()  # every sync of it fails
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    drop(desk, hostile_mail("eve@evil.test", "desk@example.com", "t@x"))
    drop(cs, hostile_mail("bob@acme.test", "anna@us.test", "e@x"))
    drop(sales, hostile_mail("eve@evil.test", "anna@us.test", "s@x"))
    drop(sales, hostile_mail("eve@evil.test", "anna@us.test", "s2@x"))  # stays in My Inbox
    synced = mb("-v", "sync", "--no-send")
    assert synced.exit_code == 4, synced.output  # "gone" failed; the rest is stored
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    assert mb("inbox", "new-opportunity", "1").exit_code == 0
    return synced


HUMAN_VIEWS = [("tickets", "list"), ("tickets", "show", "1"), ("engagements", "list"),
               ("engagements", "show", "1"), ("opportunities", "list"),
               ("opportunities", "show", "1"), ("inbox", "list", "--agent", "Anna"),
               ("outbox", "list"), ("status",)]


@pytest.mark.parametrize("fmt", [None, "table", "tsv", "csv"])
def test_every_human_format_shows_mail_harmlessly(mb, hostile, fmt):
    assert not UNSAFE.search(hostile.stderr), hostile.stderr  # the -v lines of the sync
    for view in HUMAN_VIEWS:
        args = view + (("--format", fmt) if fmt else ())
        result = mb(*args)
        assert result.exit_code in (0, 4), (args, result.output)
        shown = result.stdout + result.stderr
        assert not UNSAFE.search(shown), (args, shown)
        # outbox and status show no mail text; a table cuts long cells; a show command's
        # tsv and csv write the lists of its record (messages, contacts) as JSON text
        if view not in (("outbox", "list"), ("status",)) and "table" not in args:
            assert re.search(r"\\(x1b|u001b)\]0;pwned\\(x07|u0007)", shown), (args, shown)
            assert "\\u202egnp.exe" in shown, (args, shown)


def test_json_keeps_the_exact_text_escaped(mb, hostile):
    for args in (("tickets", "show", "1", "--format", "json"),
                 ("tickets", "list", "--format", "jsonl")):
        result = mb(*args)
        assert not UNSAFE.search(result.stdout), args  # escaped: \u001b, \u202e, \u009b
    shown = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)
    assert shown["subject"] == HOSTILE
    assert shown["messages"][0]["subject"] == HOSTILE
    assert "\u202egnp.exe \x9b31m" in shown["messages"][0]["attachments"][0]["filename"]
    assert HOSTILE in shown["messages"][0]["text"]
    listed = json.loads(mb("engagements", "list", "--format", "json").stdout)
    assert "\u202egnp.exe \x9b31m" in listed[0]["subject"]  # as the parser stored it


def test_a_table_cell_is_text_not_rich_markup(capsys):
    from mailbridge.cli.output import Format, emit

    emit([{"subject": "[bold]hi[/bold]"}], Format.table, ["subject"])
    assert "[bold]hi[/bold]" in capsys.readouterr().out


def test_line_breaks_and_tabs_of_a_text_stay_readable():
    from mailbridge.cli.terminal import for_terminal

    assert for_terminal("a\r\n\tb\rc\n") == "a\\x0d\\x0a\tb\\x0dc\\x0a"  # one line: no forging
    assert for_terminal("a\r\n\tb\rc\n", lines=True) == "a\n\tb\\x0dc\n"
