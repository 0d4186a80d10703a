"""Microsoft 365 incoming mail over Graph, for one channel's mailboxes under one app.

Which mail: tickets mode takes the unread mail of the whole mailbox (`/messages`, every
folder) except the folders the mode never reads (graph/folders.py: junk, drafts, deleted
items, outbox, sent items, conversation history, RSS feeds and the like); engagements and
sales copy everything received since the window's start (receivedDateTime), sent items
included, from the folders they read. The listing is
read in full before any message is fetched, because marking mail read while paging an
`isRead eq false` listing would shift its `$skip` pages and skip mail.

Fetching: the MIME (`$value`) of 20 messages per `$batch`; `isRead` is set in `ack`, after
the commit, 20 per `$batch` too, so a large mailbox costs about 0.1 requests per message.
Immutable ids make the ledger key stable when a person moves a message. A message committed
but still unread (an ack that failed) is only marked read again, never fetched.

Mail a person read before the sync (`import_read`): each folder's `messages/delta` link
(changeType=created) is kept as its watermark, saved with the batch that commits what it
found, so the next round names every message created in the folder since. Those that are
already read, arrived after the previous round (Graph's clock, so a person moving old mail
into a folder does not make it new) and are not in the ledger are imported too. The rounds
run before the unread listing, so nothing arriving in between falls through. An expired
delta link (410 `syncStateNotFound`, `resyncRequired`) starts a new round from the old
link's time; the ledger keeps that from doubling anything. Delta rounds go 20 folders to a
`$batch`, so a poll of a mailbox costs a few requests whatever its folder count.

Size: the listing and the delta rounds expand each message's PidTagMessageSize, so a message
over max_message_mb is reported and never downloaded (and, being unacked, stays unread).

One mailbox failing (no access, no such mailbox, a revoked sign-in) does not stop the others:
its problem is kept in `problems` and the sync reports a partial failure."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from mailbridge.connectors.base import Batch, Fetched, SourceState, too_large
from mailbridge.connectors.graph.folders import mail_folders
from mailbridge.connectors.graph.http import BATCH_LIMIT, GraphClient, segment
from mailbridge.domain.source import SourceRef
from mailbridge.errors import MailbridgeError

log = logging.getLogger(__name__)

FOLDER = "messages"  # ledger folder: immutable ids are unique in the whole mailbox
BATCH_MESSAGES = 100
PAGE = 500  # listing page size ($top; Graph allows up to 1000)
EPOCH = "1900-01-01T00:00:00Z"
DELTA = "delta/"  # cursor folder prefix: one delta link per mail folder
RESYNC = ("syncStateNotFound", "resyncRequired")
SKEW = timedelta(minutes=5)  # between Graph's answer time and a message's receivedDateTime
FIRST_ROUND = timedelta(days=2)  # a folder's first round lists only this much (skew-proof)
# v1.0's message has no size; the MAPI property PidTagMessageSize (0x0E08) does, asked for
# alongside the listing (and the delta rounds) so an oversize message is never downloaded.
SIZE_PROPERTY = "Integer 0x0E08"
EXPAND_SIZE = f"singleValueExtendedProperties($filter=id eq '{SIZE_PROPERTY}')"


@dataclass(frozen=True)
class GraphSettings:
    mailboxes: tuple[str, ...]
    mark_read: bool = True  # tickets mode; engagements and sales only copy
    mode: str = "tickets"  # which folders are read (domain/folders.py)
    since: datetime | None = None  # copy modes: everything received since then
    import_read: bool = False  # tickets mode: also mail a person read before the sync
    max_message_mb: int = 50


class GraphFetcher:
    def __init__(self, channel: str, client: GraphClient, settings: GraphSettings) -> None:
        self.channel, self.client, self.settings = channel, client, settings
        self.problems: list[str] = []
        self._read_already: set[str] = set()  # imported from a delta round: nothing to mark

    def fetch(self, state: SourceState) -> Iterator[Batch]:
        failures: list[MailbridgeError] = []
        for mailbox in self.settings.mailboxes:
            try:
                yield from self._fetch_mailbox(mailbox, state)
            except MailbridgeError as exc:
                log.info("%s: %s", mailbox, exc)
                failures.append(exc)
                self.problems.append(f"{mailbox}: {exc}")  # with its remedy, if any
        if failures and len(failures) == len(self.settings.mailboxes) \
                and len({type(f) for f in failures}) == 1:
            self.problems.clear()
            raise failures[0]  # nothing worked, for one reason: that reason is the outcome

    def ack(self, refs: list[SourceRef]) -> None:
        if not self.settings.mark_read or not refs:
            return
        by_mailbox: dict[str, list[str]] = {}
        for ref in refs:
            if ref.key not in self._read_already:
                by_mailbox.setdefault(ref.mailbox, []).append(ref.key)
        for mailbox, ids in by_mailbox.items():
            try:
                self._mark_read(mailbox, ids)
            except MailbridgeError as exc:  # committed anyway; the next sync marks it again
                self.problems.append(f"{mailbox}: could not mark mail read: {exc.message}")

    def close(self) -> None:
        """Nothing to close: the HTTP session belongs to the app's sign-in, which lives as
        long as the process, so `run` keeps its connections to Microsoft between syncs."""

    def _fetch_mailbox(self, mailbox: str, state: SourceState) -> Iterator[Batch]:
        folders = mail_folders(self.client, mailbox, self.settings.mode)
        if self.settings.import_read and self.settings.mark_read:
            yield from self._read_arrivals(mailbox, folders.read, state)
        listed = {m["id"]: _sized(m) for m in self._listing(mailbox)
                  if m.get("parentFolderId") not in folders.skipped}
        known = state.known(mailbox, FOLDER, listed)
        todo = [sized for mid, sized in listed.items() if mid not in known]
        if self.settings.mark_read and known:
            log.info("%s: marking %d already stored message(s) read again", mailbox, len(known))
            self._mark_read(mailbox, [mid for mid in listed if mid in known])
        for start in range(0, len(todo), BATCH_MESSAGES):
            yield Batch(mailbox, FOLDER, self._bodies(mailbox, todo[start:start + BATCH_MESSAGES]))

    def _read_arrivals(self, mailbox: str, folders: list[str], state: SourceState
                       ) -> Iterator[Batch]:
        """Read mail created in each of `folders` since its last delta round; one or more
        batches per folder, the last carrying the folder's new delta link."""
        base = f"/users/{segment(mailbox)}/mailFolders"
        cursors = {fid: state.cursor(mailbox, DELTA + fid) for fid in folders}
        # A folder new since the last sync counts from the mailbox's last round, so mail
        # filed there meanwhile is not lost.
        last = min((c["since"] for c in cursors.values() if c), default=None)
        taken: set[str] = set()
        for start in range(0, len(folders), BATCH_LIMIT):
            group = folders[start:start + BATCH_LIMIT]
            calls = [("GET", self.client.relative(cursors[fid]["delta"]) if cursors[fid]
                      else self._first_round(base, fid, last), None) for fid in group]
            parts = self.client.batch(calls, mailbox)
            batched = self.client.server_date or datetime.now(UTC)
            for fid, part in zip(group, parts, strict=True):
                since = cursors[fid]["since"] if cursors[fid] else last
                began = batched  # when this folder's round started, by Graph's clock
                if part.status == 410 or part.error()[0] in RESYNC:
                    log.info("%s: a folder's delta link expired; starting a new round", mailbox)
                    first = self.client.get(self._first_round(base, fid, since), mailbox)
                    began = self.client.server_date or datetime.now(UTC)
                elif part.status == 404:  # deleted since the folder listing
                    continue
                elif not part.ok:
                    raise part.failure(self.client.label)
                else:
                    first = part.body
                found, link = self._round(first, mailbox)
                cursor = {"delta": link, "since": began.isoformat()} if link else None
                yield from self._arrivals(mailbox, fid, found, since, cursor, state, taken)

    def _first_round(self, base: str, fid: str, since: str | None) -> str:
        start = _floor(since) or datetime.now(UTC) - FIRST_ROUND
        query = {"changeType": "created", "$select": "id,isRead,receivedDateTime",
                 "$filter": f"receivedDateTime ge {_stamp(start)}", "$expand": EXPAND_SIZE}
        return f"{base}/{segment(fid)}/messages/delta?" + urlencode(query, quote_via=quote,
                                                                    safe="$,:")

    def _round(self, page: dict[str, Any], mailbox: str) -> tuple[list[dict], str | None]:
        """Every item of a delta round begun with `page`, and the round's delta link."""
        items = list(page.get("value", []))
        while page.get("@odata.nextLink"):
            page = self.client.get(page["@odata.nextLink"], mailbox)
            items.extend(page.get("value", []))
        return items, page.get("@odata.deltaLink")

    def _arrivals(self, mailbox: str, fid: str, found: list[dict], since: str | None,
                  cursor: dict[str, str] | None, state: SourceState, taken: set[str]
                  ) -> Iterator[Batch]:
        """`since` None: the folder's first round, which only sets the watermark."""
        floor = _floor(since)
        read = {m["id"]: _sized(m) for m in found if floor is not None and "@removed" not in m
                and m.get("isRead") and _received(m) >= floor and m["id"] not in taken}
        known = state.known(mailbox, FOLDER, read)
        todo = [sized for mid, sized in read.items() if mid not in known]
        taken.update(m.id for m in todo)
        self._read_already.update(m.id for m in todo)
        for start in range(0, len(todo), BATCH_MESSAGES):
            chunk = todo[start:start + BATCH_MESSAGES]
            items = self._bodies(mailbox, chunk)
            # A download that failed keeps the old link, so the next round finds it again;
            # read mail too large to fetch is reported once, as over IMAP, and does not hold
            # the link back.
            if any(item.error for item, sized in zip(items, chunk, strict=True)
                   if self._fits(sized.size)):
                cursor = None
            yield Batch(mailbox, DELTA + fid, items)
        yield Batch(mailbox, DELTA + fid, [], cursor)  # after everything it covers

    def _listing(self, mailbox: str) -> list[dict]:
        if self.settings.since is not None:
            since = _stamp(self.settings.since)
            query = f"receivedDateTime ge {since}"
        else:
            # Graph sorts only by a property the filter names first ("InefficientFilter")
            query = f"receivedDateTime ge {EPOCH} and isRead eq false"
        params = {"$filter": query, "$orderby": "receivedDateTime asc",
                  "$select": "id,parentFolderId,receivedDateTime", "$expand": EXPAND_SIZE,
                  "$top": str(PAGE)}
        found: list[dict] = []
        for page in self.client.pages(f"/users/{segment(mailbox)}/messages", mailbox, params):
            found.extend(page)
        return found

    def _fits(self, size: int | None) -> bool:
        return size is None or size <= self.settings.max_message_mb * 1048576

    def _bodies(self, mailbox: str, listed: list[Listed]) -> list[Fetched]:
        """The MIME of each message, in order; one over max_message_mb is not downloaded."""
        ids = [m.id for m in listed if self._fits(m.size)]
        base = f"/users/{segment(mailbox)}/messages/"
        parts = dict(zip(ids, self.client.batch(
            [("GET", f"{base}{segment(mid)}/$value", None) for mid in ids], mailbox),
            strict=True))
        items = []
        for m in listed:
            ref = SourceRef(mailbox, FOLDER, m.id)
            part = parts.get(m.id)
            if part is None:
                items.append(Fetched(ref, None, too_large(m.size or 0,
                                                          self.settings.max_message_mb),
                                     m.received))
            elif part.ok:
                items.append(Fetched(ref, part.content(), arrived=m.received))
            else:
                code, message = part.error()
                items.append(Fetched(ref, None, f"{mailbox}: {code}: {message}".rstrip(": "),
                                     m.received))
        return items

    def _mark_read(self, mailbox: str, ids: list[str]) -> None:
        base = f"/users/{segment(mailbox)}/messages/"
        parts = self.client.batch([("PATCH", f"{base}{segment(mid)}", {"isRead": True})
                                   for mid in ids], mailbox)
        for part in parts:
            if not part.ok and part.status != 404:  # deleted meanwhile: nothing to mark
                raise part.failure(self.client.label)



@dataclass(frozen=True)
class Listed:
    """A message as a listing or a delta round names it."""

    id: str
    size: int | None  # None: Graph gave no usable size
    received: datetime | None  # receivedDateTime: when the server received (or sent) it


def _sized(message: dict[str, Any]) -> Listed:
    received = _received(message) if message.get("receivedDateTime") else None
    return Listed(message["id"], _size(message), received)


def _size(message: dict[str, Any]) -> int | None:
    """PidTagMessageSize from the expanded extended properties; None when Graph gave none
    (Graph writes the id back in its own spelling, e.g. "Integer 0xe08")."""
    for prop in message.get("singleValueExtendedProperties") or []:
        kind, _, tag = str(prop.get("id", "")).partition(" ")
        if kind.lower() == "integer" and tag.lower() in ("0xe08", "0x0e08"):
            try:
                return int(prop["value"])
            except (KeyError, TypeError, ValueError):  # no usable size: fetch it anyway
                return None
    return None


def _received(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message.get("receivedDateTime", EPOCH).replace("Z", "+00:00"))


def _floor(since: str | None) -> datetime | None:
    """The earliest receivedDateTime a round since `since` (Graph's clock) counts as new."""
    return datetime.fromisoformat(since) - SKEW if since else None


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
