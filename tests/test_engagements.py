"""Engagements mode: the pure matching and window rules, the contacts commands, and a real
Dovecot mailbox with mail to and from contacts, strangers, junk, drafts, old mail and mail from
before the connection: exactly the expected engagements, server flags untouched, and a second
run adds nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import drop, m365_config, message

from mailbridge.domain.engagement import (
    IN,
    OUT,
    contacts_for,
    in_window,
    match,
    window_start,
)
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


@pytest.mark.parametrize(("sender", "to", "cc", "direction", "linked"), [
    # the document: a contact and the owner anywhere in From/To/Cc
    ("stranger@x.test", ["anna@us.test"], ["bob@acme.test"], IN, ["bob@acme.test"]),
    ("bob@acme.test", ["carl@beta.test"], ["a.smith@us.test"], IN,
     ["bob@acme.test", "carl@beta.test"]),
    ("stranger@x.test", ["bea@acme.test", "anna@us.test"], [], IN, ["bea@acme.test"]),
    ("anna@us.test", ["anna@us.test"], ["bob@acme.test"], OUT, ["bob@acme.test"]),
])
def test_a_contact_and_the_owner_anywhere_on_the_mail(sender, to, cc, direction, linked):
    found = match(parsed(sender, to, cc), OWNER, CONTACTS)
    assert found is not None
    assert found.direction == direction
    assert [address for address, _ in found.contacts] == linked


@pytest.mark.parametrize(("sender", "to", "cc"), [
    ("stranger@x.test", ["anna@us.test"], []),  # no contact
    ("anna@us.test", ["stranger@x.test"], []),  # owner to strangers only
    ("bob@acme.test", ["someone@us.test"], ["carl@beta.test"]),  # the owner is not on it
    ("anna@us.test", ["a.smith@us.test"], []),  # the owner's address kept as a contact
])
def test_everything_else_is_not_an_engagement(sender, to, cc):
    assert match(parsed(sender, to, cc), OWNER, {**CONTACTS, "a.smith@us.test": "Us"}) is None


def test_a_contact_counts_for_mail_up_to_window_hours_before_it_was_added():
    arrived = NOW - timedelta(hours=30)
    known = {"bob@acme.test": ("ACME", NOW - timedelta(days=90)),
             "dan@delta.test": ("Delta", arrived + timedelta(hours=23)),
             "eve@echo.test": ("Echo", arrived + timedelta(hours=25))}
    assert contacts_for(known, arrived, 24) == {"bob@acme.test": "ACME",
                                                "dan@delta.test": "Delta"}


def test_the_window_never_reaches_before_the_connection():
    assert window_start(NOW, 24, None) == NOW - timedelta(hours=24)
    assert window_start(NOW, 24, NOW - timedelta(hours=2)) == NOW - timedelta(hours=2)
    assert window_start(NOW, 24, NOW - timedelta(days=5)) == NOW - timedelta(hours=24)
    start = NOW - timedelta(hours=2)
    assert in_window(NOW - timedelta(hours=1), start)
    assert not in_window(NOW - timedelta(hours=3), start)
    assert in_window(None, start)


def test_a_recent_contact_makes_the_sync_look_back_from_when_it_was_added():
    added = [NOW - timedelta(hours=3), NOW - timedelta(hours=30)]  # the second is old news
    assert window_start(NOW, 24, None, added) == NOW - timedelta(hours=27)
    assert window_start(NOW, 24, NOW - timedelta(hours=25), added) == NOW - timedelta(hours=25)


def test_contacts_add_import_list_remove(mb, tmp_path):
    mb.drop_channel()
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create", "--name", "Bob"
              ).exit_code == 0
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("Email,Name,Client\nbea@acme.test,Bea,ACME\nBOB@acme.test,Robert,ACME\n"
                        "carl@beta.test,,Beta\nnot-an-address,X,ACME\n,Y,ACME\n"
                        "dora@delta.test,Dora,\nbea@acme.test,Bea again,ACME\n")
    result = mb("contacts", "import", str(csv_file), "--format", "json")
    assert result.exit_code == 4  # some rows were rejected
    rows = {(r["line"], r["result"], r["reason"]) for r in json.loads(result.stdout)}
    assert rows == {(2, "added", ""), (3, "updated", ""), (4, "added", ""),
                    (5, "rejected", "email: must be an e-mail address like support@example.com"),
                    (6, "rejected", "no email"),
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
        for _flags, _delimiter, folder in client.list_folders():
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
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    assert mb("contacts", "add", "carl@beta.test", "--client", "Beta", "--create").exit_code == 0
    hour = timedelta(hours=1)

    def put(raw: bytes, arrived: datetime, folder: str = "INBOX", seen: bool = False):
        dovecot.append(imap_user.username, imap_user.password, [raw], folder, seen, arrived)

    put(mail("bob@acme.test", owner, "bob asks", now - hour, cc="carl@beta.test"), now - hour)
    put(mail("stranger@x.test", owner, "stranger writes", now - hour), now - hour)
    put(mail("bob@acme.test", owner, "before connection", now - 5 * hour), now - 5 * hour)
    put(mail("bob@acme.test", owner, "last week", now - 7 * 24 * hour), now - 7 * 24 * hour)
    # The server's arrival time decides, not the sender's Date header: mail delayed in
    # transit (or from a wrong clock) that arrived after the connection counts ...
    put(mail("bob@acme.test", owner, "delayed", now - 3 * 24 * hour), now - hour / 2)
    # ... and mail that arrived before it does not, whatever its Date says.
    put(mail("bob@acme.test", owner, "fast clock", now - hour), now - 5 * hour)
    put(mail("bob@acme.test", owner, "bob read already", now - hour), now - hour, seen=True)
    put(mail(owner, "carl@beta.test", "anna answers", now - hour), now - hour, "Sent", True)
    client = dovecot.client(imap_user.username, imap_user.password)
    client.create_folder("Projects")  # a user folder: read too; the copy is one engagement
    client.logout()
    put(mail("bob@acme.test", owner, "bob asks", now - hour, cc="carl@beta.test"), now - hour,
        "Projects")
    put(mail("bob@acme.test", owner, "in junk", now - hour), now - hour, "Junk")
    put(mail(owner, "bob@acme.test", "a draft", now - hour), now - hour, "Drafts")
    before = flags(dovecot, imap_user)

    first = mb("sync", "-v")
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count(": engagement") == 4
    assert "not an engagement" in first.stderr
    listed = json.loads(mb("engagements", "list", "--format", "json").stdout)
    assert sorted((e["subject"], e["direction"], tuple(e["clients"])) for e in listed) == [
        ("anna answers", "out", ("Beta",)),
        ("bob asks", "in", ("ACME", "Beta")),
        ("bob read already", "in", ("ACME",)),
        ("delayed", "in", ("ACME",))]
    delayed = next(e for e in listed if e["subject"] == "delayed")
    arrived = datetime.fromisoformat(delayed["occurred_at"])  # the server's time, not Date
    assert now - hour <= arrived <= now
    assert flags(dovecot, imap_user) == before  # nothing marked read, moved or deleted

    again = mb("sync")
    assert again.exit_code == 0
    assert len(json.loads(mb("engagements", "list", "--format", "json").stdout)) == 4
    with_store = mb("engagements", "list", "--client", "Beta", "--format", "json")
    assert len(json.loads(with_store.stdout)) == 2
    stored = mb.value("SELECT count(*) FROM messages")
    assert stored == 4  # strangers, old mail, junk and drafts are never copied
    bob_asks = next(e for e in listed if e["subject"] == "bob asks")
    shown = mb("engagements", "show", str(bob_asks["id"]))
    assert shown.exit_code == 0
    assert "bob@acme.test (ACME), carl@beta.test (Beta)" in shown.stdout
    assert "About bob asks." in shown.stdout
    client = json.loads(mb("clients", "show", "ACME", "--format", "json").stdout)
    assert sorted(e["subject"] for e in client["engagements"]) == ["bob asks",
                                                                    "bob read already",
                                                                    "delayed"]


def imap_engagements(mb, imap_user, monkeypatch, connected: datetime, **incoming) -> str:
    """An engagements channel on the Dovecot user; returns the owner's address."""
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    owner = f"{imap_user.username}@us.test"
    mb.write_config([{
        "name": "cs", "mode": "engagements", "owner": owner, "window_hours": 24,
        "connected_at": connected.isoformat(timespec="seconds"),
        "incoming": {"type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                     "security": "none", "username": imap_user.username,
                     "password": {"env": PASSWORD_ENV}, "folders": "*", **incoming}}])
    return owner


