"""Mail on opportunities (`opportunities reply`, `opportunities mail`, `opportunities
quote`). Replies and mail are sent from the acting agent's own sales mailbox — "from the
address of the agent completing the action, not the agent assigned to the ticket", and "the
agent chosen here will be the only agent able to send emails from this address" (the
sales-mailboxes document); a quotation from the sales mailbox the rules of
domain/quotation.py pick (the command's --from, the client's, [sales]). It goes through the
outbox exactly as a ticket reply does (services/outgoing.py), over Microsoft 365 as that
mailbox or over the IMAP sales channel's [channel.outgoing]; the customer's answer threads
back to the opportunity (pipeline/sales.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mailbridge.config.model import Channel, Config
from mailbridge.domain import checks, compose, quotation
from mailbridge.domain.checks import label, require
from mailbridge.domain.recipients import usable_reply_to
from mailbridge.domain.threading import bare_subject
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services import agents as acting_agents
from mailbridge.services import outgoing
from mailbridge.services.briefs import Brief
from mailbridge.store import contacts, messages, sales
from mailbridge.store.db import Store
from mailbridge.store.session import reading, write_transaction

REPLY, MAIL, QUOTE = "opportunity reply", "opportunity mail", "opportunity quote"  # outbox kinds


@dataclass(frozen=True)
class SalesMailbox:
    channel: Channel
    address: str
    agent: str | None = None  # whose personal mailbox it is (None: no agent is named)


@dataclass(frozen=True)
class Queued:
    opportunity: int
    agent: str
    sent_from: str
    message: int
    outbox: tuple[int, ...]
    recipients: tuple[str, ...]


def sales_mailboxes(config: Config) -> list[SalesMailbox]:
    """Every sales mailbox mailbridge sends from, with its agent: each enabled Microsoft 365
    mailbox of an enabled sales channel (a mailbox without an agent is its channel's
    agent's), and each enabled IMAP (or drop) sales channel's (its owner's address, or
    outgoing.from_email; its channel's agent's)."""
    found = []
    for channel in config.channels:
        if channel.mode != "sales" or not channel.enabled:
            continue
        if channel.sends_as_mailboxes:
            found.extend(SalesMailbox(channel, box["address"], box.get("agent") or channel.agent
                                      or None)
                         for box in channel.mailboxes if box["enabled"])
        elif channel.owner_addresses:
            address = (channel.outgoing or {}).get("from_email") or channel.owner_addresses[0]
            found.append(SalesMailbox(channel, address, channel.agent or None))
    return found


def sales_mailbox(config: Config, agent: str) -> SalesMailbox | None:
    """The agent's own sales mailbox: the first of `sales_mailboxes` whose agent they are
    (a mailbox no agent is named for is the agent named as its address)."""
    wanted = agent.casefold()
    return next((box for box in sales_mailboxes(config)
                 if (box.agent or box.address).casefold() == wanted), None)


@dataclass(frozen=True)
class _Sending:
    """Who sends on which opportunity, from where, and why from there."""

    opportunity: dict[str, Any]
    agent: str
    box: SalesMailbox
    choice: quotation.Choice


# Picks the mailbox (and says why) for the acting agent, on an opportunity.
Chooser = Callable[[Store, Config, dict[str, Any], str], tuple[SalesMailbox, quotation.Choice]]


def require_mailbox(config: Config, agent: str) -> SalesMailbox:
    """The agent's own sales mailbox, or a one-line error: a mailbox sends only for its own
    agent (replies, mail and campaigns go from it, or not at all)."""
    box = sales_mailbox(config, agent)
    if box is None:
        raise UsageError(f"agent {agent} has no sales mailbox to send from",
                         "a sales channel's mailbox sends only for its own agent (the "
                         "mailbox's `agent`, or an IMAP sales channel's `agent`)")
    return box


def _own_mailbox(db: Store, config: Config, opportunity: dict[str, Any], agent: str
                 ) -> tuple[SalesMailbox, quotation.Choice]:
    """Replies and mail go from the acting agent's own sales mailbox, or not at all."""
    box = require_mailbox(config, agent)
    return box, quotation.Choice(box.address, "own", f"{agent}'s own sales mailbox")


def _quotation_mailbox(action_from: str | None) -> Chooser:
    """Quotations go from the mailbox the rules of domain/quotation.py pick."""
    wanted = require("--from", checks.email, action_from) if action_from else None

    def choose(db: Store, config: Config, opportunity: dict[str, Any], agent: str
               ) -> tuple[SalesMailbox, quotation.Choice]:
        client = opportunity["client"]
        settings = quotation.Settings(
            config.sales.quotation_from, config.sales.fallback_mailbox, client,
            contacts.quotation_mailbox(db, client) if client else None)
        boxes = sales_mailboxes(config)
        choice = quotation.choose_sender(agent, _mailboxes(boxes), settings, wanted)
        return next(b for b in boxes if b.address == choice.address), choice
    return choose


def require_sales_mailbox(config: Config, address: str, source: str) -> str:
    """`address` as the config spells it, if mailbridge can send from it; else a one-line
    error naming the sales mailboxes it can send from (or the missing outgoing connection)."""
    address = require(source, checks.email, address)
    boxes = sales_mailboxes(config)
    found = quotation.known_mailbox(_mailboxes(boxes), address, source).address
    box = next(b for b in boxes if b.address == found)
    if not box.channel.sends_as_mailboxes:
        outgoing.sender_for(box.channel)
    return found


def _mailboxes(boxes: list[SalesMailbox]) -> list[quotation.Mailbox]:
    return [quotation.Mailbox(b.address, b.agent) for b in boxes]


def plan_reply(config: Config, opportunity: int, agent: str | None,
               attachments: tuple[Path, ...] = ()) -> Brief:
    """Everything a reply needs that can be checked before its text is written (read-only):
    the opportunity, its latest incoming mail, the acting agent and their sales mailbox,
    the attachments."""
    outgoing.read_attachments(attachments)
    with reading(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities reply")
        last = _last_incoming(db, config, opportunity)
        return _brief(sending, _quoted(last), _answer_to(last, sending.box))


def reply(config: Config, opportunity: int, text: str, agent: str | None,
          attachments: tuple[Path, ...] = ()) -> Queued:
    """Queue the acting agent's answer to the opportunity's latest incoming mail, from their
    own sales mailbox, threaded to it; the stored copy is filed on the opportunity."""
    files = outgoing.read_attachments(attachments)
    with write_transaction(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities reply")
        last = _last_incoming(db, config, opportunity)
        in_reply_to, references = messages.thread_ids(db, last["id"])
        subject = bare_subject(last["subject"]) or sending.opportunity["summary"]
        return _queue(db, sending, REPLY, text, f"Re: {subject}", _answer_to(last, sending.box),
                      files, history=(_quoted(last),), in_reply_to=in_reply_to,
                      references=references)


def plan_mail(config: Config, opportunity: int, agent: str | None, to: Sequence[str] = (),
              cc: Sequence[str] = (), attachments: tuple[Path, ...] = ()) -> Brief:
    """What `plan_reply` checks, for a new mail: the recipients (default: the contact)."""
    outgoing.read_attachments(attachments)
    with reading(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities mail")
        return _brief(sending, None, _recipients(sending, to, cc))


def mail(config: Config, opportunity: int, text: str, agent: str | None, subject: str | None,
         to: Sequence[str] = (), cc: Sequence[str] = (),
         attachments: tuple[Path, ...] = ()) -> Queued:
    """Queue a new mail on the opportunity from the acting agent's own sales mailbox, to
    `to` (default: the opportunity's contact) and `cc`, one mail each; `subject` defaults
    to the opportunity's summary. Its answer threads back to the opportunity."""
    files = outgoing.read_attachments(attachments)
    subject = require("--subject", label, subject) if subject is not None else None
    with write_transaction(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities mail")
        return _queue(db, sending, MAIL, text, subject or sending.opportunity["summary"],
                      _recipients(sending, to, cc), files)


@dataclass(frozen=True)
class QuotePlan:
    """What `opportunities quote` will do, known before its text is written."""

    brief: Brief
    agent: str
    sender: quotation.Choice
    subject: str
    text: str  # the default text
    file: str  # the quotation's file name


def plan_quote(config: Config, opportunity: int, agent: str | None, file: Path,
               action_from: str | None = None, subject: str | None = None) -> QuotePlan:
    """Everything a quotation needs that can be checked before its text is written
    (read-only): the opportunity and its contact, the acting agent, the mailbox that sends
    it and why (domain/quotation.py), the file."""
    outgoing.read_attachments((file,))
    subject = require("--subject", label, subject) if subject is not None else None
    with reading(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities quote",
                           _quotation_mailbox(action_from))
        summary = sending.opportunity["summary"]
        return QuotePlan(_brief(sending, None, _recipients(sending, (), ())), sending.agent,
                         sending.choice, subject or quotation.subject(summary),
                         quotation.default_text(summary), file.name)


def quote(config: Config, opportunity: int, text: str, agent: str | None, file: Path,
          action_from: str | None = None, subject: str | None = None) -> Queued:
    """Queue the quotation `file` to the opportunity's contact, from the mailbox the rules
    pick; its answer threads back to the opportunity."""
    files = outgoing.read_attachments((file,))
    subject = require("--subject", label, subject) if subject is not None else None
    with write_transaction(config.store) as db:
        sending = _sending(db, config, opportunity, agent, "opportunities quote",
                           _quotation_mailbox(action_from))
        return _queue(db, sending, QUOTE, text,
                      subject or quotation.subject(sending.opportunity["summary"]),
                      _recipients(sending, (), ()), files)


def _queue(db: Store, sending: _Sending, kind: str, text: str, subject: str,
           recipients: tuple[str, ...], files: tuple[compose.Attachment, ...],
           **threading: Any) -> Queued:
    """Compose and queue through the outbox as a ticket reply is; the stored copy is filed
    on the opportunity as `sent`."""
    channel, name = sending.box.channel, sending.agent
    draft = compose.Draft(
        ticket=None, subject=subject, body=text,
        from_name=(channel.outgoing or {}).get("from_name") or name,
        from_email=sending.box.address, recipients=recipients,
        signature=outgoing.signature_for(db, channel, name),
        quote=channel.quoting != "none", attachments=files, **threading)
    opportunity = sending.opportunity["id"]

    def file(message: int) -> None:
        sales.attach(db, opportunity, message, messages.details(db, message)["text"] or "",
                     "sent", f"sent by {name} from {sending.box.address}")

    message, rows = outgoing.store_and_queue(db, channel, draft, kind, file,
                                             opportunity=opportunity)
    return Queued(opportunity, name, sending.box.address, message, rows, recipients)


def _recipients(sending: _Sending, to: Sequence[str], cc: Sequence[str]) -> tuple[str, ...]:
    own = {a.lower() for a in (sending.box.address, *sending.box.channel.owner_addresses)}
    given = [*(require("--to", checks.email, a) for a in to),
             *(require("--cc", checks.email, a) for a in cc)]
    for address in given:
        if address.lower() in own:
            raise UsageError(f"{address} is {sending.agent}'s own sales mailbox; mail to it "
                             "would only come back")
    main = given[:len(to)] or [sending.opportunity["contact_email"]]
    found = tuple(dict.fromkeys(a for a in (*main, *given[len(to):]) if a))
    if not found:
        raise UsageError(f"opportunity #{sending.opportunity['id']} has no contact to mail",
                         "name the recipient with --to ADDR")
    return found


def _sending(db: Store, config: Config, opportunity: int, agent: str | None,
             doing: str, choose: Chooser = _own_mailbox) -> _Sending:
    """The opportunity, the acting agent and the mailbox `choose` picks (their own sales
    mailbox by default), or a one-line error."""
    found = sales.get(db, opportunity)
    if found is None:
        raise NotFoundError(f"no opportunity #{opportunity}",
                            "see `mailbridge opportunities list`")
    name = acting_agents.require_acting(db, config, agent, doing)
    box, choice = choose(db, config, found, name)
    if not box.channel.sends_as_mailboxes:
        outgoing.sender_for(box.channel)  # fail now, not at drain time, when it cannot send
    return _Sending(found, name, box, choice)


def _last_incoming(db: Store, config: Config, opportunity: int) -> dict[str, Any]:
    """The newest mail on the opportunity from outside: not sent by us, nor from any sales
    mailbox (an agent's sent items)."""
    ours = {a for c in config.channels if c.mode == "sales" for a in c.owner_addresses}
    for row in reversed(sales.messages_of(db, opportunity)):
        if row["how"] != "sent" and row["from"] and row["from"].lower() not in ours:
            return messages.details(db, row["message"])
    raise UsageError(f"opportunity #{opportunity} has no incoming mail to answer",
                     f"start one with `mailbridge opportunities mail {opportunity}`")


def _answer_to(last: dict[str, Any], box: SalesMailbox) -> tuple[str, ...]:
    """Where a mail asks to be answered: its Reply-To (RFC 5322) where that is usable, else
    its sender."""
    own = (box.address, *box.channel.owner_addresses)
    return usable_reply_to([a["email"] for a in last["reply_to"]], own) or (last["from_email"],)


def _quoted(last: dict[str, Any]) -> compose.Quoted:
    stamp = last["sent_at"] or last["stored_at"]
    return compose.Quoted(last["from_name"] or "", last["from_email"],
                          datetime.fromisoformat(stamp) if stamp else None, last["text"] or "")


def _brief(sending: _Sending, last: compose.Quoted | None,
           recipients: tuple[str, ...]) -> Brief:
    """What the editor's template shows (the opportunity's id in the ticket's place)."""
    found = sending.opportunity
    return Brief(found["id"], sending.box.channel.name, "", found["summary"], found["status"],
                 "human", last, recipients)
