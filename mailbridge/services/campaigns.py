"""Mail campaigns (`campaigns send/list/show`): one mail per contact from the acting agent's
own sales mailbox — the sales-mailboxes document has them send "outgoing emails … via actions
on tickets or to send Mail Campaigns", and "the agent chosen here will be the only agent able
to send emails from this address". Each mail goes through the outbox as any other does; its
row waits until its time (`not_before`) and the drain keeps a mailbox's campaign mail within
[campaigns] per_minute and per_day (pipeline/send.py).

A campaign is known by its name (default: its subject): run again — after a crash, or with
more contacts — it queues only the recipients it has not queued yet; the store's key on
(campaign, recipient) makes sure of it, and the outbox's rules send each row once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbridge.config.model import Config
from mailbridge.domain import campaigns as rules
from mailbridge.domain import checks, compose
from mailbridge.domain.checks import label, pick, require
from mailbridge.errors import NotFoundError, UsageError
from mailbridge.services import agents as acting_agents
from mailbridge.services import fleet, outgoing
from mailbridge.services.csv_rows import read_rows
from mailbridge.services.opportunity_mail import SalesMailbox, require_mailbox
from mailbridge.store import campaigns, contacts, names, outbox
from mailbridge.store.db import Store
from mailbridge.store.session import exists, reading, writing_per_commit

KIND = "campaign"  # the outbox rows' kind
CSV_COLUMNS = ("email", "name", "client")
BATCH = 20  # recipients queued per transaction: a killed run keeps whole batches
HINT = "see `mailbridge campaigns list`"
RESULTS = ("queued", "sending", "sent", "failed", "unknown", "cancelled")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    client: str
    where: str  # "contacts.csv:4", or "client ACME" for a stored contact


@dataclass(frozen=True)
class Plan:
    """What `send` will do (all of it when `dry_run`)."""

    name: str
    agent: str
    sent_from: str
    subject: str  # as written, placeholders unfilled
    body: str
    campaign: int | None  # None: a new campaign
    recipients: tuple[Recipient, ...]  # still to queue
    already: int  # queued by an earlier run of the campaign
    preview: tuple[str, str]  # the first mail's subject and text ("" when none is left)


@dataclass(frozen=True)
class Sent:
    plan: Plan
    campaign: int
    queued: int
    first: str | None  # when the first and last of them may go
    last: str | None


def send(config: Config, subject: str, body_file: Path, agent: str | None,
         client: str | None = None, contacts_file: Path | None = None,
         name: str | None = None, dry_run: bool = False) -> Sent | Plan:
    """Queue one mail per recipient (the client's contacts, or the CSV's rows) from the
    acting agent's own sales mailbox, `{name}` and `{client}` filled for each. Everything is
    checked before anything is queued. `dry_run`: the Plan, nothing written."""
    subject = require("--subject", label, subject)
    body = _read_body(body_file)
    for where, text in (("--subject", subject), (str(body_file), body)):
        _check_placeholders(where, text)
    with reading(config.store) as db:
        sender = acting_agents.require_acting(db, config, agent, "campaigns send")
        box = require_mailbox(config, sender)
        if not box.channel.sends_as_mailboxes:
            outgoing.sender_for(box.channel)  # fail now, not at drain time, when it cannot send
        wanted = (_client_contacts(db, client) if client is not None
                  else _csv_contacts(db, contacts_file))
        plan = _plan(db, name or subject, sender, box, subject, body, wanted)
    if dry_run or not plan.recipients:
        return plan
    return _queue(config, plan, box)


def _read_body(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"{path}: the campaign text is empty")
    return text


def _check_placeholders(where: str, text: str) -> None:
    known = ", ".join("{" + p + "}" for p in rules.PLACEHOLDERS)
    try:
        unknown = rules.unknown_placeholders(text)
    except ValueError:
        raise UsageError(f"{where}: a lone {{ or }}",
                         "write {{ or }} for a brace itself; the placeholders are "
                         f"{known}") from None
    if unknown:
        raise UsageError(f"{where}: unknown placeholder {unknown[0]}",
                         f"the placeholders are {known}; write {{{{ or }}}} for a brace")


def _client_contacts(db: Store, client: str) -> list[Recipient]:
    found = pick("client", client, names.known(db, "client"), "see `mailbridge clients list`")
    rows = contacts.contacts(db, found)
    if not rows:
        raise UsageError(f"client {found} has no contacts to mail",
                         f"add some: `mailbridge contacts add EMAIL --client '{found}'`")
    return [Recipient(r["email"], r["name"], r["client"], f"client {found}") for r in rows]


def _csv_contacts(db: Store, path: Path | None) -> list[Recipient]:
    """Every row checked; the first bad one is the error, naming its file and line."""
    if path is None:
        raise UsageError("say whom to mail", "--client NAME or --contacts FILE.csv")
    rows = read_rows(path, ("email",), CSV_COLUMNS)
    known = contacts.by_email(db)
    found, bad = [], []
    for line, row in rows:
        email, name, client = row.get("email", ""), row.get("name", ""), row.get("client", "")
        reason = (checks.refusal("email", checks.email, email)
                  or (name and checks.refusal("name", label, name))
                  or (client and checks.refusal("client", label, client)))
        if reason:
            bad.append(f"{path}:{line}: {reason}" + (f" ({email})" if email else ""))
            continue
        found.append(Recipient(email.strip(), name, client or known.get(email.lower(), ""),
                               f"{path}:{line}"))
    if bad:
        more = (f"{len(bad) - 1} more bad rows: "
                f"{', '.join(b.split(': ', 1)[0] for b in bad[1:6])}"
                f"{' …' if len(bad) > 6 else ''}; " if len(bad) > 1 else "")
        raise UsageError(bad[0], f"{more}fix the file; nothing was queued")
    if not found:
        raise UsageError(f"{path}: no contacts in it", "one row per contact: email,name,client")
    return found


def _plan(db: Store, name: str, agent: str, box: SalesMailbox, subject: str, body: str,
          wanted: list[Recipient]) -> Plan:
    name = require("--name", label, name)
    existing = campaigns.find(db, name)
    if existing is not None:
        _same(existing, agent, subject, body)
    done = campaigns.queued(db, existing["id"]) if existing else set()
    first: dict[str, Recipient] = {}  # an address on several rows is mailed once
    for recipient in wanted:
        first.setdefault(recipient.email.lower(), recipient)
    unique = list(first.values())
    own = {a.lower() for a in (box.address, *box.channel.owner_addresses)}
    for recipient in unique:
        if recipient.email.lower() in own:
            raise UsageError(f"{recipient.where}: {recipient.email} is {agent}'s own sales "
                             "mailbox; mail to it would only come back")
    todo = tuple(r for r in unique if r.email.lower() not in done)
    _check_filled(subject + body, todo)
    preview = _texts(subject, body, todo[0]) if todo else ("", "")
    return Plan(name, agent, box.address, subject, body,
                existing["id"] if existing else None, todo, len(unique) - len(todo), preview)


def _same(existing: dict[str, Any], agent: str, subject: str, body: str) -> None:
    """A campaign run again must be the same mail from the same agent."""
    if (existing["agent"], existing["subject"], existing["body"]) != (agent, subject, body):
        raise UsageError(f"campaign {existing['name']!r} (#{existing['id']}) was sent by "
                         f"{existing['agent']} with another subject or text",
                         "give this one its own --name; `mailbridge campaigns show "
                         f"{existing['id']}` shows that one")


def _check_filled(text: str, todo: tuple[Recipient, ...]) -> None:
    """A placeholder the text uses must have a value for every recipient: a mail that
    starts "Dear ," cannot be called back."""
    used = set(rules.placeholders(text))
    for field in rules.PLACEHOLDERS:
        empty = [r for r in todo if field in used and not getattr(r, field)]
        if empty:
            first = empty[0]
            raise UsageError(f"the text uses {{{field}}} but {len(empty)} recipient(s) have "
                             f"none, e.g. {first.email} ({first.where})",
                             f"give them a {field} (a `{field}` column, or `mailbridge "
                             f"contacts add`), or leave {{{field}}} out")


def _texts(subject: str, body: str, recipient: Recipient) -> tuple[str, str]:
    values = {"name": recipient.name, "client": recipient.client}
    return rules.fill(subject, values), rules.fill(body, values)


def _queue(config: Config, plan: Plan, box: SalesMailbox) -> Sent:
    """Batch by batch: each recipient's key, stored mail and outbox row in one transaction,
    so a run killed half-way leaves whole recipients, and a rerun queues the rest."""
    slots = []
    with writing_per_commit(config.store) as db:
        with db.atomic():
            made = campaigns.create(db, plan.name, plan.agent, box.channel.name, box.address,
                                    plan.subject, plan.body)
            _same(made, plan.agent, plan.subject, plan.body)
            campaign, start = made["id"], _start(db, box.address)
            signature = outgoing.signature_for(db, box.channel, plan.agent)
        times = rules.schedule(len(plan.recipients), start, config.pace)
        for batch in _batches(list(zip(plan.recipients, times, strict=True))):
            with db.atomic():
                for recipient, when in batch:
                    stamp = when.isoformat(timespec="seconds")
                    if _queue_one(db, plan, box, campaign, signature, recipient, stamp):
                        slots.append(stamp)
    return Sent(plan, campaign, len(slots), min(slots, default=None), max(slots, default=None))


def _queue_one(db: Store, plan: Plan, box: SalesMailbox, campaign: int, signature: str,
               recipient: Recipient, not_before: str) -> bool:
    """Queue the recipient's mail, unless the campaign has them already (another run queued
    them meanwhile): the store's key on (campaign, recipient) decides."""
    if not campaigns.claim(db, campaign, recipient.email, recipient.name, recipient.client):
        return False
    subject, text = _texts(plan.subject, plan.body, recipient)
    draft = compose.Draft(
        ticket=None, subject=subject, body=text,
        from_name=(box.channel.outgoing or {}).get("from_name") or plan.agent,
        from_email=box.address, recipients=(recipient.email,), signature=signature,
        quote=False, headers=rules.list_headers(box.address))
    _, (row, *_) = outgoing.store_and_queue(db, box.channel, draft, KIND, lambda _: None)
    outbox.hold_until(db, row, campaign, not_before)
    campaigns.link(db, campaign, recipient.email, row)
    return True


