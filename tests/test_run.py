"""`mailbridge run` as systemd runs it: a real child process on short schedules. Two channels
are served on their own schedules while a third fails; quiet and failing alerts are raised
once and cleared once (JSON to `[alerts] command`); a cron `sync` beside it is refused; SIGHUP
re-reads the config; SIGTERM mid-sync exits 0 with nothing lost or doubled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w
from conftest import drop, message
from servers.dovecot import free_port
from servers.slow_link import SlowLink
from servers.smtp import SmtpServer

from mailbridge.connectors.drop import make_spool
from mailbridge.connectors.imap import FETCH_BYTES
from mailbridge.errors import MailbridgeError

WAIT = 60.0
APPEND = ["sh", "-c", 'cat >> "$0"']  # the alert command a user writes: `cat >> alerts.jsonl`


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen | None = None,
             timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) while waiting for {what}: "
                                 f"{proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def service(mb):
    """A `mailbridge run` harness whose child never outlives the test, pass or fail."""
    svc = Service(mb)
    yield svc
    if svc.proc is not None and svc.proc.poll() is None:
        svc.proc.kill()
        svc.proc.wait(timeout=WAIT)


class Service:
    def __init__(self, mb) -> None:
        self.mb = mb
        self.root = mb.root
        self.config = mb.config
        self.alerts = mb.root / "alerts.jsonl"
        self.proc: subprocess.Popen | None = None

    def spool(self, name: str) -> Path:
        path = self.root / "spool" / name
        make_spool(path)
        return path

    def drop_channel(self, name: str, **extra) -> dict:
        return {"name": name, "main_email": "support@example.com",
                "incoming": {"type": "drop", "spool": str(self.spool(name))}, **extra}

    def write(self, channels: list[dict], after_failures: int = 2) -> None:
        self.config.write_text(tomli_w.dumps({
            "store": self.mb.store_table(),
            "alerts": {"command": APPEND + [str(self.alerts)],
                       "after_failures": after_failures},
            "channel": channels}))

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mailbridge", "--config", str(self.config),
                               *args], capture_output=True, text=True, timeout=WAIT)

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbridge", "--config", str(self.config), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.proc

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=WAIT)
        return self.proc.returncode, err.decode()

    def count(self, channel: str | None = None) -> int:
        sql, params = "SELECT count(*) FROM messages", ()
        if channel is not None:
            sql, params = sql + " WHERE channel=?", (channel,)
        try:
            return self.mb.value(sql, params)
        except MailbridgeError:  # not created, or not migrated yet
            return 0

    def events(self) -> list[tuple[str, str, str]]:
        if not self.alerts.exists():
            return []
        return [(e["event"], e["channel"], e["kind"]) for e in
                (json.loads(line) for line in self.alerts.read_text().splitlines()
                 if line.strip())]


def test_run_serves_channels_raises_and_clears_alerts_and_stops_cleanly(service):
    svc = service
    closed_port = free_port()  # nothing listens here: every sync of "broken" fails
    svc.write([
        svc.drop_channel("fast", schedule="1s"),
        svc.drop_channel("slow", schedule="2s", no_messages_hours=0.0015),  # 5.4 s
        {"name": "broken", "schedule": "1s", "incoming": {
            "type": "imap", "host": "127.0.0.1", "port": closed_port, "security": "none",
            "username": "nobody", "password": {"env": "MB_NO_SUCH_PASSWORD"}, "timeout": 2}},
    ])
    drop(svc.spool("fast"), message("Fast one", message_id="f1@run.test"))
    drop(svc.spool("slow"), message("Slow one", message_id="s1@run.test"))
    proc = svc.start()

    wait_for("both healthy channels to be synced", lambda: svc.count() == 2, proc)
    wait_for("the failing alert", lambda: ("raised", "broken", "failing") in svc.events(), proc)
    drop(svc.spool("fast"), message("Fast two", message_id="f2@run.test"))
    wait_for("a later message on the 1 s schedule", lambda: svc.count("fast") == 2, proc)

    beside = svc.cli("sync")
    if svc.mb.backend == "sqlite":
        assert beside.returncode == 75
        assert "already syncing" in beside.stderr
    # (on a shared store a sync beside `run` leases what no host holds; nothing is doubled:
    # the count at the end says so)
    assert "Traceback" not in beside.stderr

    status = svc.cli("status", "--format", "json")
    assert status.returncode == 4  # a channel is failing
    rows = {r["channel"]: r for r in json.loads(status.stdout)}
    assert rows["broken"]["health"].startswith("failing")
    assert rows["broken"]["failures"] >= 2 and rows["broken"]["last_error"]
    assert rows["fast"]["health"] == "ok" and rows["fast"]["messages_24h"] == 2
    assert rows["fast"]["next_run"] is not None

    wait_for("the quiet alert", lambda: ("raised", "slow", "quiet") in svc.events(), proc)
    drop(svc.spool("slow"), message("Slow two", message_id="s2@run.test"))
    wait_for("the quiet alert to clear",
             lambda: ("recovered", "slow", "quiet") in svc.events(), proc)

    code, err = svc.stop()
    assert code == 0, err
    assert "fast: ok: 1 new" in err
    assert "broken: failed:" in err
    assert "Traceback" not in err
    for line in err.splitlines():  # a line per channel run, not APScheduler's around each
        assert " mailbridge." in line, line
    events = svc.events()
    assert events.count(("raised", "broken", "failing")) == 1  # once, not at every failure
    assert events.count(("raised", "slow", "quiet")) == 1
    assert ("raised", "fast", "quiet") not in events  # no_messages_hours = 0: off
    assert svc.count() == 4


def test_quiet_alert_mail_reaches_agents_who_opted_in(service):
    smtp = SmtpServer()
    try:
        svc = service
        svc.write([svc.drop_channel("desk", schedule="1s", no_messages_hours=0.0005, outgoing={
            "type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none"})])
        assert svc.cli("agents", "add", "alice", "--email", "alice@example.com",
                       "--notify-no-messages").returncode == 0
        assert svc.cli("agents", "add", "bob", "--email", "bob@example.com").returncode == 0
        drop(svc.spool("desk"), message("Only one", message_id="1@quiet.test"))
        proc = svc.start()
        wait_for("the alert mail", lambda: len(smtp.received) >= 1, proc)
        code, err = svc.stop()
        assert code == 0, err
        mail = smtp.received[0]
        assert mail.rcpt_tos == ["alice@example.com"]  # bob did not opt in
        assert mail.message["Subject"] == "mailbridge: channel desk: quiet alert raised"
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert "no messages since" in mail.message.get_body(("plain",)).get_content()
    finally:
        smtp.close()


def test_sigterm_mid_sync_loses_and_doubles_nothing(service):
    svc = service
    svc.write([svc.drop_channel("bulk", schedule="1h")])
    total = 2000
    spool = svc.spool("bulk")
    for i in range(total):
        drop(spool, message(f"Bulk {i}", message_id=f"{i}@bulk.test"), f"{i:05d}.test")
    proc = svc.start()
    wait_for("the first batch", lambda: svc.count() > 0, proc)
    code, err = svc.stop()
    assert code == 0, err
    assert "stopped early" in err
    stopped_at = svc.count()
    assert 0 < stopped_at < total

    finish = svc.cli("sync")
    assert finish.returncode == 0, finish.stderr
    stored = svc.mb.query("SELECT count(*), count(DISTINCT message_id) FROM messages")[0]
    assert stored == (total, total)
    assert list((spool / "new").iterdir()) == []


def test_sigterm_on_a_slow_link_stops_mid_message_and_commits_what_was_fetched(
        service, dovecot, imap_user, monkeypatch):
    svc = service
    small = [message(f"Small {i}", message_id=f"s{i}@slow.test") for i in range(3)]
    big = message("Big", message_id="big@slow.test", body="x" * (8 * 1024 * 1024))
    dovecot.append(imap_user.username, imap_user.password, [*small, big])
    monkeypatch.setenv("MB_TEST_IMAP_PASSWORD", imap_user.password)
    link = SlowLink(imap_user.port, bytes_per_second=1024 * 1024)  # the big one takes 8 s
    try:
        svc.write([{"name": "desk", "main_email": "desk@example.com", "schedule": "1h",
                    "incoming": {"type": "imap", "host": "127.0.0.1", "port": link.port,
                                 "security": "none", "username": imap_user.username,
                                 "password": {"env": "MB_TEST_IMAP_PASSWORD"}}}])
        proc = svc.start()
        wait_for("the big message on the link", lambda: link.downstream > 2 * FETCH_BYTES,
                 proc)
        code, err = svc.stop()
        sent = link.downstream
    finally:
        link.close()
    assert code == 0, err
    assert "stopped early" in err
    assert sent < len(big) // 2  # it stopped mid-message, not after all of it
    assert svc.count() == 3  # the batch before was committed...
    client = dovecot.client(imap_user.username, imap_user.password)
    try:
        client.select_folder("INBOX", readonly=True)
        unseen = client.search(["UNSEEN"])
    finally:
        client.logout()
    assert len(unseen) == 1  # ...and marked read; the big one waits for the next sync


def test_sighup_rereads_the_config(service):
    svc = service
    first = svc.drop_channel("first", schedule="1s")
    svc.write([first])
    proc = svc.start()
    wait_for("the first sync", lambda: svc.cli(
        "status", "--format", "json").stdout.count('"last_success": "') == 1, proc)
    drop(svc.spool("second"), message("Second", message_id="2@hup.test"))
    svc.write([first, svc.drop_channel("second", schedule="1s")])
    proc.send_signal(signal.SIGHUP)
    wait_for("the added channel to be served", lambda: svc.count("second") == 1, proc)
    code, err = svc.stop()
    assert code == 0, err
    assert "config reloaded: 2 channel(s)" in err


def test_a_bad_cron_expression_stops_run_with_one_line(service):
    svc = service
    svc.write([svc.drop_channel("c", schedule="99 * * * *")])
    done = svc.cli("run")
    assert done.returncode == 2
    assert "channel.c.schedule" in done.stderr and "Traceback" not in done.stderr


def test_queues_list_and_move(mb):
    spool = mb.drop_channel(routes=[{"queue": "billing", "keywords": ["invoice"]}])
    drop(spool, message("Invoice 7", message_id="i7@q.test"))
    drop(spool, message("Hello", message_id="h@q.test"))
    assert mb("sync").exit_code == 0
    listed = json.loads(mb("queues", "list", "--format", "json").stdout)
    assert listed == [{"queue": "billing", "open": 1, "unassigned": 1, "pending": 0, "total": 1},
                      {"queue": "general", "open": 1, "unassigned": 1, "pending": 0, "total": 1}]
    billing = json.loads(mb("tickets", "list", "--queue", "billing", "--format", "json").stdout)
    moved = mb("tickets", "move", str(billing[0]["id"]), "--queue", "accounts",
               "--create")
    assert moved.exit_code == 0, moved.stderr
    assert "billing → accounts" in moved.stderr
    listed = {r["queue"]: r["open"] for r in
              json.loads(mb("queues", "list", "--format", "json").stdout)}
    assert listed == {"accounts": 1, "billing": 0, "general": 1}
    missing = mb("tickets", "move", "999", "--queue", "x")
    assert missing.exit_code == 2 and "no ticket #999" in missing.stderr


def test_close_reopen_and_a_customer_answer_reopens(mb):
    spool = mb.drop_channel()
    drop(spool, message("Broken", message_id="b1@t.test"))
    assert mb("sync").exit_code == 0
    closed = mb("tickets", "close", "1")
    assert closed.exit_code == 0 and "open → closed" in closed.stderr
    listed = json.loads(mb("tickets", "list", "--status", "closed", "--format", "json").stdout)
    assert [t["id"] for t in listed] == [1]
    auto = message("Automatic reply: Broken", sender="ann@customer.example",
                   message_id="ooo@t.test", extra="In-Reply-To: <b1@t.test>\n"
                                                  "Auto-Submitted: auto-replied\n")
    drop(spool, auto)
    assert mb("sync").exit_code == 0
    assert json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["status"] == \
        "closed"  # an out-of-office does not reopen
    drop(spool, message("Re: Broken", message_id="b2@t.test",
                        extra="In-Reply-To: <b1@t.test>\n"))
    assert mb("sync").exit_code == 0
    assert json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["status"] == "open"
    assert mb("tickets", "close", "1").exit_code == 0
    assert mb("tickets", "reopen", "1").exit_code == 0
    missing = mb("tickets", "close", "1", "99")
    assert missing.exit_code == 2 and "no ticket #99" in missing.stderr
    assert json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["status"] == "open"


def test_status_before_the_first_sync(mb):
    mb.drop_channel("live")
    mb.drop_channel("parked", enabled=False)
    result = mb("status", "--format", "json")
    assert result.exit_code == 4  # an enabled channel was never synced
    assert {r["channel"]: r["health"] for r in json.loads(result.stdout)} == {
        "live": "never synced", "parked": "disabled"}
    mb.write_config([{"name": "parked", "enabled": False,
                      "incoming": {"type": "drop", "spool": str(mb.root / "spool" / "parked")}}])
    assert mb("status").exit_code == 0  # only a disabled channel: nothing to worry about


def test_each_alert_reaches_the_command_as_a_line(mb):
    """`cat >> alerts.jsonl` wrote `}{` between two events: each ends with a newline."""
    from mailbridge.config.load import load_config
    from mailbridge.services.health import RAISED, RECOVERED, AlertEvent, deliver

    alerts = mb.root / "alerts.jsonl"
    mb.write_config([], alerts={"command": APPEND + [str(alerts)]})
    events = [AlertEvent(RAISED, "desk", "quiet", "no messages", "2026-11-23T12:00:00+00:00"),
              AlertEvent(RECOVERED, "desk", "quiet", "recovered", "2026-11-23T13:00:00+00:00")]
    deliver(load_config(mb.config), events)
    deliver(load_config(mb.config), events[:1])
    lines = alerts.read_text().split("\n")
    assert lines[-1] == ""  # the last event ends its line too
    assert [json.loads(line)["event"] for line in lines[:-1]] == ["raised", "recovered", "raised"]
