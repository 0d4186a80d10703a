"""The forwarding drop end to end through the CLI: spool files and piped messages become
tickets exactly once, threaded and routed."""

from __future__ import annotations

import json

from conftest import drop, message

from mailbridge.connectors.drop import DropFetcher
from mailbridge.pipeline import ingest as ingest_module
from mailbridge.pipeline import prepare_helper
from mailbridge.pipeline.ingest import commit_batch, ingest
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import NullReporter
from mailbridge.store.ledger import LedgerState


def tickets(mb, *extra):
    result = mb("tickets", "list", "--status", "all", "--format", "json", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def count(mb, sql):
    return mb.value(sql)


def test_spool_files_become_tickets_and_move_to_cur(mb):
    spool = mb.drop_channel()
    drop(spool, message("First", message_id="a@x"), "1.a")
    drop(spool, message("Second", message_id="b@x"), "2.b")
    result = mb("sync")
    assert result.exit_code == 0, result.stderr
    assert [t["subject"] for t in tickets(mb)] == ["First", "Second"]
    assert sorted(p.name for p in (spool / "cur").iterdir()) == ["1.a:2,S", "2.b:2,S"]
    assert not list((spool / "new").iterdir())
    assert "support: 2 new" in result.stderr
    assert result.stdout == ""


def test_resync_and_repipe_create_no_duplicates(mb):
    spool = mb.drop_channel()
    raw = message("Once only", message_id="once@x")
    drop(spool, raw, "1.a")
    assert mb("sync").exit_code == 0
    assert mb("sync").exit_code == 0
    assert mb("ingest", "support", input=raw).exit_code == 0
    drop(spool, raw, "again.b")  # the same mail delivered a second time
    assert mb("sync").exit_code == 0
    assert len(tickets(mb)) == 1
    assert count(mb, "SELECT count(*) FROM messages") == 1
    assert count(mb, "SELECT count(*) FROM ledger WHERE status='duplicate'") == 2


def test_crash_between_commit_and_ack_repeats_only_the_ack(mb):
    spool = mb.drop_channel()
    for i in range(5):
        drop(spool, message(f"S{i}", message_id=f"{i}@x"), f"{i}.m")
    db = mb.open()
    fetcher = DropFetcher("support", spool)
    for batch in fetcher.fetch(LedgerState(db, "support")):
        commit_batch(db, ChannelPlan("support"), batch)  # committed, then "crash": no ack
    db.close()
    assert len(list((spool / "new").iterdir())) == 5
    assert mb("sync").exit_code == 0
    assert len(tickets(mb)) == 5
    assert not list((spool / "new").iterdir())


def test_threading_by_references_cc_and_subject_token(mb):
    spool = mb.drop_channel()
    drop(spool, message("Login broken", message_id="q1@c"), "1")
    drop(spool, message("Re: Login broken", sender="bob@c.example", message_id="q2@c",
                        extra="In-Reply-To: <q1@c>\nCc: support@example.com\n"), "2")
    drop(spool, message("Re: [#1] Login broken", message_id="q3@c"), "3")
    drop(spool, message("Login broken", message_id="q4@c"), "4")  # same subject, new ticket
    assert mb("sync").exit_code == 0
    rows = tickets(mb)
    assert [(t["id"], t["message_count"]) for t in rows] == [(1, 3), (2, 1)]


def test_an_original_stored_after_its_reply_joins_the_replys_ticket(mb):
    """Mail from several folders (or read and unread mail over Graph) is not always stored in
    the order it was written: the original that comes after its reply joins the reply's
    ticket, in the same run or a later one."""
    spool = mb.drop_channel()
    drop(spool, message("Re: Invoice", message_id="r1@c", extra="In-Reply-To: <o1@c>\n"), "1")
    drop(spool, message("Invoice", message_id="o1@c"), "2")
    drop(spool, message("Unrelated", message_id="u1@c"), "3")
    assert mb("sync").exit_code == 0
    drop(spool, message("Re: Order", message_id="r2@c", extra="In-Reply-To: <o2@c>\n"), "4")
    assert mb("sync").exit_code == 0
    drop(spool, message("Order", message_id="o2@c"), "5")
    assert mb("sync").exit_code == 0
    rows = tickets(mb)
    assert [(t["subject"], t["message_count"]) for t in rows] == [
        ("Re: Invoice", 2), ("Unrelated", 1), ("Re: Order", 2)]


def test_a_message_id_with_a_nul_still_threads_an_original_stored_after_its_reply(mb):
    """PostgreSQL keeps U+FFFD for the NUL hostile mail puts in a Message-ID (and so in the
    fingerprint): the original must still find the reply stored before it, and a second
    delivery must still be known as a copy, on both backends."""
    spool = mb.drop_channel()
    drop(spool, message("Re: Odd", message_id="r3@c", extra="In-Reply-To: <o3\x00@c>\n"), "1")
    assert mb("sync").exit_code == 0
    drop(spool, message("Odd", message_id="o3\x00@c"), "2")
    result = mb("sync")
    assert result.exit_code == 0, result.stderr
    assert [(t["subject"], t["message_count"]) for t in tickets(mb)] == [("Re: Odd", 2)]
    drop(spool, message("Odd", message_id="o3\x00@c"), "3")  # delivered again: a copy
    result = mb("sync")
    assert result.exit_code == 0, result.stderr
    assert mb.value("SELECT count(*) FROM messages") == 2


def test_the_same_item_twice_in_one_batch_is_seen_the_second_time(mb):
    """Filing decides every message of a batch before it stores them: an item fetched twice
    in one batch is still stored once, and the ledger keeps what became of the first."""
    from mailbridge.connectors.base import Batch, Fetched
    from mailbridge.domain.source import SourceRef

    raw = message("Twice", message_id="t2@c")
    item = Fetched(SourceRef("", "INBOX", "k1"), raw)
    db = mb.open()
    try:
        outcomes = commit_batch(db, ChannelPlan("support"), Batch("", "INBOX", [item, item]))
    finally:
        db.close()
    assert [o.kind for o in outcomes] == ["new_ticket", "seen"]
    assert mb.query("SELECT status FROM ledger") == [("new_ticket",)]
    assert mb.value("SELECT count(*) FROM messages") == 1


def test_routes_pick_the_first_queue_with_a_whole_word_keyword(mb):
    spool = mb.drop_channel(routes=[{"queue": "billing", "keywords": ["invoice", "refund"]},
                                    {"queue": "tech", "keywords": ["error"]}])
    drop(spool, message("Refund please, error too", message_id="r1@x"), "1")
    drop(spool, message("Invoices overview", message_id="r2@x"), "2")
    assert mb("sync").exit_code == 0
    assert [t["queue"] for t in tickets(mb)] == ["billing", "general"]
    assert [t["subject"] for t in tickets(mb, "--queue", "billing")] == ["Refund please, error too"]


def test_own_mail_coming_back_is_stored_without_a_ticket(mb):
    spool = mb.drop_channel()
    drop(spool, message("Loop", sender="support@example.com", message_id="l@x"), "1")
    assert mb("sync").exit_code == 0
    assert tickets(mb) == []
    assert count(mb, "SELECT classification FROM messages") == "own_loop"


def test_broken_and_empty_files_are_stored_raw_and_the_run_reports_partial(mb):
    spool = mb.drop_channel()
    drop(spool, b"", "0.empty")
    broken = (b"From: x@y.example\nSubject: broken\nContent-Type: multipart/mixed; "
              b"boundary=zz\n\n--zz\nContent-Type: text/plain; charset=nonsense-42\n\n\xff\xfe hi")
    drop(spool, broken, "1.broken")
    drop(spool, b"Subject: headers only\nFrom: a@b.example\n", "2.nobody")
    result = mb("sync")
    assert result.exit_code == 4
    assert "could not be parsed" in result.stderr
    assert "Traceback" not in result.stderr
    assert count(mb, "SELECT count(*) FROM messages") == 3
    assert count(mb, "SELECT count(*) FROM messages WHERE parse_error IS NOT NULL") == 1
    assert sorted(t["subject"] for t in tickets(mb)) == ["broken", "headers only"]
    raws = set(mb.raws().values())
    assert raws == {b"", broken, b"Subject: headers only\nFrom: a@b.example\n"}


def test_a_30_mb_message_is_stored_whole(mb):
    spool = mb.drop_channel()
    big = message("Big", message_id="big@x", body="x" * 76 + "\n") + b"y" * 30_000_000 + b"\n"
    drop(spool, big, "big")
    assert mb("sync").exit_code == 0
    assert list(mb.raws().values()) == [big]
    assert mb.value("SELECT count(*) FROM message_raws") == 1  # kept where it is not copied
    shown = mb("messages", "show", str(mb.value("SELECT id FROM messages")), "--raw")
    assert shown.stdout_bytes == big


def test_missing_spool_is_one_line_exit_2(mb):
    spool = mb.drop_channel()
    for sub in ("new", "cur", "tmp"):
        (spool / sub).rmdir()
    spool.rmdir()
    result = mb("sync")
    assert result.exit_code == 2
    assert f"spool directory {spool} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_from_stdin_commits_and_exits_0(mb):
    mb.drop_channel()
    result = mb("ingest", "support", input=message("Piped", message_id="p@x"))
    assert result.exit_code == 0, result.stderr
    assert [t["subject"] for t in tickets(mb)] == ["Piped"]


def test_ingest_failure_is_exit_75_so_the_mta_retries(mb):
    mb.drop_channel()
    result = mb("ingest", "nosuch", input=message())
    assert result.exit_code == 75
    assert "no channel called nosuch" in result.stderr


def test_reprocess_refiles_messages_that_failed_to_parse(mb, monkeypatch):
    spool = mb.drop_channel()
    drop(spool, message("Later fixed", message_id="fix@x"), "1")
    import mailbridge.domain.parse as parse_mod
    from mailbridge.domain.parse import ParseError

    real = parse_mod.parse

    def failing(raw):
        raise ParseError("simulated parser bug")

    monkeypatch.setattr(parse_mod, "parse", failing)
    assert mb("sync").exit_code == 4
    assert tickets(mb) == []
    monkeypatch.setattr(parse_mod, "parse", real)
    result = mb("reprocess", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["fixed"] == 1
    assert [t["subject"] for t in tickets(mb)] == ["Later fixed"]


def test_a_stop_commits_and_acks_every_batch_fetched_and_fetches_no_more(mb):
    spool = mb.drop_channel()
    for i in range(10):
        drop(spool, message(f"S{i}", message_id=f"{i}@x"), f"{i:02d}.m")
    db = mb.open()
    fetcher = DropFetcher("support", spool, batch_size=3)
    fetched: list[int] = []
    real_fetch = fetcher.fetch

    def counting_fetch(state):
        for batch in real_fetch(state):
            fetched.append(len(batch.items))
            yield batch

    fetcher.fetch = counting_fetch
    # SIGTERM arrives while the second batch is being fetched: the check after it says stop
    counts = ingest(db, ChannelPlan("support"), fetcher, NullReporter(),
                    should_stop=lambda: len(fetched) >= 2)
    db.close()
    assert counts.stopped
    assert fetched == [3, 3]  # nothing fetched after the stop
    assert counts.stored == 6  # both batches committed, the one just fetched too
    assert len(list((spool / "cur").iterdir())) == 6  # and acked
    assert mb("sync").exit_code == 0
    assert len(tickets(mb)) == 10


def test_a_fetched_batch_goes_to_a_helper_before_an_older_one_is_committed(mb, monkeypatch):
    """The helper freed by the oldest batch gets the newest before the oldest is committed,
    so that it parses while the commit is made (issue 23: 5 % more msg/s)."""
    spool = mb.drop_channel()
    for i in range(6 * prepare_helper.MIN_BATCH):
        drop(spool, message(f"S{i}", message_id=f"{i}@x"), f"{i:03d}.m")
    events: list[str] = []
    fetcher = DropFetcher("support", spool, batch_size=prepare_helper.MIN_BATCH)
    real_fetch, real_submit = fetcher.fetch, prepare_helper.Preparer.submit
    real_commit = ingest_module._Committer.submit

    def fetch(state):
        for batch in real_fetch(state):
            events.append("fetched")
            yield batch

    def submit(self, raws):
        events.append("submitted")
        return real_submit(self, raws)

    def commit(self, batch, prepared):  # (hands the batch to be committed: this thread's)
        # every batch fetched so far is with a helper (or parsed) already
        assert events.count("fetched") == events.count("submitted"), events
        events.append("committed")
        return real_commit(self, batch, prepared)

    fetcher.fetch = fetch
    monkeypatch.setattr(prepare_helper.Preparer, "submit", submit)
    monkeypatch.setattr(ingest_module._Committer, "submit", commit)
    db = mb.open()
    try:
        counts = ingest(db, ChannelPlan("support"), fetcher, NullReporter())
    finally:
        db.close()
    assert counts.stored == 6 * prepare_helper.MIN_BATCH
    assert events.count("committed") == 6
