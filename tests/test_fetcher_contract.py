"""The contract every incoming connector keeps with the ingest pipeline (DESIGN.md §7), run
against each real connector: the drop spool, IMAP on the session's Dovecot and Microsoft 365
on the local Graph fake. The tests play the pipeline's part (connectors/base.py,
pipeline/ingest.py) with an in-memory ledger: fetch, "commit" each batch (its keys and its
cursor together), then ack what was committed.

MemoryFetcher (`mailbridge ingest`) is left out: it has no source beyond the bytes handed to
it, so a fresh fetcher, "waiting" mail and a cursor mean nothing for it."""

from __future__ import annotations

import email
import itertools
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SECRET, m365_config

from mailbridge.config.load import load_config
from mailbridge.connectors.base import Fetched, Fetcher
from mailbridge.connectors.drop import deliver
from mailbridge.domain.source import SourceRef
from mailbridge.errors import AuthError, MailbridgeError, SpoolError
from mailbridge.services import m365
from mailbridge.services.connectors import build_fetcher

IMAP_PASSWORD_ENV = "MB_TEST_CONTRACT_IMAP_PASSWORD"
IMAP_FOLDER = "Support"  # not INBOX: only a folder that can be recreated gets a new UIDVALIDITY
MAILBOX = "a@contoso.com"
CHANNEL = "support"

_serial = itertools.count(1)
_DATE0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def mail(subject: str = "Contract") -> bytes:
    """A message with a Message-ID and a Date unique and increasing within the session."""
    n = next(_serial)
    lines = ["From: Ann <ann@customer.example>", "To: support@example.com",
             f"Subject: {subject} {n}", f"Message-ID: <contract-{n}@customer.example>",
             f"Date: {format_datetime(_DATE0 + timedelta(minutes=n))}",
             "Content-Type: text/plain; charset=utf-8", "", f"Question {n}.", ""]
    # CRLF, as on the wire: IMAP stores LF-only mail with CRLF, and the bytes are compared
    return "\r\n".join(lines).encode()


def message_id(raw: bytes) -> str:
    return str(email.message_from_bytes(raw)["Message-ID"])


# --- the pipeline's part --------------------------------------------------------------------

@dataclass
class Round:
    """What one consume saw: every item yielded, and the raw ones whose key the ledger did
    not know when the round began (a key yielded twice in one round counts twice)."""

    items: list[Fetched]
    new: list[Fetched]

    @property
    def fetched(self) -> list[Fetched]:
        return [item for item in self.items if item.raw is not None]

    def new_ids(self) -> list[str]:
        return [message_id(item.raw or b"") for item in self.new]


class MemoryState:
    """An in-memory ledger and cursor table (SourceState), committed to as the pipeline does."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        # kept as JSON, as the store keeps them: a cursor that does not survive that is a bug
        self.cursors: dict[tuple[str, str], str] = {}

    def cursor(self, mailbox: str, folder: str) -> dict[str, Any] | None:
        saved = self.cursors.get((mailbox, folder))
        return json.loads(saved) if saved is not None else None

    def known(self, mailbox: str, folder: str, keys: Iterable[str]) -> set[str]:
        return self.keys.get((mailbox, folder), set()) & set(keys)

    def stopping(self) -> bool:
        return False  # stopping mid-fetch is tested against `mailbridge run` (test_run.py)

    def is_known(self, ref: SourceRef) -> bool:
        return ref.key in self.keys.get((ref.mailbox, ref.folder), set())

    def consume(self, fetcher: Fetcher, ack: bool = True) -> Round:
        """Fetch everything; commit each batch (the keys of items with bytes, and the batch's
        cursor) before asking for the next; ack the committed refs unless `ack` is False (a
        crash between commit and ack)."""
        before = {place: set(keys) for place, keys in self.keys.items()}
        items: list[Fetched] = []
        for batch in fetcher.fetch(self):
            committed = [item.ref for item in batch.items if item.raw is not None]
            for ref in committed:
                self.keys[(ref.mailbox, ref.folder)].add(ref.key)
            if batch.cursor is not None:
                self.cursors[(batch.mailbox, batch.folder)] = json.dumps(batch.cursor,
                                                                         sort_keys=True)
            if ack:
                fetcher.ack(committed)  # the pipeline acks every batch, even an empty one
            items.extend(batch.items)
        assert fetcher.problems == [], fetcher.problems
        new = [item for item in items if item.raw is not None
               and item.ref.key not in before.get((item.ref.mailbox, item.ref.folder), set())]
        return Round(items, new)


# --- the sources ------------------------------------------------------------------------------

class Source:
    """One connector's source, as the contract drives it."""

    imports_read = False  # mail a person read before the sync is imported (import_read)
    read_survives_expiry = False  # ... even when it arrives while the cursor is expired
    secrets: tuple[str, ...] = ()  # values no error may show

    def __init__(self) -> None:
        self._fetchers: list[Fetcher] = []

    def fetcher(self) -> Fetcher:
        """A fresh fetcher, as a new process would make it from the config."""
        fetcher = self._build()
        self._fetchers.append(fetcher)
        return fetcher

    def _build(self) -> Fetcher:
        raise NotImplementedError

    def deliver(self, raw: bytes, read: bool = False) -> None:
        """A new message; `read`: a person opened it before the sync could."""
        raise NotImplementedError

    def waiting(self) -> int:
        """How many messages the source still presents as not taken yet."""
        raise NotImplementedError

    def expire(self) -> None:
        """Make a saved cursor stale."""
        pytest.skip(f"{type(self).__name__}: no cursor to expire")

    def break_credentials(self) -> None:
        pytest.skip(f"{type(self).__name__}: no credentials")

    def close(self) -> None:
        for fetcher in self._fetchers:
            fetcher.close()


