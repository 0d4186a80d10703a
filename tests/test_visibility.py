"""Nothing goes wrong unseen: a sync says what became of every outbox row it touched and
`status` reports a channel whose mail keeps failing to go out; mail that could only be stored
raw is counted by `status`, warned of by `doctor` and listed by `messages list --unparsed`;
a channel fed only by `ingest` is active, not "never synced"."""

from __future__ import annotations

import json

from conftest import drop, message

DEAD_SMTP = {"type": "smtp", "host": "127.0.0.1", "port": 9, "security": "none"}  # refused


def status_of(mb, channel: str = "support") -> dict:
    rows = json.loads(mb("status", "--format", "json").stdout)
    return next(r for r in rows if r["channel"] == channel)


def test_a_failed_send_is_counted_and_shown_and_status_reports_it(mb):
    spool = mb.drop_channel(outgoing=DEAD_SMTP)
    drop(spool, message())
    assert mb("sync").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    first = mb("sync")
    assert first.exit_code == 4
    assert "mailbridge: support: outbox #1 to ann@customer.example: not sent, tried again " \
           "at the next sync: " in first.stderr
    assert "support: outbox: 0 sent, 1 to retry, 0 failed, 0 unknown" in first.stderr
    row = status_of(mb)
    assert row["unsent"] == 1 and row["health"] == "ok"  # once is not yet "keeps failing"
    for _ in range(2):
        assert mb("sync").exit_code == 4
    now = mb("status", "--format", "table")
    assert now.exit_code == 4
    row = status_of(mb)
    assert row["health"] == "unsent"
    assert row["problems"][0].startswith("outbox #1 not sent after 3 attempts: ")
    assert "support: outbox #1 not sent after 3 attempts" in now.stdout
    assert mb("outbox", "cancel", "1").exit_code == 0
    assert mb("status").exit_code == 0 and status_of(mb)["unsent"] == 0


def test_mail_needing_a_person_makes_the_channel_unsent_at_once(mb):
    spool = mb.drop_channel(outgoing=DEAD_SMTP)
    drop(spool, message())
    assert mb("sync", "--no-send").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    mb.write("UPDATE outbox SET state='unknown', attempts=1, last_error='connection lost'")
    row = status_of(mb)
    assert row["health"] == "unsent" and row["unsent"] == 1
    assert "1 outgoing mail failed or may not have gone out" in row["problems"][0]


def test_mail_stored_raw_is_counted_warned_and_listed(mb):
    mb.drop_channel()
    piped = mb("ingest", "support", input=b"garbage\n")
    assert piped.exit_code == 0  # stored: the MTA must not retry it
    assert "mailbridge: warning: support: message 1 could not be parsed" in piped.stderr
    assert "mailbridge messages list --unparsed" in piped.stderr
    assert status_of(mb)["unparsed"] == 1
    doctor = json.loads(mb("doctor", "--offline", "--format", "json").stdout)
    [warned] = [c for c in doctor if c["check"] == "unparsed support"]
    assert warned["status"] == "warn" and "1 message" in warned["detail"]
    listed = json.loads(mb("messages", "list", "--unparsed", "--format", "json").stdout)
    assert [(m["id"], m["channel"]) for m in listed] == [(1, "support")]
    assert listed[0]["parse_error"]
    assert mb("messages", "show", "1", "--raw").stdout_bytes == b"garbage\n"
    assert json.loads(mb("messages", "list", "--format", "json").stdout)[0]["id"] == 1


def test_a_channel_fed_only_by_ingest_is_active(mb):
    mb.drop_channel(no_messages_hours=24)
    assert mb("ingest", "support", input=message()).exit_code == 0
    result = mb("status")
    assert result.exit_code == 0, result.output
    row = status_of(mb)
    assert row["health"] == "ok" and row["last_message"] and row["messages_24h"] == 1
