"""The StoreContract (DESIGN §4a): what every store backend promises the rest of mailbridge,
one suite run against each backend (SQLite; PostgreSQL on the tests' own cluster). A new
backend is a module plus one subclass here."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import PG_PASSWORD_ENV, message

from mailbridge.config.model import StoreSettings
from mailbridge.connectors.base import Batch, Fetched
from mailbridge.domain.source import SourceRef
from mailbridge.errors import StoreError
from mailbridge.pipeline.ingest import commit_batch
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.store import leases, ledger, messages, migrations, outbox
from mailbridge.store.backends import backend, close_all, connection
from mailbridge.store.db import insert_row, upsert_row


class StoreContract:
    @pytest.fixture
    def target(self):
        raise NotImplementedError

    def open(self, target, readonly: bool = False):
        return backend(target).connect(readonly=readonly)

    def test_an_empty_store_is_migrated_once(self, target):
        assert not backend(target).exists()
        with connection(target) as db:
            assert migrations.applied(db) == [s.__name__ for s in migrations.STEPS]
            assert migrations.pending(db) == []
        close_all()
        with connection(target) as db:
            assert migrations.apply(db) == []  # nothing applied twice
            count = db.execute(f"SELECT count(*) FROM {migrations.TABLE}").fetchone()[0]
        assert count == len(migrations.STEPS)
        assert backend(target).exists()

    def test_a_store_of_the_previous_schema_is_upgraded_and_keeps_its_data(self, target,
                                                                           monkeypatch):
        last = migrations.STEPS[-1]
        with monkeypatch.context() as older:
            older.setattr(migrations, "STEPS", migrations.STEPS[:-1])
            with connection(target) as db:
                db.execute("INSERT INTO queues (name, created_at) VALUES ('kept', 'then')")
                assert last.__name__ not in migrations.applied(db)
            close_all()
        with pytest.raises(StoreError, match="older than this mailbridge"):
            self.open(target, readonly=True)
        close_all()
        with connection(target) as db:
            assert migrations.applied(db)[-1] == last.__name__
            assert db.execute("SELECT name FROM queues").fetchall() == [("kept",)]

    def test_a_reader_of_a_store_not_made_yet_is_told_so(self, target):
        with pytest.raises(StoreError, match="no store yet"):
            self.open(target, readonly=True)

    def test_atomic_rolls_back_and_a_nested_block_is_a_savepoint(self, target):
        with connection(target) as db:
            with pytest.raises(RuntimeError), db.atomic():
                db.execute("INSERT INTO queues (name, created_at) VALUES ('gone', 'x')")
                raise RuntimeError("crash")
            with db.atomic():
                db.execute("INSERT INTO queues (name, created_at) VALUES ('outer', 'x')")
                with pytest.raises(RuntimeError), db.atomic():
                    db.execute("INSERT INTO queues (name, created_at) VALUES ('inner', 'x')")
                    raise RuntimeError("inner crash")
            names = [r[0] for r in db.execute("SELECT name FROM queues ORDER BY name")]
        assert names == ["outer"]

    def test_a_queue_is_made_once_a_transaction_and_again_after_a_rollback(self, target):
        from mailbridge.store.tickets import ensure_queue

        with connection(target) as db:
            with db.atomic():
                assert db.once("k") and not db.once("k")
                with pytest.raises(RuntimeError), db.atomic():
                    ensure_queue(db, "inner")  # rolled back with its savepoint ...
                    raise RuntimeError("inner crash")
                ensure_queue(db, "inner")  # ... so made again here
                ensure_queue(db, "inner")
                insert_row(db, "tickets", {"channel": "c", "queue": "inner", "subject": "s",
                                           "created_at": "t", "updated_at": "t"})
            assert db.once("k")  # a new transaction
            with pytest.raises(RuntimeError), db.atomic():
                ensure_queue(db, "gone")
                raise RuntimeError("crash")
            with db.atomic():
                ensure_queue(db, "gone")
            names = [r[0] for r in db.execute("SELECT name FROM queues ORDER BY name")]
        assert names == ["gone", "inner"]

    def test_a_database_error_is_a_store_error_and_the_connection_goes_on(self, target):
        with connection(target) as db:
            db.execute("INSERT INTO queues (name, created_at) VALUES ('q', 'x')")
            with pytest.raises(StoreError), db.atomic():
                db.execute("INSERT INTO queues (name, created_at) VALUES ('q', 'x')")
            with pytest.raises(StoreError):
                db.execute("SELECT no_such_column FROM queues")
            assert db.execute("SELECT count(*) FROM queues").fetchone()[0] == 1

    def test_insert_returns_ids_and_upsert_replaces(self, target):
        with connection(target) as db:
            first = insert_row(db, "runs", {"channel": "c", "started_at": "t1"})
            second = insert_row(db, "runs", {"channel": "c", "started_at": "t2"})
            assert second > first > 0
            row = {"channel": "c", "mailbox": "", "folder": "INBOX", "state_json": "{}",
                   "updated_at": "t"}
            upsert_row(db, "cursors", row, ("channel", "mailbox", "folder"))
            upsert_row(db, "cursors", {**row, "state_json": '{"a": 1}'},
                       ("channel", "mailbox", "folder"))
            assert db.execute("SELECT state_json FROM cursors").fetchall() == [('{"a": 1}',)]

    def test_bytes_and_text_come_back_exactly(self, target):
        raw = bytes(range(256)) * 50 + "Grüße, 中文 ☃ %s ?".encode()
        with connection(target) as db:
            ident = insert_row(db, "outbox", {
                "channel": "c", "kind": "reply", "envelope_from": "a@b.example",
                "recipients_json": '["x@y.example"]', "raw": raw, "created_at": "t",
                "updated_at": "t"})
            assert bytes(outbox.raw_of(db, ident)) == raw
            db.execute("INSERT INTO queues (name, created_at) VALUES (?, ?)", ["100% ?", "t"])
            assert db.execute("SELECT name FROM queues WHERE name LIKE '100%'").fetchone() \
                == ("100% ?",)

    def test_cursors_round_trip_and_move_only_forward_when_saved(self, target):
        with connection(target) as db:
            assert ledger.get_cursor(db, "c", "box", "INBOX") is None
            ledger.save_cursor(db, "c", "box", "INBOX", {"uidvalidity": 7, "last_uid": 10})
            ledger.save_cursor(db, "c", "box", "INBOX", {"uidvalidity": 7, "last_uid": 12})
            ledger.save_cursor(db, "c", "box", "Sent", {"uidvalidity": 9, "last_uid": 1})
            assert ledger.get_cursor(db, "c", "box", "INBOX") == {"uidvalidity": 7,
                                                                   "last_uid": 12}
            assert ledger.get_cursor(db, "c", "box", "Sent") == {"uidvalidity": 9,
                                                                  "last_uid": 1}

    def test_outbox_transitions(self, target):
        with connection(target) as db:
            row = outbox.queue(db, "c", None, None, "reply", "a@b.example", ["x@y.example"],
                               b"raw")
            assert outbox.get(db, row)["state"] == outbox.PENDING
            assert outbox.depth(db, "c") == 1
            outbox.set_state(db, row, outbox.SENDING, attempt=True)
            assert outbox.interrupted(db, "c") == [row]
            found = outbox.get(db, row)
            assert (found["state"], found["attempts"]) == (outbox.UNKNOWN, 1)
            assert "may or may not" in found["last_error"]
            outbox.set_state(db, row, outbox.SENT)
            assert outbox.get(db, row)["sent_at"] is not None
            assert outbox.recent(db, "x@y.example", "reply") == 1
            assert outbox.recent(db, "other@y.example", "reply") == 0

    def test_concurrent_writers_of_one_channel_store_each_message_once(self, target):
        """Four writers commit the same 20 messages (as a sync and piped `ingest` of the same
        mail might): one row per ledger key and per message, one ticket per thread."""
        with connection(target):
            pass  # created and migrated before the race
        raws = [message(f"Race {i}", message_id=f"race{i}@x") for i in range(20)]
        batch = Batch("", "new", [Fetched(SourceRef("", "new", f"{i}.m"), raw)
                                  for i, raw in enumerate(raws)], None)
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with connection(target) as db:
                    commit_batch(db, ChannelPlan("support"), batch)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        with connection(target) as db:
            assert db.execute("SELECT count(*) FROM ledger").fetchone()[0] == 20
            assert db.execute("SELECT count(*), count(DISTINCT fingerprint) FROM messages"
                              ).fetchone() == (20, 20)
            assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 20

    def test_text_keeps_every_character_but_nul(self, target):
        """PostgreSQL's text cannot hold NUL (broken mail has it): U+FFFD there."""
        with connection(target) as db:
            db.execute("INSERT INTO queues (name, created_at) VALUES (?, 't')",
                       ["a\x00b ☃"])
            (name,) = db.execute("SELECT name FROM queues").fetchone()
        assert name == ("a\x00b ☃" if db.backend == "sqlite" else "a\ufffdb ☃")

    def test_a_lease_is_held_renewed_fenced_and_released(self, target):
        unit = ("support", leases.CHANNEL)
        with connection(target) as db:
            leases.ensure(db, [unit])
            assert leases.due(db, [unit, ("other", "")]) == [unit]
            first = leases.claim(db, unit, "host-a:1", 30)
            assert first is not None and first.fence == 1
            assert leases.claim(db, unit, "host-b:2", 30) is None  # held
            assert leases.due(db, [unit]) == []
            assert leases.renew(db, first, 30)
            with db.atomic():
                leases.check(db, first)
            assert leases.release(db, first, next_in=3600)
            assert leases.claim(db, unit, "host-b:2", 30) is None  # not due for an hour
            second = leases.claim(db, unit, "host-b:2", 30, due_only=False)
            assert second is not None and second.fence == 2
            assert not leases.renew(db, first, 30)  # the old holder cannot extend it
            with pytest.raises(leases.LeaseLost), db.atomic():
                leases.check(db, first)
            assert [e["event"] for e in leases.events(db)] == ["claimed", "released",
                                                               "claimed"]

    def test_an_expired_lease_is_taken_over_and_its_holder_writes_nothing(self, target):
        """A paused host (its lease ran out, another host claimed the channel) wakes up and
        commits a batch: the fence check inside the commit refuses it, so nothing of the
        batch is stored, not even its ledger rows or cursor."""
        unit = ("support", leases.CHANNEL)
        with connection(target) as db:
            leases.ensure(db, [unit])
            paused = leases.claim(db, unit, "host-a:1", 0.2)
            time.sleep(0.4)
            taker = leases.claim(db, unit, "host-b:2", 30)
            assert taker is not None and taker.fence == paused.fence + 1
            batch = Batch("", "new", [Fetched(SourceRef("", "new", "late.m"),
                                              message("Late", message_id="late@x"))],
                          {"seen": 1})
            with pytest.raises(leases.LeaseLost):
                commit_batch(db, ChannelPlan("support"), batch,
                             guard=lambda db, _box: leases.check(db, paused))
            assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
            assert db.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0
            assert ledger.get_cursor(db, "support", "", "new") is None
            commit_batch(db, ChannelPlan("support"), batch,
                         guard=lambda db, _box: leases.check(db, taker))
            assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1

    def test_a_lease_released_by_hand_fences_out_its_holder(self, target):
        unit = ("support", leases.CHANNEL)
        with connection(target) as db:
            leases.ensure(db, [unit])
            stuck = leases.claim(db, unit, "host-a:1", 3600)
            assert leases.release_by_hand(db, "support") == ["host-a:1"]
            assert not leases.renew(db, stuck, 3600)
            with pytest.raises(leases.LeaseLost), db.atomic():
                leases.check(db, stuck)
            again = leases.claim(db, unit, "host-a:1", 30)  # due at once; the same owner
            assert again is not None and again.fence > stuck.fence
            with pytest.raises(leases.LeaseLost), db.atomic():
                leases.check(db, stuck)  # the fence, not the owner's name, tells them apart

    def test_of_many_hosts_claiming_at_once_exactly_one_gets_the_lease(self, target):
        unit = ("support", leases.CHANNEL)
        with connection(target) as db:
            leases.ensure(db, [unit])
        won: list = []
        errors: list = []
        start = threading.Barrier(4, timeout=30)  # as many as a process pools connections

        def claimer(n: int) -> None:
            try:
                with connection(target) as db:
                    start.wait()  # connected: now all at once
                    found = leases.claim(db, unit, f"host-{n}:1", 30)
                    if found is not None:
                        won.append(found)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == [] and len(won) == 1 and won[0].fence == 1

    def test_hosts_report_their_heartbeat(self, target):
        with connection(target) as db:
            leases.heartbeat(db, "host-a:1", "host-a", 1)
            assert leases.alive(db, 60) == {"host-a:1"}
            assert leases.alive(db, -1) == set()
            (row,) = leases.hosts(db)
            assert row["host"] == "host-a" and row["heartbeat_age"] < 5
            leases.forget_host(db, "host-a:1")
            assert leases.hosts(db) == []


    def test_staged_items_are_written_at_the_commit_a_last_writer_after_the_others(
            self, target):
        """The events writer takes a lock held until the commit: it must come after every
        other staged writer (the PostgreSQL search index), not before them."""
        written: list[tuple[str, list]] = []

        def events(_db, items):
            written.append(("events", items))

        def index(_db, items):
            written.append(("index", items))

        with connection(target) as db:
            with db.atomic():
                db.stage(events, 1, last=True)
                db.stage(index, 10)
                with pytest.raises(RuntimeError), db.atomic():  # a failed savepoint's items go
                    db.stage(index, 11)
                    raise RuntimeError
                db.stage(events, 2, last=True)
                assert written == []
            assert written == [("index", [10]), ("events", [1, 2])]


