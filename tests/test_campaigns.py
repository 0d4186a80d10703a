"""`campaigns send/list/show`: one mail per contact from the acting agent's own sales mailbox,
through the outbox, at Exchange Online's pace, never twice to one contact — against the Graph
fake (an app with Mail.Send sends as each agent's mailbox), a SIGKILLed `campaigns send`, and
an IMAP sales channel's SMTP (aiosmtpd)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

from conftest import m365_config
from test_sales import imap_sales_channel
from test_sales_graph import ok, one_error

ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
UNSUBSCRIBE = f"<mailto:{ALICE}?subject=unsubscribe>"


def sales_mailboxes(mb, graph, **campaigns) -> None:
    """Alice's and Bob's mailboxes in a sales channel; agents Alice, Bob and Dora (who has
    no mailbox); `campaigns`: the [campaigns] table."""
    for box in (ALICE, BOB):
        graph.add_mailbox(box)
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"},
                            {"address": BOB, "agent": "Bob"}], mode="sales")
    if campaigns:
        mb.config.write_text(mb.config.read_text() + "\n[campaigns]\n" + "".join(
            f"{key} = {value}\n" for key, value in campaigns.items()))
    for name in ("Alice", "Bob", "Dora"):
        ok(mb("agents", "add", name, "--email", f"{name.lower()}@contoso.com"))


def contacts_csv(mb, count: int, client: str = "ACME", name: str = "leads.csv") -> str:
    path = mb.root / name
    path.write_text("email,name,client\n" + "".join(
        f"buyer{i}@acme.test,Buyer {i},{client}\n" for i in range(count)))
    return str(path)


def body(mb, text: str = "Dear {name},\n\nour spring offer for {client} is in.\n") -> str:
    path = mb.root / f"offer-{len(list(mb.root.glob('offer-*')))}.txt"
    path.write_text(text)
    return str(path)


def campaign(mb, *args: str):
    return mb("campaigns", "send", "--subject", "Spring offer for {client}", *args)


def sent_mails(graph) -> list:
    return [(box, message_from_bytes(mime, policy=policy.default)) for box, mime in graph.sent]


def show(mb, ident: int = 1) -> dict:
    return json.loads(ok(mb("campaigns", "show", str(ident), "--format", "json")).stdout)


def test_a_campaign_of_25_goes_from_the_agents_own_mailbox_each_filled_in(mb, graph):
    sales_mailboxes(mb, graph)
    ok(mb("contacts", "import", contacts_csv(mb, 25)))
    text = body(mb)

    refused = campaign(mb, "--body-file", text, "--client", "acme", "--as", "Dora")
    assert "agent Dora has no sales mailbox to send from" in one_error(refused)
    assert mb.value("SELECT count(*) FROM outbox") == 0

    done = ok(campaign(mb, "--body-file", text, "--client", "acme", "--as", "Alice"))
    assert f"25 mails queued from {ALICE} (Alice)" in done.stderr
    assert mb.value("SELECT count(*) FROM outbox WHERE campaign=1 AND kind='campaign'") == 25
    assert show(mb)["queued"] == 25

    ok(mb("sync"))
    mails = sent_mails(graph)
    assert len(mails) == 25 and {box for box, _ in mails} == {ALICE}
    by_to = {m["To"]: m for _, m in mails}
    assert sorted(by_to) == sorted(f"buyer{i}@acme.test" for i in range(25))
    for i in range(25):
        sent = by_to[f"buyer{i}@acme.test"]
        assert sent["From"].endswith(f"<{ALICE}>")
        assert sent["Subject"] == "Spring offer for ACME"
        assert sent.get_body(("plain",)).get_content().replace("\r\n", "\n").startswith(
            f"Dear Buyer {i},\n\nour spring offer for ACME is in.")
        assert sent["List-Unsubscribe"] == UNSUBSCRIBE
        assert sent["List-Unsubscribe-Post"] is None  # no https one-click address offered
        assert sent["Precedence"] is None and sent["Auto-Submitted"] is None

    shown = show(mb)
    assert (shown["total"], shown["sent"], shown["queued"]) == (25, 25, 0)
    assert {r["state"] for r in shown["recipients"]} == {"sent"}
    listed = json.loads(ok(mb("campaigns", "list", "--format", "json")).stdout)
    assert [(c["name"], c["agent"], c["sent"]) for c in listed] == [
        ("Spring offer for {client}", "Alice", 25)]
    rows = ok(mb("campaigns", "show", "1", "--format", "csv")).stdout.splitlines()
    assert rows[0].startswith("campaign,email,name,client,state") and len(rows) == 26

    # the same campaign again (its name is its subject): nobody is mailed twice
    again = ok(campaign(mb, "--body-file", text, "--client", "ACME", "--as", "Alice"))
    assert "nothing to queue; 25 queued before" in again.stderr
    ok(mb("sync"))
    assert len(graph.sent) == 25 and mb.value("SELECT count(*) FROM outbox") == 25
    # another text under the same name is another campaign: it needs a name of its own
    other = campaign(mb, "--body-file", body(mb, "Hello {name}"), "--client", "ACME",
                     "--as", "Alice")
    assert "with another subject or text" in one_error(other)


def test_bad_input_is_one_line_and_nothing_is_queued(mb, graph):
    sales_mailboxes(mb, graph)
    text = body(mb)
    leads = mb.root / "bad.csv"
    leads.write_text("email,name\ngood@acme.test,Good\nnot-an-address,Bad\n"
                     "also@bad@x,Worse\nfine@acme.test,Fine\n")
    line = one_error(campaign(mb, "--body-file", text, "--contacts", str(leads), "--as",
                              "Alice"))
    assert f"{leads}:3: email: must be an e-mail address" in line
    result = campaign(mb, "--body-file", text, "--contacts", str(leads), "--as", "Alice")
    assert f"1 more bad rows: {leads}:4" in result.stderr

    leads.write_text("name,address\nA,a@acme.test\n")
    assert "the first line must name the columns" in one_error(
        campaign(mb, "--body-file", text, "--contacts", str(leads), "--as", "Alice"))

    good = contacts_csv(mb, 3)
    line = one_error(campaign(mb, "--body-file", body(mb, "Hi {nmae}"), "--contacts", good,
                              "--as", "Alice"))
    assert "unknown placeholder {nmae}" in line
    assert "a lone { or }" in one_error(
        campaign(mb, "--body-file", body(mb, "Prices {from 10"), "--contacts", good,
                 "--as", "Alice"))
    nameless = mb.root / "nameless.csv"
    nameless.write_text("email,name\na@acme.test,Ann\nb@acme.test,\n")
    line = one_error(campaign(mb, "--body-file", body(mb, "Dear {name}"), "--contacts",
                              str(nameless), "--as", "Alice"))
    assert "uses {name} but 1 recipient(s) have none, e.g. b@acme.test" in line
    assert f"({nameless}:3)" in line
    own = mb.root / "own.csv"
    own.write_text(f"email\n{ALICE}\n")
    assert "is Alice's own sales mailbox" in one_error(
        mb("campaigns", "send", "--subject", "Hi", "--body-file", body(mb, "Hi"),
           "--contacts", str(own), "--as", "Alice"))
    assert "give one of --client NAME and --contacts" in one_error(
        campaign(mb, "--body-file", text, "--as", "Alice"))
    assert "no campaign #4" in one_error(mb("campaigns", "show", "4"))
    assert mb.value("SELECT count(*) FROM outbox") == 0
    assert mb.value("SELECT count(*) FROM campaigns") == 0

    dry = ok(campaign(mb, "--body-file", text, "--contacts", good, "--as", "Alice",
                      "--dry-run"))
    assert "would queue 3 mails" in dry.stderr
    assert "Subject: Spring offer for ACME" in dry.stdout and "Dear Buyer 0," in dry.stdout
    assert mb.value("SELECT count(*) FROM campaigns") == 0


def outbox_times(mb) -> list[str | None]:
    return [r[0] for r in mb.query("SELECT not_before FROM outbox ORDER BY id")]


def earlier(mb, column: str, seconds: int) -> None:
    """Move every row's `column` back in time: what waiting that long would do."""
    for ident, value in mb.query(f"SELECT id, {column} FROM outbox WHERE {column} IS NOT NULL"):
        moved = datetime.fromisoformat(value) - timedelta(seconds=seconds)
        mb.write(f"UPDATE outbox SET {column}=? WHERE id=?",
                 (moved.isoformat(timespec="seconds"), ident))


