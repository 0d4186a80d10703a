"""The event stream (`mailbridge events`): each change of the store is an event written in
the same transaction, read in order from a cursor; a consumer killed mid-stream resumes
with `--after` and sees every event once; concurrent writers on PostgreSQL commit events in
cursor order, so a follower misses none."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import drop, message

from mailbridge.errors import TemporaryError

WAIT = 60.0


def kinds(mb, *args: str) -> list[tuple[int, str, int | None]]:
    result = mb("events", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return [(e["cursor"], e["kind"], e["ticket"]) for e in json.loads(result.stdout)]


def test_each_change_is_an_event_in_order_and_after_resumes(mb, smtp):
    spool = mb.drop_channel(outgoing={"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                      "security": "none"})
    drop(spool, message("Printer broken"), "1.test")
    drop(spool, message("Re: Printer broken", message_id="m2@customer.example",
                        extra="In-Reply-To: <m1@customer.example>\n"), "2.test")
    assert mb("sync").exit_code == 0
    assert mb("tickets", "close", "1").exit_code == 0
    drop(spool, message("Re: Printer broken", message_id="m3@customer.example",
                        extra="In-Reply-To: <m1@customer.example>\n"), "3.test")
    assert mb("sync").exit_code == 0  # the customer's answer reopens it
    assert mb("tickets", "comment", "1", "-m", "Vendor called.").exit_code == 0
    assert mb("tickets", "move", "1", "--queue", "billing", "--create").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "Fixed.").exit_code == 0
    assert mb("sync").exit_code == 0  # sends it

    every = kinds(mb)
    assert [k for _c, k, _t in every] == [
        "ticket.created", "message.added", "ticket.closed", "message.added",
        "ticket.reopened", "comment.added", "ticket.moved", "message.added", "reply.queued",
        "outbox.sent"]
    cursors = [c for c, _k, _t in every]
    assert cursors == sorted(set(cursors))
    assert {t for _c, _k, t in every} == {1}
    assert kinds(mb, "--after", str(cursors[4])) == every[5:]
    assert kinds(mb, "--kind", "ticket.closed,ticket.reopened") == [every[2], every[4]]

    lines = mb("events", "--after", str(cursors[-2])).stdout.splitlines()  # jsonl in a pipe
    event = json.loads(lines[0])
    assert len(lines) == 1 and event["cursor"] == cursors[-1]
    assert set(event) == {"cursor", "kind", "channel", "ticket", "engagement", "opportunity",
                          "payload", "created_at"}
    assert event["channel"] == "support" and event["payload"]["outbox_kind"] == "reply"
    reopened = json.loads(mb("events", "--kind", "ticket.reopened").stdout)
    assert reopened["payload"] == {"by": "message", "message": 3, "was": "closed"}


def test_pending_assignment_and_priority_are_events_and_a_customer_wakes_a_pending_ticket(mb):
    spool = mb.drop_channel()
    drop(spool, message("Printer broken"), "1.test")
    assert mb("sync").exit_code == 0
    assert mb("agents", "add", "alice", "--email", "alice@example.com").exit_code == 0
    assert mb("tickets", "assign", "1", "--to", "alice").exit_code == 0
    assert mb("tickets", "assign", "1", "--to", "alice").exit_code == 0  # no change: no event
    assert mb("tickets", "priority", "1", "urgent").exit_code == 0
    assert mb("tickets", "pending", "1").exit_code == 0
    drop(spool, message("Re: Printer broken", message_id="m2@customer.example",
                        extra="In-Reply-To: <m1@customer.example>\n"), "2.test")
    assert mb("sync").exit_code == 0
    assert mb("tickets", "unassign", "1").exit_code == 0

    every = json.loads(mb("events", "--format", "json").stdout)
    assert [(e["kind"], e["payload"].get("to"), e["payload"].get("was")) for e in every] == [
        ("ticket.created", None, None), ("ticket.assigned", "alice", None),
        ("ticket.priority", "urgent", "normal"), ("ticket.pending", "pending", "open"),
        ("message.added", None, None), ("ticket.reopened", None, "pending"),
        ("ticket.assigned", None, "alice")]


def test_one_batch_of_replies_counts_wakes_and_tells_each_in_the_order_it_came(mb):
    """A batch files its replies' links and ticket counts as it commits (tickets.Threads.add):
    the counts, the status and the events are still those of filing the mail one by one."""
    spool = mb.drop_channel()
    drop(spool, message("Printer broken"), "1.test")
    assert mb("sync").exit_code == 0
    assert mb("tickets", "pending", "1").exit_code == 0

    def reply(n: int, to: str, more: str = "") -> bytes:
        return message("Re: it", message_id=f"m{n}@customer.example",
                       extra=f"In-Reply-To: <{to}@customer.example>\n{more}")

    drop(spool, reply(2, "m1", "Auto-Submitted: auto-replied\n"), "2.test")  # wakes nothing
    drop(spool, message("Toner", message_id="m3@customer.example"), "3.test")
    drop(spool, reply(4, "m1"), "4.test")  # wakes ticket 1
    drop(spool, reply(5, "m3"), "5.test")  # into ticket 2, opened by this batch
    drop(spool, reply(6, "m4"), "6.test")  # ticket 1 again, open by now
    assert mb("sync").exit_code == 0

    every = json.loads(mb("events", "--format", "json").stdout)[2:]
    assert [(e["kind"], e["ticket"], e["payload"].get("message"), e["payload"].get("was"))
            for e in every] == [
        ("message.added", 1, 2, None), ("ticket.created", 2, None, None),
        ("message.added", 1, 4, None), ("ticket.reopened", 1, 4, "pending"),
        ("message.added", 2, 5, None), ("message.added", 1, 6, None)]
    shown = [json.loads(mb("tickets", "show", str(t), "--format", "json").stdout)
             for t in (1, 2)]
    assert [(t["status"], t["message_count"]) for t in shown] == [("open", 4), ("open", 2)]
    assert mb.query("SELECT ticket, count(*) FROM ticket_messages GROUP BY ticket "
                    "ORDER BY ticket") == [(1, 4), (2, 2)]


def test_a_batchs_ticket_counts_add_to_what_is_there_and_keep_a_change_made_meanwhile(mb):
    """What a batch writes to a ticket it filed into is relative: a status set, or messages
    added, by another host after the batch read the ticket stay (unless the mail wakes it)."""
    from mailbridge.store import messages, tickets

    spool = mb.drop_channel()
    drop(spool, message("Printer broken"), "1.test")
    assert mb("sync").exit_code == 0
    with contextlib.closing(mb.open()) as db, db.atomic():
        threads = tickets.Threads.read(db, "support", [(["m1@customer.example"], None, None)])
        found = threads.find(["m1@customer.example"], None, None)
        assert found == 1 and threads.states[1].count == 1
        db.execute("UPDATE tickets SET status = 'closed', message_count = 7 WHERE id = 1")
        new = messages.insert(db, "support", "fp", b"x", None, None, "unreadable")
        threads.add(db, 1, new, "ann@customer.example", wakes=())
    assert mb.query("SELECT status, message_count FROM tickets WHERE id = 1") == [("closed", 8)]


def test_an_agent_closing_a_ticket_waits_for_the_batch_that_files_a_reply_into_it(mb):
    """PostgreSQL: the tickets a batch may file into are locked from the moment it reads them
    (tickets.Threads.read), so a status set by hand on another host cannot slip in between
    the read that judges a reply and the batch's commit."""
    if mb.backend != "postgresql":
        pytest.skip("SQLite's one writer at a time already excludes the agent")
    from mailbridge.store import tickets

    spool = mb.drop_channel()
    drop(spool, message("Printer broken"), "1.test")
    assert mb("sync").exit_code == 0
    with contextlib.closing(mb.open()) as db, db.atomic():
        tickets.Threads.read(db, "support", [(["m1@customer.example"], None, None)])
        with contextlib.closing(mb.open()) as agent, agent.atomic():
            agent.execute("SET LOCAL lock_timeout = '300ms'")
            with pytest.raises(TemporaryError):
                agent.execute("UPDATE tickets SET status = 'closed' WHERE id = 1")


