"""`opportunities quote`: a quotation mailed to the opportunity's contact, the file attached,
from the mailbox the "Setting Overrides" rules of the sales-mailboxes document pick (the
action's mailbox, the client's, the global one, the agent's own, the fallback), through the
outbox as `opportunities mail` is. The rule itself is a pure function, tested row by row;
then against the Graph fake and over Dovecot + aiosmtpd."""

from __future__ import annotations

import json
import tomllib
from email import message_from_bytes, policy

import pytest
import tomli_w
from conftest import m365_config
from test_editor import editor  # noqa: F401 (a fixture)
from test_opportunity_mail import DAN, agents, imap_sales_channel, shown
from test_sales_graph import ok, one_error

from mailbridge.domain.quotation import Mailbox, Settings, choose_sender
from mailbridge.errors import UsageError

ALICE, BOB, QUOTES = "alice@contoso.com", "bob@contoso.com", "quotes@contoso.com"
BOXES = (Mailbox(ALICE, "Alice"), Mailbox(BOB, "Bob"), Mailbox(QUOTES, None))
FALLBACK = Settings(fallback=QUOTES)
ACME = Settings(client="ACME", client_mailbox=BOB)  # Bob's mailbox sends ACME's quotations

# (agent, settings, --from) → (address, rule)
RULES = [
    ("Alice", Settings(), None, ALICE, "own"),  # global: "the sending Agent's personal mailbox"
    ("alice", Settings(), None, ALICE, "own"),  # agent names in any case
    ("Alice", FALLBACK, None, ALICE, "own"),  # the fallback is for agents without one
    ("Dora", FALLBACK, None, QUOTES, "fallback"),
    ("Alice", Settings(quotation_from=QUOTES), None, QUOTES, "global"),
    ("Alice", Settings(quotation_from="QUOTES@Contoso.com"), None, QUOTES, "global"),
    ("Alice", ACME, None, BOB, "client"),  # the client's wins over the agent's own
    ("Alice", Settings(quotation_from=QUOTES, client="ACME", client_mailbox=BOB), None, BOB,
     "client"),  # … and over a global address
    ("Dora", Settings(fallback=QUOTES, client="ACME", client_mailbox=BOB), None, BOB,
     "client"),  # … and over the fallback
    ("Alice", ACME, QUOTES, QUOTES, "action"),  # the action's mailbox wins over the client's
    ("Alice", Settings(quotation_from=BOB), ALICE, ALICE, "action"),  # … and the global one
    ("Dora", Settings(), QUOTES, QUOTES, "action"),  # no fallback: the agent picks
    ("Alice", FALLBACK, "Quotes@contoso.com", QUOTES, "action"),
    ("Dora", FALLBACK, None, QUOTES, "fallback"),
    ("Dora", Settings(fallback=BOB), BOB, BOB, "action"),  # Bob's, named for quotations
]


@pytest.mark.parametrize(("agent", "settings", "action_from", "address", "rule"), RULES)
def test_the_sender_rules(agent, settings, action_from, address, rule):
    chosen = choose_sender(agent, BOXES, settings, action_from)
    assert (chosen.address, chosen.rule) == (address, rule)
    assert chosen.reason


REFUSED = [
    # none available: no mailbox of their own, no fallback; the error lists what they may pick
    ("Dora", Settings(), None, f"agent Dora has no sales mailbox and no [sales] "
     f"fallback_mailbox is set: choose the sender with --from ADDR|Dora may send from: {QUOTES}"),
    ("Dora", Settings(), BOB, f"{BOB} is Bob's sales mailbox: only Bob sends from it"),
    ("Alice", ACME, "nobody@contoso.com", "nobody@contoso.com (--from) is no sales mailbox"),
    ("Alice", Settings(client="ACME", client_mailbox="old@contoso.com"), None,
     "old@contoso.com (client ACME's quotation mailbox) is no sales mailbox mailbridge can "
     f"send from|known sales mailboxes: {ALICE}, {BOB}, {QUOTES}"),
    ("Dora", Settings(fallback="gone@contoso.com"), None, "gone@contoso.com ([sales] "
     "fallback_mailbox) is no sales mailbox"),
    ("Alice", Settings(quotation_from="gone@contoso.com"), None, "gone@contoso.com ([sales] "
     "quotation_from) is no sales mailbox"),
]


