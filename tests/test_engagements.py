"""Engagements mode: the pure matching and window rules, the contacts commands, and a real
Dovecot mailbox with mail to and from contacts, strangers, junk, drafts, old mail and mail from
before the connection: exactly the expected engagements, server flags untouched, and a second
run adds nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import drop, message

from mailbridge.domain.engagement import IN, OUT, in_window, match, window_start
from mailbridge.domain.message import Address, ParsedMessage

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONTACTS = {"bob@acme.test": "ACME", "bea@acme.test": "ACME", "carl@beta.test": "Beta"}
OWNER = ("anna@us.test", "a.smith@us.test")


def parsed(sender: str, to: list[str], cc: list[str] = ()) -> ParsedMessage:
    return ParsedMessage(
        subject="s", sender=Address("", sender), to=tuple(Address("", a) for a in to),
        cc=tuple(Address("", a) for a in cc), reply_to=(), message_id="m@x", in_reply_to=None,
        references=(), date=NOW, text="", html=None, attachments=(), headers=(),
        content_type="text/plain", defects=())


def test_from_a_contact_to_the_owner_is_in_with_every_copied_contact():
    found = match(parsed("Bob@ACME.test", ["anna@us.test"], ["carl@beta.test", "x@y.test"]),
                  OWNER, CONTACTS)
    assert found.direction == IN
    assert found.contacts == (("bob@acme.test", "ACME"), ("carl@beta.test", "Beta"))


def test_from_the_owner_or_an_alias_to_contacts_is_out():
    found = match(parsed("a.smith@us.test", ["bob@acme.test", "x@y.test"], ["bea@acme.test"]),
                  OWNER, CONTACTS)
    assert found.direction == OUT
    assert found.contacts == (("bob@acme.test", "ACME"), ("bea@acme.test", "ACME"))


@pytest.mark.parametrize(("sender", "to", "cc"), [
    ("stranger@x.test", ["anna@us.test"], []),  # no contact
    ("anna@us.test", ["stranger@x.test"], []),  # owner to strangers only
    ("bob@acme.test", ["someone@us.test"], []),  # the owner is not on the other side
    ("stranger@x.test", ["anna@us.test"], ["bob@acme.test"]),  # contact on the owner's side
])
def test_everything_else_is_not_an_engagement(sender, to, cc):
    assert match(parsed(sender, to, cc), OWNER, CONTACTS) is None


def test_the_window_never_reaches_before_the_connection():
    assert window_start(NOW, 24, None) == NOW - timedelta(hours=24)
    assert window_start(NOW, 24, NOW - timedelta(hours=2)) == NOW - timedelta(hours=2)
    assert window_start(NOW, 24, NOW - timedelta(days=5)) == NOW - timedelta(hours=24)
    start = NOW - timedelta(hours=2)
    assert in_window(NOW - timedelta(hours=1), start)
    assert not in_window(NOW - timedelta(hours=3), start)
    assert in_window(None, start)


def test_contacts_add_import_list_remove(mb, tmp_path):
    mb.drop_channel()
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--name", "Bob"
              ).exit_code == 0
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("Email,Name,Client\nbea@acme.test,Bea,ACME\nBOB@acme.test,Robert,ACME\n"
                        "carl@beta.test,,Beta\nnot-an-address,X,ACME\n,Y,ACME\n"
                        "dora@delta.test,Dora,\nbea@acme.test,Bea again,ACME\n")
    result = mb("contacts", "import", str(csv_file), "--format", "json")
    assert result.exit_code == 4  # some rows were rejected
    rows = {(r["line"], r["result"], r["reason"]) for r in json.loads(result.stdout)}
    assert rows == {(2, "added", ""), (3, "updated", ""), (4, "added", ""),
                    (5, "rejected", "not an e-mail address"), (6, "rejected", "no email"),
                    (7, "rejected", "no client"),
                    (8, "rejected", "the same email is on an earlier line")}
    assert "2 added, 1 updated, 0 unchanged, 4 rejected" in result.stderr
    listed = json.loads(mb("contacts", "list", "--format", "json").stdout)
    assert [(c["email"], c["name"], c["client"]) for c in listed] == [
        ("bea@acme.test", "Bea", "ACME"), ("bob@acme.test", "Robert", "ACME"),
        ("carl@beta.test", "", "Beta")]
    clients = json.loads(mb("clients", "list", "--format", "json").stdout)
    assert [(c["name"], c["contacts"]) for c in clients] == [("ACME", 2), ("Beta", 1)]
    assert mb("contacts", "remove", "carl@beta.test").exit_code == 0
    missing = mb("contacts", "remove", "carl@beta.test")
    assert missing.exit_code == 2 and "no contact" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("mail;firm\nx@y.test;X\n")
    refused = mb("contacts", "import", str(bad))
    assert refused.exit_code == 2 and "email, name, client" in refused.stderr


PASSWORD_ENV = "MB_TEST_ENGAGEMENT_PW"


def mail(sender: str, to: str, subject: str, when: datetime, cc: str = "") -> bytes:
    cc_line = f"Cc: {cc}\n" if cc else ""
    return (f"From: {sender}\nTo: {to}\n{cc_line}Subject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@e.test>\n"
            f"Date: {format_datetime(when)}\n\nAbout {subject}.\n").encode()


def flags(dovecot, user) -> dict:
    client = dovecot.client(user.username, user.password)
    try:
        found = {}
        for folder in ("INBOX", "Projects", "Sent", "Junk", "Drafts"):
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            found[folder] = {uid: sorted(d[b"FLAGS"]) for uid, d in
                             (client.fetch(uids, ["FLAGS"]) if uids else {}).items()}
        return found
    finally:
        client.logout()


def test_a_real_mailbox_gives_exactly_the_expected_engagements(mb, dovecot, imap_user,
                                                               monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    owner = f"{imap_user.username}@us.test"
    now = datetime.now(UTC)
    mb.write_config([{
        "name": "cs", "mode": "engagements", "owner": owner, "window_hours": 24,
        "connected_at": (now - timedelta(hours=2)).isoformat(timespec="seconds"),
        "incoming": {"type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                     "security": "none", "username": imap_user.username,
                     "password": {"env": PASSWORD_ENV}, "folders": "*"}}])
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME").exit_code == 0
    assert mb("contacts", "add", "carl@beta.test", "--client", "Beta").exit_code == 0
    hour = timedelta(hours=1)
    dovecot.append(imap_user.username, imap_user.password, [
        mail("bob@acme.test", owner, "bob asks", now - hour, cc="carl@beta.test"),
        mail("stranger@x.test", owner, "stranger writes", now - hour),
        mail("bob@acme.test", owner, "before connection", now - 5 * hour),
        mail("bob@acme.test", owner, "last week", now - 7 * 24 * hour),
    ])
    dovecot.append(imap_user.username, imap_user.password,
                   [mail("bob@acme.test", owner, "bob read already", now - hour)], seen=True)
    dovecot.append(imap_user.username, imap_user.password,
                   [mail(owner, "carl@beta.test", "anna answers", now - hour)], folder="Sent",
                   seen=True)
    client = dovecot.client(imap_user.username, imap_user.password)
    client.create_folder("Projects")  # a user folder: read too; the copy is one engagement
    client.logout()
    dovecot.append(imap_user.username, imap_user.password,
                   [mail("bob@acme.test", owner, "bob asks", now - hour, cc="carl@beta.test")],
                   folder="Projects")
    dovecot.append(imap_user.username, imap_user.password,
                   [mail("bob@acme.test", owner, "in junk", now - hour)], folder="Junk")
    dovecot.append(imap_user.username, imap_user.password,
                   [mail(owner, "bob@acme.test", "a draft", now - hour)], folder="Drafts")
    before = flags(dovecot, imap_user)

    first = mb("sync", "-v")
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count(": engagement") == 3
    assert "not an engagement" in first.stderr
    listed = json.loads(mb("engagements", "list", "--format", "json").stdout)
    assert sorted((e["subject"], e["direction"], tuple(e["clients"])) for e in listed) == [
        ("anna answers", "out", ("Beta",)),
        ("bob asks", "in", ("ACME", "Beta")),
        ("bob read already", "in", ("ACME",))]
    assert flags(dovecot, imap_user) == before  # nothing marked read, moved or deleted

    again = mb("sync")
    assert again.exit_code == 0
    assert len(json.loads(mb("engagements", "list", "--format", "json").stdout)) == 3
    with_store = mb("engagements", "list", "--client", "Beta", "--format", "json")
    assert len(json.loads(with_store.stdout)) == 2
    stored = mb.value("SELECT count(*) FROM messages")
    assert stored == 3  # strangers, old mail, junk and drafts are never copied
    bob_asks = next(e for e in listed if e["subject"] == "bob asks")
    shown = mb("engagements", "show", str(bob_asks["id"]))
    assert shown.exit_code == 0
    assert "bob@acme.test (ACME), carl@beta.test (Beta)" in shown.stdout
    assert "About bob asks." in shown.stdout
    client = json.loads(mb("clients", "show", "ACME", "--format", "json").stdout)
    assert sorted(e["subject"] for e in client["engagements"]) == ["bob asks",
                                                                    "bob read already"]


def test_engagements_without_an_owner_or_with_a_bad_since_are_one_line(mb):
    spool_dir = mb.root / "spool" / "cs"
    from mailbridge.connectors.drop import make_spool

    make_spool(spool_dir)
    mb.write_config([{"name": "cs", "mode": "engagements",
                      "incoming": {"type": "drop", "spool": str(spool_dir)}}])
    result = mb("sync")
    assert result.exit_code == 2
    assert "engagements need the mailbox owner's address" in result.stderr
    assert "Traceback" not in result.stderr
    bad = mb("engagements", "list", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "--since 'yesterday-ish' is not understood" in bad.stderr


def test_reprocess_never_files_an_engagements_message_as_a_ticket(mb, monkeypatch):
    import mailbridge.domain.parse as parse_mod

    spool = mb.drop_channel("cs", mode="engagements", owner="anna@us.test")
    real = parse_mod.parse

    def failing(raw):
        raise parse_mod.ParseError("simulated parser bug")

    monkeypatch.setattr(parse_mod, "parse", failing)
    drop(spool, message("Hi", sender="bob@acme.test"))
    assert mb("sync").exit_code == 4  # kept raw, flagged
    monkeypatch.setattr(parse_mod, "parse", real)
    result = mb("reprocess", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["fixed"] == 1
    assert json.loads(mb("tickets", "list", "--status", "all", "--format", "json").stdout) == []
