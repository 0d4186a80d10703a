"""Who a reply goes to. Usedesk sends one letter to each recipient and keeps the whole
correspondence in one ticket: every address the client side put on the conversation — the
sender, To and Cc of each incoming message, not only the latest — minus our own addresses
and the mailers that only ever answered automatically (out-of-office replies, bounces).

A message with Reply-To is answered there instead of to its sender (RFC 5322 §3.6.2: the
addresses "to which the author of the message suggests that replies be sent"): a web form
that mails from noreply@ with the customer in Reply-To is answered to the customer, and
noreply@ is mailed only if it also wrote without Reply-To."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from mailbridge.domain import checks
from mailbridge.domain.classify import AUTO_REPLY, BOUNCE, OWN_LOOP

_AUTOMATIC = frozenset({AUTO_REPLY, BOUNCE, OWN_LOOP})
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})  # never a person, whatever they sent


@dataclass(frozen=True)
class Incoming:
    """One incoming message of the ticket, as far as its addresses go."""

    classification: str | None  # None: stored raw, could not be parsed
    sender: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()

    def author(self) -> tuple[str, ...]:
        """Where the author asks to be answered: Reply-To, else the sender."""
        return self.reply_to or (self.sender,)


def usable_reply_to(addresses: Iterable[str], own: Iterable[str]) -> tuple[str, ...]:
    """The addresses of a Reply-To a reply may go to: well-formed (`Reply-To: "Jane Doe"`
    parses to a name with no address) and none of our own (a mailer that puts ours there
    would have us answer ourselves). None left: the sender is answered, as without one."""
    ours = {a.lower() for a in own}
    return tuple(a for a in addresses
                 if checks.refusal("address", checks.email, a) is None and a.lower() not in ours)


def unique(addresses: Iterable[str], own: Iterable[str]) -> tuple[str, ...]:
    """Each address once (ignoring case, first spelling kept), never one of our own."""
    seen = {a.lower() for a in own}
    found: list[str] = []
    for address in addresses:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            found.append(address)
    return tuple(found)


def conversation(requester: str, incoming: Sequence[Incoming],
                 own: Iterable[str], answer_machines: bool = False) -> tuple[str, ...]:
    """The requester first, then everyone else in the order they joined the conversation.
    An address whose every message was automatic is left out (an out-of-office reply that
    comes back to each answer must not make its sender a recipient), and so is a mail daemon;
    an automatic message's own To/Cc add nobody either. With `answer_machines` (a ticket an
    automatic mail opened, which the agent has chosen to answer) automatic senders are
    recipients too; mail daemons still never are."""
    own = tuple(own)
    incoming = [replace(m, reply_to=usable_reply_to(m.reply_to, own)) for m in incoming]
    people = {m.sender.lower() for m in incoming
              if answer_machines or m.classification not in _AUTOMATIC}
    machines = {m.sender.lower() for m in incoming
                if m.classification in _AUTOMATIC and m.sender.lower() not in people}
    machines |= {a.lower() for m in incoming for a in (m.sender, *m.to, *m.cc)
                 if a.partition("@")[0].lower() in _DAEMONS}
    redirected = ({m.sender.lower() for m in incoming if m.reply_to}
                  - {m.sender.lower() for m in incoming if not m.reply_to}
                  - {a.lower() for m in incoming for a in m.reply_to})
    first = next((m for m in incoming if m.sender.lower() == requester.lower()), None)
    found = list(first.author() if first is not None else (requester,))
    for m in incoming:
        if m.classification not in _AUTOMATIC:
            found.extend((*m.author(), *m.to, *m.cc))
        elif answer_machines:
            found.append(m.sender)
    return unique(found, [*own, *machines, *redirected])


def adjust(found: Sequence[str], to: Sequence[str] = (), cc: Sequence[str] = (),
           drop: Sequence[str] = ()) -> tuple[str, ...]:
    """`tickets reply --to/--cc/--drop`: `to` replaces the conversation's list, `cc` adds to
    it, `drop` leaves addresses out. Raises ValueError naming an address to drop that is
    not on the list (a typo would otherwise go unnoticed)."""
    base = list(to) if to else list(found)
    listed = {a.lower() for a in (*base, *cc)}
    missing = [a for a in drop if a.lower() not in listed]
    if missing:
        raise ValueError(", ".join(missing))
    gone = {a.lower() for a in drop}
    return unique([a for a in (*base, *cc) if a.lower() not in gone], ())