@pytest.mark.parametrize(("agent", "settings", "action_from", "said"), REFUSED)
def test_a_sender_no_rule_allows_is_refused(agent, settings, action_from, said):
    with pytest.raises(UsageError) as refused:
        choose_sender(agent, BOXES, settings, action_from)
    message, _, hint = said.partition("|")
    assert message in str(refused.value)
    assert hint in (refused.value.hint or "")


def test_no_mailbox_to_choose_says_what_to_set():
    with pytest.raises(UsageError, match="no sales mailbox is free to choose"):
        choose_sender("Dora", BOXES[:2], Settings())


def with_sales(mb, **keys) -> None:
    """Set the config's [sales] table (none: take it out)."""
    data = tomllib.loads(mb.config.read_text())
    data.pop("sales", None)
    if keys:
        data["sales"] = keys
    mb.config.write_text(tomli_w.dumps(data))


def dry_run(mb, *args: str) -> dict:
    return json.loads(ok(mb("opportunities", "quote", "1", "--dry-run", "--format", "json",
                            *args)).stdout)


def attached(mime: bytes) -> list[tuple[str, bytes]]:
    return [(part.get_filename(), part.get_payload(decode=True))
            for part in message_from_bytes(mime, policy=policy.default).walk()
            if part.get_filename()]


PDF = b"%PDF-1.4\n% a quotation\n"


def test_quotations_follow_each_sender_rule_against_microsoft_365(mb, graph):
    for box in (ALICE, BOB, QUOTES):
        graph.add_mailbox(box)
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"},
                            {"address": BOB, "agent": "Bob"}, QUOTES], mode="sales")
    agents(mb, "Alice", "Bob", "Dora")  # Dora has no sales mailbox
    ok(mb("clients", "add", "ACME"))
    ok(mb("opportunities", "add", "--summary", "Printer fleet", "--contact", DAN,
          "--client", "ACME"))
    quote = mb.root / "quote-17.pdf"
    quote.write_bytes(PDF)
    file = ("--file", str(quote))

    # (the [sales] table, the client's quotation mailbox, the command's options) → sender
    rows = [
        ({}, None, ("--as", "Alice"), ALICE, "own"),
        ({"fallback_mailbox": QUOTES}, None, ("--as", "Dora"), QUOTES, "fallback"),
        ({"quotation_from": QUOTES}, None, ("--as", "Bob"), QUOTES, "global"),
        ({"quotation_from": QUOTES}, BOB, ("--as", "Alice"), BOB, "client"),
        ({"fallback_mailbox": QUOTES}, BOB, ("--as", "Alice", "--from", ALICE), ALICE,
         "action"),
    ]
    for n, (sales, client_box, options, sender, rule) in enumerate(rows, 1):
        with_sales(mb, **sales)
        ok(mb("clients", "set", "ACME", *(("--quotation-mailbox", client_box) if client_box
                                          else ("--no-quotation-mailbox",))))
        planned = dry_run(mb, *file, *options)
        assert (planned["from"], planned["rule"], planned["to"]) == (sender, rule, [DAN])
        assert mb.value("SELECT count(*) FROM outbox") == n - 1  # a dry run queues nothing
        queued = ok(mb("opportunities", "quote", "1", *file, *options))
        assert f"quotation from {sender} ({planned['reason']})" in queued.stderr
        ok(mb("sync"))
        mailbox, mime = graph.sent[-1]
        sent = message_from_bytes(mime, policy=policy.default)
        assert (mailbox, sent["To"], sent["Subject"]) == (sender, DAN,
                                                          "Quotation: Printer fleet")
        assert sent["From"].endswith(f"<{sender}>")
        assert attached(mime) == [("quote-17.pdf", PDF)]
        assert "please find attached our quotation for Printer fleet" in \
            sent.get_body(("plain",)).get_content()
    assert len(graph.sent) == len(rows)
    assert [m["how"] for m in shown(mb, 1)] == ["sent"] * len(rows)

    # the human dry run says who and why, in words
    with_sales(mb)
    ok(mb("clients", "set", "ACME", "--no-quotation-mailbox"))
    said = ok(mb("opportunities", "quote", "1", *file, "--as", "Alice", "--dry-run")).stdout
    assert f"would go from {ALICE} to {DAN}" in said
    assert "why: Alice's own sales mailbox" in said


