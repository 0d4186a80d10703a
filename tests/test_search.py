"""`tickets search`, `engagements search`, `opportunities search` (issue 20): words, phrases
and prefixes found in the subject, the text (of HTML-only mail too), the sender and the
attachment names, in any charset, ranked, with a snippet; never by another header; filters
checked like the list commands'; every query answered without a database error."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from conftest import CORPUS, drop, message, needs_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.domain.search import MARK_END, MARK_START, Term, fold, parse
from mailbridge.store import search
from mailbridge.store.backends import close_all
from mailbridge.store.fulltext import fts5_query, tsquery
from mailbridge.store.tickets import Filter


def found(mb, *args: str, what: str = "tickets") -> list[dict]:
    result = mb(what, "search", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ids(mb, *args: str, what: str = "tickets") -> list[int]:
    return [hit["id"] for hit in found(mb, *args, what=what)]


def mime(subject: str, sender: str, parts: str, extra: str = "",
         message_id: str = "x@customer.example") -> bytes:
    return (f"From: {sender}\nTo: support@example.com\nSubject: {subject}\n"
            f"Message-ID: <{message_id}>\nDate: Mon, 16 Nov 2026 09:00:00 +0000\n{extra}"
            f"MIME-Version: 1.0\n{parts}").encode()


HTML_ONLY = mime("Hardware", "Carl <carl@customer.example>",
                 "Content-Type: text/html; charset=utf-8\n\n"
                 "<html><body><p>Kindly replace the <b>fuser</b> unit</p></body></html>\n",
                 message_id="html@customer.example")
WITH_ATTACHMENT = mime(
    "Documents", "Dora <dora@customer.example>",
    'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
    "See attached.\n--b\nContent-Type: application/pdf\n"
    'Content-Disposition: attachment; filename="quarterly-invoice.pdf"\n'
    "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n",
    message_id="att@customer.example")
# Words only in headers other than the sender and subject: never found
HEADERS_ONLY = mime("Routine", "Eve <eve@customer.example>",
                    "Content-Type: text/plain\n\nNothing to see.\n",
                    extra="X-Custom: xylophone\nReceived: from zebrafish.example by mx\n"
                          "Cc: Wombat <wombat@elsewhere.example>\n",
                    message_id="hdr@customer.example")


def desk(mb):
    spool = mb.drop_channel()
    drop(spool, message("Printer toner empty", body="The tray is jammed.\n\n"
                        "> From: Quentin <quentin@old.example>\n> Subject: quoted mail"),
         "1.test")
    drop(spool, HTML_ONLY, "2.test")
    drop(spool, message("Hello", sender="zq@widgets.example", message_id="c@widgets.example",
                        body="hi").replace(b"From: Ann", b"From: Zoltan Quixote"), "3.test")
    drop(spool, WITH_ATTACHMENT, "4.test")
    drop(spool, HEADERS_ONLY, "5.test")
    result = mb("sync")
    assert result.exit_code == 0, result.output
    return spool


def test_words_phrases_and_prefixes_in_every_indexed_field(mb):
    desk(mb)
    assert ids(mb, "toner") == [1]  # subject
    assert ids(mb, "TONER Printer") == [1]  # every word, any case
    assert ids(mb, '"toner empty"') == [1]  # phrase
    assert ids(mb, '"empty toner"') == []  # … in its order
    assert ids(mb, "ton*") == [1]  # prefix
    assert ids(mb, "jammed") == [1]  # body text
    assert ids(mb, "fuser") == [2]  # HTML-only mail: its extracted text
    assert ids(mb, '"replace the fuser"') == [2]
    assert ids(mb, "quixote") == [3]  # sender name
    assert ids(mb, "zq@widgets.example") == [3]  # sender address
    assert ids(mb, "widg*") == [3]
    assert ids(mb, "quarterly") == [4]  # attachment name
    assert ids(mb, "invoi*") == [4]
    assert ids(mb, "toner", "fuser") == []  # all words must match
    assert ids(mb, "printer", "toner") == ids(mb, "printer toner") == [1]
    hit = found(mb, "fuser")[0]
    assert hit["subject"] == "Hardware" and hit["status"] == "open"
    assert "fuser" in hit["snippet"] and MARK_START not in hit["snippet"]
    assert set(hit) == {"id", "channel", "queue", "status", "requester_email", "subject",
                        "updated_at", "message", "score", "snippet"}


FORWARDED = mime(
    "Fwd: a thing", "Fay <fay@customer.example>",
    'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
    "See below.\n--b\nContent-Type: message/rfc822\n\n"
    "From: Innerperson <inner@quoted.example>\nTo: nobody@quoted.example\n"
    "Subject: Old news\nX-Trace: hiddenheaderword\n\nInner wording.\n--b--\n",
    message_id="fwd@customer.example")


def test_a_word_only_in_another_header_finds_nothing(mb):
    spool = desk(mb)
    drop(spool, FORWARDED, "6.test")
    assert mb("sync").exit_code == 0
    for word in ("xylophone", "zebrafish", "wombat", "elsewhere", "support",
                 "innerperson", "quoted.example", "hiddenheaderword", "nobody"):
        assert ids(mb, word) == [], word
    assert ids(mb, "fay") == [6]
    assert ids(mb, "routine") == [5]  # the message itself is indexed
    # quoted mail in the text is text: found as text, the ticket is not the quoted sender's
    assert ids(mb, "quentin") == [1]


def test_ranking_puts_the_subject_first_and_a_reply_finds_its_ticket(mb):
    spool = mb.drop_channel()
    drop(spool, message("Scanner", message_id="a@c.example",
                        body="the scanner uses a cartridge, like every cartridge"), "1.test")
    drop(spool, message("Cartridge low", message_id="b@c.example", body="Please help."),
         "2.test")
    drop(spool, message("Re: Scanner", message_id="r@c.example",
                        extra="In-Reply-To: <a@c.example>\n", body="Also: a paperclip."),
         "3.test")
    assert mb("sync").exit_code == 0
    assert ids(mb, "cartridge") == [2, 1]
    hits = found(mb, "paperclip")
    assert [h["id"] for h in hits] == [1]  # one hit a ticket, by its best message
    assert hits[0]["message"] == 3
    assert ids(mb, "scanner") == [1]  # in two of its messages: still one hit


def test_charsets_koi8r_and_iso_8859(mb):
    spool = mb.drop_channel()
    koi8 = ("From: =?koi8-r?b?" + __import__("base64").b64encode(
        "Пётр Иванов".encode("koi8-r")).decode() + "?= <petr@example.ru>\n"
        "To: support@example.com\nSubject: =?koi8-r?q?" +
        "".join(f"={b:02X}" for b in "Заявка".encode("koi8-r")) + "?=\n"
        "Message-ID: <k@example.ru>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n\n"
        ).encode() + "Не работает принтер в бухгалтерии.\n".encode("koi8-r")
    latin = (b"From: =?iso-8859-1?q?J=FCrgen_M=FCller?= <jm@example.de>\n"
             b"To: support@example.com\nSubject: Drucker\nMessage-ID: <l@example.de>\n"
             b"MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
             b"Content-Transfer-Encoding: 8bit\n\n") + \
        "Die Priorität ist hoch, Größe A4.\n".encode("iso-8859-1")
    drop(spool, koi8, "1.test")
    drop(spool, latin, "2.test")
    assert mb("sync").exit_code == 0
    assert ids(mb, "заявка") == [1]  # subject, any case
    assert ids(mb, "принтер") == [1]  # body
    assert ids(mb, "бухгалт*") == [1]
    assert ids(mb, "иванов") == [1]  # sender name
    assert ids(mb, "пётр") == [1]
    assert ids(mb, "priorität") == ids(mb, "prioritat") == [2]
    assert ids(mb, "müller") == [2]
    assert "Priorität" in found(mb, "priorität")[0]["snippet"]


@needs_corpus
def test_corpus_mail_in_other_charsets_is_found(mb):
    spool = mb.drop_channel()
    for i, path in enumerate(("zammad/mail/mail006.eml", "zammad/mail/mail073.eml",
                              "more/mail/mailparser-mail_test_2.eml"), 1):
        drop(spool, (CORPUS / path).read_bytes(), f"{i}.test")
    assert mb("sync").exit_code == 0
    assert ids(mb, "углицких") == [1]  # cp-1251 in a subject
    assert ids(mb, "priorität") == [1]  # ISO-8859-1 in the same subject
    assert ids(mb, "wölbung") == [2]  # an attachment's file name
    assert ids(mb, "nuvolosita") == [3]  # ISO-8859-1 body, without the accent


def test_filters_combine_and_a_wrong_value_is_one_line(mb):
    spool = mb.drop_channel(default_queue="general")
    other = mb.drop_channel("sales-desk")
    drop(spool, message("Toner one", message_id="1@c.example"), "1.test")
    drop(spool, message("Toner two", message_id="2@c.example"), "2.test")
    drop(other, message("Toner three", message_id="3@c.example"), "3.test")
    assert mb("sync").exit_code == 0
    assert mb("tickets", "close", "2").exit_code == 0
    assert mb("tickets", "move", "1", "--queue", "billing", "--create").exit_code == 0
    assert sorted(ids(mb, "toner")) == [1, 2, 3]
    assert sorted(ids(mb, "toner", "--status", "open")) == [1, 3]
    assert ids(mb, "toner", "--status", "closed") == [2]
    assert ids(mb, "toner", "--queue", "billing") == [1]
    assert ids(mb, "toner", "--channel", "sales-desk") == [3]
    assert ids(mb, "toner", "--channel", "support", "--status", "open") == [1]
    assert sorted(ids(mb, "toner", "--since", "1d")) == [1, 2, 3]
    assert ids(mb, "toner", "--since", "2999-01-01") == []
    assert len(ids(mb, "toner", "--limit", "2")) == 2
    assert mb("agents", "add", "alice", "--email", "alice@example.com").exit_code == 0
    assert mb("tickets", "assign", "3", "--to", "alice").exit_code == 0
    assert mb("tickets", "priority", "1", "urgent").exit_code == 0
    assert ids(mb, "toner", "--assignee", "alice") == [3]
    assert sorted(ids(mb, "toner", "--assignee", "none")) == [1, 2]
    assert ids(mb, "toner", "--assignee", "me", "--as", "alice") == [3]
    assert ids(mb, "toner", "--priority", "urgent") == [1]
    assert mb("tickets", "search", "toner", "--assignee", "alcie").exit_code == 2
    db = mb.open()  # what "… N more" counts: the hits the filters pass
    try:
        assert search.search_tickets(db, parse("toner"), Filter()).count() == 3
        assert search.search_tickets(db, parse("toner"), Filter(status="open")).count() == 2
        assert search.search_tickets(db, parse("toner"),
                                     Filter("sales-desk", "general")).count() == 1
        assert search.search_engagements(db, parse("toner")).count() == 0
        assert search.search_opportunities(db, parse("toner")).count() == 0
    finally:
        db.close()
    for args, words in ((("--queue", "biling"), "no queue called biling"),
                        (("--channel", "nope"), "nope"),
                        (("--status", "opn"), "--status"),
                        (("--since", "soon"), "--since")):
        result = mb("tickets", "search", "toner", *args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("mailbridge: error:") and words in lines[0], lines
        assert all(line.startswith("mailbridge: ") for line in lines)
    assert "billing" in mb("tickets", "search", "toner", "--queue", "biling").stderr


def test_formats(mb):
    desk(mb)
    lines = mb("tickets", "search", "fuser", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2]
    rows = list(csv.DictReader(io.StringIO(
        mb("tickets", "search", "fuser", "--format", "csv").stdout)))
    assert rows[0]["id"] == "2" and "fuser" in rows[0]["snippet"]
    tsv = mb("tickets", "search", "fuser").stdout.splitlines()  # a pipe: tsv
    assert tsv[0].split("\t")[-1] == "snippet" and tsv[1].split("\t")[0] == "2"
    table = mb("tickets", "search", "fuser", "--format", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["id", "status", "queue"]
    assert table[1].split()[0] == "2" and "fuser" in table[2] and table[2].startswith("    ")
    assert "\x1b" not in "".join(table)  # plain outside a terminal
    assert mb("tickets", "search", "nothinglikethis", "--format", "json").stdout == "[]\n"


def test_the_snippet_is_highlighted_on_a_terminal_and_made_safe():
    from mailbridge.cli.hits import HIGHLIGHT, highlighted

    snippet = f"replace the {MARK_START}fuser{MARK_END} unit\n\x1b]0;evil\x07 now"
    assert highlighted(snippet, colour=True) == (
        f"replace the {HIGHLIGHT}fuser\x1b[0m unit \\x1b]0;evil\\x07 now")
    assert highlighted(snippet, colour=False).startswith("replace the fuser unit")
    assert highlighted(snippet, colour=False, width=14) == "replace the f…"


HOSTILE = ['"', '""', "*", "**", "NEAR(", "NEAR(toner printer, 2)", "-", "-toner", ":",
           "subject:toner", "toner OR", "AND", "NOT toner", "toner)", "(toner", "^toner",
           "'", "\\", "{a b}", "toner*printer", "*toner", "ü*", "🙂", "日本語", "a & b | !c",
           "toner <-> printer", "'toner':*", "x" * 3000, "\x00", "\u202e", "tóner*"]


@pytest.mark.parametrize("what", ["tickets", "engagements", "opportunities"])
def test_hostile_queries_never_fail_in_the_database(mb, what):
    desk(mb)
    for query in HOSTILE:
        result = mb(what, "search", "--format", "json", "--", query)
        assert result.exit_code in (0, 2), (query, result.output)
        if result.exit_code == 2:
            assert result.stderr.startswith("mailbridge: error: search:"), (query, result.stderr)
            assert "no word to search for" in result.stderr
            assert not parse(query).terms
        else:
            json.loads(result.stdout)
    assert ids(mb, "(toner") == ids(mb, "^toner:") == ids(mb, "--", "-toner") == [1]
    dash = mb("tickets", "search", "-toner")  # an option to the shell's parser: one line
    assert dash.exit_code == 2 and dash.stderr.startswith("mailbridge: error:")


def _fold_whole(text: str) -> str:
    """fold as first written: the whole text at once."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    decomposed = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", decomposed))