def subjects(mb, *args: str) -> list[str]:
    return sorted(e["subject"] for e in
                  json.loads(mb("engagements", "list", *args, "--format", "json").stdout))


def stored_messages(mb) -> int:
    return mb.value("SELECT count(*) FROM messages")


def test_a_contact_added_after_the_mail_brings_it_in_on_imap(mb, dovecot, imap_user,
                                                             monkeypatch):
    """The document: a contact "that exists in ClientSuccess within twenty-four hours of the
    message being sent or received". Mail from dan@ is not copied at first; `contacts add
    dan@…` a minute later brings it in at the next sync, links dan to what was stored with
    him on it, and leaves mail older than the window out; the mailbox is never changed."""
    now = datetime.now(UTC)
    owner = imap_engagements(mb, imap_user, monkeypatch, now - timedelta(days=3))
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    hour = timedelta(hours=1)
    for raw, arrived in (
            (mail("dan@delta.test", owner, "dan writes", now - hour), now - hour),
            (mail("dan@delta.test", owner, "dan long ago", now - 30 * hour), now - 30 * hour),
            (mail("bob@acme.test", owner, "bob and dan", now - hour, cc="dan@delta.test"),
             now - hour)):
        dovecot.append(imap_user.username, imap_user.password, [raw], arrived=arrived)
    before = flags(dovecot, imap_user)

    first = mb("sync", "-v")
    assert first.exit_code == 0, first.stderr
    assert subjects(mb) == ["bob and dan"]
    assert "not an engagement" in first.stderr  # dan writes: dan is no contact yet

    added = mb("contacts", "add", "dan@delta.test", "--client", "Delta", "--create")
    assert added.exit_code == 0
    assert "linked to 1 recent engagement(s)" in added.stderr
    assert subjects(mb, "--contact", "dan@delta.test") == ["bob and dan"]

    second = mb("sync", "-v")
    assert second.exit_code == 0, second.stderr
    assert subjects(mb) == ["bob and dan", "dan writes"]
    assert subjects(mb, "--client", "Delta") == ["bob and dan", "dan writes"]
    assert mb("sync").exit_code == 0
    assert subjects(mb) == ["bob and dan", "dan writes"]  # nothing doubled
    assert stored_messages(mb) == 2  # dan long ago stays out
    assert flags(dovecot, imap_user) == before