class DropSource(Source):
    def __init__(self, mb: Any) -> None:
        super().__init__()
        self.mb = mb
        self.spool: Path = mb.drop_channel(CHANNEL)
        self._n = 0

    def _build(self) -> Fetcher:
        return build_fetcher(load_config(self.mb.config).require(CHANNEL))

    def deliver(self, raw: bytes, read: bool = False) -> None:
        assert not read, "a spool has no read state"
        self._n += 1
        # Maildir names start with the delivery time, so they sort in delivery order
        deliver(self.spool, f"{1_800_000_000 + self._n}.M{self._n}P{os.getpid()}.test", raw)

    def waiting(self) -> int:
        return len([n for n in os.listdir(self.spool / "new") if not n.startswith(".")])

    def expire(self) -> None:
        pytest.skip("the drop spool keeps no cursor: every file in new/ is waiting")

    def break_credentials(self) -> None:
        pytest.skip("a spool has no credentials; its failure, a missing directory, is "
                    "TestDrop.test_missing_spool_is_a_spool_error")


class ImapSource(Source):
    read_survives_expiry = False  # a new UIDVALIDITY drops the watermark (imap.py docstring)

    def __init__(self, mb: Any, dovecot: Any, user: Any, monkeypatch: pytest.MonkeyPatch,
                 import_read: bool) -> None:
        super().__init__()
        self.mb, self.dovecot, self.user, self.monkeypatch = mb, dovecot, user, monkeypatch
        self.imports_read = import_read
        self.secrets = (user.password,)
        monkeypatch.setenv(IMAP_PASSWORD_ENV, user.password)
        client = self._client()
        try:
            client.create_folder(IMAP_FOLDER)
        finally:
            client.logout()
        mb.write_config([{"name": CHANNEL, "main_email": "desk@example.com", "incoming": {
            "type": "imap", "host": "127.0.0.1", "port": user.port, "security": "none",
            "username": user.username, "password": {"env": IMAP_PASSWORD_ENV},
            "folders": [IMAP_FOLDER], "import_read": import_read}}])

    def _client(self) -> Any:
        return self.dovecot.client(self.user.username, self.user.password)

    def _build(self) -> Fetcher:
        return build_fetcher(load_config(self.mb.config).require(CHANNEL))

    def deliver(self, raw: bytes, read: bool = False) -> None:
        self.dovecot.append(self.user.username, self.user.password, [raw], folder=IMAP_FOLDER,
                            seen=read)

    def waiting(self) -> int:
        client = self._client()
        try:
            client.select_folder(IMAP_FOLDER, readonly=True)
            return len(client.search(["UNSEEN"]))
        finally:
            client.logout()

    def expire(self) -> None:
        """A restored or migrated folder: the same mail with the same flags, renumbered under
        a new UIDVALIDITY (Dovecot gives a recreated folder a new one)."""
        client = self._client()
        try:
            old = client.select_folder(IMAP_FOLDER)[b"UIDVALIDITY"]
            uids = client.search()
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
            client.unselect_folder()
            client.delete_folder(IMAP_FOLDER)
            client.create_folder(IMAP_FOLDER)
            for uid in sorted(data):
                flags = [f for f in data[uid][b"FLAGS"] if f != b"\\Recent"]
                client.append(IMAP_FOLDER, data[uid][b"BODY[]"], flags=flags)
            assert client.select_folder(IMAP_FOLDER)[b"UIDVALIDITY"] != old
        finally:
            client.logout()

    def break_credentials(self) -> None:
        wrong = f"wrong-password-{uuid.uuid4().hex}"
        self.secrets = (self.user.password, wrong)
        self.monkeypatch.setenv(IMAP_PASSWORD_ENV, wrong)


