"""Hostile mail against real `mailbridge` processes (issue 17): a message being parsed holds
no lock, so another channel's piped mail commits meanwhile; Ctrl-C stops a sync and its
parsing helpers quietly; a message that will not parse is stored raw and flagged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import drop, message
from test_prepare_helper import slow_to_parse

from mailbridge.pipeline import prepare_helper
from mailbridge.pipeline.prepare_helper import IN_PROCESS_BYTES

WAIT = 60.0


def wait_for(what: str, check: Callable[[], object], timeout: float = WAIT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def helpers_of(pid: int) -> list[int]:
    """The parsing helper processes a mailbridge process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"prepare_helper" in cmdline and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def hostile_html(subject: str) -> bytes:
    """Larger than what is parsed in-process, so a helper parses it."""
    html = b"<div>" * (IN_PROCESS_BYTES // 5 + 1000)
    return (f"From: a@example.com\nTo: support@example.com\nSubject: {subject}\n"
            "Content-Type: text/html\n\n").encode() + html


def cli(mb, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailbridge", "--config", str(mb.config), *args]


def subjects(mb) -> dict[str, list[str]]:
    rows = mb.query("SELECT channel, subject FROM messages ORDER BY id")
    found: dict[str, list[str]] = {}
    for channel, subject in rows:
        found.setdefault(channel, []).append(subject)
    return found


def test_a_message_being_parsed_does_not_hold_up_another_channels_mail(mb):
    hostile = mb.drop_channel("hostile")
    mb.drop_channel("support")
    drop(hostile, hostile_html("Hostile"))
    sync = subprocess.Popen(cli(mb, "sync", "hostile"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        helper = wait_for("the parsing helper", lambda: helpers_of(sync.pid))[0]
        os.kill(helper, signal.SIGSTOP)  # a parse that takes as long as we like
        piped = subprocess.run(cli(mb, "ingest", "support", "--wait", "2"),
                               input=message("Piped meanwhile"), capture_output=True,
                               timeout=WAIT)
        assert piped.returncode == 0, piped.stderr
        assert sync.poll() is None  # the sync is still parsing
        assert subjects(mb) == {"support": ["Piped meanwhile"]}
        os.kill(helper, signal.SIGCONT)
        _, err = sync.communicate(timeout=WAIT)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.wait(timeout=WAIT)
    assert sync.returncode == 0, err
    assert subjects(mb) == {"support": ["Piped meanwhile"], "hostile": ["Hostile"]}


def test_ctrl_c_stops_a_sync_and_its_helpers_quietly(mb):
    spool = mb.drop_channel()
    for i in range(3000):
        drop(spool, message(f"Many {i}", message_id=f"{i}@many", body="line\n" * 100))
    # its own process group, as a terminal runs a command: Ctrl-C signals the whole group
    # (with Ctrl-C's default action, as in a terminal: a runner started in the background
    # by a shell without job control hands its children SIGINT ignored)
    sync = subprocess.Popen(cli(mb, "sync"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            process_group=0,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        helpers = wait_for("the parsing helpers", lambda: helpers_of(sync.pid))
        os.killpg(sync.pid, signal.SIGINT)
        _, err = sync.communicate(timeout=WAIT)
    finally:
        if sync.poll() is None:
            sync.kill()
            sync.wait(timeout=WAIT)
    assert sync.returncode == 130
    assert err.decode() == "mailbridge: interrupted\n"
    for pid in helpers:
        wait_for(f"helper {pid} to end", lambda p=pid: not Path(f"/proc/{p}").exists())


def test_random_binary_is_stored_raw_and_flagged_not_filed(mb):
    mb.drop_channel()
    junk = os.urandom(1_000_000)
    piped = subprocess.run(cli(mb, "ingest", "support"), input=junk, capture_output=True,
                           timeout=WAIT)
    assert piped.returncode == 0, piped.stderr
    stored = mb.query("SELECT parse_error, length(raw) FROM messages")
    tickets = mb.value("SELECT count(*) FROM tickets")
    assert stored == [("no header block", len(junk))]
    assert tickets == 0


def test_mail_that_ran_past_its_deadline_is_flagged_and_reprocess_is_bounded_too(
        mb, monkeypatch):
    mb.drop_channel()
    slow = slow_to_parse()
    usual = prepare_helper._BASE_SECONDS, prepare_helper._SECONDS_PER_MB
    monkeypatch.setattr(prepare_helper, "_BASE_SECONDS", 0.05)
    monkeypatch.setattr(prepare_helper, "_SECONDS_PER_MB", 0.0)
    assert mb("ingest", "support", input=slow).exit_code == 0
    assert mb.query("SELECT parse_error FROM messages") == [
        ("parsing took longer than its deadline of 0.05 s; stored raw",)]
    again = mb("reprocess", "--format", "json")
    assert json.loads(again.stdout)[0]["still_failing"] == 1
    monkeypatch.setattr(prepare_helper, "_BASE_SECONDS", usual[0])
    monkeypatch.setattr(prepare_helper, "_SECONDS_PER_MB", usual[1])
    fixed = mb("reprocess", "--format", "json")
    assert json.loads(fixed.stdout)[0]["fixed"] == 1