def test_a_contact_added_after_the_mail_brings_it_in_on_microsoft_365(mb, graph):
    now = datetime.now(UTC)
    owner = "a@contoso.com"
    hour = timedelta(hours=1)
    graph.deliver(owner, mail("dan@delta.test", owner, "dan writes", now - hour),
                  received=now - hour)
    graph.deliver(owner, mail("dan@delta.test", owner, "dan long ago", now - 30 * hour),
                  received=now - 30 * hour)
    m365_config(mb, graph, [owner], mode="engagements",
                channel_keys={"connected_at": (now - timedelta(days=3)).isoformat()})
    assert mb("sync").exit_code == 0
    assert subjects(mb) == []
    assert mb("contacts", "add", "dan@delta.test", "--client", "Delta", "--create").exit_code == 0
    assert mb("sync").exit_code == 0
    assert subjects(mb) == ["dan writes"]
    assert mb("sync").exit_code == 0
    assert stored_messages(mb) == 1
    assert len(graph.unread(owner)) == 2  # nothing marked read


EXCLUDED = ["Calendar", "Calendar/Birthdays", "Contacts", "Journal", "Notes", "Tasks",
            "Conversation History", "RSS Feeds", "RSS Feeds/Vendor news", "Clutter",
            "Shared Folders", "Shared Folders/team", "Kalender", "Junk", "Drafts"]