class GraphSource(Source):
    # An expired delta link starts a new round from the old link's time (graph/fetch.py)
    read_survives_expiry = True

    def __init__(self, mb: Any, graph: Any, monkeypatch: pytest.MonkeyPatch,
                 import_read: bool) -> None:
        super().__init__()
        self.mb, self.graph, self.monkeypatch = mb, graph, monkeypatch
        self.imports_read = import_read
        self.secrets = (SECRET,)
        self._last = datetime.now(UTC)
        m365_config(mb, graph, [MAILBOX], import_read=import_read)

    def _build(self) -> Fetcher:
        # A new process signs in afresh: no sign-in object (and token) kept from before
        self.monkeypatch.setattr(m365, "_AUTHS", {})
        return build_fetcher(load_config(self.mb.config).require(CHANNEL))

    def deliver(self, raw: bytes, read: bool = False) -> None:
        # Received now (a delta round counts read mail only from its last round's time on),
        # and strictly later than the one before, so the listing's order is the delivery's.
        self._last = max(datetime.now(UTC), self._last + timedelta(milliseconds=1))
        self.graph.deliver(MAILBOX, raw, is_read=read, received=self._last)

    def waiting(self) -> int:
        return len(self.graph.unread(MAILBOX))

    def expire(self) -> None:
        if not self.imports_read:
            pytest.skip("without import_read Graph keeps no cursor (the unread listing is it)")
        self.graph.expire_delta()

    def break_credentials(self) -> None:
        wrong = f"wrong-secret-{uuid.uuid4().hex}"
        self.secrets = (SECRET, wrong)
        self.monkeypatch.setenv("MB_TEST_SECRET", wrong)
        self.graph.expire_tokens()  # so no token from before hides the wrong secret


# --- the contract ---------------------------------------------------------------------------

class FetcherContract:
    """Subclasses provide a `source` fixture (a Source)."""

    def test_empty_source_yields_nothing(self, source: Source) -> None:
        state = MemoryState()
        assert state.consume(source.fetcher()).items == []
        assert state.consume(source.fetcher()).items == []
        assert source.waiting() == 0

    def test_order_is_delivery_order_each_once(self, source: Source) -> None:
        sent = [mail("Order") for _ in range(5)]
        for raw in sent:
            source.deliver(raw)
        state = MemoryState()
        got = state.consume(source.fetcher())
        assert [message_id(i.raw or b"") for i in got.fetched] == [message_id(r) for r in sent]
        assert [i.raw for i in got.fetched] == sent  # the bytes as delivered
        assert len({i.ref for i in got.fetched}) == 5
        assert source.waiting() == 0

    def test_refetch_yields_nothing_new(self, source: Source) -> None:
        for _ in range(3):
            source.deliver(mail("Refetch"))
        state = MemoryState()
        assert len(state.consume(source.fetcher()).new) == 3
        assert source.waiting() == 0
        again = state.consume(source.fetcher())
        assert again.new == []
        assert all(state.is_known(i.ref) for i in again.fetched)
        assert source.waiting() == 0

    def test_ack_is_idempotent(self, source: Source) -> None:
        for _ in range(3):
            source.deliver(mail("Ack"))
        state = MemoryState()
        fetcher = source.fetcher()
        refs = [i.ref for i in state.consume(fetcher).fetched]
        assert len(refs) == 3 and source.waiting() == 0
        bystander = mail("Bystander")
        source.deliver(bystander)  # repeated acks must not touch mail they do not name
        fetcher.ack(refs)
        fetcher.ack(refs)
        fresh = source.fetcher()
        fresh.ack(refs)  # a crash after the commit repeats the ack in the next process
        fresh.ack(refs)
        assert fetcher.problems == [] and fresh.problems == []
        assert source.waiting() == 1
        after = state.consume(source.fetcher())
        assert after.new_ids() == [message_id(bystander)]
        assert source.waiting() == 0

    def test_crash_between_commit_and_ack_doubles_nothing(self, source: Source) -> None:
        """A re-fetch of committed mail may yield it again (the drop spool does: it has no
        ledger of its own) as long as the keys are known, so the pipeline's ledger skips it;
        what it must do is ack it then, so it stops waiting."""
        sent = [mail("Crash") for _ in range(5)]
        for raw in sent:
            source.deliver(raw)
        state = MemoryState()
        first = state.consume(source.fetcher(), ack=False)
        assert [i.raw for i in first.new] == sent
        assert source.waiting() == 5  # fetching changed nothing at the source
        again = state.consume(source.fetcher())
        assert again.new == []
        assert all(state.is_known(i.ref) for i in again.fetched)
        assert source.waiting() == 0  # the missed ack was repaired
        assert state.consume(source.fetcher()).new == []

    def test_cursor_round_trip(self, source: Source) -> None:
        for _ in range(3):
            source.deliver(mail("Before"))
        state = MemoryState()
        state.consume(source.fetcher())
        later = [mail("After"), mail("After")]
        source.deliver(later[0])
        # with import_read the cursor is what finds mail a person opened first
        source.deliver(later[1], read=source.imports_read)
        got = state.consume(source.fetcher())
        assert sorted(got.new_ids()) == sorted(message_id(r) for r in later)
        assert source.waiting() == 0
        assert state.consume(source.fetcher()).new == []

    def test_expired_cursor_loses_nothing(self, source: Source) -> None:
        earlier = [mail("Earlier") for _ in range(3)]
        for raw in earlier:
            source.deliver(raw)
        state = MemoryState()
        state.consume(source.fetcher())
        source.expire()
        arrived = [mail("Arrived")]
        source.deliver(arrived[0])
        if source.imports_read and source.read_survives_expiry:
            arrived.append(mail("Arrived read"))
            source.deliver(arrived[-1], read=True)
        known_before = {(m, f, k) for (m, f), keys in state.keys.items() for k in keys}
        got = state.consume(source.fetcher())
        ids = [message_id(i.raw or b"") for i in got.fetched]
        arrived_ids = [message_id(r) for r in arrived]
        assert set(arrived_ids) <= set(ids)  # nothing lost
        keys = [(i.ref.mailbox, i.ref.folder, i.ref.key) for i in got.fetched]
        assert len(keys) == len(set(keys))  # nothing twice within a round
        delivered = {message_id(r) for r in earlier} | set(arrived_ids)
        for key, mid in zip(keys, ids, strict=True):
            # a re-yield of earlier mail is fine: the pipeline's fingerprint makes it a duplicate
            assert key in known_before or mid in delivered, mid
        assert source.waiting() == 0
        assert state.consume(source.fetcher()).new == []

    def test_bad_credentials_are_an_auth_error(self, source: Source) -> None:
        source.deliver(mail("Locked out"))
        source.break_credentials()
        state = MemoryState()
        with pytest.raises(AuthError) as caught:
            state.consume(source.fetcher())
        assert caught.value.exit_code == 3
        text = f"{caught.value} {caught.value.args!r} {caught.value.hint}"
        for secret in source.secrets:
            assert secret not in text
        assert state.keys == {} and state.cursors == {}
        # Asked with the right credentials; on IMAP this login pays Dovecot's penalty for the
        # failed one (some seconds) and clears it, so the next test does not pay it instead.
        assert source.waiting() == 1


