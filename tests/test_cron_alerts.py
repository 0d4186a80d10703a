"""Usedesk's "No messages (h)" under cron: a one-shot `sync` raises and clears alerts as `run`
does, and the agents with --notify-no-messages are mailed once per quiet period — through the
channel's own outgoing connection, or for a channel without one through `[alerts] outgoing`
(SMTP, the local MTA or Microsoft 365). Time passing is simulated by moving the store's
timestamps two days back."""

from __future__ import annotations

import json
import sys
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from conftest import drop, m365_config, message

QUIET_HOURS = 24


def written(mb) -> dict:
    return tomllib.loads(mb.config.read_text())


def two_days_pass(mb) -> None:
    """Everything the store remembers happened two days earlier than it did."""
    back = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")
    mb.write("UPDATE messages SET stored_at=?", (back,))
    mb.write("UPDATE runs SET started_at=?, finished_at=?", (back, back))
    mb.write("UPDATE outbox SET created_at=?", (back,))  # the hourly cap's clock too


def agents(mb) -> None:
    assert mb("agents", "add", "alice", "--email", "alice@example.com",
              "--notify-no-messages").exit_code == 0
    assert mb("agents", "add", "bob", "--email", "bob@example.com").exit_code == 0


def alerts_table(tmp_path, outgoing: dict | None) -> dict:
    record = tmp_path / "alerts.jsonl"
    table = {"command": [sys.executable, "-c", f"import sys; open({str(record)!r}, 'a')"
                         ".write(sys.stdin.read())"]}  # each event ends with its newline
    if outgoing:
        table["outgoing"] = outgoing
    return table


def events(tmp_path) -> list[tuple[str, str, str]]:
    record = tmp_path / "alerts.jsonl"
    if not record.exists():
        return []
    return [(e["event"], e["channel"], e["kind"])
            for e in map(json.loads, record.read_text().splitlines())]


def test_cron_sync_raises_mails_once_per_quiet_period_and_clears(mb, smtp, tmp_path):
    spool = mb.drop_channel("desk", title="Help Desk", no_messages_hours=QUIET_HOURS)
    mb.write_config(  # the drop channel has no outgoing connection: [alerts] sends for it
        written(mb)["channel"],
        alerts=alerts_table(tmp_path, {"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                       "security": "none", "from_email": "ops@example.com",
                                       "from_name": "Ops"}))
    agents(mb)
    drop(spool, message("First", message_id="1@quiet.test"))
    assert mb("sync", "--quiet").exit_code == 0
    assert events(tmp_path) == [] and smtp.received == []

    two_days_pass(mb)
    raised = mb("sync", "--quiet")
    assert raised.exit_code == 0, raised.output  # the sync itself went well
    [said] = raised.stderr.splitlines()  # --quiet, yet the new alert is said once
    assert said.startswith("mailbridge: desk: quiet alert raised: no messages since")
    assert events(tmp_path) == [("raised", "desk", "quiet")]
    [mail] = smtp.received
    assert mail.rcpt_tos == ["alice@example.com"]  # bob did not opt in
    assert mail.mail_from == "ops@example.com"
    assert mail.message["From"] == "Ops <ops@example.com>"
    assert mail.message["Subject"] == "mailbridge: channel desk: quiet alert raised"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert "no_messages_hours = 24" in mail.message.get_body(("plain",)).get_content()

    again = mb("sync", "--quiet")  # still quiet: nothing more, once per quiet period
    assert again.exit_code == 0 and again.stderr == ""
    assert len(smtp.received) == 1 and len(events(tmp_path)) == 1

    drop(spool, message("Second", message_id="2@quiet.test"))
    cleared = mb("sync")
    assert cleared.exit_code == 0
    assert "mailbridge: desk: quiet alert recovered: recovered after: no messages" in \
        cleared.stderr
    assert events(tmp_path)[-1] == ("recovered", "desk", "quiet")
    assert smtp.received[-1].message["Subject"] == "mailbridge: channel desk: quiet alert " \
                                                   "recovered"
    two_days_pass(mb)
    assert mb("sync", "--quiet").exit_code == 0  # a new quiet period: a new alert
    assert [e[0] for e in events(tmp_path)] == ["raised", "recovered", "raised"]
    assert len(smtp.received) == 3
    status = json.loads(mb("status", "--format", "json").stdout)[0]
    assert (status["title"], status["health"], status["outbox"]) == ("Help Desk", "quiet", 0)


