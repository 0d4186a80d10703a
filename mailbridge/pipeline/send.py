"""Draining the outbox through a channel's sender, one row at a time (store/outbox.py has the
states). Each row is committed as `sending` before the transaction starts and as its outcome
after, so no crash can make it go out twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailbridge.connectors.base import SendFailed, SendUnknown
from mailbridge.errors import MailbridgeError
from mailbridge.store import outbox
from mailbridge.store.db import Store

MAX_ATTEMPTS = 5  # temporary refusals before a row is `failed` for the operator


class Sender(Protocol):
    def check(self) -> dict[str, Any]:
        """Reach and log in to the server (or find the program) without sending."""
        ...

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        """Returns refused recipients; raises SendFailed, SendUnknown or MailbridgeError."""
        ...

    def close(self) -> None: ...


@dataclass
class DrainResult:
    channel: str
    sent: int = 0
    retry: int = 0  # left pending after a temporary refusal
    failed: int = 0
    unknown: int = 0
    error: MailbridgeError | None = None  # the connection itself failed; the rest waits
    notes: list[str] = field(default_factory=list)


def drain(db: Store, channel: str, sender: Sender, owner: str,
          should_stop: Callable[[], bool] = lambda: False,
          alive: set[str] = frozenset()) -> DrainResult:
    """Send `channel`'s pending rows as `owner`. Rows left `sending` by a sender that is not
    `alive` (a crashed process, a host whose heartbeat stopped) become `unknown`."""
    result = DrainResult(channel)
    with db.atomic():
        for row in outbox.interrupted(db, channel, alive | {owner}):
            result.unknown += 1
            result.notes.append(f"outbox #{row}: interrupted while sending; now unknown")
    last = 0  # each row once per drain: one refused for now waits for the next
    try:
        while not should_stop():
            row = outbox.claim_next(db, channel, owner, last)
            if row is None or not _send_one(db, row, sender, result):
                break
            last = row["id"]
    finally:
        sender.close()
    return result


def _send_one(db: Store, row: dict, sender: Sender, result: DrainResult) -> bool:
    """False when the connection failed and the rest of the channel's rows should wait."""
    ident = row["id"]
    try:
        refused = sender.send(row["envelope_from"], row["recipients"], outbox.raw_of(db, ident))
    except MailbridgeError as exc:  # could not connect or log in: nothing was sent
        with db.atomic():
            outbox.set_state(db, ident, outbox.PENDING, exc.message)
        result.error = exc
        return False
    except SendUnknown as exc:
        with db.atomic():
            outbox.set_state(db, ident, outbox.UNKNOWN, str(exc))
        result.unknown += 1
        result.notes.append(f"outbox #{ident}: {exc}")
        return True
    except SendFailed as exc:
        final = exc.permanent or row["attempts"] >= MAX_ATTEMPTS
        with db.atomic():
            outbox.set_state(db, ident, outbox.FAILED if final else outbox.PENDING, str(exc))
        if final:
            result.failed += 1
            result.notes.append(f"outbox #{ident}: {exc}")
        else:
            result.retry += 1
            result.notes.append(f"outbox #{ident}: {exc} (tried again at the next sync)")
        return True
    note = "; ".join(f"{k} refused: {v}" for k, v in refused.items()) or None
    with db.atomic():
        outbox.set_state(db, ident, outbox.SENT, note)
    result.sent += 1
    if note:
        result.notes.append(f"outbox #{ident}: sent, but {note}")
    return True
