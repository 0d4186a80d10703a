"""Microsoft 365 over Graph against the local HTTPS fake of the identity platform and Graph
(tests/servers/graph.py): real MSAL, real requests, real TLS with a throw-away CA."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from conftest import m365_config, message


def mail(i: int, box: str = "a") -> bytes:
    return message(subject=f"Question {i} for {box}", message_id=f"q{i}-{box}@customer.example",
                   sender=f"cust{i}@customer.example")


def tickets(mb) -> list[dict]:
    out = mb("tickets", "list", "--format", "json")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_app_only_tickets_mark_read_and_skip_junk_drafts_sent(mb, graph):
    customers = graph.add_folder("a@contoso.com", "Customers")
    graph.deliver("a@contoso.com", mail(1))
    graph.deliver("a@contoso.com", mail(2), folder=customers)
    graph.deliver("a@contoso.com", mail(3), is_read=True)
    for folder in ("junkemail", "drafts", "sentitems", "deleteditems"):
        graph.deliver("a@contoso.com", mail(10, folder), folder=folder)
    m365_config(mb, graph, ["a@contoso.com"])
    out = mb("sync")
    assert out.exit_code == 0, out.output
    subjects = sorted(t["subject"] for t in tickets(mb))
    assert subjects == ["Question 1 for a", "Question 2 for a"]
    box = graph.mailboxes["a@contoso.com"]
    read = {m.raw: m.is_read for m in box.messages.values()}
    assert read[mail(1)] and read[mail(2)]
    assert not any(read[mail(10, f)] for f in ("junkemail", "drafts", "sentitems",
                                              "deleteditems"))
    assert all('IdType="ImmutableId"' in p for p in graph.prefer_seen)
    again = mb("sync")
    assert again.exit_code == 0 and len(tickets(mb)) == 2


def test_acceptance_three_mailboxes_one_forbidden_storm_and_drop(mb, graph):
    """500 messages across folders of two allowed mailboxes, a third mailbox blocked by an
    application access policy, a 429 storm, throttled members inside $batch, an expired
    token and a dropped connection mid-run: every allowed message once, all marked read,
    the forbidden mailbox reported, exit 4."""
    graph.denied_by_policy.add(("app-1", "c@contoso.com"))
    folders = {"a": graph.add_folder("a@contoso.com", "Orders"), "b": "inbox"}
    for i in range(250):
        for box in ("a", "b"):
            graph.deliver(f"{box}@contoso.com", mail(i, box),
                          folder=folders[box] if i % 3 == 0 else "inbox")
    graph.deliver("c@contoso.com", mail(0, "c"))
    m365_config(mb, graph, ["a@contoso.com", "b@contoso.com", "c@contoso.com"])
    graph.throttle(4, path="/messages", after=1)  # a storm on the listing
    graph.throttle_in_batch(7, after=30)  # members throttled inside a $batch
    graph.drop(1, path="/$batch", after=8)  # the connection dies mid-run
    graph.throttle(2, path="/$batch", status=503, retry_after=None, after=12)
    out = mb("sync")
    assert out.exit_code == 4, out.output
    assert "c@contoso.com" in out.output and "ErrorAccessDenied" in out.output
    found = tickets(mb)
    assert len(found) == 500
    assert len({t["subject"] for t in found}) == 500
    assert graph.unread("a@contoso.com") == [] and graph.unread("b@contoso.com") == []
    assert len(graph.unread("c@contoso.com")) == 1
    assert all(f.count == 0 for f in graph.faults)  # every fault really happened

    graph.expire_tokens()
    graph.deliver("b@contoso.com", mail(999, "b"))
    again = mb("sync")
    assert again.exit_code == 4
    assert len(tickets(mb)) == 501
    status = mb("status", "--format", "json")
    assert "c@contoso.com" in status.stdout


def test_delegated_device_code_login_silent_refresh_and_revocation(mb, graph):
    """A delegated service account (Halo) signs in once with the device code, reads its
    own and a delegated mailbox; an expired access token is refreshed silently with the
    rotated refresh token saved; a revoked grant is exit 3 naming `auth login`."""
    graph.delegations["svc@contoso.com"] = {"a@contoso.com"}
    graph.add_mailbox("svc@contoso.com")
    graph.approve_device_as = "svc@contoso.com"
    graph.deliver("a@contoso.com", mail(1))
    graph.deliver("svc@contoso.com", mail(2, "svc"))
    m365_config(mb, graph, ["a@contoso.com", "svc@contoso.com"], auth="delegated")

    before = mb("sync")
    assert before.exit_code == 3 and "auth login contoso" in before.output

    login = mb("auth", "login", "contoso")
    assert login.exit_code == 0, login.output
    assert "enter the code" in login.stderr and "signed in as svc@contoso.com" in login.stderr
    cache = (mb.root / "cache.json").read_text()
    assert oct((mb.root / "cache.json").stat().st_mode & 0o777) == "0o600"
    assert "refresh_token" in cache.lower() or "RefreshToken" in cache

    out = mb("sync")
    assert out.exit_code == 0, out.output
    assert len(tickets(mb)) == 2 and graph.unread("a@contoso.com") == []

    graph.expire_tokens()
    old_refresh = set(graph.refresh_tokens)
    graph.deliver("a@contoso.com", mail(3))
    refreshed = mb("sync")
    assert refreshed.exit_code == 0, refreshed.output
    assert len(tickets(mb)) == 3
    saved = (mb.root / "cache.json").read_text()
    assert not any(rt in saved for rt in old_refresh)  # the rotated one replaced it
    assert any(rt in saved for rt in graph.refresh_tokens)

    status = mb("auth", "status", "--format", "json")
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)
    assert rows[0]["account"] == "svc@contoso.com" and rows[0]["ok"]
    assert datetime.fromisoformat(rows[0]["token_expires"]) > datetime.now(UTC)

    graph.revoke("svc@contoso.com")
    graph.expire_tokens()
    revoked = mb("sync")
    assert revoked.exit_code == 3
    assert "AADSTS50173" in revoked.stderr and "mailbridge auth login contoso" in revoked.stderr
    assert "Traceback" not in revoked.output
    bad = mb("auth", "status", "--format", "json")
    assert bad.exit_code == 3 and not json.loads(bad.stdout)[0]["ok"]


def test_channels_test_reports_each_mailbox(mb, graph):
    graph.denied_by_policy.add(("app-1", "c@contoso.com"))
    graph.add_mailbox("gone@contoso.com", has_mailbox=False)
    graph.deliver("a@contoso.com", mail(1))
    m365_config(mb, graph, ["a@contoso.com", "c@contoso.com", "gone@contoso.com",
                            "nobody@contoso.com"])
    out = mb("channels", "test", "support")
    assert out.exit_code == 4
    lines = [line for line in out.stdout.splitlines() if not line.startswith("  not read: ")]
    assert "a@contoso.com: read ok (1 in the inbox, 1 unread), mark read ok" in lines[0]
    assert "c@contoso.com: FAILED: " in lines[1] and "ErrorAccessDenied" in lines[1]
    assert "application access policy" in lines[1]
    assert "MailboxNotEnabledForRESTAPI" in lines[2]
    assert "ErrorInvalidUser" in lines[3]
    assert graph.unread("a@contoso.com")  # the write test changed nothing
    data = json.loads(mb("channels", "test", "support", "--format", "json").stdout)
    assert data["failed"] == 3 and data["mailboxes"][0]["read"] == "ok"
    doctor = mb("doctor", "--format", "json")
    assert doctor.exit_code == 4 and "c@contoso.com: " in doctor.stdout


def test_wrong_client_secret_is_exit_3_without_the_secret(mb, graph, monkeypatch):
    monkeypatch.setenv("MB_TEST_SECRET", "not-the-right-secret-value")
    m365_config(mb, graph, ["a@contoso.com", "b@contoso.com"])
    out = mb("sync")
    assert out.exit_code == 3
    assert "AADSTS7000215" in out.stderr and "client_secret" in out.stderr
    assert "not-the-right-secret-value" not in out.output and "Traceback" not in out.output


def test_a_secret_replaced_under_the_same_reference_is_read_again(mb, graph, monkeypatch):
    """The sign-in object lives as long as the process (`run`): when Entra refuses the secret
    it had read, it reads the reference again once, so `secrets set` fixes a running `run`."""
    m365_config(mb, graph, ["a@contoso.com"])
    graph.deliver("a@contoso.com", mail(1))
    assert mb("sync").exit_code == 0
    graph.add_app("app-1", "the-rotated-secret-value")  # the old secret stops working
    graph.expire_tokens()
    monkeypatch.setenv("MB_TEST_SECRET", "the-rotated-secret-value")  # same reference
    graph.deliver("a@contoso.com", mail(2))
    out = mb("sync")
    assert out.exit_code == 0, out.output
    assert len(tickets(mb)) == 2
    graph.add_app("app-1", "rotated-again-but-not-stored")
    graph.expire_tokens()
    refused = mb("sync")
    assert refused.exit_code == 3 and "AADSTS7000215" in refused.stderr
    assert "rotated" not in refused.output


def test_mailbox_queue_disable_enable_and_remove(mb, graph):
    graph.deliver("a@contoso.com", mail(1, "a"))
    graph.deliver("b@contoso.com", mail(1, "b"))
    m365_config(mb, graph, ["a@contoso.com", {"address": "b@contoso.com", "queue": "billing"}])
    assert mb("channels", "disable", "support", "--mailbox", "b@contoso.com").exit_code == 0
    assert mb("sync").exit_code == 0
    assert [t["subject"] for t in tickets(mb)] == ["Question 1 for a"]
    assert graph.unread("b@contoso.com")
    assert mb("channels", "enable", "support", "-m", "B@contoso.com").exit_code == 0
    assert mb("sync").exit_code == 0
    queues = {t["subject"]: t["queue"] for t in tickets(mb)}
    assert queues == {"Question 1 for a": "general", "Question 1 for b": "billing"}
    missing = mb("channels", "disable", "support", "--mailbox", "x@contoso.com")
    assert missing.exit_code == 2 and "no mailbox x@contoso.com" in missing.stderr
    gone = mb("channels", "remove-mailbox", "support", "a@contoso.com", "--yes")
    assert gone.exit_code == 0
    shown = json.loads(mb("channels", "show", "support", "--format", "json").stdout)
    assert [m["address"] for m in shown["incoming"]["mailboxes"]] == ["b@contoso.com"]
    last = mb("channels", "remove", "support", "--mailbox", "b@contoso.com", "--yes")
    assert last.exit_code == 2 and "no mailbox left" in last.stderr


def test_engagements_over_graph_copy_without_touching_the_mailbox(mb, graph):
    """ClientSuccess: delegated Mail.Read only; mail to or from a contact in the window is
    copied from the inbox and sent items, never marked read; junk and strangers are not. The
    window is decided by receivedDateTime, never by the Date header."""
    graph.add_mailbox("me@contoso.com")
    graph.approve_device_as = "me@contoso.com"
    now = datetime.now(UTC)
    date = format_datetime(now - timedelta(hours=1))
    contact = "ann@client.example"

    def mail_from(sender: str, to: str, subject: str, mid: str) -> bytes:
        return (f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{mid}>\n"
                f"Date: {date}\n\nHello\n").encode()

    graph.deliver("me@contoso.com", mail_from(contact, "me@contoso.com", "From a contact", "e1@x"))
    graph.deliver("me@contoso.com", mail_from("me@contoso.com", contact, "Reply", "e2@x"),
                  folder="sentitems")
    graph.deliver("me@contoso.com", mail_from("x@else.example", "me@contoso.com", "Stranger",
                                              "e3@x"))
    graph.deliver("me@contoso.com", mail_from(contact, "me@contoso.com", "Junk", "e4@x"),
                  folder="junkemail")
    graph.deliver("me@contoso.com", mail_from(contact, "me@contoso.com", "Too old", "e5@x"),
                  received=now - timedelta(days=3))
    delayed = (f"From: {contact}\nTo: me@contoso.com\nSubject: Delayed\nMessage-ID: <e6@x>\n"
               f"Date: {format_datetime(now - timedelta(days=3))}\n\nHello\n").encode()
    graph.deliver("me@contoso.com", delayed, received=now - timedelta(minutes=30))
    connected = (now - timedelta(days=2)).isoformat()
    m365_config(mb, graph, ["me@contoso.com"], mode="engagements", auth="delegated",
                channel_keys={"connected_at": connected})
    assert mb("clients", "add", "ACME").exit_code == 0
    assert mb("contacts", "add", contact, "--client", "ACME", "--create").exit_code == 0
    login = mb("auth", "login", "contoso")
    assert login.exit_code == 0, login.output
    token = next(iter(graph.tokens.values()))
    asked = {s.rsplit("/", 1)[-1] for s in token.scopes}
    assert asked == {"Mail.Read", "openid", "profile", "offline_access"}  # no write access
    for _ in range(2):
        out = mb("sync")
        assert out.exit_code == 0, out.output
    found = json.loads(mb("engagements", "list", "--format", "json").stdout)
    # receivedDateTime decides, not the Date header: "Delayed" arrived after the connection
    assert sorted(e["subject"] for e in found) == ["Delayed", "From a contact", "Reply"]
    assert len(graph.unread("me@contoso.com")) == 6  # nothing marked read
    assert not any(m == "PATCH" for m, _ in graph.log + graph.batched)


def test_failed_mark_read_is_repaired_without_a_duplicate(mb, graph):
    """Stored but not marked read (the app lacked Mail.ReadWrite): the run says so, exit 4;
    once write access is granted the next run only marks it read, it files nothing twice."""
    graph.apps["app-1"]["roles"] = {"Mail.Read"}
    graph.deliver("a@contoso.com", mail(1))
    m365_config(mb, graph, ["a@contoso.com"])
    first = mb("sync")
    assert first.exit_code == 4 and "could not mark mail read" in first.stderr
    assert len(tickets(mb)) == 1 and len(graph.unread("a@contoso.com")) == 1
    graph.apps["app-1"]["roles"] = {"Mail.ReadWrite"}
    graph.tokens.clear()  # the next token carries the new permission
    second = mb("sync")
    assert second.exit_code == 0, second.output
    assert len(tickets(mb)) == 1 and graph.unread("a@contoso.com") == []
    fetched = [p for m, p in graph.batched if p.endswith("/$value")]
    assert len(fetched) == 1  # the repair did not download it again


def test_one_sign_in_per_mailbox_and_a_revoked_one_fails_alone(mb, graph):
    """Agent Desktop: the app is entered once, each mailbox's own user signs in; their
    tokens live side by side in one cache; a revoked grant stops only that mailbox."""
    m365_config(mb, graph, ["a@contoso.com", "b@contoso.com"], auth="delegated")
    for user in ("a@contoso.com", "b@contoso.com"):
        graph.approve_device_as = user
        out = mb("auth", "login", "contoso", "--mailbox", user)
        assert out.exit_code == 0, out.output
    graph.approve_device_as = "b@contoso.com"
    wrong = mb("auth", "login", "contoso", "--mailbox", "a@contoso.com")
    assert wrong.exit_code == 3 and "signed in as b@contoso.com, not a@contoso.com" in wrong.stderr
    status = json.loads(mb("auth", "status", "--format", "json").stdout)
    assert sorted(r["account"] for r in status) == ["a@contoso.com", "b@contoso.com"]
    graph.deliver("a@contoso.com", mail(1, "a"))
    graph.deliver("b@contoso.com", mail(1, "b"))
    graph.revoke("a@contoso.com")
    graph.expire_tokens()
    out = mb("sync")
    assert out.exit_code == 4
    assert "a@contoso.com: m365 app contoso: AADSTS50173: The provided grant" in out.stderr
    assert "run `mailbridge auth login contoso --mailbox a@contoso.com`" in out.stderr
    assert [t["subject"] for t in tickets(mb)] == ["Question 1 for b"]


OUTGOING = {"type": "m365", "app": "contoso", "mailbox": "a@contoso.com",
            "from_email": "a@contoso.com", "bcc": "archive@contoso.com"}


def outbox_states(mb) -> list[str]:
    return [r["state"] for r in json.loads(mb("outbox", "list", "--format", "json").stdout)]


def test_replies_go_out_through_graph_send_mail(mb, graph):
    """A reply is sent as MIME through sendMail as the channel's mailbox, the blind copy as a
    Bcc header; a connection lost after the request went out is 'unknown' and never resent."""
    graph.deliver("a@contoso.com", mail(1))
    graph.deliver("a@contoso.com", mail(2))
    m365_config(mb, graph, ["a@contoso.com"], channel_keys={"outgoing": OUTGOING})
    test = mb("channels", "test", "support")
    assert test.exit_code == 0, test.output
    assert "outgoing m365 as a@contoso.com (Mail.Send granted)" in test.stdout
    assert mb("sync").exit_code == 0
    first, second = sorted(tickets(mb), key=lambda t: t["id"])
    assert mb("tickets", "reply", str(first["id"]), "--message", "Thanks!").exit_code == 0
    graph.throttle(1, path="/sendMail")  # refused with Retry-After: not accepted, so retried
    out = mb("sync")
    assert out.exit_code == 0, out.output
    # one mail per recipient (Usedesk): the requester and the address the client copied
    assert outbox_states(mb) == ["sent", "sent"]
    assert len(graph.sent) == 2 and graph.faults[-1].count == 0
    [(mailbox, mime)] = [s for s in graph.sent if b"To: cust1@customer.example" in s[1]]
    assert mailbox == "a@contoso.com" and b"Bcc: archive@contoso.com" in mime
    assert f"[#{first['id']}]".encode() in mime and b"Thanks!" in mime

    graph.drop(1, path="/sendMail")
    assert mb("tickets", "reply", str(second["id"]), "--message", "Hello").exit_code == 0
    lost = mb("sync")
    assert lost.exit_code == 4 and "broke after the request was sent" in lost.stderr
    assert sorted(outbox_states(mb)) == ["sent", "sent", "sent", "unknown"]
    sent = len(graph.sent)
    assert mb("sync").exit_code == 0 and len(graph.sent) == sent  # never sent twice


def test_a_service_account_sends_as_the_mailbox_with_mail_send_shared(mb, graph):
    """Delegated: a service account answering for a@ (one mailbox, so the app says
    `shared = true`) asks for Mail.ReadWrite.Shared and Mail.Send.Shared, as Microsoft
    requires to send from another user; without Send As on the mailbox Exchange refuses
    (ErrorSendAsDenied), and the outbox keeps the remedy."""
    svc, a = "svc@contoso.com", "a@contoso.com"
    graph.add_mailbox(svc)
    graph.delegations[svc] = {a}
    graph.approve_device_as = svc
    graph.deliver(a, mail(1))
    m365_config(mb, graph, [a], auth="delegated", channel_keys={"outgoing": OUTGOING},
                app_keys={"shared": True})
    assert mb("auth", "login", "contoso").exit_code == 0
    [scopes] = {frozenset(t.scopes) for t in graph.tokens.values()}
    assert {s.rsplit("/", 1)[-1] for s in scopes} >= {"Mail.ReadWrite.Shared",
                                                      "Mail.Send.Shared"}
    checked = mb("channels", "test", "support")
    assert checked.exit_code == 0, checked.output
    assert mb("sync").exit_code == 0
    [ticket] = tickets(mb)
    assert mb("tickets", "reply", str(ticket["id"]), "--message", "Thanks!").exit_code == 0
    refused = mb("sync")
    assert refused.exit_code == 4
    assert "ErrorSendAsDenied" in refused.stderr and "needs Send As" in refused.stderr
    assert outbox_states(mb) == ["failed", "failed"] and graph.sent == []  # one per recipient

    graph.send_as[svc] = {a}
    rows = json.loads(mb("outbox", "list", "--format", "json").stdout)
    assert all("needs Send As" in r["last_error"] for r in rows)
    assert mb("outbox", "retry", *[str(r["id"]) for r in rows]).exit_code == 0
    assert mb("sync").exit_code == 0
    assert outbox_states(mb) == ["sent", "sent"] and {box for box, _ in graph.sent} == {a}


def test_without_mail_send_shared_a_service_account_is_told_before_sending(mb, graph):
    svc, a = "svc@contoso.com", "a@contoso.com"
    graph.add_mailbox(svc)
    graph.delegations[svc] = {a}
    graph.approve_device_as = svc
    m365_config(mb, graph, [a], auth="delegated", channel_keys={"outgoing": OUTGOING},
                app_keys={"shared": False})
    assert mb("auth", "login", "contoso").exit_code == 0
    out = mb("channels", "test", "support")
    assert out.exit_code == 3 and "does not carry the Mail.Send.Shared permission" in out.stderr
    assert "shared = true" in out.stderr and "Traceback" not in out.output


def test_send_permission_is_checked_without_sending(mb, graph):
    graph.apps["app-1"]["roles"] = {"Mail.ReadWrite"}
    m365_config(mb, graph, ["a@contoso.com"], channel_keys={"outgoing": OUTGOING})
    out = mb("channels", "test", "support")
    assert out.exit_code == 3 and "does not carry the Mail.Send permission" in out.stderr
    assert graph.sent == []


def test_save_to_sent_false_is_refused_in_one_line(mb, graph):
    m365_config(mb, graph, ["a@contoso.com"],
                channel_keys={"outgoing": {**OUTGOING, "save_to_sent": False}})
    out = mb("channels", "test", "support")
    assert out.exit_code == 2 and "save_to_sent = false cannot be honoured" in out.stderr
    assert "Traceback" not in out.output and graph.sent == []


def test_untrusted_certificate_and_unreadable_ca_bundle_are_one_line(mb, graph):
    m365_config(mb, graph, ["a@contoso.com"])
    config = mb.config.read_text()
    mb.config.write_text(config.replace(f'ca_bundle = "{graph.ca_file}"\n', ""))
    untrusted = mb("sync")
    assert untrusted.exit_code == 2, untrusted.output
    assert f"the TLS certificate of {graph.url} could not be verified" in untrusted.stderr
    assert "ca_bundle" in untrusted.stderr and "Traceback" not in untrusted.output
    mb.config.write_text(config.replace(str(graph.ca_file), str(mb.root / "missing.pem")))
    missing = mb("sync")
    assert missing.exit_code == 2 and "missing.pem" in missing.stderr
    assert "Traceback" not in missing.output


def arrived_now(graph, box: str, raw: bytes, folder: str = "inbox", is_read: bool = True) -> str:
    """Mail delivered now (Graph's clock) that a person may already have read."""
    return graph.deliver(box, raw, folder=folder, is_read=is_read, received=datetime.now(UTC))


def subjects(mb) -> list[str]:
    return sorted(t["subject"] for t in tickets(mb))


def test_import_read_keeps_a_delta_link_per_folder(mb, graph):
    """import_read: mail that arrived since the last sync but was opened by a person first is
    imported (from each folder's messages/delta round), old read mail is not, even when a
    person moves it into another folder; an expired delta link (syncStateNotFound, or 410
    resyncRequired) starts a new round that doubles nothing; a folder created since the last
    sync is covered too."""
    a = "a@contoso.com"
    orders = graph.add_folder(a, "Orders")
    old_read = graph.deliver(a, mail(1), is_read=True)
    graph.deliver(a, mail(2))
    m365_config(mb, graph, [a], import_read=True)
    assert mb("sync").exit_code == 0
    assert subjects(mb) == ["Question 2 for a"]  # old read mail stays out (the Usedesk rule)

    arrived_now(graph, a, mail(3))  # read in Outlook before the sync
    arrived_now(graph, a, mail(4), folder=orders)
    arrived_now(graph, a, mail(5), is_read=False)
    graph.move(a, old_read, orders)  # old mail filed away is not new mail
    for fid in ("junkemail", "sentitems"):
        arrived_now(graph, a, mail(6, fid), folder=fid)
    graph.batched.clear()
    out = mb("sync")
    assert out.exit_code == 0, out.output
    assert subjects(mb) == [f"Question {i} for a" for i in (2, 3, 4, 5)]
    assert graph.unread(a) == []
    patched = [p for m, p in graph.batched if m == "PATCH"]
    assert len(patched) == 1  # only the unread one needed marking

    graph.log.clear()
    assert mb("sync").exit_code == 0 and len(tickets(mb)) == 4
    # a poll: sign-in, skipped folders, folder delta, one $batch of delta rounds, the listing
    assert len([r for r in graph.log if r[1].startswith("/v1.0/")]) <= 4, graph.log

    for code, n in (("syncStateNotFound", 7), ("resyncRequired", 8)):
        graph.expire_delta(code)
        arrived_now(graph, a, mail(n))
        arrived_now(graph, a, mail(n, "orders"), folder=orders)
        out = mb("sync")
        assert out.exit_code == 0, out.output
    later = graph.add_folder(a, "Later")
    arrived_now(graph, a, mail(9), folder=later)
    assert mb("sync").exit_code == 0
    found = subjects(mb)
    assert found == sorted([f"Question {i} for a" for i in (2, 3, 4, 5, 7, 8, 9)]
                           + ["Question 7 for orders", "Question 8 for orders"])
    assert len(set(found)) == len(found)


def test_import_read_drop_and_throttle_in_delta_rounds_lose_nothing(mb, graph):
    """A dropped connection and throttling during the delta rounds: the cursor moves only
    with what it covers, so the next sync finds the rest and nothing doubles."""
    a = "a@contoso.com"
    folders = [graph.add_folder(a, f"F{i}") for i in range(25)]  # two $batch groups
    m365_config(mb, graph, [a], import_read=True)
    assert mb("sync").exit_code == 0
    for i, fid in enumerate(folders):
        arrived_now(graph, a, mail(i), folder=fid)
    graph.throttle_in_batch(5, after=3)
    graph.drop(4, path="/$batch", after=10)  # more than the retries: this sync fails
    first = mb("sync")
    assert first.exit_code != 0
    assert 0 < len(tickets(mb)) < 25  # it broke off halfway
    again = mb("sync")
    assert again.exit_code == 0, again.output
    assert subjects(mb) == sorted(f"Question {i} for a" for i in range(25))
    assert all(f.count == 0 for f in graph.faults)


# The real CLI in a child process, killed with os._exit right before or after the Nth commit
# (tests/test_imap_crash.py does the same against Dovecot).
CRASH_CHILD = """
import os, sys
import mailbridge.connectors.graph.fetch as fetch
import mailbridge.pipeline.ingest as ingest
from mailbridge.cli.app import app
fetch.BATCH_MESSAGES = 3
where, n = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}
real = ingest.commit_batch
def commit(*a, **k):
    for point in ("before-commit", "commit"):
        if point == where:
            calls["n"] += 1
            if calls["n"] == n:
                os._exit(137)
        if point == "before-commit":
            out = real(*a, **k)
    return out
ingest.commit_batch = commit
app(["--config", sys.argv[3], "sync", "--quiet"], prog_name="mailbridge")
"""


@pytest.mark.parametrize("where,n", [("before-commit", 2), ("commit", 1), ("commit", 4)])
def test_import_read_killed_mid_sync_loses_and_doubles_nothing(mb, graph, where, n):
    a = "a@contoso.com"
    folders = ["inbox", graph.add_folder(a, "Orders"), graph.add_folder(a, "Later")]
    m365_config(mb, graph, [a], import_read=True)
    assert mb("sync").exit_code == 0
    for i in range(30):
        arrived_now(graph, a, mail(i), folder=folders[i % 3], is_read=i % 4 != 0)

    def run(*args: str) -> int:
        proc = subprocess.run([sys.executable, "-c", CRASH_CHILD, *args, str(mb.config)],
                              capture_output=True, timeout=300)
        return proc.returncode

    assert run(where, str(n)) == 137  # it really died there
    assert run("none", "0") == 0
    stored = mb.query("SELECT count(*), count(DISTINCT message_id) FROM messages")[0]
    assert stored == (30, 30)
    assert graph.unread(a) == []


def test_certificate_credential_signs_in_and_a_wrong_one_is_one_line(mb, graph, tmp_path):
    """App-only sign-in with a certificate (a client assertion signed with its key, named by
    its thumbprint): accepted; another certificate's key, a wrong thumbprint or a file that
    is no key are each one line with exit 3 and no traceback."""
    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca = trustme.CA(key_type=trustme.KeyType.RSA)  # Entra takes RSA certificates
    mine, other = (ca.issue_cert(name, key_type=trustme.KeyType.RSA)
                   for name in ("contoso-app", "someone-else"))
    graph.add_app("app-cert", certificate=mine.cert_chain_pems[0].bytes())
    thumbprint = x509.load_pem_x509_certificate(mine.cert_chain_pems[0].bytes()
                                                ).fingerprint(hashes.SHA1()).hex()
    graph.deliver("a@contoso.com", mail(1))

    def configure(key_pem: bytes, thumb: str) -> None:
        # a new file each time: a running process keeps the credential it read (run, tests)
        key = tmp_path / f"app{len(list(tmp_path.glob('*.key')))}.key"
        key.write_bytes(key_pem)
        app = {"name": "contoso", "tenant_id": graph.tenant, "client_id": "app-cert",
               "certificate_path": str(key), "certificate_thumbprint": thumb,
               "authority_url": graph.url, "graph_url": graph.url,
               "ca_bundle": str(graph.ca_file)}
        mb.write_config([{"name": "support", "incoming": {
            "type": "m365", "app": "contoso", "mailboxes": ["a@contoso.com"]}}], m365=[app])

    for key_pem, thumb, expected in (
            (other.private_key_pem.bytes(), thumbprint, "invalid signature"),
            (mine.private_key_pem.bytes(), "ab" * 20, "not registered"),
            (b"not a key\n", thumbprint, "RSA private key"),
            (ca.issue_cert("ec", key_type=trustme.KeyType.ECDSA).private_key_pem.bytes(),
             thumbprint, "RSA private key")):
        configure(key_pem, thumb)
        out = mb("sync")
        assert out.exit_code == 3, out.output
        assert expected in out.output and "Traceback" not in out.output
        assert len(out.output.strip().splitlines()) <= 2  # the problem, and its hint
    configure(mine.private_key_pem.bytes(), thumbprint)
    out = mb("sync")
    assert out.exit_code == 0, out.output
    assert [t["subject"] for t in tickets(mb)] == ["Question 1 for a"]


def test_add_channel_for_microsoft_365_tests_every_mailbox_first(mb, graph):
    """`add-channel --incoming m365`: the channel is written only when every mailbox passes
    the access test; a mailbox blocked by policy is named and nothing is written."""
    m365_config(mb, graph, ["a@contoso.com"])  # the [[m365]] app entry (and a first channel)
    graph.denied_by_policy.add(("app-1", "c@contoso.com"))
    args = ["add-channel", "--no-input", "--name", "desk", "--incoming", "m365",
            "--app", "contoso", "--mailbox", "b@contoso.com"]
    refused = mb(*args, "--mailbox", "c@contoso.com")
    assert refused.exit_code != 0
    assert "c@contoso.com" in refused.output and "ErrorAccessDenied" in refused.output
    assert "desk" not in mb.config.read_text()
    added = mb(*args)
    assert added.exit_code == 0, added.output
    graph.deliver("b@contoso.com", mail(1, "b"))
    assert mb("sync", "desk").exit_code == 0
    assert [t["subject"] for t in tickets(mb)] == ["Question 1 for b"]
    missing = mb("add-channel", "--no-input", "--name", "x", "--incoming", "m365",
                 "--app", "nope", "--mailbox", "b@contoso.com")
    assert missing.exit_code != 0 and "nope" in missing.output
    assert "Traceback" not in missing.output


def test_max_message_mb_skips_large_mail_without_downloading_it(mb, graph):
    """The listing and the delta rounds carry each message's PidTagMessageSize: a message
    over incoming.max_message_mb is reported (exit 4) and never downloaded. Unread, it stays
    unread for a person and is reported on every run, as over IMAP; read (import_read), it is
    reported once and does not hold its folder's delta link back."""
    a = "a@contoso.com"
    huge = message("Huge", message_id="huge@customer.example", body="x" * 1_500_000)
    graph.deliver(a, mail(1))
    big_unread = graph.deliver(a, huge)
    graph.deliver(a, mail(2))
    m365_config(mb, graph, [a], import_read=True, max_message_mb=1)
    def too_large(result) -> int:
        return result.stderr.count("FAILED: message is 1.4 MB, over incoming.max_message_mb (1)")

    out = mb("sync")
    assert out.exit_code == 4 and too_large(out) == 1
    assert subjects(mb) == ["Question 1 for a", "Question 2 for a"]
    assert [m.immutable_id for m in graph.unread(a)] == [big_unread]
    assert not [p for m, p in graph.batched if big_unread in p], "the large one was downloaded"

    arrived_now(graph, a, message("Huge read", message_id="huge-read@customer.example",
                                  body="y" * 1_500_000))
    arrived_now(graph, a, mail(3))
    graph.batched.clear()
    out = mb("sync")
    assert out.exit_code == 4 and too_large(out) == 2
    assert subjects(mb) == [f"Question {i} for a" for i in (1, 2, 3)]
    assert [p for m, p in graph.batched if p.endswith("/$value")] == [
        p for m, p in graph.batched if p.endswith("/$value") and "huge" not in p]
    again = mb("sync")
    assert again.exit_code == 4 and too_large(again) == 1  # the unread one, not the read one

    m365_config(mb, graph, [a], import_read=True, max_message_mb=2)
    assert mb("sync").exit_code == 0
    assert "Huge" in subjects(mb) and graph.unread(a) == []