def test_bad_input_is_one_line(mb):
    mb.drop_channel()
    wrong = mb("events", "--kind", "ticket.created,ticket.clossed")
    assert wrong.exit_code == 2 and "ticket.clossed" in wrong.stderr
    assert 'did you mean "ticket.closed"' in wrong.stderr and "message.added" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert mb("events", "--after", "-3").exit_code == 2
    follow_json = mb("events", "--follow", "--format", "csv")
    assert follow_json.exit_code == 2 and "jsonl" in follow_json.stderr
    assert mb("events").stdout == ""  # no store yet: nothing happened


def test_a_rolled_back_change_leaves_no_event(mb):
    from mailbridge.store import comments, events, tickets

    db = mb.open()
    try:
        with pytest.raises(RuntimeError), db.atomic():
            tickets.create(db, "support", "general", "Lost", "", "a@x.example", "human")
            raise RuntimeError("the batch failed")
        with db.atomic():
            kept = tickets.create(db, "support", "general", "Kept", "", "a@x.example", "human")
            with pytest.raises(RuntimeError), db.atomic():  # a savepoint rolled back
                comments.add(db, kept, "", "gone with its savepoint")
                raise RuntimeError
            comments.add(db, kept, "", "stays")
        assert [(e["kind"], e["ticket"]) for e in events.after(db, 0)] == [
            ("ticket.created", kept), ("comment.added", kept)]
        stays = db.execute("SELECT id FROM ticket_comments WHERE text='stays'").fetchone()[0]
        assert events.after(db, 0)[1]["payload"]["comment"] == stays
    finally:
        db.close()


