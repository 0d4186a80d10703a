"""Which mailbox sends a quotation (`opportunities quote`): the "Setting Overrides" rules of
the sales-mailboxes document, first that applies wins:

1. the mailbox named on the command (`--from`: the document's "mailbox settings on the
   action", which override the quotation setting);
2. the client's "Mailbox override for Quotation emails" (`clients set --quotation-mailbox`),
   which "will override the global setting for quotations";
3. `[sales] quotation_from = ADDRESS`: that one mailbox sends every quotation;
4. `quotation_from = "sales_mailboxes"` (the default): "the sending Agent's personal
   mailbox", their own sales mailbox;
5. an agent without one: `[sales] fallback_mailbox`;
6. no fallback either: "no restriction on the from address": the agent picks with `--from`,
   and without it the error lists what they may pick.

An agent may pick (`--from`) their own sales mailbox, one that is no agent's, or one the
settings name for quotations (the fallback, the global address, the client's), never
another agent's personal mailbox ("the agent chosen here will be the only agent able to send
emails from this address"). Whatever decides, the address must be one of the sales
mailboxes mailbridge can send from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailbridge.errors import UsageError

SALES_MAILBOXES = "sales_mailboxes"  # [sales] quotation_from: each agent's own mailbox


@dataclass(frozen=True)
class Mailbox:
    """A sales mailbox mailbridge sends from, and whose personal mailbox it is (None: no
    agent is named for it: it is the agent named as its address, if one is)."""

    address: str
    agent: str | None

    def owned_by(self, agent: str) -> bool:
        return (self.agent or self.address).casefold() == agent.casefold()


@dataclass(frozen=True)
class Settings:
    """What decides the sender besides the command: the config's [sales] keys and the
    opportunity's client (its name and quotation mailbox, if any)."""

    quotation_from: str = SALES_MAILBOXES  # or one address for every quotation
    fallback: str | None = None
    client: str = ""
    client_mailbox: str | None = None


@dataclass(frozen=True)
class Choice:
    address: str
    rule: str  # action, client, global, own, fallback
    reason: str


def choose_sender(agent: str, mailboxes: Sequence[Mailbox], settings: Settings,
                  action_from: str | None = None) -> Choice:
    """The mailbox that sends `agent`'s quotation and why (the rules above), spelt as
    `mailboxes` spell it; a UsageError names the known mailboxes when the address decided
    on is not one of them, or lists the agent's choices when nothing decides."""
    if action_from:
        _may_pick(agent, mailboxes, settings, action_from)
        return _known(mailboxes, action_from, "action", "--from on the command wins over the "
                      "client's and the global setting", "--from")
    if settings.client_mailbox:
        return _known(mailboxes, settings.client_mailbox, "client",
                      f"client {settings.client}'s quotation mailbox wins over the global "
                      "setting", f"client {settings.client}'s quotation mailbox")
    if settings.quotation_from != SALES_MAILBOXES:
        return _known(mailboxes, settings.quotation_from, "global",
                      "[sales] quotation_from names it for every quotation",
                      "[sales] quotation_from")
    own = next((m for m in mailboxes if m.owned_by(agent)), None)
    if own is not None:
        return Choice(own.address, "own", f"{agent}'s own sales mailbox ([sales] "
                      f'quotation_from = "{SALES_MAILBOXES}")')
    if settings.fallback:
        return _known(mailboxes, settings.fallback, "fallback",
                      f"[sales] fallback_mailbox: {agent} has no sales mailbox of their own",
                      "[sales] fallback_mailbox")
    choices = _choices(agent, mailboxes, settings)
    if not choices:
        raise UsageError(f"agent {agent} has no sales mailbox, no [sales] fallback_mailbox is "
                         "set and no sales mailbox is free to choose",
                         f"give {agent} a sales mailbox, or set [sales] fallback_mailbox")
    raise UsageError(f"agent {agent} has no sales mailbox and no [sales] fallback_mailbox "
                     "is set: choose the sender with --from ADDR",
                     f"{agent} may send from: {', '.join(choices)}")


def _named(settings: Settings) -> set[str]:
    """The mailboxes the settings name for quotations: anyone may send a quotation from
    them."""
    named = (settings.fallback, settings.client_mailbox,
             None if settings.quotation_from == SALES_MAILBOXES else settings.quotation_from)
    return {a.casefold() for a in named if a}


def _choices(agent: str, mailboxes: Sequence[Mailbox], settings: Settings) -> list[str]:
    named = _named(settings)
    return [m.address for m in mailboxes
            if m.agent is None or m.owned_by(agent) or m.address.casefold() in named]


def _may_pick(agent: str, mailboxes: Sequence[Mailbox], settings: Settings,
              address: str) -> None:
    """Another agent's personal mailbox is theirs alone, unless the settings name it for
    quotations."""
    found = next((m for m in mailboxes if m.address.casefold() == address.casefold()), None)
    if (found is not None and found.agent is not None and not found.owned_by(agent)
            and address.casefold() not in _named(settings)):
        choices = _choices(agent, mailboxes, settings)
        raise UsageError(f"{found.address} is {found.agent}'s sales mailbox: only "
                         f"{found.agent} sends from it",
                         f"{agent} may send from: {', '.join(choices) or 'none'}")


def known_mailbox(mailboxes: Sequence[Mailbox], address: str, source: str) -> Mailbox:
    """The mailbox `address` names (in any case), else a UsageError naming `source` (where
    the address comes from) and the known ones."""
    found = next((m for m in mailboxes if m.address.casefold() == address.casefold()), None)
    if found is None:
        known = ", ".join(m.address for m in mailboxes) or "none (no sales channel)"
        raise UsageError(f"{address} ({source}) is no sales mailbox mailbridge can send from",
                         f"known sales mailboxes: {known}")
    return found


def _known(mailboxes: Sequence[Mailbox], address: str, rule: str, reason: str,
           source: str) -> Choice:
    return Choice(known_mailbox(mailboxes, address, source).address, rule, reason)


def subject(summary: str) -> str:
    return f"Quotation: {summary}"


def default_text(summary: str) -> str:
    return f"Hello,\n\nplease find attached our quotation for {summary}.\n"
