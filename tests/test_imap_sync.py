"""IMAP channels against a real Dovecot on 127.0.0.1 (tests/servers/dovecot.py): unread mail
becomes tickets and is marked read only once stored; nothing is lost or doubled."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import message
from imapclient.exceptions import IMAPClientError

from mailbridge.config.load import load_config
from mailbridge.connectors import imap as imap_mod
from mailbridge.connectors import imap_fetch
from mailbridge.domain.source import SourceRef
from mailbridge.errors import NetworkError
from mailbridge.pipeline import prepare_helper
from mailbridge.pipeline.ingest import ingest
from mailbridge.pipeline.report import NullReporter
from mailbridge.services.connectors import build_fetcher, plan_for

PASSWORD_ENV = "MB_TEST_IMAP_PASSWORD"


@pytest.fixture
def imap(mb, dovecot, imap_user, monkeypatch):
    """An IMAP channel "desk" on a fresh Dovecot user; returns a small helper."""
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    return ImapDesk(mb, dovecot, imap_user)


class ImapDesk:
    def __init__(self, mb, dovecot, user) -> None:
        self.mb, self.dovecot, self.user = mb, dovecot, user
        self.configure()

    def configure(self, **incoming) -> None:
        settings = {"type": "imap", "host": "127.0.0.1", "port": self.user.port,
                    "security": "none", "username": self.user.username,
                    "password": {"env": PASSWORD_ENV}, **incoming}
        self.mb.write_config([{"name": "desk", "main_email": "desk@example.com",
                               "incoming": settings}])

    def append(self, messages: list[bytes], folder: str = "INBOX", seen: bool = False) -> None:
        self.dovecot.append(self.user.username, self.user.password, messages, folder=folder,
                            seen=seen)

    def unseen(self, folder: str = "INBOX") -> int:
        client = self.dovecot.client(self.user.username, self.user.password)
        try:
            client.select_folder(folder, readonly=True)
            return len(client.search(["UNSEEN"]))
        finally:
            client.logout()

    def rows(self, sql: str) -> list[tuple]:
        return self.mb.query(sql)

    def subjects(self) -> list[str]:
        return sorted(r[0] for r in self.rows("SELECT subject FROM tickets"))


def mails(n: int, prefix: str = "Q") -> list[bytes]:
    return [message(f"{prefix} {i}", message_id=f"{prefix.lower()}{i}@imap.test")
            for i in range(n)]


def test_unread_mail_becomes_tickets_and_is_marked_read(imap):
    imap.append(mails(3))
    imap.append([message("Already read", message_id="read@imap.test")], seen=True)
    result = imap.mb("sync", "-v")
    assert result.exit_code == 0, result.stderr
    assert imap.subjects() == ["Q 0", "Q 1", "Q 2"]
    assert "new ticket #1" in result.stderr
    assert imap.unseen() == 0
    again = imap.mb("sync")
    assert again.exit_code == 0
    assert len(imap.rows("SELECT id FROM messages")) == 3
    cursor = json.loads(imap.rows("SELECT state_json FROM cursors")[0][0])
    assert cursor["last_uid"] == 4 and cursor["uidvalidity"] > 0


def test_mail_read_by_a_person_first_needs_import_read(imap):
    imap.append(mails(1, "First"))
    assert imap.mb("sync").exit_code == 0  # sets the watermark
    imap.append([message("Opened in Outlook", message_id="opened@imap.test")], seen=True)
    assert imap.mb("sync").exit_code == 0
    assert imap.subjects() == ["First 0"]  # the Usedesk rule: read mail is not imported
    imap.configure(import_read=True)
    imap.append([message("Opened later", message_id="later@imap.test")], seen=True)
    assert imap.mb("sync").exit_code == 0
    # read mail above the watermark now counts; what arrived under the old rule stays out
    assert imap.subjects() == ["First 0", "Opened later"]
    assert imap.mb("sync").exit_code == 0
    assert len(imap.rows("SELECT id FROM messages")) == 2


def test_a_failed_flag_store_never_reimports(imap, monkeypatch):
    imap.append(mails(4))
    real_ack = imap_mod.ImapFetcher.ack

    def broken_ack(self, refs):
        raise NetworkError("the connection dropped during the flag store")

    monkeypatch.setattr(imap_mod.ImapFetcher, "ack", broken_ack)
    failed = imap.mb("sync")
    assert failed.exit_code == 75
    assert "Traceback" not in failed.stderr
    assert len(imap.rows("SELECT id FROM messages")) == 4  # committed before the ack
    assert imap.unseen() == 4
    monkeypatch.setattr(imap_mod.ImapFetcher, "ack", real_ack)
    fixed = imap.mb("sync", "-v")
    assert fixed.exit_code == 0, fixed.stderr
    assert len(imap.rows("SELECT id FROM messages")) == 4
    assert imap.unseen() == 0  # marked read again without a second fetch


def test_uidvalidity_change_rescans_without_doubling_and_is_bounded(imap):
    client = imap.dovecot.client(imap.user.username, imap.user.password)
    client.create_folder("Support")
    client.logout()
    imap.configure(folders=["Support"], max_rescan=2)
    batch = mails(3, "Support")
    imap.append(batch, folder="Support")
    assert imap.mb("sync").exit_code == 0
    client = imap.dovecot.client(imap.user.username, imap.user.password)
    client.delete_folder("Support")
    client.create_folder("Support")  # a new folder: a new UIDVALIDITY
    client.logout()
    imap.append(batch, folder="Support")
    refused = imap.mb("sync")
    assert refused.exit_code == 4
    assert "UIDVALIDITY" in refused.stderr and "max_rescan" in refused.stderr
    assert imap.unseen("Support") == 3
    imap.configure(folders=["Support"], max_rescan=100)
    assert imap.mb("sync").exit_code == 0
    assert len(imap.rows("SELECT id FROM messages")) == 3  # the fingerprint matched them
    assert imap.unseen("Support") == 0


def test_every_folder_but_junk_trash_drafts_and_sent(imap):
    client = imap.dovecot.client(imap.user.username, imap.user.password)
    client.create_folder("Projects")
    client.logout()
    imap.append(mails(1, "Inbox"))
    imap.append(mails(1, "Project"), folder="Projects")
    for folder in ("Junk", "Trash", "Drafts", "Sent"):
        imap.append(mails(1, folder), folder=folder)
    imap.configure(folders="*")
    assert imap.mb("sync").exit_code == 0
    assert imap.subjects() == ["Inbox 0", "Project 0"]
    assert imap.unseen("Junk") == 1


def test_oversize_message_is_reported_and_the_rest_goes_on(imap):
    big = message("Huge", message_id="huge@imap.test", body="x" * 1_500_000)
    imap.append([*mails(1, "Before"), big, *mails(1, "After")])
    imap.configure(max_message_mb=1)
    result = imap.mb("sync")
    assert result.exit_code == 4
    assert "max_message_mb" in result.stderr
    assert imap.subjects() == ["After 0", "Before 0"]
    assert imap.unseen() == 1  # left unread for a person, reported on every run


def test_missing_folder_names_what_the_server_has(imap):
    imap.configure(folders=["Nope"])
    result = imap.mb("sync")
    assert result.exit_code == 2
    assert "no folder Nope" in result.stderr and "INBOX" in result.stderr


def test_wrong_password_is_exit_3_in_one_line(imap, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password-xyzzy")
    result = imap.mb("sync")
    assert result.exit_code == 3
    assert "refused the login" in result.stderr
    assert "xyzzy" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_file_secret_is_its_first_line(imap, tmp_path):
    """README and config.example.toml say so; the whole file (a second line) went into the
    IMAP LOGIN, and Dovecot refused it."""
    secret_file = tmp_path / "imap-password"
    secret_file.write_text(f"{imap.user.password}\nsecond line: a note for people\n")
    imap.configure(password={"file": str(secret_file)})
    imap.append(mails(1, "File"))
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    assert imap.subjects() == ["File 0"]


def test_xoauth2_logs_in_with_an_access_token(imap, monkeypatch):
    """Microsoft 365 / Gmail IMAP style: the password reference holds an OAuth token."""
    imap.append(mails(2, "Token"))
    monkeypatch.setenv(PASSWORD_ENV, imap.dovecot.oauth.issue(imap.user.username))
    asked = imap.dovecot.oauth.requests
    imap.configure(auth="xoauth2")
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    assert imap.subjects() == ["Token 0", "Token 1"]
    assert imap.dovecot.oauth.requests > asked  # Dovecot really checked the token with us
    monkeypatch.setenv(PASSWORD_ENV, "expired-or-revoked")
    refused = imap.mb("sync")
    assert refused.exit_code == 3
    assert "expired-or-revoked" not in refused.stderr
    assert "access token" in refused.stderr  # the hint names what to refresh
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2


def test_tls_needs_a_trusted_certificate(imap):
    imap.configure(security="ssl", port=imap.user.tls_port)
    untrusted = imap.mb("sync")
    assert untrusted.exit_code == 2
    assert "127.0.0.1" in untrusted.stderr and "certificate" in untrusted.stderr
    assert "ca_file" in untrusted.stderr
    imap.append(mails(1, "Tls"))
    imap.configure(security="ssl", port=imap.user.tls_port, ca_file=str(imap.user.ca_file))
    assert imap.mb("sync").exit_code == 0
    imap.append(mails(1, "Starttls"))
    imap.configure(security="starttls", port=imap.user.port, ca_file=str(imap.user.ca_file))
    assert imap.mb("sync").exit_code == 0
    assert imap.subjects() == ["Starttls 0", "Tls 0"]


def test_unreachable_server_is_temporary(imap):
    imap.configure(port=1)  # nothing listens there
    result = imap.mb("sync")
    assert result.exit_code == 75
    assert "cannot connect" in result.stderr


def test_channels_test_reports_and_marks_nothing_read(imap):
    imap.append(mails(2))
    result = imap.mb("channels", "test", "desk", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["login"] == "ok"
    inbox = report["synced"][0]
    assert inbox["folder"] == "INBOX" and inbox["messages"] == 2 and inbox["unread"] == 2
    assert inbox["uidvalidity"] > 0 and "Q 1" in inbox["latest_header"]
    assert {"name": "Junk", "synced": False} in [
        {k: f[k] for k in ("name", "synced")} for f in report["folders"]]
    assert imap.unseen() == 2
    text = imap.mb("channels", "test", "desk")
    assert "login to 127.0.0.1" in text.stdout and "2 unread" in text.stdout


def test_add_channel_tests_the_connection_before_writing(mb, imap_user, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    args = ["add-channel", "--no-input", "--name", "desk", "--incoming", "imap",
            "--host", "127.0.0.1", "--security", "none", "--port", str(imap_user.port),
            "--username", imap_user.username, "--password", f"env:{PASSWORD_ENV}"]
    assert mb("init").exit_code == 0
    before = mb.config.read_text()
    refused = mb(*args)
    assert refused.exit_code == 3
    assert mb.config.read_text() == before
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    added = mb(*args, "--main-email", "desk@example.com")
    assert added.exit_code == 0, added.stderr
    shown = json.loads(mb("channels", "show", "desk", "--format", "json").stdout)
    assert shown["incoming"]["password"] == f"env {PASSWORD_ENV}"
    assert shown["main_email"] == "desk@example.com"


def test_a_server_restart_mid_sync_loses_and_doubles_nothing(imap, monkeypatch):
    total = 450  # three batches
    imap.append(mails(total, "Restart"))
    real = imap_mod.ImapFetcher._bodies
    calls = {"n": 0}

    def restart_once(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            imap.dovecot.restart()
        return real(self, *args)

    monkeypatch.setattr(imap_mod.ImapFetcher, "_bodies", restart_once)
    first = imap.mb("sync")
    assert first.exit_code in (0, 75), first.stderr
    monkeypatch.setattr(imap_mod.ImapFetcher, "_bodies", real)
    assert imap.mb("sync").exit_code == 0
    stored = imap.rows("SELECT count(*), count(DISTINCT message_id) FROM messages")[0]
    assert stored == (total, total)
    assert imap.unseen() == 0


def _record_fetches(monkeypatch) -> list[tuple[str, list[int]]]:
    """What the sync did, in order: ("send", UIDs) for each body FETCH sent, ("parse",
    UIDs) for each batch handed on to be parsed and committed."""
    events: list[tuple[str, list[int]]] = []
    real_send, real_submit = imap_fetch.send, prepare_helper.Preparer.submit

    def send(client, uids, items):
        if items == ["BODY.PEEK[]"]:
            events.append(("send", list(uids)))
        return real_send(client, uids, items)

    def submit(self, raws):
        events.append(("parse", [len(raws)]))
        return real_submit(self, raws)

    monkeypatch.setattr(imap_fetch, "send", send)
    monkeypatch.setattr(prepare_helper.Preparer, "submit", submit)
    return events


def _lose_the_connection(client) -> None:
    client._imap.sock.shutdown(socket.SHUT_RDWR)


def _stored_once_and_read(imap, count: int) -> None:
    assert imap.rows("SELECT count(*), count(DISTINCT message_id) FROM messages")[0] == (
        count, count)
    assert imap.unseen() == 0


def test_the_next_batch_is_asked_for_before_this_one_is_committed(imap, monkeypatch):
    """The server reads and sends the next batch while this one is parsed and committed (on
    a link with latency that is most of a sync's time). Each body is asked for once, even
    when a batch is marked read while the next one is on its way."""
    imap.append(mails(550, "Ahead"))  # batches of 100 ... 100 and 50
    events = _record_fetches(monkeypatch)
    assert imap.mb("sync").exit_code == 0
    sends = [uids for kind, uids in events if kind == "send"]
    asked = [uid for uids in sends for uid in uids]
    assert len(asked) == len(set(asked)) == 550
    assert [len(uids) for uids in sends] == [100] * 5 + [50]
    # batch k+1 is asked for before batch k is handed on: send 1, send 2, parse 1, send 3, ...
    # (the folder's last, empty batch carries only its cursor)
    assert [kind for kind, sizes in events if sizes != [0]] == [
        "send", *["send", "parse"] * 5, "parse"]
    _stored_once_and_read(imap, 550)


def test_a_connection_lost_with_the_next_batch_asked_for_loses_and_doubles_nothing(
        imap, monkeypatch):
    imap.append(mails(250, "Lost"))
    events = _record_fetches(monkeypatch)
    real = imap_mod.ImapFetcher._send_ahead
    cut = {"done": False}

    def send_ahead_then_lose_the_connection(self, plan, sized):
        real(self, plan, sized)
        if not cut["done"]:
            cut["done"] = True
            _lose_the_connection(self.session.client)

    monkeypatch.setattr(imap_mod.ImapFetcher, "_send_ahead", send_ahead_then_lose_the_connection)
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    assert cut["done"]
    asked = [uid for kind, uids in events if kind == "send" for uid in uids]
    assert len(set(asked)) == 250 and len(asked) > 250  # what was asked ahead is asked again
    _stored_once_and_read(imap, 250)


def _large(n: int, prefix: str, size: int) -> list[bytes]:
    return [message(f"{prefix} {i}", message_id=f"{prefix.lower()}{i}@imap.test",
                    body=("y" * 76 + "\n") * (size // 77)) for i in range(n)]


def test_asking_ahead_over_several_commands_and_folders_fetches_each_body_once(
        imap, monkeypatch):
    """Batches of 300 KB messages take several FETCH commands each (1 MB at most), all asked
    for ahead; the next folder starts after the last batch of this one."""
    server = imap.dovecot.client(imap.user.username, imap.user.password)
    server.create_folder("Support")
    server.logout()
    imap.configure(folders=["INBOX", "Support"])
    imap.append(_large(30, "Big", 300_000))
    imap.append(_large(30, "Also", 300_000), folder="Support")
    events = _record_fetches(monkeypatch)
    assert imap.mb("sync").exit_code == 0
    sends = [uids for kind, uids in events if kind == "send"]
    assert sum(len(uids) for uids in sends) == 60  # each body once
    assert max(len(uids) for uids in sends) <= 3  # 1 MB a command
    assert imap.rows("SELECT count(*), count(DISTINCT message_id) FROM messages")[0] == (60, 60)
    assert imap.unseen("INBOX") == imap.unseen("Support") == 0


def test_a_stop_with_the_next_batch_asked_for_leaves_it_for_the_next_sync(imap, monkeypatch):
    imap.append(mails(450, "Stop"))
    channel = load_config(imap.mb.config).require("desk")
    asked = {"n": 0}
    real = imap_mod.ImapFetcher._send_ahead

    def send_ahead(self, plan, sized):
        asked["n"] += 1
        real(self, plan, sized)

    monkeypatch.setattr(imap_mod.ImapFetcher, "_send_ahead", send_ahead)
    db = imap.mb.open()
    fetcher = build_fetcher(channel, plan_for(channel))
    try:
        counts = ingest(db, plan_for(channel), fetcher, NullReporter(),
                        should_stop=lambda: asked["n"] >= 2)
    finally:
        fetcher.close()
        db.close()
    assert counts.stopped and not fetcher.problems
    stored = imap.rows("SELECT count(*) FROM messages")[0][0]
    assert 0 < stored < 450
    assert imap.unseen() == 450 - stored  # what was asked ahead and not used is left unread
    assert imap.mb("sync").exit_code == 0
    _stored_once_and_read(imap, 450)


def test_a_connection_that_times_out_mid_answer_is_not_used_again(imap, monkeypatch):
    """A timeout half-way through a message asked for ahead leaves the rest of it in the
    connection, where the next command would read it as the server's answer: that connection
    is closed and the sync goes on, on a new one."""
    imap.append(_large(60, "Slow", 100_000))
    real_receive, real_send = imap_fetch.receive, imap_fetch.send
    timed_out: list = []
    used_after: list = []

    def receive(client, tag):
        if not timed_out and client._imap.tagged_commands.get(tag) is None and any(
                t == tag for _, t in fetchers[-1]._ahead_now):
            timed_out.append(client)
            read = client._imap.read

            def half_then_time_out(size):
                client._imap.read = read
                read(size // 2)
                raise TimeoutError("timed out")

            client._imap.read = half_then_time_out
        return real_receive(client, tag)

    def send(client, uids, items):
        if timed_out:
            used_after.append(client)
        return real_send(client, uids, items)

    fetchers: list = []
    real_receive_ahead = imap_mod.ImapFetcher._receive_ahead

    def receive_ahead(self):
        self._ahead_now = list(self._ahead)
        fetchers.append(self)
        real_receive_ahead(self)

    monkeypatch.setattr(imap_mod.ImapFetcher, "_receive_ahead", receive_ahead)
    monkeypatch.setattr(imap_fetch, "receive", receive)
    monkeypatch.setattr(imap_fetch, "send", send)
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    assert timed_out and used_after
    assert timed_out[0] not in used_after
    _stored_once_and_read(imap, 60)


def _record_marks(monkeypatch) -> list[tuple[str, object]]:
    """("send", UIDs) for each body FETCH, ("mark", tag) and ("confirm", tag) for each STORE
    of \\Seen sent and its answer read, in order."""
    events: list[tuple[str, object]] = []
    real_send, real_mark, real_confirm = imap_fetch.send, imap_fetch.mark_seen, imap_fetch.confirm

    def send(client, uids, items):
        if items == ["BODY.PEEK[]"]:
            events.append(("send", list(uids)))
        return real_send(client, uids, items)

    def mark_seen(client, uids):
        tag = real_mark(client, uids)
        events.append(("mark", tag))
        return tag

    def confirm(client, tag):
        real_confirm(client, tag)
        events.append(("confirm", tag))

    monkeypatch.setattr(imap_fetch, "send", send)
    monkeypatch.setattr(imap_fetch, "mark_seen", mark_seen)
    monkeypatch.setattr(imap_fetch, "confirm", confirm)
    return events


def test_marking_read_is_not_waited_for_until_the_next_batch(imap, monkeypatch):
    """A batch's STORE of \\Seen is answered while the sync goes on; its answer is read when
    the next batch is acked, the last one's when the sync ends."""
    imap.append(mails(550, "Mark"))
    events = _record_marks(monkeypatch)
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    marks = [tag for kind, tag in events if kind == "mark"]
    assert len(marks) == 6
    assert sorted(tag for kind, tag in events if kind == "confirm") == sorted(marks)
    kinds = [kind if kind == "send" else (kind, tag) for kind, tag in events]
    # the sync fetched on before it read whether the first batch's STORE was done
    assert "send" in kinds[kinds.index(("mark", marks[0])):kinds.index(("confirm", marks[0]))]
    assert imap.unseen() == 0


def _after_call(monkeypatch, name: str, n: int, then) -> None:
    """imap_fetch's function `name`, with `then(connection)` after its `n`th call."""
    real, calls = getattr(imap_fetch, name), {"n": 0}

    def wrapper(client, *args):
        result = real(client, *args)
        calls["n"] += 1
        if calls["n"] == n:
            then(client)
        return result

    monkeypatch.setattr(imap_fetch, name, wrapper)


def _refuse(client) -> None:
    raise IMAPClientError("store failed: [b'NO [SERVERBUG] refused']")


def test_a_refused_store_fails_the_sync_and_the_next_one_marks_the_mail(imap, monkeypatch):
    imap.append(mails(250, "Refused"))
    with monkeypatch.context() as patched:
        _after_call(patched, "confirm", 1, _refuse)
        first = imap.mb("sync")
    assert first.exit_code == 4  # the server's refusal, as a STORE refused before
    assert "store failed" in first.stderr and "Traceback" not in first.stderr
    assert imap.mb("sync").exit_code == 0
    _stored_once_and_read(imap, 250)


def _lose_a_store(monkeypatch, n: int) -> None:
    """The `n`th STORE of \\Seen is never sent, and the connection is lost with it."""
    real, calls = imap_fetch.mark_seen, {"n": 0}

    def mark_seen(client, uids):
        calls["n"] += 1
        if calls["n"] != n:
            return real(client, uids)
        _lose_the_connection(client)
        client._imap.tagged_commands[b"LOST1"] = None  # as if sent, and never answered
        return b"LOST1"

    monkeypatch.setattr(imap_fetch, "mark_seen", mark_seen)


def test_a_last_store_left_unconfirmed_is_a_problem_of_the_sync(imap, monkeypatch):
    """The connection is lost with the last batch's STORE: that is the sync's problem, the
    mail stays unread, and the next sync marks it read without fetching it again."""
    imap.append(mails(150, "Last"))
    with monkeypatch.context() as patched:
        _lose_a_store(patched, 2)  # the second and last batch's
        first = imap.mb("sync")
    assert first.exit_code == 4  # a partial failure: the mail is stored
    assert "before the server confirmed 50 message(s) as read" in first.stderr
    assert "the next sync marks what is still unread" in first.stderr
    assert "Traceback" not in first.stderr
    assert imap.unseen() == 50
    events = _record_fetches(monkeypatch)
    assert imap.mb("sync").exit_code == 0
    assert not [kind for kind, _ in events if kind == "send"]  # marked read, not fetched
    _stored_once_and_read(imap, 150)


def test_a_store_whose_connection_dropped_is_sent_again(imap, monkeypatch):
    """The connection drops with the first batch's STORE sent but never carried out: the
    sync reconnects, and that STORE is sent again on the new connection."""
    imap.append(mails(550, "Again"))
    _lose_a_store(monkeypatch, 1)
    result = imap.mb("sync")
    assert result.exit_code == 0, result.stderr
    _stored_once_and_read(imap, 550)


def test_a_store_sent_again_after_the_folder_was_renumbered_marks_nothing(imap, monkeypatch):
    """A STORE lost with its connection is sent again only in the numbering it was meant
    for: once the folder is restored under a new UIDVALIDITY, its UIDs name other mail, which
    nobody fetched (as when a sync fails on the renumbered folder and the batch committed
    meanwhile is still acked)."""
    server = imap.dovecot.client(imap.user.username, imap.user.password)
    server.create_folder("Support")
    imap.configure(folders=["Support"])
    imap.append(mails(5, "Old"), folder="Support")
    channel = load_config(imap.mb.config).require("desk")
    fetcher = build_fetcher(channel, plan_for(channel))
    try:
        fetcher.session.select("Support", False)
        old = fetcher.session.uidvalidity
        _lose_a_store(monkeypatch, 1)
        fetcher.ack([SourceRef(fetcher.mailbox, "Support", f"{old}:{uid}") for uid in (1, 2)])
        server.delete_folder("Support")
        server.create_folder("Support")
        imap.append(mails(5, "New"), folder="Support")
        with pytest.raises(NetworkError, match="changed its UIDVALIDITY"):
            fetcher.session.call("Support", False, lambda c: c.search(["UNSEEN"]))
        with pytest.raises(NetworkError, match="changed its UIDVALIDITY"):
            fetcher.ack([SourceRef(fetcher.mailbox, "Support", f"{old}:3")])
    finally:
        fetcher.close()
        server.logout()
    assert imap.unseen("Support") == 5


def test_a_stop_mid_message_leaves_read_mail_behind_the_watermark(imap):
    """Stopping inside a large message: the whole messages before it are committed and the
    watermark stays below it, so the read mail after it (import_read) is not skipped."""
    imap.configure(import_read=True)
    assert imap.mb("sync").exit_code == 0  # the watermark: nothing after it is imported yet
    imap.append([message("Read 1", message_id="r1@imap.test")], seen=True)
    imap.append([message("Unread", message_id="u1@imap.test")])
    imap.append([message("Read big", message_id="r2@imap.test",
                         body="x" * (3 * imap_mod.FETCH_BYTES))], seen=True)
    imap.append([message("Read 3", message_id="r3@imap.test")], seen=True)
    config = load_config(imap.mb.config)
    channel = config.require("desk")
    asked = {"n": 0}

    def stop_after_the_first_piece() -> bool:
        asked["n"] += 1  # asked before each command: the two small ones, the big one's first
        return asked["n"] > 2  # piece; then after that piece

    db = imap.mb.open()
    fetcher = build_fetcher(channel, plan_for(channel))
    try:
        counts = ingest(db, plan_for(channel), fetcher, NullReporter(),
                        should_stop=stop_after_the_first_piece)
    finally:
        fetcher.close()
        db.close()
    assert counts.stopped
    assert sorted(r[0] for r in imap.rows("SELECT subject FROM messages")) == [
        "Read 1", "Unread"]
    assert imap.mb("sync").exit_code == 0
    assert sorted(r[0] for r in imap.rows("SELECT subject FROM messages")) == [
        "Read 1", "Read 3", "Read big", "Unread"]
