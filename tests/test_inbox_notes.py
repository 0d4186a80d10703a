"""My Inbox before and after "Add as CRM Note": the client suggested for a mail and why, the
override and its checks, client domains (validated, one client's each, used by suggestions and
by domain matching, never the agent's own) and reading the notes back."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import drop
from test_sales import AGENT, mail, sales_channel

from mailbridge.domain.sales import DOMAIN, INBOX, UPDATE, Candidate, decide, suggest_client

CONTACTS = {"bea@beta.test": "Beta", "cid@gamma.test": "Gamma", "dan@gamma.test": "Delta"}
DOMAINS = {"acme.test": "ACME", "gamma.test": "Gamma-Corp"}


@pytest.mark.parametrize(("sender", "client", "reason"), [
    ("bea@beta.test", "Beta", "contact bea@beta.test belongs to Beta"),
    ("BEA@Beta.test", "Beta", "contact bea@beta.test belongs to Beta"),
    ("bob@acme.test", "ACME", "domain acme.test is ACME's"),
    ("bo@beta.test", "Beta", "domain beta.test is that of Beta's contact bea@beta.test"),
    # a client's own domain outranks a contact's domain
    ("eli@gamma.test", "Gamma-Corp", "domain gamma.test is Gamma-Corp's"),
    ("zed@nowhere.test", None, "no suggestion: no client or contact has the domain "
     "nowhere.test"),
    ("pat@us.test", None, "no suggestion: us.test is your own domain"),
])
def test_the_client_suggested_and_why(sender, client, reason):
    found = suggest_client(sender, CONTACTS, {**DOMAINS, "us.test": "Us"}, ["us.test"])
    assert (found.client, found.reason) == (client, reason)


def test_a_domain_several_clients_contacts_share_is_suggested_with_the_others_named():
    found = suggest_client("eli@gamma.test", CONTACTS, {}, [])
    assert (found.client, found.reason) == (
        "Delta", "domain gamma.test is that of Delta's contact dan@gamma.test; also of "
        "contacts of Gamma")


def test_domain_matching_takes_the_clients_domains_but_never_the_agents_own():
    candidates = [Candidate(1, "Deal", "bob@gmail.test", "2026-11-20", domains=frozenset(
        {"acme.test"})), Candidate(2, "Ours", "x@gmail.test", "2026-11-21",
                                   domains=frozenset({"us.test"}))]
    found = decide(["eve@acme.test"], "anything", candidates, True, DOMAIN, ["us.test"])
    assert (found.kind, found.opportunity) == (UPDATE, 1)
    assert decide(["pat@us.test"], "x", candidates, True, DOMAIN, ["us.test"]).kind == INBOX


def inbox_items(mb) -> dict[str, int]:
    return {i["subject"]: i["id"] for i in
            json.loads(mb("inbox", "list", "--format", "json").stdout)}


def clients(mb) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(mb("clients", "list", "--format", "json").stdout)}


@pytest.fixture
def inbox(mb):
    """My Inbox with mail from a client's domain, a contact, a contact's colleague, a
    stranger and a colleague of the agent (whose domain a client claims, to no effect)."""
    spool = sales_channel(mb, matching=False)
    assert mb("clients", "add", "ACME", "--domain", "acme.test").exit_code == 0
    assert mb("clients", "add", "Us", "--domain", "US.test").exit_code == 0
    assert mb("contacts", "add", "bea@beta.test", "--client", "Beta", "--create").exit_code == 0
    for sender, subject in (("bob@acme.test", "From ACME"), ("bea@beta.test", "From Bea"),
                            ("carl@beta.test", "From Carl"), ("zed@nowhere.test", "Stranger"),
                            ("pat@us.test", "Colleague")):
        drop(spool, mail(sender, AGENT, subject, f"Body of {subject}.").replace(
            b"Subject:", b"Cc: cc@acme.test\nSubject:"))
    result = mb("sync")
    assert result.exit_code == 0, result.stderr
    return inbox_items(mb)


def test_inbox_show_prints_the_mail_and_the_suggestion_with_its_reason(mb, inbox):
    expected = {"From ACME": ("ACME", "domain acme.test is ACME's"),
                "From Bea": ("Beta", "contact bea@beta.test belongs to Beta"),
                "From Carl": ("Beta", "domain beta.test is that of Beta's contact "
                                      "bea@beta.test"),
                "Stranger": (None, "no suggestion: no client or contact has the domain "
                                   "nowhere.test"),
                "Colleague": (None, "no suggestion: us.test is your own domain")}
    for subject, (client, reason) in expected.items():
        shown = json.loads(mb("inbox", "show", str(inbox[subject]), "--format", "json").stdout)
        assert shown["suggestion"] == {"client": client, "reason": reason}, subject
        assert shown["mail"]["subject"] == subject and shown["state"] == "new"
    page = mb("inbox", "show", str(inbox["From ACME"]))
    assert page.exit_code == 0
    lines = page.stdout.splitlines()
    assert "suggested client: ACME (domain acme.test is ACME's)" in lines
    assert {"From: bob@acme.test", "To: anna@us.test", "Cc: cc@acme.test",
            "Subject: From ACME", "Body of From ACME."} <= set(lines)
    stranger = mb("inbox", "show", str(inbox["Stranger"])).stdout
    assert "suggested client: - (no suggestion: no client or contact has the domain " \
           "nowhere.test)" in stranger
    missing = mb("inbox", "show", "99")
    assert missing.exit_code == 2 and "no My Inbox item #99" in missing.stderr


def test_inbox_show_is_terminal_safe(mb):
    spool = sales_channel(mb, matching=False)
    drop(spool, mail("x@evil.test", AGENT, "Hi\x1b]0;owned\x07", "Text \x1b[2J\u202eevil"))
    assert mb("sync").exit_code == 0
    page = mb("inbox", "show", "1").stdout
    assert "\x1b" not in page and "\u202e" not in page and "\x07" not in page
    assert "\\x1b[2J\\u202eevil" in page


def test_inbox_note_uses_the_suggestion_and_invents_no_client(mb, inbox):
    noted = mb("inbox", "note", str(inbox["From Carl"]))
    assert noted.exit_code == 0 and "CRM note of Beta" in noted.stderr
    before = set(clients(mb))
    for subject in ("Stranger", "Colleague"):
        refused = mb("inbox", "note", str(inbox[subject]))
        assert refused.exit_code == 2, refused.stderr
        assert refused.stderr.splitlines() == [
            f"mailbridge: error: inbox #{inbox[subject]}: "
            f"{json.loads(mb('inbox', 'show', str(inbox[subject]), '--format', 'json').stdout)['suggestion']['reason']}"  # noqa: E501
            "; pass --client NAME"]
    assert set(clients(mb)) == before  # no client named after nowhere.test
    assert set(inbox_items(mb)) == {"From ACME", "From Bea", "Stranger", "Colleague"}


def test_inbox_note_client_override_unknown_and_create(mb, inbox):
    assert "CRM note of Beta" in mb("inbox", "note", str(inbox["From ACME"]), "--client",
                                     "beta").stderr  # overrides ACME; named in any case
    unknown = mb("inbox", "note", str(inbox["Stranger"]), "--client", "Nowhere Ltd")
    assert unknown.exit_code == 2
    assert "no client called Nowhere Ltd" in unknown.stderr
    assert "--create-client" in unknown.stderr and \
        "`mailbridge clients add 'Nowhere Ltd'`" in unknown.stderr
    assert "Nowhere Ltd" not in clients(mb) and "Stranger" in inbox_items(mb)
    made = mb("inbox", "note", str(inbox["Stranger"]), "--client", "Nowhere Ltd",
              "--create-client")
    assert made.exit_code == 0
    assert "client Nowhere Ltd added" in made.stderr and "CRM note of Nowhere Ltd" in made.stderr
    known = mb("inbox", "note", str(inbox["From Bea"]), "--client", "nowhere ltd",
               "--create-client")  # names the one just made: no second client
    assert known.exit_code == 0 and "added" not in known.stderr
    notes = json.loads(mb("notes", "list", "--format", "json").stdout)
    assert [(n["client"], n["subject"]) for n in notes] == [
        ("Beta", "From ACME"), ("Nowhere Ltd", "Stranger"), ("Nowhere Ltd", "From Bea")]


def test_notes_are_listed_with_filters_and_formats(mb, inbox):
    for subject, client in (("From ACME", None), ("From Bea", None), ("From Carl", "ACME")):
        assert mb("inbox", "note", str(inbox[subject]),
                  *(("--client", client) if client else ())).exit_code == 0
    everything = json.loads(mb("notes", "list", "--format", "json").stdout)
    assert [(n["id"], n["client"], n["from"], n["subject"]) for n in everything] == [
        (1, "ACME", "bob@acme.test", "From ACME"), (2, "Beta", "bea@beta.test", "From Bea"),
        (3, "ACME", "carl@beta.test", "From Carl")]
    assert set(everything[0]) == {"id", "client", "created_at", "message", "date", "from",
                                  "subject"}
    acme = json.loads(mb("notes", "list", "--client", "acme", "--format", "json").stdout)
    assert [n["id"] for n in acme] == [1, 3]
    # notes made "earlier" (changed behind mailbridge's back) fall out of --since
    old = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="seconds")
    mb.write("UPDATE crm_notes SET created_at=? WHERE id=1", (old,))
    recent = json.loads(mb("notes", "list", "--since", "7d", "--format", "json").stdout)
    assert [n["id"] for n in recent] == [2, 3]
    jsonl = mb("notes", "list", "--limit", "2", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in jsonl] == [1, 2]
    rows = list(csv.DictReader(io.StringIO(mb("notes", "list", "--format", "csv").stdout)))
    assert [r["subject"] for r in rows] == ["From ACME", "From Bea", "From Carl"]
    tsv = mb("notes", "list", "--client", "Beta").stdout.splitlines()  # tsv in a pipe
    assert tsv[0].split("\t") == ["id", "client", "created_at", "message", "date", "from",
                                  "subject"] and len(tsv) == 2
    assert "From Bea" in mb("notes", "list", "--format", "table").stdout
    typo = mb("notes", "list", "--client", "ACMEE")
    assert typo.exit_code == 2 and 'did you mean "ACME"' in typo.stderr
    bad_since = mb("notes", "list", "--since", "yesterday")
    assert bad_since.exit_code == 2 and "--since" in bad_since.stderr

    one = json.loads(mb("notes", "show", "3", "--format", "json").stdout)
    assert (one["client"], one["mail"]["from_email"], one["mail"]["text"]) == (
        "ACME", "carl@beta.test", "Body of From Carl.\n")
    page = mb("notes", "show", "3").stdout.splitlines()
    assert page[0].startswith("CRM note #3 of ACME, ")
    assert {"From: carl@beta.test", "Subject: From Carl", "Body of From Carl."} <= set(page)
    missing = mb("notes", "show", "9")
    assert missing.exit_code == 2 and "no CRM note #9" in missing.stderr

    shown = json.loads(mb("clients", "show", "ACME", "--format", "json").stdout)
    assert shown["domains"] == ["acme.test"]
    assert [n["subject"] for n in shown["notes"]] == ["From Carl", "From ACME"]  # newest first
    page = mb("clients", "show", "ACME").stdout
    assert "domains: acme.test" in page and "From Carl" in page and "From ACME" in page
    listed = clients(mb)
    assert (listed["ACME"]["notes"], listed["ACME"]["domains"]) == (2, ["acme.test"])
    assert (listed["Us"]["notes"], listed["Us"]["domains"]) == (0, ["us.test"])


def test_notes_list_without_a_store(mb):
    mb.drop_channel()
    result = mb("notes", "list", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []


@pytest.mark.parametrize(("args", "message"), [
    (("clients", "add", "X", "--domain", "@x.test"),
     "domain @x.test: must be a mail domain like example.com without the @"),
    (("clients", "add", "X", "--domain", "bob@x.test"),
     "domain bob@x.test: must be a mail domain like example.com without the @"),
    (("clients", "add", "X", "--domain", "localhost"),
     "domain localhost: must be a mail domain like example.com"),
    (("clients", "add", "X", "--domain", "a..test"),
     "domain a..test: must be a mail domain like example.com"),
    (("clients", "add", "X", "--domain", "ok.test", "--domain", "bad_one.test"),
     "domain bad_one.test: must be a mail domain like example.com"),
    (("clients", "add", "X", "--domain", "bücher.test"),
     "domain bücher.test: must be a mail domain like example.com (an internationalised one "
     "in its xn-- form)"),
    (("clients", "add", "X", "--domain", "acme.test"),
     "domain acme.test is client ACME's already"),
    (("clients", "set", "ACME", "--domain", "-x.test"),
     "domain -x.test: must be a mail domain like example.com"),
    (("clients", "set", "ACME", "--no-domain", "other.test"),
     "client ACME has no domain other.test (its domains: acme.test)"),
    (("clients", "set", "ACME"), "nothing to change"),
    (("clients", "set", "Nope", "--domain", "n.test"), "no client called Nope"),
])
def test_domains_are_checked_and_nothing_is_written_when_one_is_wrong(mb, args, message):
    mb.drop_channel()
    assert mb("clients", "add", "ACME", "--domain", "acme.test").exit_code == 0
    result = mb(*args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines()[0].startswith(f"mailbridge: error: {message}")
    assert "Traceback" not in result.stderr
    assert mb.query("SELECT client, domain FROM client_domains") == [("ACME", "acme.test")]
    assert set(clients(mb)) == {"ACME"}


def test_clients_set_adds_removes_and_moves_domains(mb):
    mb.drop_channel()
    assert mb("clients", "add", "ACME", "--domain", "Acme.test", "--domain", "acme.co.test"
              ).exit_code == 0
    assert mb("clients", "add", "Beta").exit_code == 0
    taken = mb("clients", "set", "Beta", "--domain", "acme.co.test")
    assert taken.exit_code == 2
    assert "mailbridge clients set ACME --no-domain acme.co.test" in taken.stderr
    changed = mb("clients", "set", "acme", "--no-domain", "acme.co.test", "--domain",
                 "acme.de")
    assert changed.exit_code == 0 and "domains acme.de, acme.test" in changed.stderr
    assert mb("clients", "set", "Beta", "--domain", "acme.co.test").exit_code == 0
    again = mb("clients", "add", "ACME", "--domain", "acme.test")  # idempotent
    assert again.exit_code == 0 and "exists already" in again.stderr
    listed = clients(mb)
    assert (listed["ACME"]["domains"], listed["Beta"]["domains"]) == (
        ["acme.de", "acme.test"], ["acme.co.test"])
    tsv = mb("clients", "list").stdout.splitlines()
    assert tsv[0].split("\t")[:2] == ["name", "domains"]
    assert tsv[1].split("\t")[1] == '["acme.de", "acme.test"]'


def test_a_client_named_in_another_case_is_the_same_client(mb, tmp_path):
    """`clients add`, `contacts add --create` and `contacts import` find ACME when told
    "acme": a client is never made twice in two spellings."""
    mb.drop_channel()
    assert mb("clients", "add", "ACME").exit_code == 0
    again = mb("clients", "add", "acme", "--domain", "acme.test")
    assert again.exit_code == 0 and "client ACME exists already" in again.stderr
    assert mb("contacts", "add", "bob@acme.test", "--client", "Acme", "--create"
              ).exit_code == 0
    rows = tmp_path / "contacts.csv"
    rows.write_text("email,client\ncarol@acme.test,aCmE\n")
    assert mb("contacts", "import", str(rows)).exit_code == 0
    assert list(clients(mb)) == ["ACME"]
    assert clients(mb)["ACME"]["domains"] == ["acme.test"]
    listed = json.loads(mb("contacts", "list", "--format", "json").stdout)
    assert {(c["email"], c["client"]) for c in listed} == {
        ("bob@acme.test", "ACME"), ("carol@acme.test", "ACME")}


def test_domain_matching_files_mail_from_a_clients_domain_to_its_opportunity(mb):
    spool = sales_channel(mb, matching_type="domain")
    assert mb("clients", "add", "ACME", "--domain", "acme.test").exit_code == 0
    assert mb("clients", "add", "Us", "--domain", "us.test").exit_code == 0
    assert mb("opportunities", "add", "--summary", "Deal", "--contact", "bob@gmail.test",
              "--client", "acme").exit_code == 0
    assert mb("opportunities", "add", "--summary", "Internal", "--contact", "x@gmail.test",
              "--client", "Us").exit_code == 0
    drop(spool, mail("eve@acme.test", AGENT, "Our order"))  # a domain only the client has
    drop(spool, mail("pat@us.test", AGENT, "Lunch?"))  # the agent's own: never matched
    assert mb("sync").exit_code == 0
    deal = json.loads(mb("opportunities", "show", "1", "--format", "json").stdout)
    assert [(m["how"], m["subject"]) for m in deal["messages"]] == [("matched", "Our order")]
    internal = json.loads(mb("opportunities", "show", "2", "--format", "json").stdout)
    assert internal["messages"] == []
    assert set(inbox_items(mb)) == {"Lunch?"}