def test_campaign_mail_keeps_to_the_pace_a_minute_and_a_day(mb, graph):
    sales_mailboxes(mb, graph, per_minute=5, per_day=12)
    ok(campaign(mb, "--body-file", body(mb), "--contacts", contacts_csv(mb, 15), "--as",
                "Alice"))
    times = [datetime.fromisoformat(t) for t in outbox_times(mb)]
    start = times[0]
    assert abs(start - datetime.now(UTC)) < timedelta(minutes=5)
    minute, day = timedelta(minutes=1), timedelta(days=1)
    assert times == [start] * 5 + [start + minute] * 5 + [start + 2 * minute] * 2 + \
        [start + day] * 3  # 12 a day: the rest continue the next day

    said = ok(mb("sync")).stderr
    assert len(graph.sent) == 5  # those due now
    assert "support: outbox: 10 campaign mails wait for their time" in said
    earlier(mb, "sent_at", 61)
    ok(mb("sync"))
    assert len(graph.sent) == 5  # the next five are not due yet
    earlier(mb, "not_before", 61)
    ok(mb("sync"))
    assert len(graph.sent) == 10
    earlier(mb, "sent_at", 61)
    earlier(mb, "not_before", 61)
    ok(mb("sync"))
    assert len(graph.sent) == 12

    # however late the drain runs, a mailbox sends no more than its pace: the day's 12 went
    earlier(mb, "not_before", 86400)
    earlier(mb, "sent_at", 120)
    ok(mb("sync"))
    assert len(graph.sent) == 12
    earlier(mb, "sent_at", 86400)
    ok(mb("sync"))
    assert len(graph.sent) == 15
    assert Counter(m["To"] for _, m in sent_mails(graph)) == Counter(
        f"buyer{i}@acme.test" for i in range(15))