def test_quotation_refusals_are_one_line_and_queue_nothing(mb, graph):
    for box in (ALICE, BOB, QUOTES):
        graph.add_mailbox(box)
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"},
                            {"address": BOB, "agent": "Bob"}, QUOTES], mode="sales")
    agents(mb, "Alice", "Dora")
    ok(mb("clients", "add", "ACME"))
    ok(mb("opportunities", "add", "--summary", "Fleet", "--contact", DAN, "--client", "ACME"))
    quote = mb.root / "q.pdf"
    quote.write_bytes(PDF)
    file = ("--file", str(quote))

    line = one_error(mb("opportunities", "quote", "1", *file, "--as", "Dora"))
    assert "agent Dora has no sales mailbox and no [sales] fallback_mailbox is set" in line
    hint = mb("opportunities", "quote", "1", *file, "--as", "Dora").stderr
    assert f"Dora may send from: {QUOTES}" in hint
    assert "only Bob sends from it" in one_error(
        mb("opportunities", "quote", "1", *file, "--as", "Alice", "--from", BOB))
    assert "--from" in one_error(
        mb("opportunities", "quote", "1", *file, "--as", "Alice", "--from", "not-an-address"))
    assert "cannot attach" in one_error(
        mb("opportunities", "quote", "1", "--file", str(mb.root / "missing.pdf"), "--as",
           "Alice"))
    assert "--format applies to --dry-run only" in one_error(
        mb("opportunities", "quote", "1", *file, "--as", "Alice", "--format", "json"))
    assert mb.value("SELECT count(*) FROM outbox") == 0

    line = one_error(mb("clients", "set", "ACME", "--quotation-mailbox", "old@contoso.com"))
    assert "old@contoso.com (--quotation-mailbox) is no sales mailbox" in line
    assert mb.value("SELECT quotation_mailbox FROM clients") is None
    assert "contradict" in one_error(mb("clients", "set", "ACME", "--quotation-mailbox",
                                        QUOTES, "--no-quotation-mailbox"))

    # the client's mailbox is shown, in the mailbox's own spelling, and can be taken away
    ok(mb("clients", "set", "ACME", "--quotation-mailbox", "Quotes@Contoso.com"))
    shown_client = json.loads(ok(mb("clients", "show", "ACME", "--format", "json")).stdout)
    assert shown_client["quotation_mailbox"] == QUOTES
    [listed] = json.loads(ok(mb("clients", "list", "--format", "json")).stdout)
    assert listed["quotation_mailbox"] == QUOTES
    assert f"quotations from: {QUOTES}" in ok(mb("clients", "show", "ACME")).stdout
    # a mailbox taken out of the config afterwards: the quotation says so, and sends nothing
    m365_config(mb, graph, [{"address": ALICE, "agent": "Alice"}], mode="sales")
    line = one_error(mb("opportunities", "quote", "1", *file, "--as", "Alice"))
    assert f"{QUOTES} (client ACME's quotation mailbox) is no sales mailbox" in line
    ok(mb("clients", "set", "ACME", "--no-quotation-mailbox"))
    assert mb.value("SELECT quotation_mailbox FROM clients") is None
    assert dry_run(mb, *file, "--as", "Alice")["rule"] == "own"


