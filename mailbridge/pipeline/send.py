"""Draining the outbox through a channel's sender, one row at a time (store/outbox.py has the
states). Each row is committed as `sending` before the transaction starts and as its outcome
after, so no crash can make it go out twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbridge.connectors.base import SendFailed, SendUnknown
from mailbridge.domain.campaigns import Pace
from mailbridge.errors import MailbridgeError
from mailbridge.store import outbox
from mailbridge.store.db import Store

EXCHANGE = Pace()  # Exchange Online's sending limits, the default pace of campaign mail
MAX_ATTEMPTS = 5  # temporary refusals before a row is `failed` for the operator


class Sender(Protocol):
    def check(self) -> dict[str, Any]:
        """Reach and log in to the server (or find the program) without sending."""
        ...

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        """Returns refused recipients; raises SendFailed, SendUnknown or MailbridgeError."""
        ...

    def close(self) -> None: ...


SENT, RETRY, FAILED, UNKNOWN = "sent", "to retry", "failed", "unknown"


@dataclass(frozen=True)
class RowResult:
    """What a drain did with one outbox row."""
    row: int
    to: str  # its recipient (the first, before a BCC)
    outcome: str  # SENT | RETRY (left pending) | FAILED | UNKNOWN
    detail: str = ""  # the error; for a sent row, recipients the server refused

    @property
    def problem(self) -> bool:
        return self.outcome != SENT or bool(self.detail)

    def line(self) -> str:
        said = {SENT: "sent", RETRY: "not sent, tried again at the next sync",
                FAILED: "failed for good", UNKNOWN: "unknown, it may have gone out"}
        detail = (", but " if self.outcome == SENT else ": ") + self.detail if self.detail \
            else ""
        to = f" to {self.to}" if self.to else ""
        return f"outbox #{self.row}{to}: {said[self.outcome]}{detail}"


@dataclass
class DrainResult:
    """Every outbox row a drain touched, in order; `error`: the connection itself failed
    (that row waits with the rest)."""
    channel: str
    rows: list[RowResult] = field(default_factory=list)
    error: MailbridgeError | None = None
    waiting: int = 0  # campaign mail left for a later drain (its time, or the pace)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def sent(self) -> int:
        return self.count(SENT)

    @property
    def retry(self) -> int:
        return self.count(RETRY)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def unknown(self) -> int:
        return self.count(UNKNOWN)

    @property
    def notes(self) -> list[str]:
        """A line for each row that did not simply go out."""
        return [r.line() for r in self.rows if r.problem]

    def summary(self) -> str:
        return (f"{self.sent} sent, {self.retry} to retry, {self.failed} failed, "
                f"{self.unknown} unknown")


def drain(db: Store, channel: str, sender: Sender, owner: str,
          should_stop: Callable[[], bool] = lambda: False,
          alive: set[str] = frozenset(), pace: Pace = EXCHANGE) -> DrainResult:
    """Send `channel`'s pending rows that are due as `owner`. Rows left `sending` by a sender
    that is not `alive` (a crashed process, a host whose heartbeat stopped) become `unknown`.
    Campaign mail keeps to `pace`: a mailbox that sent its fill of the last minute or day
    sends no more of it in this drain (it waits for a later one)."""
    result = DrainResult(channel)
    with db.atomic():
        for row in outbox.interrupted(db, channel, alive | {owner}):
            result.rows.append(RowResult(row, "", UNKNOWN, "interrupted while sending"))
    last = 0  # each row once per drain: one refused for now waits for the next
    try:
        while not should_stop():
            held = outbox.busy_senders(db, pace.per_minute, pace.per_day)
            row = outbox.claim_next(db, channel, owner, last, held)
            if row is None or not _send_one(db, row, sender, result):
                break
            last = row["id"]
    finally:
        sender.close()
    result.waiting = outbox.campaign_waiting(db, channel)
    return result


def _send_one(db: Store, row: dict, sender: Sender, result: DrainResult) -> bool:
    """False when the connection failed and the rest of the channel's rows should wait."""
    ident, to = row["id"], row["recipients"][0]
    try:
        refused = sender.send(row["envelope_from"], row["recipients"], outbox.raw_of(db, ident))
    except MailbridgeError as exc:  # could not connect or log in: nothing was sent
        with db.atomic():
            outbox.set_state(db, ident, outbox.PENDING, exc.message)
        result.error = exc
        result.rows.append(RowResult(ident, to, RETRY, exc.message))
        return False
    except SendUnknown as exc:
        with db.atomic():
            outbox.set_state(db, ident, outbox.UNKNOWN, str(exc))
        result.rows.append(RowResult(ident, to, UNKNOWN, str(exc)))
        return True
    except SendFailed as exc:
        final = exc.permanent or row["attempts"] >= MAX_ATTEMPTS
        with db.atomic():
            outbox.set_state(db, ident, outbox.FAILED if final else outbox.PENDING, str(exc))
        result.rows.append(RowResult(ident, to, FAILED if final else RETRY, str(exc)))
        return True
    note = "; ".join(f"{k} refused: {v}" for k, v in refused.items()) or None
    with db.atomic():
        outbox.set_state(db, ident, outbox.SENT, note)
    result.rows.append(RowResult(ident, to, SENT, note or ""))
    return True


class ByEnvelope:
    """A sender per mailbox, chosen by each mail's envelope sender (a Microsoft 365 sales
    channel sends as each agent's own mailbox), else `fallback` (the channel's outgoing
    connection, or the alerts' one). Mail from an address with neither is refused for good:
    it is never sent through another mailbox."""

    def __init__(self, senders: dict[str, Sender], fallback: Sender | None) -> None:
        self.senders = {address.lower(): s for address, s in senders.items()}
        self.fallback = fallback

    def _all(self) -> list[Sender]:
        return [*self.senders.values(), *([self.fallback] if self.fallback else [])]

    def check(self) -> dict[str, Any]:
        return {"mailboxes": {a: s.check() for a, s in self.senders.items()},
                **({"fallback": self.fallback.check()} if self.fallback else {})}

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        found = self.senders.get(envelope_from.lower(), self.fallback)
        if found is None:
            raise SendFailed(f"{envelope_from} is none of the channel's mailboxes; it sends "
                             "only from those", permanent=True)
        return found.send(envelope_from, recipients, raw)

    def close(self) -> None:
        for sender in self._all():
            sender.close()