def test_a_late_drain_sends_a_minutes_worth_at_a_time(mb, graph):
    """Mail due long ago (the host was down) still goes per_minute at a time; other mail
    from the same mailbox is not held back."""
    sales_mailboxes(mb, graph, per_minute=4)
    ok(campaign(mb, "--body-file", body(mb), "--contacts", contacts_csv(mb, 10), "--as",
                "Alice"))
    ok(mb("opportunities", "add", "--summary", "Fleet", "--contact", "dan@acme.test"))
    ok(mb("opportunities", "mail", "1", "-m", "Hello", "--as", "Alice"))
    earlier(mb, "not_before", 3600)
    ok(mb("sync"))
    assert [m["To"] for _, m in sent_mails(graph)] == [f"buyer{i}@acme.test" for i in range(4)
                                                       ] + ["dan@acme.test"]
    ok(mb("sync"))  # its fill of the minute is spent (the opportunity mail counts too)
    assert len(graph.sent) == 5
    earlier(mb, "sent_at", 61)
    ok(mb("sync"))
    assert len(graph.sent) == 9
    assert show(mb)["sent"] == 8 and show(mb)["queued"] == 2

    # a sync killed while handing one over: its state is told as `outbox list` tells it
    # (`unknown` once no process may be sending it; on SQLite, while this process holds the
    # store's last write it may be)
    mb.write("UPDATE outbox SET state='sending', claimed_by='gone:1' WHERE id=9")
    [listed] = [r for r in json.loads(ok(mb("outbox", "list", "--format", "json")).stdout)
                if r["id"] == 9]
    [row] = [r for r in show(mb)["recipients"] if r["outbox"] == 9]
    assert row["state"] == listed["state"] and row["last_error"] == listed["last_error"]
    if mb.backend == "postgresql":  # no host holds a lease as gone:1
        assert row["state"] == "unknown" and "interrupted while sending" in row["last_error"]
    [summary] = json.loads(ok(mb("campaigns", "list", "--format", "json")).stdout)
    assert summary[row["state"]] == 1  # the list counts it as show tells it


def test_a_second_campaign_from_the_mailbox_waits_for_the_first(mb, graph):
    sales_mailboxes(mb, graph, per_minute=5)
    ok(campaign(mb, "--body-file", body(mb), "--contacts", contacts_csv(mb, 7), "--as",
                "Alice"))
    ok(mb("campaigns", "send", "--subject", "Second", "--body-file", body(mb, "Hi {name}"),
          "--contacts", contacts_csv(mb, 3, name="more.csv"), "--as", "Alice"))
    ok(mb("campaigns", "send", "--subject", "Bob's", "--body-file", body(mb, "Hi {name}"),
          "--contacts", contacts_csv(mb, 2, name="bob.csv"), "--as", "Bob"))
    first, second, bobs = ([datetime.fromisoformat(r[0]) for r in mb.query(
        "SELECT not_before FROM outbox WHERE campaign=? ORDER BY id", (c,))] for c in (1, 2, 3))
    assert second == [first[-1] + timedelta(minutes=1)] * 3
    assert bobs[0] < second[0]  # Bob's mailbox has a pace of its own