def test_a_quotation_over_an_imap_sales_channels_smtp(mb, dovecot, imap_user, smtp,
                                                     monkeypatch):
    owner = imap_sales_channel(mb, imap_user, monkeypatch, outgoing={
        "type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none"})
    ok(mb("agents", "add", "Anna", "--email", owner))
    ok(mb("opportunities", "add", "--summary", "Toner", "--contact", DAN))
    quote = mb.root / "toner.pdf"
    quote.write_bytes(PDF)
    text = mb.root / "text.txt"
    text.write_text("Our offer, attached.\n")
    ok(mb("opportunities", "quote", "1", "--file", str(quote), "--as", "Anna", "--file-text",
          str(text), "--subject", "Toner offer"))
    ok(mb("sync"))
    [got] = smtp.received
    assert got.mail_from == owner and got.rcpt_tos == [DAN]
    assert got.message["Subject"] == "Toner offer"
    assert attached(got.message.as_bytes()) == [("toner.pdf", PDF)]
    [sent] = shown(mb, 1)
    assert sent["how"] == "sent" and sent["text"].startswith("Our offer, attached.")


def test_sales_settings_are_checked(mb):
    mb.drop_channel()
    for sales, said in (({"fallback_mailbx": QUOTES}, 'did you mean "fallback_mailbox"'),
                        ({"quotation_from": "channel"}, '"sales_mailboxes" or the address'),
                        ({"fallback_mailbox": "x"}, "e-mail address"),
                        ({"quotation_from": QUOTES, "fallback_mailbox": BOB},
                         "applies only with quotation_from")):
        with_sales(mb, **sales)
        assert said in one_error(mb("channels", "list"))


def test_a_store_from_before_quotation_mailboxes_keeps_its_clients(mb, monkeypatch):
    from mailbridge.store import migrations
    from mailbridge.store.backends import close_all

    anna = "anna@us.test"
    mb.drop_channel("sales", mode="sales", owner=anna, agent="Anna",
                    outgoing={"type": "sendmail"})
    with monkeypatch.context() as older:
        older.setattr(migrations, "STEPS", tuple(s for s in migrations.STEPS
                                                 if s.__name__ != "m016_quotation_mailbox"))
        mb.write("INSERT INTO clients (name, created_at) VALUES ('ACME', 'then')")
        close_all()
    ok(mb("sync"))  # migrates
    [acme] = json.loads(ok(mb("clients", "list", "--format", "json")).stdout)
    assert (acme["name"], acme["quotation_mailbox"]) == ("ACME", None)
    ok(mb("clients", "set", "acme", "--quotation-mailbox", anna))
    assert mb.value("SELECT quotation_mailbox FROM clients") == anna


def test_a_client_mailbox_must_be_able_to_send(mb):
    """An IMAP (or drop) sales channel without an outgoing connection sends nothing."""
    mb.drop_channel("sales", mode="sales", owner="anna@us.test", agent="Anna")
    ok(mb("clients", "add", "ACME"))
    line = one_error(mb("clients", "set", "ACME", "--quotation-mailbox", "anna@us.test"))
    assert "channel sales has no outgoing connection" in line
    assert mb.value("SELECT quotation_mailbox FROM clients") is None


def test_the_editor_starts_from_the_default_text(mb, editor):  # noqa: F811
    anna = "anna@us.test"
    mb.drop_channel("sales", mode="sales", owner=anna, agent="Anna",
                    outgoing={"type": "sendmail"})
    ok(mb("agents", "add", "Anna", "--email", anna))
    ok(mb("opportunities", "add", "--summary", "Toner", "--contact", DAN))
    quote = mb.root / "toner.pdf"
    quote.write_bytes(PDF)
    queued = ok(mb("opportunities", "quote", "1", "--file", str(quote), "--edit", "--as",
                   "Anna", env=editor.env("Here it is.\n")))
    assert f"quotation from {anna} (Anna's own sales mailbox" in queued.stderr
    [template] = editor.templates
    assert template.startswith("Hello,\n\nplease find attached our quotation for Toner.\n")
    assert "# Quotation on opportunity #1: Toner" in template
    [sent] = shown(mb, 1)
    assert sent["text"].startswith("Here it is.")
    assert mb.value("SELECT kind FROM outbox") == "opportunity quote"