READ = ["INBOX", "Projects", "Projects/Notes", "Trash", "Sent"]


def test_folders_the_document_excludes_are_never_read_on_imap(mb, dovecot, imap_user,
                                                              monkeypatch):
    """The document: never "calendar, contacts, journal, conversation history, notes,
    tasks, RSS feeds, clutter, junk, drafts, or shared folders" (Exchange's names, a
    localised one, folders inside them, SPECIAL-USE Junk and Drafts). Deleted items are not
    on that list, so they are read; a user's own folder called Notes inside Projects is
    read too. `channels test` says which folders are skipped and why."""
    now = datetime.now(UTC)
    owner = imap_engagements(mb, imap_user, monkeypatch, now - timedelta(days=1))
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    client = dovecot.client(imap_user.username, imap_user.password)
    for folder in EXCLUDED + READ:
        if not client.folder_exists(folder):
            client.create_folder(folder)
    client.logout()
    for folder in EXCLUDED + READ:
        dovecot.append(imap_user.username, imap_user.password,
                       [mail("bob@acme.test", owner, f"in {folder}", now)], folder)

    assert mb("sync").exit_code == 0
    assert subjects(mb) == sorted(f"in {folder}" for folder in READ)

    tested = json.loads(mb("channels", "test", "cs", "--format", "json").stdout)
    why = {f["name"]: f["skipped"] for f in tested["folders"]}
    assert {name for name, reason in why.items() if reason} == set(EXCLUDED)
    assert why["Junk"] == "junk (SPECIAL-USE \\Junk)"
    assert why["Kalender"] == "calendar (its name)"
    assert why["RSS Feeds/Vendor news"] == "inside RSS Feeds: rss feeds (its name)"
    shown = mb("channels", "test", "cs")
    assert "] Clutter \\HasNoChildren  (skipped: clutter (its name))" in shown.stdout


def test_tickets_mode_reads_clutter_but_never_calendar_or_deleted_items(mb, dovecot,
                                                                        imap_user,
                                                                        monkeypatch):
    """One rule for every mode: a help desk never files sent, deleted or non-mail folders,
    but does not lose a customer's mail to Clutter."""
    monkeypatch.setenv(PASSWORD_ENV, imap_user.password)
    mb.write_config([{
        "name": "desk", "main_email": "desk@us.test",
        "incoming": {"type": "imap", "host": "127.0.0.1", "port": imap_user.port,
                     "security": "none", "username": imap_user.username,
                     "password": {"env": PASSWORD_ENV}, "folders": "*"}}])
    client = dovecot.client(imap_user.username, imap_user.password)
    for folder in ("Clutter", "Calendar", "RSS Feeds"):
        client.create_folder(folder)
    client.logout()
    for folder in ("INBOX", "Clutter", "Calendar", "RSS Feeds", "Trash", "Sent"):
        dovecot.append(imap_user.username, imap_user.password,
                       [mail("bob@acme.test", "desk@us.test", f"in {folder}",
                             datetime.now(UTC))], folder)
    assert mb("sync").exit_code == 0
    filed = json.loads(mb("tickets", "list", "--format", "json").stdout)
    assert sorted(t["subject"] for t in filed) == ["in Clutter", "in INBOX"]