def send_command(mb, text: str, leads: str) -> list[str]:
    """`campaigns send` as a process of its own (to be killed, or run twice at once)."""
    return [sys.executable, "-m", "mailbridge", "--config", str(mb.config), "campaigns",
            "send", "--subject", "Spring offer for {client}", "--body-file", text,
            "--contacts", leads, "--as", "Alice"]


def test_a_killed_campaign_send_run_again_mails_everyone_once(mb, graph):
    sales_mailboxes(mb, graph, per_minute=1000)
    total = 600
    leads, text = contacts_csv(mb, total), body(mb)
    proc = subprocess.Popen(send_command(mb, text, leads), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    queued = 0
    while proc.poll() is None and queued < 60 and time.monotonic() < deadline:
        time.sleep(0.002)  # killed once some batches are committed: part-way through
        queued = mb.value("SELECT count(*) FROM campaign_recipients")
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert killed, "campaigns send finished before it was killed: make the list longer"
    before = mb.value("SELECT count(*) FROM campaign_recipients")
    assert 0 < before < total
    assert before == mb.value("SELECT count(*) FROM outbox")  # whole recipients only

    again = ok(campaign(mb, "--body-file", text, "--contacts", leads, "--as", "Alice"))
    assert f"{total - before} mails queued" in again.stderr
    assert f"{before} queued before" in again.stderr
    earlier(mb, "not_before", 3600)  # the rerun's mail waits behind the first run's
    ok(mb("sync"))
    counts = Counter(m["To"] for _, m in sent_mails(graph))
    assert len(counts) == total and set(counts.values()) == {1}
    assert show(mb)["sent"] == total


def test_two_runs_of_one_campaign_at_once_mail_each_contact_once(mb, graph):
    """Two people start the same campaign at the same moment: both plan every contact, and
    the store's key on (campaign, recipient) lets only one of them queue each."""
    sales_mailboxes(mb, graph, per_minute=1000)
    total = 400
    leads, text = contacts_csv(mb, total), body(mb)
    runs = [subprocess.Popen(send_command(mb, text, leads), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    said = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], said
    assert mb.value("SELECT count(*) FROM campaigns") == 1
    assert mb.query("SELECT count(*), count(DISTINCT recipients_json) FROM outbox")[0] == (
        total, total)
    earlier(mb, "not_before", 3600)
    ok(mb("sync"))
    counts = Counter(m["To"] for _, m in sent_mails(graph))
    assert len(counts) == total and set(counts.values()) == {1}


def test_the_pace_is_checked_in_the_config(mb, graph):
    m365_config(mb, graph, [ALICE], mode="sales")
    mb.config.write_text(mb.config.read_text() + "\n[campaigns]\nper_minute = 0\nper_dya = 5\n")
    result = mb("campaigns", "list")
    assert result.exit_code == 2
    assert "campaigns.per_minute: must be an integer 1–1000" in result.stderr
    assert 'campaigns.per_dya: unknown key; did you mean "per_day"?' in result.stderr


def test_an_imap_sales_channel_sends_its_campaign_over_its_smtp(mb, dovecot, imap_user, smtp,
                                                               monkeypatch):
    owner = imap_sales_channel(mb, imap_user, monkeypatch, outgoing={
        "type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none"})
    ok(mb("agents", "add", "Anna", "--email", owner))
    ok(mb("agents", "add", "Ben", "--email", "ben@us.test"))
    leads = contacts_csv(mb, 3)
    assert "agent Ben has no sales mailbox" in one_error(
        campaign(mb, "--body-file", body(mb), "--contacts", leads, "--as", "Ben"))
    ok(campaign(mb, "--body-file", body(mb), "--contacts", leads, "--as", "Anna"))
    ok(mb("sync"))
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [f"buyer{i}@acme.test"
                                                          for i in range(3)]
    for got in smtp.received:
        assert got.mail_from == owner and got.message["From"].endswith(f"<{owner}>")
        assert got.message["List-Unsubscribe"] == f"<mailto:{owner}?subject=unsubscribe>"
        i = got.rcpt_tos[0].removeprefix("buyer").split("@")[0]
        assert got.message.get_body(("plain",)).get_content().startswith(f"Dear Buyer {i},")
    assert show(mb)["sent"] == 3
