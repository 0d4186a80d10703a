"""Microsoft 365 incoming mail over Graph, for one channel's mailboxes under one app.

Which mail: tickets mode takes the unread mail of the whole mailbox (`/messages`, every
folder) except the folders a help desk never reads (junk, drafts, deleted items, outbox, sent
items, conversation history and the like, found by their well-known names); engagements and
sales copy everything received since the window's start, sent items included. The listing is
read in full before any message is fetched, because marking mail read while paging an
`isRead eq false` listing would shift its `$skip` pages and skip mail.

Fetching: the MIME (`$value`) of 20 messages per `$batch`; `isRead` is set in `ack`, after
the commit, 20 per `$batch` too, so a large mailbox costs about 0.1 requests per message.
Immutable ids make the ledger key stable when a person moves a message. A message committed
but still unread (an ack that failed) is only marked read again, never fetched.

One mailbox failing (no access, no such mailbox, a revoked sign-in) does not stop the others:
its problem is kept in `problems` and the sync reports a partial failure."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from mailbridge.connectors.base import Batch, Fetched, SourceState
from mailbridge.connectors.graph.http import GraphClient, segment
from mailbridge.domain.source import SourceRef
from mailbridge.errors import MailbridgeError

log = logging.getLogger(__name__)

FOLDER = "messages"  # ledger folder: immutable ids are unique in the whole mailbox
BATCH_MESSAGES = 100
PAGE = 500  # listing page size ($top; Graph allows up to 1000)
NEVER_READ = ("junkemail", "drafts", "deleteditems", "outbox", "conversationhistory",
              "syncissues", "conflicts", "localfailures", "serverfailures",
              "recoverableitemsdeletions", "scheduled")
EPOCH = "1900-01-01T00:00:00Z"


@dataclass(frozen=True)
class GraphSettings:
    mailboxes: tuple[str, ...]
    mark_read: bool = True  # tickets mode; engagements and sales only copy
    since: datetime | None = None  # copy modes: everything received since then


class GraphFetcher:
    def __init__(self, channel: str, client: GraphClient, settings: GraphSettings) -> None:
        self.channel, self.client, self.settings = channel, client, settings
        self.problems: list[str] = []

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
        skipped = self._skipped_folders(mailbox)
        listed = [m["id"] for m in self._listing(mailbox) if m.get("parentFolderId")
                  not in skipped]
        known = state.known(mailbox, FOLDER, listed)
        todo = [mid for mid in listed if mid not in known]
        if self.settings.mark_read and known:
            log.info("%s: marking %d already stored message(s) read again", mailbox, len(known))
            self._mark_read(mailbox, [mid for mid in listed if mid in known])
        for start in range(0, len(todo), BATCH_MESSAGES):
            ids = todo[start:start + BATCH_MESSAGES]
            yield Batch(mailbox, FOLDER, self._bodies(mailbox, ids))

    def _skipped_folders(self, mailbox: str) -> set[str]:
        names = list(NEVER_READ)
        if self.settings.mark_read:
            names.append("sentitems")  # a help desk does not file its own sent mail
        base = f"/users/{segment(mailbox)}/mailFolders/"
        parts = self.client.batch([("GET", f"{base}{n}?$select=id", None) for n in names],
                                  mailbox)
        found = set()
        for part in parts:
            if part.ok:
                found.add(part.body["id"])
            elif part.status != 404:  # a folder this mailbox does not have is fine
                raise part.failure(self.client.label)
        return found

    def _listing(self, mailbox: str) -> list[dict]:
        if self.settings.since is not None:
            since = self.settings.since.strftime("%Y-%m-%dT%H:%M:%SZ")
            query = f"receivedDateTime ge {since}"
        else:
            # Graph sorts only by a property the filter names first ("InefficientFilter")
            query = f"receivedDateTime ge {EPOCH} and isRead eq false"
        params = {"$filter": query, "$orderby": "receivedDateTime asc",
                  "$select": "id,parentFolderId", "$top": str(PAGE)}
        found: list[dict] = []
        for page in self.client.pages(f"/users/{segment(mailbox)}/messages", mailbox, params):
            found.extend(page)
        return found

    def _bodies(self, mailbox: str, ids: list[str]) -> list[Fetched]:
        base = f"/users/{segment(mailbox)}/messages/"
        parts = self.client.batch([("GET", f"{base}{segment(mid)}/$value", None) for mid in ids],
                                  mailbox)
        items = []
        for mid, part in zip(ids, parts, strict=True):
            ref = SourceRef(mailbox, FOLDER, mid)
            if part.ok:
                items.append(Fetched(ref, part.content()))
            else:
                code, message = part.error()
                items.append(Fetched(ref, None, f"{mailbox}: {code}: {message}".rstrip(": ")))
        return items

    def _mark_read(self, mailbox: str, ids: list[str]) -> None:
        base = f"/users/{segment(mailbox)}/messages/"
        parts = self.client.batch([("PATCH", f"{base}{segment(mid)}", {"isRead": True})
                                   for mid in ids], mailbox)
        for part in parts:
            if not part.ok and part.status != 404:  # deleted meanwhile: nothing to mark
                raise part.failure(self.client.label)