CONSUMER = """
import json, sys
with open(sys.argv[1], "a") as out:
    for line in sys.stdin:
        out.write(str(json.loads(line)["cursor"]) + "\\n")
        out.flush()
"""


def test_a_killed_consumer_resumes_after_its_last_cursor_without_gap_or_duplicate(mb):
    """`mailbridge events --follow | consumer`, the consumer SIGKILLed mid-stream (the
    follower then exits 0 by itself), restarted with --after the last cursor it recorded."""
    spool = mb.drop_channel()
    drop(spool, message("First"))
    assert mb("sync").exit_code == 0
    seen = mb.root / "seen.txt"

    def start(after: int) -> tuple[subprocess.Popen, subprocess.Popen]:
        follower = subprocess.Popen(
            [sys.executable, "-m", "mailbridge", "--config", str(mb.config), "events",
             "--follow", "--after", str(after)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, str(seen)],
                                    stdin=follower.stdout)
        follower.stdout.close()  # the consumer is its only reader
        return follower, consumer

    def recorded() -> list[int]:
        return [int(x) for x in seen.read_text().split()] if seen.exists() else []

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(recorded()) < count:
            assert time.monotonic() < deadline, f"consumer saw {recorded()}"
            time.sleep(0.05)

    follower, consumer = start(0)
    for i in range(5):
        assert mb("tickets", "comment", "1", "-m", f"note {i}").exit_code == 0
    wait_for(4)
    consumer.kill()
    consumer.wait(timeout=WAIT)
    for i in range(5, 8):  # happen while nobody reads
        assert mb("tickets", "comment", "1", "-m", f"note {i}").exit_code == 0
    _out, err = follower.communicate(timeout=WAIT)  # its reader is gone: it ends, quietly
    assert follower.returncode == 0 and err == b""

    follower, consumer = start(recorded()[-1])
    for i in range(8, 10):
        assert mb("tickets", "comment", "1", "-m", f"note {i}").exit_code == 0
    every = [c for c, _k, _t in kinds(mb)]
    wait_for(len(every))
    follower.terminate()  # SIGTERM: exit 0
    assert follower.wait(timeout=WAIT) == 0
    consumer.wait(timeout=WAIT)
    assert recorded() == every and len(every) == 11