# whitespace of every kind, marks, letters that casefold or decompose into several (some
# into words with spaces between: U+FDFA, U+00A8), and any other character
_FOLDABLE = st.text(st.one_of(
    st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2003\u2028\u3000"),
    st.sampled_from("\u0301\u0308\u0327\u0306\u05b4\u0e48\u093c\u0903"),
    st.sampled_from("Σσςßẞİıǅﬁﬃŉ\ufdfa\xa8\u2474\u33c2\u1e9bÅÉéйЙ_-.'\u200b\u00ad"),
    st.characters()), max_size=60)


@settings(max_examples=3000, deadline=None)
@given(_FOLDABLE)
def test_a_text_folded_a_token_at_a_time_has_the_words_of_it_folded_whole(text):
    assert fold(text) == _fold_whole(text)
    assert fold(text) == _fold_whole(text)  # the second time from tokens folded before


def test_the_tokens_folded_before_stay_few_and_short(monkeypatch):
    from mailbridge.domain import search as domain_search

    monkeypatch.setattr(domain_search._Folded, "KEPT", 3)
    domain_search._FOLDED.clear()
    assert fold("one two three four five") == "one two three four five"
    assert len(domain_search._FOLDED) <= 3  # forgotten when full
    long_token, long_fold = "x" * 41, "\ufdfa" * 39 + "y"  # 40 characters, folded into 704
    assert fold(f"{long_token} {long_fold}") == f"{long_token} {_fold_whole(long_fold)}"
    assert long_token not in domain_search._FOLDED and long_fold not in domain_search._FOLDED


