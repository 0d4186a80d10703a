"""IMAP incoming connection (Usedesk's "external connection").

Which mail is new: everything UNSEEN (the help-desk rule), plus, with `import_read`, mail that
arrived above the folder's watermark (UIDVALIDITY + last UID) even if a person opened it first.
Fetching uses BODY.PEEK[] so nothing is marked read as a side effect; `\\Seen` is stored only
in `ack`, after the batch is committed. Mail still unread but already in the ledger (an ack
that failed) is only marked read again, never fetched. A changed UIDVALIDITY drops the
watermark and rescans the unread mail; the fingerprint keeps that from doubling anything, and
`max_rescan` keeps a broken server from filing thousands of tickets unnoticed.

The next batch's bodies are asked for before a batch is handed on (`_send_ahead`): the server
reads and sends them while this batch is parsed and committed, instead of after. They are
read back before any other command is sent, and only by UID, so what arrives is used for the
messages it belongs to or not at all; a dropped connection loses only that head start.
Likewise `ack` sends its STORE without waiting for the answer, which arrives while the next
bodies are read; a later `ack` looks at the answers that have come (`_confirm_marks`): a
refusal then fails the sync as it would have, and a STORE whose connection dropped is sent
again. What is left is waited for at `close`, where a failure is one of the sync's problems:
that mail stays unread, and the next sync marks it read without fetching it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from imapclient import IMAPClient

from mailbridge.connectors import imap_fetch
from mailbridge.connectors.base import Batch, Fetched, SourceState, too_large
from mailbridge.connectors.imap_session import DROPPED, ImapSession, ImapSettings
from mailbridge.domain.source import SourceRef
from mailbridge.errors import MailbridgeError, NetworkError, RemoteError

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOPPED = "not fetched to the end: the sync was stopping"

BATCH_MESSAGES = 100
BATCH_BYTES = 4 * 1024 * 1024
SIZE_CHUNK = 1000  # UIDs per RFC822.SIZE query
# Bodies are fetched at most this much per command (a larger message in partial fetches), and
# the caller is asked between commands whether it is stopping: a stop waits for this much of
# transfer at most, not for a whole batch or a 50 MB message.
FETCH_BYTES = 1024 * 1024
MARKS_IN_FLIGHT = 4  # STOREs of \\Seen sent whose answers are not yet looked for


@dataclass
class FolderPlan:
    """What one sync will read from one folder, decided before anything is fetched."""

    folder: str
    uidvalidity: int
    watermark: int  # every UID up to here has been considered once this sync is done
    todo: list[int]  # UIDs to fetch, ascending
    read_only: set[int]  # UIDs in todo that are there only because of import_read
    repair: list[int]  # already committed but still unread: mark read, do not fetch
    arrived: dict[int, datetime] = field(default_factory=dict)  # INTERNALDATE, as fetched


class ImapFetcher:
    def __init__(self, channel: str, settings: ImapSettings) -> None:
        self.channel = channel
        self.settings = settings
        self.session = ImapSession(settings, channel)
        self.mailbox = settings.username
        self.problems: list[str] = []  # a single-source connector fails whole
        self.max_bytes = settings.max_message_mb * 1024 * 1024
        self._ahead: list[tuple[IMAPClient, str]] = []  # (connection, tag) of FETCHes sent ahead
        self._arrived: imap_fetch.Fetched = {}  # what they brought, by UID, until used
        # STOREs of \Seen sent and not yet confirmed: (connection, tag, folder, its refs'
        # (UIDVALIDITY, UID) keys)
        self._marking: list[tuple[IMAPClient, str, str, list[tuple[int, int]]]] = []

    def fetch(self, state: SourceState) -> Iterator[Batch]:
        for folder in self.session.synced_folders():
            yield from self._fetch_folder(folder, state)

    def ack(self, refs: list[SourceRef]) -> None:
        if not self.settings.mark_seen or not refs:
            return
        self._confirm_marks(final=False)
        by_folder: dict[str, list[tuple[int, int]]] = {}
        for ref in refs:
            validity, uid = ref.key.split(":", 1)
            by_folder.setdefault(ref.folder, []).append((int(validity), int(uid)))
        for folder, keys in by_folder.items():
            self.session.call(folder, False, lambda c, f=folder, k=keys: self._mark(c, f, k))

    def _current(self, keys: list[tuple[int, int]]) -> list[int]:
        """Only the UIDs of the folder's current numbering: a ref from before a UIDVALIDITY
        change names a message that UID no longer is (the rescan marks that one)."""
        return [uid for validity, uid in keys if validity == self.session.uidvalidity]

    def _mark(self, client: IMAPClient, folder: str, keys: list[tuple[int, int]]) -> None:
        """Send the STORE of \\Seen, without waiting for its answer."""
        uids = self._current(keys)
        if uids:
            self._marking.append((client, imap_fetch.mark_seen(client, uids), folder, keys))

    def _store_seen(self, client: IMAPClient, keys: list[tuple[int, int]]) -> None:
        """The STORE of \\Seen again, waited for (its first connection was lost)."""
        uids = self._current(keys)
        if uids:
            imap_fetch.confirm(client, imap_fetch.mark_seen(client, uids))

    def _confirm_marks(self, final: bool) -> None:
        """Read the answers to the STOREs `_mark` sent: those that have arrived, or all of
        them when `final` (and beyond the newest MARKS_IN_FLIGHT). A STORE whose connection
        was lost is sent again and waited for; when `final`, those are one NetworkError. A
        refusal is raised once every answer has been looked at."""
        marking, self._marking = self._marking, []
        refused: MailbridgeError | None = None
        lost = 0
        for index, (client, tag, folder, keys) in enumerate(marking):
            if client is self.session.client:
                if not (final or index < len(marking) - MARKS_IN_FLIGHT
                        or imap_fetch.answered(client, tag)):
                    self._marking.append((client, tag, folder, keys))
                    continue
                try:
                    with self.session.translated(folder, reraise_dropped=True):
                        imap_fetch.confirm(client, tag)
                    continue
                except DROPPED as exc:
                    self._dropped(exc)
                except MailbridgeError as exc:
                    refused = refused or exc
                    continue
            if final:
                lost += len(keys)
            else:
                self.session.call(folder, False, lambda c, k=keys: self._store_seen(c, k))
        if refused is not None:
            raise refused
        if lost:
            raise NetworkError(f"{self.session.where}: the connection dropped before the "
                               f"server confirmed {lost} message(s) as read")

    def close(self) -> None:
        try:
            self._confirm_marks(final=True)
        except MailbridgeError as exc:
            self.problems.append(f"{exc}; the next sync marks what is still unread")
        finally:
            self._ahead.clear()
            self._arrived.clear()
            self.session.close()

    def _call(self, folder: str, readonly: bool, action: Callable[[IMAPClient], T]) -> T:
        """`session.call`, once what was sent ahead has been read (see `_send_ahead`)."""
        self._receive_ahead()
        return self.session.call(folder, readonly, action)

    def _send_ahead(self, plan: FolderPlan, sized: list[tuple[int, int]]) -> None:
        """Ask now for the bodies of the batch after this one, read by `_whole` when it comes
        (a message fetched in pieces is not asked for ahead). Only on the connection as it
        is, with the folder selected; a connection that fails here is closed, and the next
        command reconnects."""
        client = self.session.client
        if client is None or self.session.selected != plan.folder:
            return
        try:
            for group, in_pieces in _groups(sized):
                if not in_pieces:
                    self._ahead.append((client, imap_fetch.send(client, group, ["BODY.PEEK[]"])))
        except DROPPED as exc:
            self._dropped(exc)

    def _receive_ahead(self) -> None:
        """Read the answers to what `_send_ahead` asked, if the connection they were asked
        on is still the one in use; before any other command, which would take them."""
        ahead, self._ahead = self._ahead, []
        for client, tag in ahead:
            if client is not self.session.client:
                return
            try:
                with self.session.translated(self.session.selected, reraise_dropped=True):
                    found = imap_fetch.receive(client, tag)
            except RemoteError:  # refused: the same FETCH asked again says why
                continue
            except (*DROPPED, MailbridgeError) as exc:  # maybe read half-way: not read on
                self._dropped(exc)
                return
            for uid, fields in found.items():
                if b"BODY[]" in fields:
                    self._arrived[uid] = fields

    def _dropped(self, exc: BaseException) -> None:
        """The connection failed while commands were outstanding: it is closed, so that the
        next command starts on a new one instead of reading what is left of an answer."""
        log.warning("%s: connection dropped (%s), reconnecting", self.session.where,
                    type(exc).__name__)
        self._ahead.clear()
        self.session.close()

    def _ref(self, plan: FolderPlan, uid: int) -> SourceRef:
        return SourceRef(self.mailbox, plan.folder, f"{plan.uidvalidity}:{uid}")

    def plan(self, folder: str, state: SourceState) -> FolderPlan:
        self._receive_ahead()
        self._arrived.clear()
        readonly = not self.settings.mark_seen
        info = self.session.select(folder, readonly)
        uidvalidity = self.session.uidvalidity or 0
        top = int(info.get(b"UIDNEXT", 1)) - 1
        cursor = state.cursor(self.mailbox, folder)
        same = cursor is not None and cursor.get("uidvalidity") == uidvalidity
        last = int(cursor["last_uid"]) if same and cursor else None

        if self.settings.since is not None:
            return self._copy_plan(folder, state, uidvalidity, top, last)
        unseen = set(self._call(folder, readonly, lambda c: c.search(["UNSEEN"])))
        newer: set[int] = set()
        if self.settings.import_read and last is not None and top > last:
            found = self._call(folder, readonly,
                               lambda c: c.search(["UID", f"{last + 1}:*"]))
            newer = {uid for uid in found if uid > last}  # n:* always matches the last UID
        candidates = unseen | newer
        top = max([top, *candidates]) if candidates else top
        keys = {uid: f"{uidvalidity}:{uid}" for uid in candidates}
        known = state.known(self.mailbox, folder, keys.values())
        todo = sorted(uid for uid in candidates if keys[uid] not in known)
        repair = sorted(uid for uid in unseen if keys[uid] in known)
        if cursor is not None and not same and len(todo) > self.settings.max_rescan:
            raise RemoteError(
                f"channel {self.channel}: folder {folder} on {self.settings.host} changed its "
                f"UIDVALIDITY ({cursor.get('uidvalidity')} → {uidvalidity}); {len(todo)} "
                "unread messages would be read again, more than incoming.max_rescan "
                f"({self.settings.max_rescan})",
                "check the mailbox; if it was restored or migrated on purpose, raise "
                "incoming.max_rescan for one sync (duplicates are still skipped)")
        return FolderPlan(folder, uidvalidity, max(top, last or 0), todo,
                          set(todo) - unseen, repair)

    def _copy_plan(self, folder: str, state: SourceState, uidvalidity: int, top: int,
                   last: int | None) -> FolderPlan:
        """Engagements and sales: every message that arrived since the window's start, read
        or not, that is not in the ledger yet; nothing is ever marked (the folder is opened
        read-only). SEARCH SINCE compares whole days in the server's time zone, so it asks
        from the day before; `_batches` drops what arrived before the start (INTERNALDATE)."""
        since = self.settings.since
        assert since is not None
        day = since.date() - timedelta(days=1)
        found = self._call(folder, True, lambda c: c.search(["SINCE", day]))
        keys = {uid: f"{uidvalidity}:{uid}" for uid in found}
        known = state.known(self.mailbox, folder, keys.values())
        todo = sorted(uid for uid in found if keys[uid] not in known)
        return FolderPlan(folder, uidvalidity, max([top, last or 0, *found]), todo, set(), [])

    def _fetch_folder(self, folder: str, state: SourceState) -> Iterator[Batch]:
        plan = self.plan(folder, state)
        if plan.repair and self.settings.mark_seen:
            log.info("%s: marking %d already stored message(s) read again", folder,
                     len(plan.repair))
            self.ack([self._ref(plan, uid) for uid in plan.repair])
        pending_read = sorted(plan.read_only)
        batches = self._batches(plan)
        following = next(batches, None)
        while following is not None:
            sized, oversize = following
            items = [Fetched(self._ref(plan, uid), None,
                             too_large(size, self.settings.max_message_mb),
                             plan.arrived.get(uid))
                     for uid, size in oversize]
            bodies = self._bodies(plan, sized, state)
            items += bodies
            stopped = len(bodies) < len(sized)
            if stopped:  # what was not read is left for the next sync, read mail included
                done = sized[len(bodies)][0] - 1
            else:
                done = max([*(u for u, _ in sized), *(u for u, _ in oversize)])
            pending_read = [u for u in pending_read if u > done]
            # The watermark may pass read mail only once it is committed, or import_read
            # would lose what a crash interrupted; unread mail is found by UNSEEN anyway.
            mark = min(plan.watermark, pending_read[0] - 1) if pending_read else plan.watermark
            following = None if stopped else next(batches, None)
            if following is not None and not state.stopping():
                self._send_ahead(plan, following[0])
            yield Batch(self.mailbox, folder, items, self._cursor(plan, mark))
            if stopped:
                return
        yield Batch(self.mailbox, folder, [], self._cursor(plan, plan.watermark))

    def _cursor(self, plan: FolderPlan, last_uid: int) -> dict[str, Any]:
        return {"uidvalidity": plan.uidvalidity, "last_uid": last_uid}

    def _batches(self, plan: FolderPlan
                 ) -> Iterator[tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
        """(UID, size) in batches bounded by count and bytes; oversize messages are set apart.
        Each message's INTERNALDATE (when the server received it) is kept in `plan.arrived`;
        in the copy modes one that arrived before `since` is left out."""
        readonly = not self.settings.mark_seen
        since = self.settings.since
        uids: list[tuple[int, int]] = []
        oversize: list[tuple[int, int]] = []
        size_sum = 0
        for start in range(0, len(plan.todo), SIZE_CHUNK):
            chunk = plan.todo[start:start + SIZE_CHUNK]
            sizes = self._call(
                plan.folder, readonly,
                lambda c, u=chunk: imap_fetch.fetch(c, u, ["RFC822.SIZE", "INTERNALDATE"]))
            for uid in chunk:
                arrived = _arrival(sizes.get(uid, {}).get(b"INTERNALDATE"))
                if arrived is not None:
                    plan.arrived[uid] = arrived
                    if since is not None and arrived < since:
                        continue
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if size > self.max_bytes:
                    oversize.append((uid, size))
                    continue
                if uids and (len(uids) >= BATCH_MESSAGES or size_sum + size > BATCH_BYTES):
                    yield uids, oversize
                    uids, oversize, size_sum = [], [], 0
                uids.append((uid, size))
                size_sum += size
        if uids or oversize:
            yield uids, oversize

    def _bodies(self, plan: FolderPlan, sized: list[tuple[int, int]],
                state: SourceState) -> list[Fetched]:
        """The messages in order, up to FETCH_BYTES per command; fewer than asked for when
        the caller began stopping meanwhile (only whole messages are returned)."""
        items: list[Fetched] = []
        for group, in_pieces in _groups(sized):
            if state.stopping():
                break
            if in_pieces:
                items.append(self._in_pieces(plan, group[0], state))
                if items[-1].error == _STOPPED:
                    items.pop()
                    break
            else:
                items += self._whole(plan, group)
        return items

    def _whole(self, plan: FolderPlan, uids: list[int]) -> list[Fetched]:
        """Bodies in one command, or as they came for `_send_ahead`."""
        self._receive_ahead()
        if all(uid in self._arrived for uid in uids):
            data = {uid: self._arrived.pop(uid) for uid in uids}
        else:  # not asked ahead, or the connection it was asked on was lost
            for uid in uids:
                self._arrived.pop(uid, None)
            readonly = not self.settings.mark_seen
            data = self._call(plan.folder, readonly,
                              lambda c: imap_fetch.fetch(c, uids, ["BODY.PEEK[]"]))
        return [self._fetched(plan, uid, data.get(uid, {}).get(b"BODY[]")) for uid in uids]

    def _in_pieces(self, plan: FolderPlan, uid: int, state: SourceState) -> Fetched:
        """One large message in partial fetches (RFC 3501 `BODY.PEEK[]<start.count>`)."""
        readonly = not self.settings.mark_seen
        pieces: list[bytes] = []
        start = 0
        for _ in range(self.max_bytes // FETCH_BYTES + 1):
            item = f"BODY.PEEK[]<{start}.{FETCH_BYTES}>"
            data = self._call(plan.folder, readonly,
                              lambda c, i=item: imap_fetch.fetch(c, [uid], [i]))
            piece = data.get(uid, {}).get(f"BODY[]<{start}>".encode())
            if piece is None:
                return self._fetched(plan, uid, None)
            pieces.append(piece)
            start += len(piece)
            if len(piece) < FETCH_BYTES:
                return self._fetched(plan, uid, b"".join(pieces))
            if state.stopping():
                return Fetched(self._ref(plan, uid), None, _STOPPED)
        return Fetched(self._ref(plan, uid), None, too_large(start, self.settings.max_message_mb))

    def _fetched(self, plan: FolderPlan, uid: int, raw: bytes | None) -> Fetched:
        error = None if raw is not None else "the server returned no body (deleted?)"
        return Fetched(self._ref(plan, uid), raw, error, plan.arrived.get(uid))


def _groups(sized: list[tuple[int, int]]) -> Iterator[tuple[list[int], bool]]:
    """The UIDs of `sized` in the groups one FETCH asks for: up to FETCH_BYTES each, a larger
    message alone and fetched in pieces (the second value says which)."""
    group: list[int] = []
    group_bytes = 0
    for index, (uid, size) in enumerate(sized):
        group.append(uid)
        group_bytes += size
        following = sized[index + 1][1] if index + 1 < len(sized) else None
        if following is not None and group_bytes + following <= FETCH_BYTES:
            continue
        yield group, len(group) == 1 and size > FETCH_BYTES
        group, group_bytes = [], 0


def _arrival(internaldate: datetime | None) -> datetime | None:
    """INTERNALDATE as an aware time: IMAPClient gives it as naive local time."""
    return internaldate.astimezone(UTC) if internaldate is not None else None