@pytest.mark.parametrize("store_backend", ["postgresql"])
def test_concurrent_writers_on_postgresql_give_a_follower_every_event(mb):
    """Writers whose commits take a while after their events got ids (a deferred trigger
    sleeps at commit time): without the ordering lock, id 11 commits before id 10, and a
    follower that read 11 never sees 10."""
    from mailbridge.services import events as service
    from mailbridge.store import events

    mb.drop_channel()
    config = _config(mb)
    db = mb.open()
    db.execute("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
               "'BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END'")
    db.execute("CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON events DEFERRABLE "
               "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()")
    db.close()
    writers, per_writer = 4, 40
    done = threading.Event()
    seen: list[int] = []

    def write(n: int) -> None:
        store = mb.open()
        try:
            for i in range(per_writer):
                with store.atomic():
                    events.emit(store, events.COMMENT_ADDED, "support", None, writer=n, i=i)
        finally:
            store.close()

    def stopped() -> bool:
        return done.is_set() and len(seen) >= writers * per_writer

    reader = threading.Thread(target=lambda: seen.extend(
        e["cursor"] for e in service.follow(config, 0, (), stopped, interval=0.001)))
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    time.sleep(0.5)  # the follower has read all it ever will
    done.set()
    reader.join(timeout=2)
    stuck = reader.is_alive()
    done_ids = [r[0] for r in mb.query("SELECT id FROM events ORDER BY id")]
    if stuck:  # it missed some: end it to report what
        seen.extend([0] * (writers * per_writer))
        reader.join(timeout=WAIT)
    assert len(done_ids) == writers * per_writer
    assert not stuck and seen == done_ids, f"missed: {sorted(set(done_ids) - set(seen))}"


def _config(mb):
    from mailbridge.config.load import load_config

    return load_config(Path(mb.config))


def test_engagements_opportunities_and_the_outbox_are_events_too(mb):
    from mailbridge.store import engagements, events, messages, outbox, sales

    db = mb.open()
    try:
        with db.atomic():
            message = messages.insert(db, "crm", "fp-1", b"raw", None, "human", "unparsed")
            engagement = engagements.record(db, "crm", message, "in", "me@example.com", None,
                               [("ann@customer.example", "acme")])
            opened = sales.add_opportunity(db, "Printers", "Bob@Buyer.example")
            sales.attach(db, opened, message, "text", "opened")  # told by .created
            sales.attach(db, opened, message, "text", "matched")  # already there: no event
            sales.set_status(db, opened, "closed")
            row = outbox.queue(db, "crm", None, None, "alert", "a@x", ["b@x"], b"raw")
            outbox.set_state(db, row, outbox.SENDING, attempt=True)  # no event
            outbox.set_state(db, row, outbox.FAILED, "550 no such user")
        found = events.after(db, 0)
    finally:
        db.close()
    assert [(e["kind"], e["channel"], e["engagement"], e["opportunity"]) for e in found] == [
        ("engagement.created", "crm", engagement, None),
        ("opportunity.created", None, None, opened),
        ("opportunity.updated", None, None, opened), ("outbox.failed", "crm", None, None)]
    assert found[0]["payload"] == {"clients": ["acme"], "direction": "in", "message": message}
    assert found[1]["payload"]["contact"] == "bob@buyer.example"
    assert found[2]["payload"] == {"status": "closed", "was": "open"}
    assert found[3]["payload"] == {"error": "550 no such user", "outbox": row,
                                   "outbox_kind": "alert"}
