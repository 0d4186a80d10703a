"""Sales mode (Halo's Sales Mailboxes): which open opportunity (or project) a mail updates, a
new one it opens, or the agent's "My Inbox" for manual handling. Pure rules."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mailbridge.domain.threading import bare_subject

UPDATE, NEW, INBOX = "update", "new", "inbox"
ADDRESS_AND_SUBJECT, DOMAIN = "address_and_subject", "domain"

# Where a reply's quoted history starts: "On … wrote:", Outlook's "-----Original Message-----"
# or "From: …" header block, or the first run of "> " lines.
_CHAIN_RE = re.compile(
    r"(?m)^(?:On .{1,200} wrote:\s*$|-{2,}\s*Original Message\s*-{2,}|"
    r"_{10,}\s*$|From: .+\n(?:Sent|Date): .+|>)")


@dataclass(frozen=True)
class Candidate:
    id: int
    summary: str
    contact: str  # lower case
    updated_at: str
    excluded: bool = False  # its type is excluded from matching
    domains: frozenset[str] = frozenset()  # its client's domains (`clients add --domain`)


@dataclass(frozen=True)
class Decision:
    kind: str  # UPDATE | NEW | INBOX
    opportunity: int | None = None
    ambiguous: tuple[int, ...] = ()  # the other candidates when several matched


def normalized(subject: str) -> str:
    return " ".join(bare_subject(subject).casefold().split())


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def decide(counterparts: Sequence[str], subject: str, candidates: Iterable[Candidate],
           matching: bool, matching_type: str, agent_domains: Iterable[str],
           answers: Sequence[int] = ()) -> Decision:
    """`counterparts`: the sender of received mail, the recipients of sent mail. `answers`:
    the opportunities holding a mail this one replies to (by In-Reply-To and References,
    nearest first): an answer to mail sent on an open opportunity updates it, whatever its
    subject or sender, before the address and domain rules are tried."""
    if not matching:
        return Decision(INBOX)
    open_ones = [c for c in candidates if not c.excluded]
    open_ids = {c.id for c in open_ones}
    threaded = next((i for i in answers if i in open_ids), None)
    if threaded is not None:
        return Decision(UPDATE, threaded)
    others = {a.lower() for a in counterparts}
    if matching_type == ADDRESS_AND_SUBJECT:
        wanted = normalized(subject)
        hits = [c for c in open_ones if c.contact in others and normalized(c.summary) == wanted]
        return _pick(hits) if hits else Decision(NEW)
    ours = {d.lower() for d in agent_domains}
    domains = {domain_of(a) for a in others} - ours
    hits = [c for c in open_ones if domain_of(c.contact) in domains or c.domains & domains]
    return _pick(hits) if hits else Decision(INBOX)


@dataclass(frozen=True)
class Suggestion:
    client: str | None
    reason: str  # why this client, or why none: shown before anything is done


def suggest_client(counterpart: str, contacts: Mapping[str, str],
                   client_domains: Mapping[str, str], agent_domains: Iterable[str]
                   ) -> Suggestion:
    """The client a mail with `counterpart` is about (My Inbox's "Add as CRM Note"): the
    client of that very contact, else the client whose domain it is, else the client of a
    contact at the same domain (the first by client and address; the reason names the
    others). The agent's own domains suggest nothing: a colleague's mail is no client's.
    `contacts`: address (lower case) → client; `client_domains`: domain → client."""
    address = counterpart.lower()
    if address in contacts:
        return Suggestion(contacts[address], f"contact {address} belongs to {contacts[address]}")
    domain = domain_of(address)
    if not domain or domain in {d.lower() for d in agent_domains}:
        return Suggestion(None, f"no suggestion: {domain or address} is your own domain"
                          if domain else "no suggestion: the mail has no sender")
    if domain in client_domains:
        return Suggestion(client_domains[domain], f"domain {domain} is {client_domains[domain]}'s")
    same = sorted((client, email) for email, client in contacts.items()
                  if domain_of(email) == domain)
    if same:
        client, email = same[0]
        others = sorted({c for c, _ in same} - {client})
        also = f"; also of contacts of {', '.join(others)}" if others else ""
        return Suggestion(client, f"domain {domain} is that of {client}'s contact {email}{also}")
    return Suggestion(None, f"no suggestion: no client or contact has the domain {domain}")


def _pick(hits: list[Candidate]) -> Decision:
    """Several candidates: the most recently updated one, and say which others there were."""
    ordered = sorted(hits, key=lambda c: (c.updated_at, c.id), reverse=True)
    return Decision(UPDATE, ordered[0].id, tuple(c.id for c in ordered[1:]))


def without_chain(text: str) -> str:
    """Only the new part of a reply: the quoted history cut (Halo's "Hide email chain")."""
    found = _CHAIN_RE.search(text or "")
    return (text[:found.start()] if found else text or "").rstrip() + "\n"
