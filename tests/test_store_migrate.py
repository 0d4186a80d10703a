"""`store migrate`: a SQLite store holding the shared corpora, tickets, engagements,
opportunities, My Inbox items and outbox rows, copied into PostgreSQL: every count equal,
every raw message byte-identical, and a sync afterwards fetches nothing it already had. A copy
cut off half-way resumes; a non-empty target is refused."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import PG_PASSWORD_ENV, Mailbridge, drop

from mailbridge.store import copy
from mailbridge.store.backends import close_all, connection

NOW = datetime.now(UTC)
OWNER = "anna@us.test"


def mail(sender: str, to: str, subject: str, mid: str, body: str = "Hello.") -> bytes:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{mid}>\n"
            f"Date: {format_datetime(NOW - timedelta(minutes=5))}\n\n{body}\n").encode()


def corpus_files(corpus) -> list:
    return sorted((corpus / "zammad" / "mail").glob("*.eml")) + \
        sorted((corpus / "more" / "mail").glob("*.eml"))


@pytest.fixture
def full_store(tmp_path, dovecot, imap_user, monkeypatch, corpus) -> tuple[Mailbridge, object]:
    """A SQLite store with something in every kind of table, including an IMAP sales
    channel whose ledger and cursor must survive the move (sales never marks mail read)."""
    mb = Mailbridge(tmp_path)
    monkeypatch.setenv("MB_SALES_PW", imap_user.password)
    spool = mb.drop_channel("support", outgoing={"type": "sendmail",
                                                 "command": ["/bin/false"]})
    for path in corpus_files(corpus):
        shutil.copyfile(path, spool / "new" / path.name)
    for n in range(2):  # raws of 1 MiB or more live in message_raws, copied a row at a time
        drop(spool, mail("big@big.test", "support@example.com", f"Big {n}", f"big{n}@x",
                         body=f"{n}" * (3 << 19)))
    cs = mb.drop_channel("cs", mode="engagements", owner=OWNER,
                         connected_at=(NOW - timedelta(hours=1)).isoformat())
    channels = json.loads(json.dumps(__import__("tomllib").loads(mb.config.read_text())
                                     ["channel"]))
    channels.append({"name": "sales", "mode": "sales", "owner": OWNER, "agent": "Anna",
                     "matching_type": "domain",
                     "connected_at": (NOW - timedelta(hours=1)).isoformat(),
                     "incoming": {"type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                                  "security": "none", "username": imap_user.username,
                                  "password": {"env": "MB_SALES_PW"}}})
    mb.write_config(channels)
    for args in (("clients", "add", "ACME"),
                 ("contacts", "add", "bob@acme.test", "--client", "ACME", "--create"),
                 ("opportunities", "add", "--summary", "Deal", "--contact", "bob@acme.test"),
                 ("agents", "add", "alice", "--email", "alice@us.test")):
        assert mb(*args).exit_code == 0
    mb.write("UPDATE clients SET quotation_mailbox=?", [OWNER])  # `clients set` would check it
    drop(cs, mail("bob@acme.test", OWNER, "Engaged", "e1@x"))
    dovecot.append(imap_user.username, imap_user.password,
                   [mail("bob@acme.test", OWNER, "Re: Deal", "s1@x"),
                    mail("new@delta.test", OWNER, "Who are you?", "s2@x")])
    synced = mb("sync", "--no-send")
    assert synced.exit_code in (0, 4), synced.stderr  # the corpora hold unparsable mail
    assert mb("tickets", "reply", "1", "-m", "Thanks.").exit_code == 0
    return mb, imap_user


def test_migrate_copies_everything_and_a_sync_afterwards_fetches_nothing(full_store, pg_url,
                                                                         tmp_path):
    mb, _user = full_store
    before = {t: mb.value(f"SELECT count(*) FROM {t}") for t in copy.TABLES}
    for table in ("messages", "message_raws", "tickets", "engagements", "opportunities",
                  "inbox_items", "outbox", "ledger", "cursors"):
        assert before[table] > 0, table
    raws = mb.raws()

    result = mb("store", "migrate", "--to", pg_url, "--password", f"env:{PG_PASSWORD_ENV}",
                "--format", "json")
    assert result.exit_code == 0, result.stderr
    copied = {r["table"]: r["rows"] for r in json.loads(result.stdout)}
    assert copied == before
    assert "[store]" in result.stderr and pg_url in result.stderr

    pg = Mailbridge(tmp_path, pg_url)
    pg.write_config(json.loads(json.dumps(__import__("tomllib").loads(
        mb.config.read_text())["channel"])))
    assert {t: pg.value(f"SELECT count(*) FROM {t}") for t in copy.TABLES} == before
    assert pg.value("SELECT quotation_mailbox FROM clients") == OWNER
    assert pg.raws() == raws
    for query in ("grüßen", "ticket*", "engaged"):  # the target's search index was built
        assert sorted(_hits(pg, query)) == sorted(_hits(mb, query)) != [], query

    again = pg("sync", "--no-send", "--format", "json")
    assert again.exit_code in (0, 4), again.stderr
    by_channel = {r["channel"]: r for r in json.loads(again.stdout)}
    assert by_channel["sales"]["stored"] == 0 and by_channel["sales"]["fetched"] == 0
    assert pg.value("SELECT count(*) FROM messages") == before["messages"]
    info = json.loads(pg("store", "info", "--format", "json").stdout)
    assert info["backend"] == "postgresql" and info["rows"]["messages"] == before["messages"]
    new_ticket = pg("tickets", "reply", "2", "-m", "A new row gets a new id.")
    assert new_ticket.exit_code == 0, new_ticket.stderr
    assert pg.value("SELECT min(id) FROM outbox WHERE ticket=2") == before["outbox"] + 1


def _hits(store: Mailbridge, query: str) -> list[int]:
    what = "engagements" if query == "engaged" else "tickets"
    found = store(what, "search", query, "--format", "json")
    assert found.exit_code == 0, found.stderr
    return [hit["id"] for hit in json.loads(found.stdout)]


def test_a_copy_cut_off_half_way_resumes_and_a_full_target_is_refused(full_store, pg_url,
                                                                       monkeypatch):
    mb, _user = full_store
    before = {t: mb.value(f"SELECT count(*) FROM {t}") for t in copy.TABLES}
    monkeypatch.setattr(copy, "CHUNK_ROWS", 7)
    calls = []
    original = copy.copy

    def cut(source, target, progress):
        def interrupting(table, done, total):
            calls.append(table)
            if table == "ledger" and done > 0:
                raise KeyboardInterrupt  # Ctrl-C, a lost connection, a killed process
            progress(table, done, total)
        return original(source, target, interrupting)

    monkeypatch.setattr(copy, "copy", cut)
    args = ("store", "migrate", "--to", pg_url, "--password", f"env:{PG_PASSWORD_ENV}")
    assert mb(*args).exit_code == 130
    monkeypatch.setattr(copy, "copy", original)
    close_all()
    refused = mb(*args)
    assert refused.exit_code == 2
    assert "already holds mailbridge data" in refused.stderr and "--resume" in refused.stderr
    resumed = mb(*args, "--resume", "--format", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert {r["table"]: r["rows"] for r in json.loads(resumed.stdout)} == before


def test_every_table_of_a_current_store_is_copied(tmp_path):
    from conftest import sqlite_store

    db = sqlite_store(tmp_path / "s.db")
    try:
        assert copy.unlisted(db) == []
    finally:
        db.close()


def test_migrating_onto_itself_is_refused(mb):
    mb.drop_channel()
    assert mb("sync").exit_code == 0
    target = mb.store_url or f"sqlite://{mb.store}"
    result = mb("store", "migrate", "--to", target)
    assert result.exit_code == 2
    assert "already uses" in result.stderr


def test_store_info_names_backend_schema_and_counts(mb):
    spool = mb.drop_channel()
    drop(spool, mail("bob@acme.test", "support@example.com", "Hi", "i1@x"))
    assert mb("sync").exit_code == 0
    info = json.loads(mb("store", "info", "--format", "json").stdout)
    assert info["backend"] == mb.backend
    assert info["rows"]["messages"] == 1 and info["pending_migrations"] == []
    assert info["version"].startswith({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[
        mb.backend])
    with connection(mb.settings(), readonly=True) as db:
        assert info["schema_version"] == len(db.execute(
            "SELECT name FROM mailbridge_migrations").fetchall())