def test_without_any_mail_sender_the_alert_is_still_raised_and_nothing_queued(mb, tmp_path):
    mb.drop_channel("desk", no_messages_hours=QUIET_HOURS)
    mb.write_config(written(mb)["channel"], alerts=alerts_table(tmp_path, None))
    agents(mb)
    assert mb("sync").exit_code == 0
    two_days_pass(mb)
    assert mb("sync").exit_code == 0
    assert events(tmp_path) == [("raised", "desk", "quiet")]
    assert json.loads(mb("outbox", "list", "--format", "json").stdout) == []


def test_sync_of_some_channels_judges_only_those(mb, tmp_path):
    mb.drop_channel("desk", no_messages_hours=QUIET_HOURS)
    mb.drop_channel("other", no_messages_hours=QUIET_HOURS)
    mb.write_config(written(mb)["channel"], alerts=alerts_table(tmp_path, None))
    assert mb("sync").exit_code == 0
    two_days_pass(mb)
    assert mb("sync", "desk").exit_code == 0
    assert events(tmp_path) == [("raised", "desk", "quiet")]


def test_imap_channel_alert_mail_through_the_local_mta(mb, dovecot, imap_user, tmp_path,
                                                       monkeypatch):
    log = tmp_path / "sendmail.log"
    script = tmp_path / "sendmail"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                      "sys.stdin.read()\n")
    script.chmod(0o755)
    monkeypatch.setenv("MB_TEST_IMAP_PASSWORD", imap_user.password)
    mb.write_config([{"name": "desk", "no_messages_hours": QUIET_HOURS, "incoming": {
        "type": "imap", "host": "127.0.0.1", "port": imap_user.port, "security": "none",
        "username": imap_user.username, "password": {"env": "MB_TEST_IMAP_PASSWORD"}}}],
        alerts=alerts_table(tmp_path, {"type": "sendmail", "command": [str(script), "-oi"],
                                       "from_email": "ops@example.com"}))
    agents(mb)
    dovecot.append(imap_user.username, imap_user.password, [message("Hi")])
    assert mb("sync").exit_code == 0
    two_days_pass(mb)
    assert mb("sync").exit_code == 0
    assert events(tmp_path) == [("raised", "desk", "quiet")]
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        ["-oi", "-f", "ops@example.com", "--", "alice@example.com"]]


def test_microsoft_365_channel_alert_mail_through_graph(mb, graph, tmp_path):
    graph.deliver("a@contoso.com", message("Hi"))
    m365_config(mb, graph, ["a@contoso.com"], channel_keys={"no_messages_hours": QUIET_HOURS})
    data = written(mb)
    mb.write_config(data["channel"], m365=data["m365"], alerts=alerts_table(
        tmp_path, {"type": "m365", "app": "contoso", "mailbox": "b@contoso.com"}))
    agents(mb)
    assert mb("sync").exit_code == 0
    two_days_pass(mb)
    assert mb("sync").exit_code == 0
    [(mailbox, mime)] = graph.sent
    assert mailbox == "b@contoso.com"
    assert b"To: alice@example.com" in mime and b"From: mailbridge <b@contoso.com>" in mime
    assert b"Subject: mailbridge: channel support: quiet alert raised" in mime


@pytest.mark.parametrize(("outgoing", "problem"), [
    ({"type": "smtp", "host": "127.0.0.1"},
     "alerts.outgoing.from_email: is required"),
    ({"type": "m365", "app": "nope", "mailbox": "b@contoso.com"},
     'alerts.outgoing.app: names no [[m365]] entry called "nope"'),
    ({"type": "pigeon"}, "alerts.outgoing.type: must be one of"),
])
def test_alerts_outgoing_is_checked(mb, tmp_path, outgoing, problem):
    mb.drop_channel("desk")
    mb.write_config(written(mb)["channel"], alerts=alerts_table(tmp_path, outgoing))
    result = mb("status")
    assert result.exit_code == 2 and problem in result.stderr