class TestSqlite(StoreContract):
    @pytest.fixture
    def target(self, tmp_path):
        yield StoreSettings.sqlite(tmp_path / "store" / "s.db")
        close_all()


class TestPostgres(StoreContract):
    @pytest.fixture
    def target(self, pg_url):
        yield StoreSettings(pg_url, {"env": PG_PASSWORD_ENV})
        close_all()

    def test_a_lookup_first_run_on_a_nearly_empty_store_stays_an_index_lookup(self, target):
        """psycopg prepares a statement it has run five times, and the server may then keep
        one generic plan for it. Made while `messages` held a row, that plan found a message
        by the first index on its channel and filtered the rest: each lookup read every
        stored message, and the first sync of a large mailbox slowed down quadratically.
        (Planned for the table as it is, a lookup may scan a small table, never a large
        one. The view counts what the session has not reported yet, this transaction too.)"""
        with connection(target) as db:
            columns = "channel, fingerprint, raw, size, sha256, direction, stored_at"
            db.execute(f"INSERT INTO messages ({columns}) VALUES ('c', 'f0', ?, 0, '', 'in', "
                       "'2026-01-01')", [b""])
            for _ in range(15):  # prepared after five, then planned (generic plans after five)
                assert messages.ids_by_fingerprint(db, "c", ["none"]) == {}
            db.execute(f"INSERT INTO messages ({columns}) SELECT 'c', 'f' || g, '', 0, '', "
                       "'in', '2026-01-01' FROM generate_series(1, 5000) g")

            def read() -> int:
                return db.execute("SELECT seq_tup_read + idx_tup_fetch FROM "
                                  "pg_stat_xact_user_tables WHERE relname = 'messages'"
                                  ).fetchone()[0]

            with db.atomic():  # no report of the counts in between
                before = read()
                assert "f4999" in messages.ids_by_fingerprint(db, "c", ["f4999"])
                after = read()
        assert after - before <= 1, f"one lookup read {after - before} rows of messages"

    def test_a_batchs_thread_lookups_stay_index_lookups_while_a_first_sync_fills_the_store(
            self, target):
        """tickets.Threads looks up a batch's ids in one query. Written as a join over all of
        them, it was planned from the stale statistics of tables a first sync is filling as
        a scan of every row of ticket_messages, a batch (quadratic over a large sync)."""
        from mailbridge.store.tickets import Threads

        with connection(target) as db:
            db.execute("INSERT INTO queues (name, created_at) VALUES ('q', 't')")
            db.execute("INSERT INTO messages (channel, fingerprint, raw, size, sha256, "
                       "direction, stored_at, message_id, in_reply_to) SELECT 'c', 'f' || g, "
                       "'', 0, '', 'in', 't', 'id' || g, 'id' || (g - 1) "
                       "FROM generate_series(1, 60000) g")
            db.execute("INSERT INTO tickets (id, channel, queue, subject, created_at, "
                       "updated_at) SELECT g, 'c', 'q', 's', 't', 't' "
                       "FROM generate_series(1, 60000) g")
            db.execute("INSERT INTO ticket_messages (ticket, message, added_at) "
                       "SELECT id, id, 't' FROM messages")

            def scanned() -> int:
                return db.execute("SELECT coalesce(sum(seq_tup_read), 0) FROM "
                                  "pg_stat_xact_user_tables WHERE relname IN "
                                  "('messages', 'ticket_messages')").fetchone()[0]

            lookups = [([f"id{n}"], None, f"id{n + 7}") for n in range(1, 400, 2)]
            with db.atomic():  # no report of the counts in between
                before = scanned()
                threads = Threads.read(db, "c", lookups)
                after = scanned()
        assert threads.find(["id11"], None, None) == 11
        assert threads.by_reply["id8"] == 9  # id9 answers id8
        assert after - before == 0, f"the lookups scanned {after - before} rows"

    def test_large_values_are_compressed_with_lz4_where_the_server_has_it(self, target):
        """pglz, PostgreSQL's default, took most of a sync's time in the server."""
        raw = b"Subject: long\r\n\r\n" + b"a line of a long message\r\n" * 2000
        with connection(target) as db:
            (has_lz4,) = db.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                                    "WHERE name = 'default_toast_compression'").fetchone()
            if not has_lz4:
                pytest.skip("this PostgreSQL was built without lz4")
            messages.insert(db, "c", "f", raw, None, None, "not parsed")
            method, stored = db.execute("SELECT pg_column_compression(raw), raw "
                                        "FROM messages").fetchone()
        assert method == "lz4"
        assert bytes(stored) == raw

    def test_a_writer_paused_inside_a_many_row_insert_lets_go_of_its_locks(self, target):
        """A host paused inside a transaction (SIGSTOP, a frozen VM) keeps its locks until the
        server ends its session, idle in the transaction for a lease's length. The server only
        starts counting once a statement has come up to its Sync: psycopg's executemany runs
        in pipeline mode, whose rows the server executes before the one closing Sync, so a
        host paused between them kept the events lock for good, and every other host's commit
        waited behind it (the fleet test's paused host was then never taken over). The rows
        are few enough for one write: a host paused in the middle of writing one statement
        larger than the socket's buffers leaves the server reading it with no timeout armed
        either, a gap only PostgreSQL 17's transaction_timeout closes."""
        import os
        import random
        import signal
        import subprocess
        import sys

        writer = (
            "import sys\n"
            "from mailbridge.config.model import StoreSettings\n"
            "from mailbridge.store.backends import connection\n"
            f"target = StoreSettings({target.url!r}, {target.password_ref!r}, lease_seconds=1)\n"
            "with connection(target) as db:\n"
            "    db.execute('CREATE TABLE IF NOT EXISTS scratch (a integer, b text)')\n"
            "    print('ready', flush=True)\n"
            "    while True:\n"
            "        with db.atomic():\n"
            "            db.lock('events')\n"
            "            db.executemany('INSERT INTO scratch (a, b) VALUES (?, ?)',\n"
            "                           [(i, 'row') for i in range(300)])\n")
        rng = random.Random(5)
        for _round in range(5):
            child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=os.environ.copy())
            try:
                assert child.stdout.readline() == b"ready\n"
                time.sleep(rng.uniform(0.1, 0.4))
                child.send_signal(signal.SIGSTOP)
                with connection(target) as db, db.atomic():
                    db.execute("SET LOCAL lock_timeout = '6s'")  # a lease of 1 s, and slack
                    db.lock("events")
            finally:
                child.kill()
                child.wait(timeout=10)