def test_the_query_language_is_translated_once_and_safely():
    assert parse('printer "toner  empty" ton* x-y "open').terms == (
        Term(("printer",)), Term(("toner", "empty")), Term(("ton",), True),
        Term(("x", "y")), Term(("open",)))
    assert parse('* - : "" NEAR(').terms == (Term(("NEAR",)),)
    query = parse('Café "a b" tó* NEAR')
    assert fts5_query(query) == '"Café" "a b" "tó"* "NEAR"'
    assert tsquery(query) == "'cafe' & 'a' <-> 'b' & 'to':* & 'near'"


def test_search_follows_reprocess(mb, monkeypatch):
    import mailbridge.domain.parse as parse_mod

    spool = mb.drop_channel()
    real = parse_mod.parse
    monkeypatch.setattr(parse_mod, "parse", lambda raw: (_ for _ in ()).throw(
        parse_mod.ParseError("simulated parser bug")))
    drop(spool, message("Toner again", body="Magenta cartridge."))
    assert mb("sync").exit_code == 4  # stored raw
    assert ids(mb, "magenta") == []
    monkeypatch.setattr(parse_mod, "parse", real)
    assert mb("reprocess").exit_code == 0
    assert ids(mb, "magenta") == ids(mb, "toner") == [1]


def test_reprocess_takes_the_old_words_out_of_the_index(mb, monkeypatch):
    import dataclasses

    import mailbridge.domain.parse as parse_mod

    spool = mb.drop_channel()
    real = parse_mod.parse
    monkeypatch.setattr(parse_mod, "parse", lambda raw, **kw: dataclasses.replace(
        real(raw, **kw), text="Obsolete wording.", subject="Mangled"))  # a parser bug, fixed
    drop(spool, message("Toner again", body="Magenta cartridge."))
    assert mb("sync").exit_code == 0
    assert ids(mb, "obsolete") == ids(mb, "mangled") == [1] and ids(mb, "magenta") == []
    monkeypatch.setattr(parse_mod, "parse", real)
    assert mb("reprocess", "--all").exit_code == 0
    assert ids(mb, "obsolete") == ids(mb, "mangled") == []
    assert ids(mb, "magenta") == ids(mb, "toner") == [1]
    assert "Magenta" in found(mb, "magenta")[0]["snippet"]


