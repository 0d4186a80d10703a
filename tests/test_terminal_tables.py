"""Tables on a real terminal (a pseudo-terminal of 80 columns): a row never wraps (long
subjects and addresses are cut with an ellipsis), times are relative, states are coloured
unless NO_COLOR, a list stops at 30 rows and says how many more there are, and long output
goes through the pager."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import drop, message
from rich.cells import cell_len
from servers.terminal import run_on_terminal

TICKETS = 40


@pytest.fixture
def busy(mb):
    """40 tickets with long subjects (one in Japanese, two cells a character) from long
    addresses, and a second channel whose syncs fail."""
    spool = mb.drop_channel("support")
    for i in range(TICKETS):
        subject = ("請求書について質問があります" * 4 if i == 3 else
                   f"Question {i} about the invoice of last month, which was charged twice "
                   "to our company card")
        drop(spool, message(subject, sender=f"a.very.long.name.{i}@accounts.example-company."
                                           "example", message_id=f"q{i}@x"))
    mb.drop_channel("gone")
    (mb.root / "spool" / "gone" / "new").rmdir()
    for _ in range(3):  # failing three times in a row: a problem line in status
        assert mb("sync").exit_code == 4
    return mb


def on_terminal(mb, *args: str, **env: str | None):
    """`mailbridge ARGS` on an 80-column terminal; `env` adds to the environment (None
    removes a variable). The pager is `cat` unless PAGER is given."""
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    full |= {"TERM": "xterm-256color", "PAGER": "cat", **env}
    return run_on_terminal([sys.executable, "-m", "mailbridge", "--config", str(mb.config),
                            *args], {k: v for k, v in full.items() if v is not None})


@pytest.mark.parametrize("command", [("tickets", "list"), ("status",), ("doctor",)],
                         ids=" ".join)
def test_no_row_wraps_at_80_columns(busy, command):
    screen = on_terminal(busy, *command)
    assert screen.exit_code in (0, 4), screen.text
    lines = screen.text.splitlines()
    assert len(lines) > 3, screen.text
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert too_wide == [], screen.text


def test_a_ticket_list_fits_counts_and_colours(busy):
    screen = on_terminal(busy, "tickets", "list")
    lines = screen.text.splitlines()
    assert lines[0].split() == ["id", "status", "prio", "queue", "assignee", "from", "subject",
                                "msgs", "updated"]
    rows = lines[1:31]
    assert all(row.split()[0].isdigit() for row in rows)  # every row on one line
    assert all("…" in row and "just now" in row for row in rows), rows
    assert lines[31] == f"... {TICKETS - 30} more; --limit N or --all to see them"
    assert b"\x1b[32mopen" in screen.output  # open tickets in green
    assert "\x1b[" not in on_terminal(busy, "tickets", "list", NO_COLOR="1").output.decode()
    every = on_terminal(busy, "tickets", "list", "--all").text.splitlines()
    assert len(every) == TICKETS + 1


def test_status_shows_each_problem_on_a_line_of_its_own(busy):
    screen = on_terminal(busy, "status")
    assert screen.exit_code == 4
    lines = screen.text.splitlines()
    assert lines[0].split()[:2] == ["channel", "health"]
    failing = next(line for line in lines if line.startswith("gone "))
    assert "failing" in failing
    assert any(line.startswith("gone: 3 syncs in a row failed") for line in lines), lines
    assert b"\x1b[31mfailing" in screen.output
    assert f"open tickets nobody is assigned to: support {TICKETS}" in lines


def test_long_output_goes_through_the_pager(busy, tmp_path):
    paged = tmp_path / "paged.txt"
    screen = on_terminal(busy, "tickets", "list", PAGER=f"sh -c 'cat > {paged}'")
    assert screen.exit_code == 0
    assert "subject" not in screen.text  # the table went to the pager, not the terminal
    assert "... 10 more" in screen.text  # the note comes after, on stderr
    assert paged.read_text().splitlines()[0].startswith("\x1b[1mid")


def test_the_default_pager_is_less_with_frx(busy, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "less"
    fake.write_text(f'#!/bin/sh\necho "$@ LESS=$LESS" > {tmp_path}/args\ncat > /dev/null\n')
    fake.chmod(0o755)
    screen = on_terminal(busy, "tickets", "list", PAGER=None,
                         PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert screen.exit_code == 0
    assert (tmp_path / "args").read_text().strip() == "-FRX LESS=FRX"


def test_quitting_the_pager_early_is_not_an_error(busy):
    screen = on_terminal(busy, "tickets", "list", "--all", PAGER="head -n 3")
    assert screen.exit_code == 0, screen.text
    assert len(screen.text.splitlines()) == 3
    assert "Traceback" not in screen.text and "error" not in screen.text


@pytest.mark.sqlite_only  # a bound on rendering; the queries of both backends: test_output_formats
def test_25000_tickets_on_a_terminal_take_a_moment_not_half_a_minute(mb):
    """Rich's table took 38 s for this at 80 columns (`benchmarks/bench_tickets_list.py`);
    the first screen is a bounded query, and all of it one pass to measure, one to write."""
    from mailbridge.store import tickets

    mb.drop_channel("support")
    db = mb.open()
    with db.atomic():
        for i in range(25_000):
            tickets.create(db, "support", "general", f"Question {i} about an invoice",
                           "", f"c{i}@customer.example", "human")
    db.close()
    first = on_terminal(mb, "tickets", "list")
    assert first.exit_code == 0 and first.seconds < 5, first.seconds
    assert "... 24970 more" in first.text
    every = on_terminal(mb, "tickets", "list", "--all")
    assert every.exit_code == 0 and every.seconds < 15, every.seconds
    assert len(every.text.splitlines()) == 25_001
