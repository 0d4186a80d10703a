"""Sales mode: keep a copy of the agent's mail and file it to an open opportunity (or
project), a new one, or the agent's My Inbox (domain/sales.py has the rules)."""

from __future__ import annotations

from datetime import datetime

from mailbridge.domain.engagement import in_window
from mailbridge.domain.message import ParsedMessage
from mailbridge.domain.sales import INBOX, NEW, UPDATE, decide, domain_of, without_chain
from mailbridge.domain.threading import bare_subject, related_ids
from mailbridge.pipeline.plan import ChannelPlan, SalesRules
from mailbridge.pipeline.report import IN_INBOX, MATCHED, OPENED
from mailbridge.store import contacts, sales
from mailbridge.store.db import Store


def counterparts_of(plan: ChannelPlan, rules: SalesRules, parsed: ParsedMessage,
                    arrived: datetime | None) -> tuple[str, ...] | None:
    """Who the mail is with: the sender of received mail, the recipients of sent mail (only
    with import_sent_items). None: not copied at all (sent mail without it, mail between the
    channel's own agents, or mail that arrived before the channel was connected, by the
    server's arrival time). Every mailbox of the channel counts as "own", so one agent's mail
    to another is never sales mail."""
    if plan.window_start is not None and not in_window(arrived, plan.window_start):
        return None
    sender = parsed.sender.email.lower() if parsed.sender else ""
    if sender in plan.owner:
        if not rules.import_sent_items:
            return None
        others = tuple(dict.fromkeys(a.email.lower() for a in (*parsed.to, *parsed.cc)
                                     if a.email and a.email.lower() not in plan.owner))
        return others or None
    return (sender,) if sender else None


def file_sale(db: Store, plan: ChannelPlan, rules: SalesRules, message: int,
              parsed: ParsedMessage, counterparts: tuple[str, ...]) -> str:
    """`rules`: those of the agent whose mailbox the mail came from (plan.sales_for)."""
    decision = decide(counterparts, parsed.subject, sales.candidates(db, rules.projects),
                      rules.matching, rules.matching_type, {domain_of(a) for a in plan.owner},
                      sales.answered(db, plan.name, related_ids(parsed)))
    if decision.kind == UPDATE and decision.opportunity is not None:
        text = without_chain(parsed.text) if rules.hide_email_chain else parsed.text
        note = ("also matched " + ", ".join(f"#{i}" for i in decision.ambiguous) +
                "; the most recently updated one was chosen") if decision.ambiguous else ""
        sales.attach(db, decision.opportunity, message, text, "matched", note)
        return MATCHED
    if decision.kind == NEW:
        opened = sales.add_opportunity(
            db, bare_subject(parsed.subject) or "(no subject)", counterparts[0],
            client=contacts.client_for(db, counterparts[0]), project=rules.projects,
            agent=rules.agent, details=parsed.text)
        sales.attach(db, opened, message, parsed.text, "opened")  # a new one keeps the chain
        return OPENED
    assert decision.kind == INBOX
    sales.to_inbox(db, plan.name, rules.agent, message)
    return IN_INBOX
