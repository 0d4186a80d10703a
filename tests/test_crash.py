"""Exactly-once under crashes: a real `mailbridge sync` process killed at random moments, and
a hypothesis state machine that injects failures inside the transaction and inside the ack."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import drop, message
from conftest import sqlite_store as open_store
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mailbridge.connectors.drop import DropFetcher, make_spool
from mailbridge.pipeline.ingest import ingest
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.report import NullReporter
from mailbridge.store import messages as store_messages


def test_killed_sync_processes_lose_and_double_nothing(mb):
    spool = mb.drop_channel()
    total = 2000
    for i in range(total):
        reply = f"In-Reply-To: <{i - 1}@crash>\n" if i % 4 else ""
        drop(spool, message(f"Crash {i // 4}", message_id=f"{i}@crash", extra=reply,
                            body="line\n" * 200), f"{i:05d}.crash")
    rng = random.Random(1234)
    cmd = [sys.executable, "-m", "mailbridge", "--config", str(mb.config), "sync", "--quiet"]
    kills = 0
    for _ in range(40):
        done = len(os.listdir(spool / "cur"))
        if done == total:
            break
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Kill by progress, not by the clock (a fast machine synced all 2000 before the first
        # timed kill): once some more files are committed, then a random moment later, which
        # lands inside a transaction, between a commit and its renames, or in a fetch.
        target = done + rng.randint(1, 300)
        deadline = time.monotonic() + 60
        while (proc.poll() is None and len(os.listdir(spool / "cur")) < target
               and time.monotonic() < deadline):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    stored = mb.query("SELECT count(*), count(DISTINCT fingerprint) FROM messages")[0]
    filed = mb.query("SELECT count(*), count(DISTINCT message) FROM ticket_messages")[0]
    ledgered = mb.value("SELECT count(*) FROM ledger")
    print(f"crash test: {kills} kills, {stored[0]} messages stored")
    assert kills >= 1, "no run was killed mid-way: make the spool larger"
    assert stored == (total, total)
    assert filed == (total, total)
    assert ledgered == total
    assert not os.listdir(spool / "new")
    assert len(os.listdir(spool / "cur")) == total


class Crash(Exception):
    pass


def _two_batches(mb, tag: str):
    """A drop channel holding four messages, and a fetcher that reads them two at a time."""
    spool = mb.drop_channel()
    for i in range(4):
        drop(spool, message(f"{tag} {i}", message_id=f"{i}@{tag}"), f"{i:03d}.{tag}")
    return spool, DropFetcher("support", spool, batch_size=2)


def _sync_until_crash(mb, fetcher) -> None:
    db = mb.open()
    try:
        with pytest.raises(Crash):
            ingest(db, ChannelPlan("support"), fetcher, NullReporter(), parallel=False)
    finally:
        db.close()


def _acked(spool) -> list[str]:
    return sorted(name.split(":")[0] for name in os.listdir(spool / "cur"))


def test_a_failed_commit_stops_the_sync_with_nothing_after_it_committed_or_it_acked(
        mb, monkeypatch):
    """On PostgreSQL each commit runs in a thread of its own while the next batch is fetched
    (pipeline/ingest._Committer), on SQLite in the calling thread: either way a commit that
    fails ends the sync with its error, the batches before it are committed and acked, and
    neither it nor any batch after it is committed or acked."""
    spool, fetcher = _two_batches(mb, "fail")
    real_insert, calls = store_messages.insert_many, []

    def insert(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise Crash()
        return real_insert(*a, **k)

    monkeypatch.setattr(store_messages, "insert_many", insert)
    _sync_until_crash(mb, fetcher)
    assert len(calls) == 2  # nothing was committed after the failed batch
    assert sorted(r[0] for r in mb.query("SELECT message_id FROM messages")) == [
        "0@fail", "1@fail"]
    assert _acked(spool) == ["000.fail", "001.fail"]


def test_a_batch_committed_before_a_failed_fetch_is_still_acked(mb):
    """The next fetch failing (a dropped connection) does not keep the batch committed while
    it was fetched from being acked, wherever that commit ran."""
    spool, fetcher = _two_batches(mb, "ack")
    batches = fetcher.fetch

    def fetch(state):
        for number, batch in enumerate(batches(state)):
            if number == 1:
                raise Crash()
            yield batch

    fetcher.fetch = fetch
    _sync_until_crash(mb, fetcher)
    assert mb.value("SELECT count(*) FROM messages") == 2
    assert _acked(spool) == ["000.ack", "001.ack"]


class IngestMachine(RuleBasedStateMachine):
    """Deliver mail (sometimes the same mail twice) and sync with a crash injected inside the
    transaction or part-way through the ack; a clean sync afterwards must converge."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile
        from pathlib import Path

        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.spool = root / "spool"
        make_spool(self.spool)
        self.db = open_store(root / "s.db")
        self.delivered: set[str] = set()
        self.n = 0

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()

    @rule(dup=st.booleans())
    def deliver(self, dup: bool) -> None:
        if dup and self.delivered:
            mid = sorted(self.delivered)[0]
        else:
            self.n += 1
            mid = f"{self.n}@sm"
        self.delivered.add(mid)
        self.n += 1
        drop(self.spool, message(f"S {mid}", message_id=mid), f"{self.n:06d}.sm")

    @rule(where=st.sampled_from(["insert", "ack", "none"]), after=st.integers(0, 3))
    def sync(self, where: str, after: int) -> None:
        fetcher = DropFetcher("c", self.spool, batch_size=2)
        calls = {"n": 0}
        real_insert, real_ack = store_messages.insert_many, fetcher.ack

        def maybe_crash() -> None:
            calls["n"] += 1
            if calls["n"] > after:
                raise Crash()

        def insert(*a, **k):
            if where == "insert":
                maybe_crash()
            return real_insert(*a, **k)

        def ack(refs):
            for ref in refs:
                if where == "ack":
                    maybe_crash()
                real_ack([ref])

        fetcher.ack = ack
        store_messages.insert_many = insert
        try:
            ingest(self.db, ChannelPlan("c"), fetcher, NullReporter())
        except Crash:
            pass
        finally:
            store_messages.insert_many = real_insert

    @invariant()
    def one_record_per_fingerprint(self) -> None:
        rows = self.db.execute("SELECT count(*), count(DISTINCT fingerprint) FROM messages")
        total, distinct = rows.fetchone()
        assert total == distinct

    @invariant()
    def acked_files_are_committed(self) -> None:
        committed = {r[0] for r in self.db.execute("SELECT source_key FROM ledger")}
        for name in os.listdir(self.spool / "cur"):
            assert name.split(":", 1)[0] in committed

    def check_converges(self) -> None:
        ingest(self.db, ChannelPlan("c"), DropFetcher("c", self.spool), NullReporter())
        stored = {r[0] for r in self.db.execute("SELECT message_id FROM messages")}
        assert stored == self.delivered
        assert not os.listdir(self.spool / "new")


class ConvergingMachine(IngestMachine):
    def teardown(self) -> None:
        self.check_converges()
        super().teardown()


ConvergingMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=15,
                                               deadline=None)
TestIngestCrashes = ConvergingMachine.TestCase
