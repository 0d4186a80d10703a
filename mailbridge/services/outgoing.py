"""Replies, forwards and alert mail: composed from the ticket, stored as the ticket's outgoing
message, queued in the outbox (one row per recipient), and sent when the outbox is drained
(by `sync` unless --no-send, by `run`'s outbox job)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mailbridge.config import secrets
from mailbridge.config.model import Channel, Config
from mailbridge.connectors.sendmail import SendmailSender
from mailbridge.connectors.smtp import DEFAULT_PORTS, SmtpSender, SmtpSettings
from mailbridge.domain import checks, compose, recipients
from mailbridge.domain.checks import choice, require
from mailbridge.domain.workflow import WOKEN_BY_AGENT
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.pipeline.prepare import prepare
from mailbridge.pipeline.send import ByEnvelope, DrainResult, Sender, drain
from mailbridge.services import fleet
from mailbridge.services.agents import acting
from mailbridge.services.briefs import AUTOMATIC_KINDS, Brief, brief
from mailbridge.services.listing import Listing, cut
from mailbridge.store import agents, comments, messages, outbox, tickets
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, write_transaction

# Where our own quote begins in an outgoing message we stored: "On <date>, <name> wrote:"
_OUR_QUOTE_RE = re.compile(r"\n\nOn [^\n]+ wrote:\n>", re.S)


@dataclass(frozen=True)
class Queued:
    ticket: int
    message: int
    outbox: tuple[int, ...]
    recipients: tuple[str, ...]


def sender_for(channel: Channel) -> Sender:
    out = channel.outgoing
    if out is None:
        raise UsageError(f"channel {channel.name} has no outgoing connection",
                         "add an [channel.outgoing] table (see config.example.toml)")
    return _build_sender(out, channel.name, channel.apps)


def _build_sender(out: dict[str, Any], label: str, apps: dict[str, dict[str, Any]]) -> Sender:
    """A sender for an outgoing table: a channel's, or `[alerts] outgoing` (`label` names the
    channel in messages)."""
    if out["type"] == "smtp":
        return SmtpSender(smtp_settings(out), label)
    if out["type"] == "sendmail":
        return SendmailSender(tuple(out["command"]), label, out["timeout"])
    from mailbridge.services import m365

    return m365.build_sender(out, label, apps)


def smtp_settings(out: dict[str, Any]) -> SmtpSettings:
    return SmtpSettings(
        host=out["host"], port=out["port"] or DEFAULT_PORTS[out["security"]],
        security=out["security"], username=out["username"],
        password=secrets.resolve(out["password"]) if out.get("password") else None,
        timeout=out["timeout"], ca_file=out["ca_file"])


def from_address(channel: Channel) -> str:
    """Usedesk: replies come from the additional e-mail when the main one is closed to us."""
    out = channel.outgoing or {}
    found = out.get("from_email") or channel.additional_email or channel.main_email
    if not found:
        raise UsageError(f"channel {channel.name} has no address to send from",
                         "set main_email (or outgoing.from_email) for the channel")
    return found


@dataclass(frozen=True)
class Addressing:
    """`tickets reply --to/--cc/--drop`: `to` replaces the conversation's recipients, `cc`
    adds to them, `drop` leaves some out."""

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


def plan_reply(config: Config, ticket: int, addressing: Addressing = Addressing(),
               agent: str | None = None, attachments: tuple[Path, ...] = ()) -> Brief:
    """Everything about a reply that can be checked before its text is written (read-only):
    the ticket and its channel, an outgoing connection and its secret, the agent, the
    attachments, and who it goes to (`recipients`: each gets a mail of their own)."""
    read_attachments(attachments)
    with reading(config.store) as db:
        row, channel = _ticket(db, config, ticket)
        acting(db, config, agent)
        return brief(db, row, _recipients(db, channel, row, addressing))


def plan_forward(config: Config, ticket: int, agent: str | None = None,
                 attachments: tuple[Path, ...] = ()) -> Brief:
    """What `plan_reply` checks, for a forward (read-only)."""
    read_attachments(attachments)
    with reading(config.store) as db:
        row, _channel = _ticket(db, config, ticket)
        acting(db, config, agent)
        return brief(db, row)


def reply(config: Config, ticket: int, text: str, agent: str | None = None,
          attachments: tuple[Path, ...] = (), to: Sequence[str] | None = None) -> Queued:
    """Queue a reply to `to` (default: the conversation's recipients, as `plan_reply` lists
    them). A closed ticket is reopened (a pending one stays pending)."""
    files = read_attachments(attachments)
    with write_transaction(config.store) as db:
        return _queue_reply(db, config, ticket, text, acting(db, config, agent), files, to)


def forward(config: Config, ticket: int, to: str, text: str, agent: str | None = None,
            attachments: tuple[Path, ...] = ()) -> Queued:
    files = read_attachments(attachments)
    with write_transaction(config.store) as db:
        return _queue_forward(db, config, ticket, to, text, acting(db, config, agent), files)


def _ticket(db: Store, config: Config, ticket: int) -> tuple[dict[str, Any], Channel]:
    row = tickets.get(db, ticket)
    if row is None:
        raise NotFoundError(f"no ticket #{ticket}", "see `mailbridge tickets list`")
    channel = config.channel(row["channel"])
    if channel is None:
        raise NotFoundError(f"ticket #{ticket} belongs to channel {row['channel']}, which is no "
                            "longer in the config", "add the channel back to answer it")
    sender_for(channel)  # fail now, not at drain time, when it cannot send at all
    return row, channel


def _recipients(db: Store, channel: Channel, row: dict[str, Any],
                addressing: Addressing) -> tuple[str, ...]:
    own = (*channel.own_addresses, from_address(channel).lower())
    for flag, given in (("--to", addressing.to), ("--cc", addressing.cc)):
        for address in given:
            address = require(flag, checks.email, address)
            if address.lower() in own:
                raise UsageError(f"{flag} {address}: that is channel {channel.name}'s own "
                                 "address; mail to it would only come back")
    incoming = [
        recipients.Incoming(m["classification"], m["from_email"],
                            tuple(a["email"] for a in m["to"]),
                            tuple(a["email"] for a in m["cc"]),
                            tuple(a["email"] for a in m["reply_to"]))
        for m in tickets.messages_of(db, row["id"]) if m["direction"] == "in"]
    found = recipients.conversation(row["requester_email"], incoming, own,
                                    answer_machines=row["kind"] in AUTOMATIC_KINDS)
    try:
        chosen = recipients.adjust(found, addressing.to, addressing.cc, addressing.drop)
    except ValueError as exc:
        raise UsageError(f"--drop {exc}: not among the recipients "
                         f"({', '.join(found) or 'none'})") from None
    if not chosen:
        raise UsageError(f"ticket #{row['id']} has nobody to reply to",
                         "name someone with --to ADDR (the requester is one of the channel's "
                         "own addresses, a mail daemon, or only ever answered automatically)")
    return chosen


def _queue_reply(db: Store, config: Config, ticket: int, text: str, agent: str | None,
                 files: tuple[compose.Attachment, ...],
                 to: Sequence[str] | None) -> Queued:
    row, channel = _ticket(db, config, ticket)
    history = tickets.messages_of(db, ticket)
    last_in = next((m for m in reversed(history) if m["direction"] == "in"), None)
    if to is None:
        to = _recipients(db, channel, row, Addressing())
    in_reply_to, references = (messages.thread_ids(db, last_in["id"]) if last_in
                               else (None, ()))
    draft = compose.Draft(
        ticket=ticket, subject=row["subject"], body=text, **_sender(channel),
        recipients=tuple(to), signature=signature_for(db, channel, agent),
        history=_history(history), quote=channel.quoting != "none",
        in_reply_to=in_reply_to, references=references, attachments=files)
    return _store_and_queue(db, channel, ticket, draft, "reply")


def _queue_forward(db: Store, config: Config, ticket: int, to: str, text: str,
                   agent: str | None, files: tuple[compose.Attachment, ...]) -> Queued:
    row, channel = _ticket(db, config, ticket)
    rows = tickets.messages_of(db, ticket)
    target = ticket
    if channel.forward_creates_ticket:  # Usedesk "Forwarding — a new ticket"
        target = tickets.create(db, channel.name, queue=row["queue"], subject=row["subject"],
                                requester_name="", requester_email=to, kind="human")
    draft = compose.Draft(
        ticket=target, subject=row["subject"], body=text, **_sender(channel),
        recipients=(to,), signature=signature_for(db, channel, agent), history=_history(rows),
        quote=True, attachments=files, prefix="Fwd")
    queued = _store_and_queue(db, channel, target, draft, "forward")
    if target != ticket:
        # "with all correspondence added to the comment field", whatever the quoting mode
        # keeps in the forwarded message itself; the original names where it went
        everything = _history(rows, limit=None)[::-1]
        comments.add(db, target, agent or "", f"Forwarded from ticket #{ticket} to {to}. "
                     f"The correspondence:\n\n{compose.transcript(everything)}")
        comments.add(db, ticket, agent or "", f"Forwarded to {to} as new ticket #{target}.")
    return queued


def _sender(channel: Channel) -> dict[str, str]:
    return {"from_name": (channel.outgoing or {}).get("from_name") or "",
            "from_email": from_address(channel)}


def signature_for(db: Store, channel: Channel, agent: str | None) -> str:
    """The signature of a mail `agent` (a known agent's name, or None) sends on `channel`."""
    personal = agents.get(db, agent)["signature"] if agent is not None else ""
    return compose.choose_signature(personal, channel.signature, channel.use_common_signature)


def _history(rows: list[dict[str, Any]], limit: int | None = compose.MAX_QUOTED
             ) -> tuple[compose.Quoted, ...]:
    """The conversation newest first, at most `limit` messages (None: all); our own earlier
    quotes are cut so history never nests."""
    quoted = []
    for m in reversed(rows):
        text = m["text"] or ""
        if m["direction"] == "out":
            text = _OUR_QUOTE_RE.split(text, maxsplit=1)[0]
        stamp = m["sent_at"] or m["stored_at"]
        quoted.append(compose.Quoted(m["from_name"], m["from_email"],
                                     datetime.fromisoformat(stamp) if stamp else None, text))
    return tuple(quoted[:limit])


def _store_and_queue(db: Store, channel: Channel, ticket: int, draft: compose.Draft,
                     kind: str) -> Queued:
    def file(message: int) -> None:
        # an answer to a closed ticket reopens it; a pending one still waits for the customer
        tickets.add_message(db, ticket, message, wakes=WOKEN_BY_AGENT)

    message, rows = store_and_queue(db, channel, draft, kind, file, ticket=ticket)
    return Queued(ticket, message, rows, draft.recipients)


def store_and_queue(db: Store, channel: Channel, draft: compose.Draft, kind: str,
                    file: Callable[[int], None], ticket: int | None = None,
                    opportunity: int | None = None) -> tuple[int, tuple[int, ...]]:
    """Compose the draft, store it as the channel's outgoing message (its text as the
    conversation keeps it), `file` it (on its ticket or opportunity: that event comes
    first), and queue one outbox row per recipient, about `ticket` or `opportunity`.
    Returns the stored message and the rows. The stored copy is the first recipient's
    mail, so a copy that comes back from Sent Items has its fingerprint."""
    domain = draft.from_email.rpartition("@")[2]
    made = compose.compose(draft, uuid.uuid4().hex[:16], domain)
    first = made.copies[0][1]
    prep = prepare(first, channel.own_addresses)
    message = messages.insert(db, channel.name, prep.fingerprint, first, prep.parsed, "human",
                              prep.parse_error, direction="out")
    if channel.quoting == "send_to_client":  # the client gets the history, the ticket not
        messages.set_text(db, message, made.unquoted)
    file(message)
    bcc = (channel.outgoing or {}).get("bcc")
    rows = tuple(
        outbox.queue(db, channel.name, ticket, message, kind, draft.from_email,
                     [recipient, *([bcc] if bcc else [])], raw, opportunity)
        for recipient, raw in made.copies)
    return message, rows


def read_attachments(paths: tuple[Path, ...]) -> tuple[compose.Attachment, ...]:
    found = []
    for path in paths:
        try:
            found.append(compose.Attachment(path.name, path.read_bytes()))
        except OSError as exc:
            raise UsageError(f"{path}: cannot attach: {exc.strerror}") from None
    return tuple(found)


def drain_all(db: Store, config: Config, names: list[str] | None = None,
              should_stop: Callable[[], bool] = lambda: False) -> list[DrainResult]:
    """Send what the outbox holds for each channel: through its outgoing connection, or for
    a channel without one (only alert mail is queued there) through `[alerts] outgoing`."""
    results = []
    alive = fleet.alive(db, config)
    for channel in config.channels:
        if names and channel.name not in names:
            continue
        if not outbox.depth(db, channel.name):
            continue
        sender = _channel_sender(config, channel)
        if sender is None:
            continue
        results.append(drain(db, channel.name, sender, fleet.owner(), should_stop, alive,
                             config.pace))
    return results


def _channel_sender(config: Config, channel: Channel) -> Sender | None:
    """The channel's outgoing connection, else `[alerts] outgoing` (only alert mail is queued
    for a channel without one); a Microsoft 365 sales channel sends each agent's mail as
    that agent's own mailbox (services/opportunity_mail.py queues it)."""
    fallback = None
    if channel.outgoing is not None:
        fallback = sender_for(channel)
    elif config.alerts.outgoing is not None:
        fallback = _build_sender(config.alerts.outgoing, f"{channel.name} via [alerts] outgoing",
                                 config.alerts.apps)
    if channel.sends_as_mailboxes:
        from mailbridge.services import m365

        return ByEnvelope(m365.mailbox_senders(channel), fallback)
    return fallback


def list_outbox(config: Config, states: tuple[str, ...] = (), limit: int | None = None
                ) -> Listing:
    """The outbox; a row a crash left `sending` is listed as `unknown` unless the process
    (or host) that may be sending it is still running (so every row is read, then cut)."""
    for state in states:
        require("outbox state", choice(*outbox.STATES), state)
    if not exists(config.store):
        return Listing(())
    with reading(config.store) as db:
        return cut(outbox.list_rows(db, states, fleet.sending_alive(db, config)), limit)


def change_outbox(config: Config, ids: list[int], action: str) -> list[dict[str, Any]]:
    """`retry` (failed, unknown → pending) or `cancel` (pending, failed, unknown)."""
    allowed = {"retry": (outbox.FAILED, outbox.UNKNOWN, outbox.PENDING),
               "cancel": (outbox.PENDING, outbox.FAILED, outbox.UNKNOWN)}[action]
    target = outbox.PENDING if action == "retry" else outbox.CANCELLED
    with write_transaction(config.store) as db:
        changed = []
        for ident in ids:
            row = outbox.get(db, ident)
            if row is None:
                raise NotFoundError(f"no outbox row #{ident}", "see `mailbridge outbox list`")
            if row["state"] == outbox.SENDING:  # we hold the write lock: no drain is sending
                row["state"] = outbox.UNKNOWN
            if row["state"] not in allowed:
                raise UsageError(f"outbox #{ident} is {row['state']}; only "
                                 f"{', '.join(allowed)} rows can be {action}ed")
            outbox.set_state(db, ident, target, f"{action} by the operator")
            changed.append({**row, "state": target})
        return changed


def test_outgoing(channel: Channel, send_to: str | None = None) -> dict[str, Any]:
    """Log in to the outgoing server without sending; with `send_to`, send one test mail."""
    sender = sender_for(channel)
    report: dict[str, Any] = {"type": (channel.outgoing or {})["type"], **sender.check()}
    if send_to:
        sent_from = from_address(channel)
        made = compose.compose(compose.Draft(
            ticket=None, subject=f"mailbridge test of channel {channel.name}",
            body=f"This is a test message from mailbridge channel {channel.name}.",
            **_sender(channel), recipients=(send_to,), automatic=True),
            uuid.uuid4().hex[:16], sent_from.rpartition("@")[2])
        try:
            refused = sender.send(sent_from, [send_to], made.copies[0][1])
        finally:
            sender.close()
        report["test_mail"] = {"to": send_to, "message_id": made.message_id,
                               "refused": refused}
    return report


def test_alerts_outgoing(config: Config) -> dict[str, Any]:
    """Log in to `[alerts] outgoing` without sending (`doctor`): the connection alert mail
    of channels without their own takes, checked before an alert needs it."""
    out = config.alerts.outgoing
    assert out is not None
    sender = _build_sender(out, "[alerts] outgoing", config.alerts.apps)
    try:
        return {"type": out["type"], **sender.check()}
    finally:
        sender.close()


ALERT_MAILS_PER_HOUR = 5  # per recipient: automatic mail must never flood anyone


def queue_alert_mail(db: Store, config: Config, channel_name: str, subject: str,
                     body: str) -> list[int]:
    """Mail an alert about a channel to the agents who opted in (notify_no_messages), through
    that channel's outgoing connection, else through `[alerts] outgoing`; nothing when there
    is neither. Queued under the channel's name, sent at the next drain."""
    channel = config.channel(channel_name)
    if channel is None:
        return []
    if channel.outgoing is not None:
        sender = _sender(channel)
    elif config.alerts.outgoing is not None and config.alerts.from_email:
        sender = {"from_name": config.alerts.outgoing.get("from_name") or "mailbridge",
                  "from_email": config.alerts.from_email}
    else:
        return []
    recipients = [a["email"] for a in agents.list_agents(db) if a["notify_no_messages"]]
    recipients = [r for r in recipients if outbox.recent(db, r, "alert") < ALERT_MAILS_PER_HOUR]
    if not recipients:
        return []
    sent_from = sender["from_email"]
    made = compose.compose(compose.Draft(
        ticket=None, subject=subject, body=body, **sender,
        recipients=tuple(recipients), automatic=True),
        uuid.uuid4().hex[:16], sent_from.rpartition("@")[2])
    return [outbox.queue(db, channel.name, None, None, "alert", sent_from, [rcpt], raw)
            for rcpt, raw in made.copies]
