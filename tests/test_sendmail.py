"""Outgoing through a local MTA: a small script stands in for sendmail and records its
arguments and stdin (no network); its exit status decides the outbox row's fate."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap

import pytest
from conftest import drop, message

FAKE = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    record = os.environ["FAKE_SENDMAIL_LOG"]
    with open(record, "a") as f:
        f.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}) + "\\n")
    code = int(os.environ.get("FAKE_SENDMAIL_EXIT", "0"))
    if code:
        print("fake-sendmail: mailbox unavailable", file=sys.stderr)
    sys.exit(code)
    """)


@pytest.fixture
def mta(tmp_path, monkeypatch):
    script = tmp_path / "sendmail"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "sendmail.log"
    monkeypatch.setenv("FAKE_SENDMAIL_LOG", str(log))

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] \
            if log.exists() else []
    return script, calls


def desk(mb, command):
    spool = mb.drop_channel(outgoing={"type": "sendmail", "command": command,
                                      "bcc": "archive@example.com"})
    drop(spool, message("Printer broken", body="It is broken."))
    assert mb("sync").exit_code == 0
    return spool


def states(mb) -> list[str]:
    return [r["state"] for r in json.loads(mb("outbox", "list", "--format", "json").stdout)]


def test_the_mta_gets_the_message_and_the_envelope(mb, mta):
    script, calls = mta
    desk(mb, [str(script), "-oi"])
    assert mb("tickets", "reply", "1", "-m", "Handled locally.").exit_code == 0
    assert mb("sync").exit_code == 0
    (call,) = calls()
    assert call["argv"] == ["-oi", "-f", "support@example.com", "--",
                            "ann@customer.example", "archive@example.com"]
    assert "Subject: [#1] Re: Printer broken" in call["stdin"]
    assert "Handled locally." in call["stdin"]
    assert "archive@example.com" not in call["stdin"]  # the blind copy is envelope only
    assert states(mb) == ["sent"]


def test_with_dash_t_the_headers_decide(mb, mta):
    script, calls = mta
    desk(mb, [str(script), "-t", "-oi"])
    assert mb("tickets", "reply", "1", "-m", "x").exit_code == 0
    assert mb("sync").exit_code == 0
    assert calls()[0]["argv"] == ["-t", "-oi", "-f", "support@example.com"]


@pytest.mark.parametrize(("code", "state"), [(67, "failed"), (75, "pending")])
def test_a_failing_mta_fails_the_row_with_its_message(mb, mta, monkeypatch, code, state):
    script, _ = mta
    desk(mb, [str(script)])
    monkeypatch.setenv("FAKE_SENDMAIL_EXIT", str(code))
    assert mb("tickets", "reply", "1", "-m", "x").exit_code == 0
    result = mb("sync")
    assert result.exit_code == 4
    assert f"exited {code}: fake-sendmail: mailbox unavailable" in result.stderr
    assert states(mb) == [state]


def test_a_missing_program_is_one_line_and_keeps_the_mail(mb, tmp_path):
    desk(mb, [str(tmp_path / "no-such-sendmail")])
    checked = mb("channels", "test", "support")
    assert checked.exit_code == 2 and "no such program" in checked.stderr
    assert mb("tickets", "reply", "1", "-m", "x").exit_code == 0
    result = mb("sync")
    assert result.exit_code == 4 and "no such program" in result.stderr
    assert "Traceback" not in result.stderr
    assert states(mb) == ["pending"]


def test_channels_test_finds_the_program(mb, mta):
    script, calls = mta
    desk(mb, [str(script), "-oi"])
    result = mb("channels", "test", "support", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outgoing"]["program"] == str(script)
    assert calls() == []  # nothing sent by a test without --send-test-to


@pytest.mark.skipif(shutil.which("sendmail", path="/usr/sbin:/usr/lib") is None,
                    reason="no local MTA on this host")
def test_a_real_local_mta_accepts_the_message(mb):
    desk(mb, [shutil.which("sendmail", path="/usr/sbin:/usr/lib"), "-oi"])
    assert mb("tickets", "reply", "1", "-m", "to the real MTA").exit_code == 0
    assert mb("sync").exit_code == 0
    assert states(mb) == ["sent"]