# --- the connectors -------------------------------------------------------------------------

class TestDrop(FetcherContract):
    @pytest.fixture
    def source(self, mb: Any) -> Iterator[Source]:
        src = DropSource(mb)
        yield src
        src.close()

    def test_missing_spool_is_a_spool_error(self, source: DropSource) -> None:
        for sub in ("new", "cur", "tmp"):
            (source.spool / sub).rmdir()
        source.spool.rmdir()
        with pytest.raises(SpoolError) as caught:
            MemoryState().consume(source.fetcher())
        assert isinstance(caught.value, MailbridgeError) and caught.value.exit_code == 2
        assert str(source.spool) in str(caught.value)


class TestImap(FetcherContract):
    @pytest.fixture(params=[False, True], ids=["unread", "import_read"])
    def source(self, request: pytest.FixtureRequest, mb: Any, dovecot: Any, imap_user: Any,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
        src = ImapSource(mb, dovecot, imap_user, monkeypatch, import_read=request.param)
        yield src
        src.close()

    def test_a_repeated_ack_after_a_uidvalidity_change_marks_only_its_own_mail(
            self, source: ImapSource) -> None:
        for _ in range(3):
            source.deliver(mail("Renumbered"))
        state = MemoryState()
        refs = [i.ref for i in state.consume(source.fetcher()).fetched]
        client = source._client()
        try:  # a person deletes the first one, so renumbering shifts the others down
            client.select_folder(IMAP_FOLDER)
            client.delete_messages([int(refs[0].key.split(":")[1])])
            client.expunge()
        finally:
            client.logout()
        source.expire()  # the two left become UIDs 1 and 2 under a new UIDVALIDITY
        newcomer = mail("Newcomer")
        source.deliver(newcomer)  # UID 3 again, the UID the third ref named
        source.fetcher().ack(refs)  # the crash-repeated ack of the earlier run
        assert source.waiting() == 1
        assert state.consume(source.fetcher()).new_ids() == [message_id(newcomer)]


class TestGraph(FetcherContract):
    @pytest.fixture(params=[False, True], ids=["unread", "import_read"])
    def source(self, request: pytest.FixtureRequest, mb: Any, graph: Any,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
        src = GraphSource(mb, graph, monkeypatch, import_read=request.param)
        yield src
        src.close()
