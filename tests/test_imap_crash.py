"""Crash safety against a real Dovecot: `python -m mailbridge sync` is killed (SIGKILL or
os._exit) right before or after the Nth commit, before or after the Nth ack, and at random
times; a clean sync afterwards must leave every message stored exactly once, filed once, and
marked read. (Killed before a commit, a fetch that set \\Seen would lose its batch.)"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import message

PASSWORD_ENV = "MB_TEST_IMAP_PASSWORD"
TOTAL = 300

# Runs the real CLI in a child process with small batches (more kill points) and, when asked,
# an injected os._exit at one exact point of the ingest protocol.
CHILD = """
import os, sys
import mailbridge.connectors.imap as imap
import mailbridge.pipeline.ingest as ingest
from mailbridge.cli.app import app
imap.BATCH_MESSAGES = 20
where, n = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}
def hit(point):
    if point == where:
        calls["n"] += 1
        if calls["n"] == n:
            os._exit(137)
real_commit, real_ack = ingest.commit_batch, imap.ImapFetcher.ack
def commit(*a, **k):
    hit("before-commit")
    out = real_commit(*a, **k)
    hit("commit")
    return out
def ack(self, refs):
    hit("before-ack")
    real_ack(self, refs)
    hit("after-ack")
ingest.commit_batch, imap.ImapFetcher.ack = commit, ack
app(["--config", sys.argv[3], "sync", "--quiet"], prog_name="mailbridge")
"""


@pytest.fixture
def desk(mb, dovecot, imap_user, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    mb.write_config([{"name": "desk", "incoming": {
        "type": "imap", "host": "127.0.0.1", "port": imap_user.port, "security": "none",
        "username": imap_user.username, "password": {"env": PASSWORD_ENV}}}])
    dovecot.append(imap_user.username, imap_user.password, [
        message(f"Crash {i // 3}", message_id=f"{i}@crash.test", body="line\n" * 100,
                extra=f"In-Reply-To: <{i - 1}@crash.test>\n" if i % 3 else "")
        for i in range(TOTAL)])
    return mb, dovecot, imap_user


def child(mb, where: str = "none", n: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, where, str(n), str(mb.config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def check_exactly_once(mb, dovecot, user) -> None:
    final = child(mb)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    stored = mb.query("SELECT count(*), count(DISTINCT message_id) FROM messages")[0]
    filed = mb.query("SELECT count(*), count(DISTINCT message) FROM ticket_messages")[0]
    tickets = mb.value("SELECT count(*) FROM tickets")
    assert stored == (TOTAL, TOTAL)
    assert filed == (TOTAL, TOTAL)
    assert tickets == TOTAL // 3
    client = dovecot.client(user.username, user.password)
    client.select_folder("INBOX", readonly=True)
    assert client.search(["UNSEEN"]) == []
    client.logout()


@pytest.mark.parametrize("where,n", [("before-commit", 3), ("commit", 1), ("commit", 6),
                                     ("before-ack", 2),
                                     ("after-ack", 4), ("before-ack", 15)])
def test_killed_at_exact_points_of_the_protocol(desk, where, n):
    mb, dovecot, user = desk
    proc = child(mb, where, n)
    proc.communicate(timeout=300)
    assert proc.returncode == 137  # it really died there
    check_exactly_once(mb, dovecot, user)


def test_killed_at_random_times(desk):
    mb, dovecot, user = desk
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = child(mb)
        time.sleep(rng.uniform(0.5, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    print(f"imap crash test: {kills} timed kills")
    check_exactly_once(mb, dovecot, user)