def test_a_many_row_insert_is_cut_by_bytes_and_its_text_does_not_depend_on_the_rows(pg_url):
    """PostgreSQL's executemany is one INSERT per chunk of about chunk_bytes of values (a
    larger row alone), every row written once; the values travel as arrays, so the statement
    is the same text for any number of rows (parsed once, prepared by the server)."""
    from mailbridge.store.postgres import PostgresStore, chunks, row_items, unnest_insert

    big = PostgresStore.chunk_bytes
    sized = [(1, "x" * (big - 100)), (2, "y" * 5), (3, "z" * 100), (4, "w" * (big * 2))]
    assert [[r[0] for r in c] for c in chunks(sized, big)] == [[1, 2], [3], [4]]
    assert [len(c) for c in chunks([(1, "a" * 100)] * 10, big)] == [10]
    assert list(chunks([], big)) == []
    assert row_items("(?, f(?, 'a,(b'), \"x,y\", ?)") == ["?", "f(?, 'a,(b')", '"x,y"', "?"]
    sql = "INSERT INTO scratch (a, b) VALUES (?, upper(?)) ON CONFLICT DO NOTHING"
    types = {"scratch": {"a": "integer", "b": "text"}}.__getitem__
    one, _ = unnest_insert(sql, types, [(1, "a")])
    assert unnest_insert(sql, types, [(1, "a"), (2, "b"), (3, None)])[0] == one
    assert "unnest(?::integer[], ?::text[])" in one
    target = StoreSettings(pg_url, {"env": PG_PASSWORD_ENV})
    with connection(target) as db, db.atomic():
        db.execute("CREATE TABLE scratch (a integer UNIQUE, b text, c bytea, d double precision)")
        many = [(i, "v" * (i % 7) * 5000) for i in range(3000)]
        db.executemany("INSERT INTO scratch (a, b) VALUES (?, ?)", many)
        assert db.execute("SELECT count(*), count(DISTINCT a), sum(length(b)) FROM scratch"
                          ).fetchone() == (3000, 3000, sum(len(b) for _a, b in many))
        made = db.insert_many("INSERT INTO scratch (a, b, c, d) VALUES (?, lower(?), ?, ?) "
                              "ON CONFLICT (a) DO NOTHING RETURNING a, b, c, d",
                              [(1, "X", b"1", 1.5), (5000, "A\x00B", b"\x00\xff", None),
                               (5001, None, None, 2.0)])
        assert sorted(tuple(r) for r in made) == [
            (5000, "a\ufffdb", b"\x00\xff", None), (5001, None, None, 2.0)]
        # a column of several types (SQLite keeps what it is given; `store migrate` copies it)
        db.executemany("INSERT INTO scratch (A, b, c, d) VALUES (?, ?, ?, ?)",
                       [(6000, "x", b"1", 1), (6001, 5, memoryview(b"2"), 2.5),
                        (6002, 1.5, bytearray(b"3"), True)])
        assert db.execute("SELECT a, b, c, d FROM scratch WHERE a >= 6000 ORDER BY a"
                          ).fetchall() == [(6000, "x", b"1", 1.0), (6001, "5", b"2", 2.5),
                                           (6002, "1.5", b"3", 1.0)]
    close_all()