def test_folders_the_document_excludes_are_never_read_on_microsoft_365(mb, graph):
    """Over Graph: Clutter (well-known name), RSS Feeds and the feeds inside it (by name,
    since Graph has no well-known name for them), conversation history, junk and drafts are
    never read; deleted items, sent items and user folders are. Tickets mode reads Clutter."""
    box = "a@contoso.com"
    now = datetime.now(UTC)
    ids = {"Clutter": graph.add_folder(box, "Clutter", parent=None, well_known="clutter"),
           "RSS Feeds": graph.add_folder(box, "RSS Feeds", parent=None),
           "Projects": graph.add_folder(box, "Projects", parent=None)}
    ids["Vendor news"] = graph.add_folder(box, "Vendor news", parent=ids["RSS Feeds"])
    ids["Notes"] = graph.add_folder(box, "Notes", parent=ids["Projects"])
    read = ["inbox", "deleteditems", "sentitems", "Projects", "Notes"]
    for folder in ["Clutter", "RSS Feeds", "Vendor news", "conversationhistory",
                   "junkemail", "drafts", *read]:
        graph.deliver(box, mail("bob@acme.test", box, f"in {folder}", now),
                      folder=ids.get(folder, folder))
    m365_config(mb, graph, [box], mode="engagements",
                channel_keys={"connected_at": (now - timedelta(days=1)).isoformat()})
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    assert mb("sync").exit_code == 0
    assert subjects(mb) == sorted(f"in {folder}" for folder in read)

    tested = json.loads(mb("channels", "test", "support", "--format", "json").stdout)
    why = {f["folder"]: f["reason"] for f in tested["mailboxes"][0]["skipped"]}
    assert why["Clutter"] == "clutter (well-known name clutter)"
    assert why["Vendor news"] == "inside RSS Feeds: rss feeds (its name)"
    assert why["Junk Email"] == "junk (well-known name junkemail)"
    assert "Deleted Items" not in why and "Projects" not in why
    shown = mb("channels", "test", "support")
    assert "RSS Feeds (rss feeds (its name)); " in shown.stdout

    desk = "b@contoso.com"  # tickets: the unread mail of every folder it reads
    ids = {"Clutter": graph.add_folder(desk, "Clutter", parent=None, well_known="clutter"),
           "RSS Feeds": graph.add_folder(desk, "RSS Feeds", parent=None)}
    for folder in ("inbox", "Clutter", "RSS Feeds", "deleteditems", "sentitems"):
        graph.deliver(desk, mail("bob@acme.test", desk, f"desk {folder}", now),
                      folder=ids.get(folder, folder))
    m365_config(mb, graph, [desk])
    assert mb("sync").exit_code == 0
    filed = json.loads(mb("tickets", "list", "--format", "json").stdout)
    assert sorted(t["subject"] for t in filed) == ["desk Clutter", "desk inbox"]


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


def test_add_channel_never_writes_an_engagements_channel_without_an_owner(mb):
    """No --owner and nothing to take it from: refused, naming the flag, nothing written;
    an owner given, or an address to take it from (also main_email beside a login name that
    is not an address), is written."""
    base = ("add-channel", "--no-input", "--mode", "engagements")
    refused = mb(*base, "--name", "cs", "--incoming", "drop")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "mailbridge: error: channel cs: engagements need the mailbox owner's address, and "
        "neither --email, an address as --username nor --main-email gives one",
        "mailbridge: hint: pass --owner ADDRESS"]
    assert not mb.config.exists() or "cs" not in mb.config.read_text()

    assert mb(*base, "--name", "cs", "--incoming", "drop", "--owner", "anna@us.test"
              ).exit_code == 0
    imap = ("--incoming", "imap", "--host", "127.0.0.1", "--security", "none",
            "--username", "anna", "--password", "env:MB_NOT_SET", "--skip-test")
    assert mb(*base, "--name", "cs-imap", *imap).exit_code == 2
    added = mb(*base, "--name", "cs-imap", *imap, "--main-email", "anna@us.test")
    assert added.exit_code == 0, added.stderr
    shown = json.loads(mb("channels", "show", "cs-imap", "--format", "json").stdout)
    assert (shown["main_email"], shown["owner"]) == ("anna@us.test", None)  # derived
    assert mb("sync", "cs").exit_code == 0


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