def test_a_store_from_before_the_index_is_indexed_by_its_migration(mb):
    desk(mb)
    # the store as a mailbridge before m010 left it: the same data, no index
    if mb.backend == "sqlite":
        mb.write("DROP TABLE message_fts")
        mb.write("DROP VIEW message_search_source")
    else:
        mb.write("DROP TABLE message_search")
    mb.write("DELETE FROM mailbridge_migrations WHERE name = 'm010_search_index'")
    close_all()  # as a new process finds it
    stale = mb("tickets", "search", "toner")
    assert stale.exit_code == 2 and "older than this mailbridge" in stale.stderr
    assert mb("sync").exit_code == 0  # migrates
    assert ids(mb, "toner") == [1] and ids(mb, "fuser") == [2] and ids(mb, "quarterly") == [4]
    assert ids(mb, "xylophone") == []
    assert "toner" in found(mb, "toner")[0]["snippet"]


def test_engagements_and_opportunities_are_searched_by_their_mail(mb):
    connected = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # mail after it counts
    spool = mb.drop_channel("cs", mode="engagements", owner="anna@us.test",
                            connected_at=connected)
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    for i, (subject, body) in enumerate((("Renewal", "The quarterly licence renewal."),
                                         ("Lunch", "Friday?")), 1):
        drop(spool, message(subject, sender="bob@acme.test", message_id=f"e{i}@acme.test",
                            body=body).replace(b"support@example.com", b"anna@us.test"))
    assert mb("sync").exit_code == 0
    hits = found(mb, "licence", what="engagements")
    assert [h["subject"] for h in hits] == ["Renewal"] and "licence" in hits[0]["snippet"]
    assert len(ids(mb, "bob", what="engagements")) == 2
    assert len(ids(mb, "bob", "--client", "ACME", what="engagements")) == 2
    wrong = mb("engagements", "search", "bob", "--client", "ACMX")
    assert wrong.exit_code == 2 and "ACME" in wrong.stderr

    assert mb("opportunities", "add", "--summary", "Fleet", "--contact", "bob@acme.test"
              ).exit_code == 0
    assert mb("opportunities", "add", "--summary", "Other", "--contact", "cy@acme.test"
              ).exit_code == 0
    message_id = mb.value("SELECT id FROM messages WHERE subject='Renewal'")
    mb.write("INSERT INTO opportunity_messages (opportunity, message, text, how, added_at) "
             "VALUES (1, ?, '', 'matched', '2026-11-16')", (message_id,))
    hits = found(mb, "licence", what="opportunities")
    assert [h["id"] for h in hits] == [1] and hits[0]["summary"] == "Fleet"
    assert found(mb, "licence", "--status", "closed", what="opportunities") == []
    assert found(mb, "licence", "--projects", what="opportunities") == []


def test_on_a_terminal_hits_fit_the_width_and_the_matched_words_are_highlighted(mb):
    from rich.cells import cell_len
    from test_terminal_tables import on_terminal

    from mailbridge.cli.hits import HIGHLIGHT

    spool = mb.drop_channel()
    for i in range(35):
        drop(spool, message(f"Question {i} about a charge", message_id=f"q{i}@x",
                            body="We were charged twice for the invoice of last month, on the "
                                 "company card that the accounts department uses for travel."))
    assert mb("sync").exit_code == 0
    screen = on_terminal(mb, "tickets", "search", "invoice")
    assert screen.exit_code == 0, screen.text
    lines = screen.text.splitlines()
    assert lines[0].split() == ["id", "status", "queue", "from", "subject", "updated"]
    assert all(cell_len(line) <= 80 for line in lines), screen.text
    assert lines[1].split()[0].isdigit() and lines[2].startswith("    ") and "invoice" in lines[2]
    assert lines[-1] == "... 5 more; --limit N or --all to see them"
    assert f"{HIGHLIGHT}invoice\x1b[0m".encode() in screen.output
    assert "\x1b[" not in on_terminal(mb, "tickets", "search", "invoice",
                                      NO_COLOR="1").output.decode()