def _start(db: Store, sent_from: str) -> datetime:
    """Now, or the minute after the mailbox's campaign mail already waiting: two campaigns
    from one mailbox share its pace."""
    moment = datetime.now(UTC).replace(microsecond=0)
    waiting = outbox.last_hold(db, sent_from)
    if waiting is None:
        return moment
    return max(moment, datetime.fromisoformat(waiting) + timedelta(minutes=1))


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def list_campaigns(config: Config) -> list[dict[str, Any]]:
    """Every campaign with its counts: queued (waiting), sent, failed, unknown."""
    if not exists(config.store):
        return []
    with reading(config.store) as db:
        return [_summary(row)
                for row in campaigns.list_all(db, fleet.sending_alive(db, config))]


def show(config: Config, campaign: int) -> dict[str, Any]:
    """The campaign and each recipient's result, from its outbox row."""
    if not exists(config.store):
        raise NotFoundError(f"no campaign #{campaign}", HINT)
    with reading(config.store) as db:
        found = campaigns.get(db, campaign)
        if found is None:
            raise NotFoundError(f"no campaign #{campaign}", HINT)
        in_flight = fleet.sending_alive(db, config)
        rows = [_recipient(r, in_flight) for r in campaigns.recipients(db, campaign)]
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    return {**_summary({**found, "states": states}), "body": found["body"], "recipients": rows}


def _recipient(row: dict[str, Any], in_flight: Callable[[str | None], bool]
               ) -> dict[str, Any]:
    """A recipient's row as `outbox list` tells its state: one a crash left `sending` is
    `unknown` once its sender is gone."""
    state, claimed = row["state"], row.pop("claimed_by")
    if outbox.told(state, claimed, in_flight) != state:
        return {**row, "state": outbox.UNKNOWN, "last_error": outbox.INTERRUPTED}
    return {**row, "state": _result(state)}


def _result(state: str | None) -> str:
    """A recipient's result: its outbox row's state, `pending` said as `queued`."""
    return "queued" if state in (None, outbox.PENDING) else state


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    counts = {_result(state): n for state, n in row.pop("states").items()}
    return {**{k: v for k, v in row.items() if k != "body"},
            "total": sum(counts.values()),
            **{state: counts.get(state, 0) for state in RESULTS}}
