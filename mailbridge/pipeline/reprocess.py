"""Re-parse stored raw mail after a parser fix; messages of tickets channels that now parse
are filed. (Engagements and sales decide what to copy before storing, so what they stored
unparsed stays a raw copy with its new parse.) Parsing is bounded as in a sync: a large
message is parsed in a helper under its deadline, so mail once stored raw for taking too long
cannot hang this either."""

from __future__ import annotations

import contextlib

from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.prepare import Prepared
from mailbridge.pipeline.prepare_helper import Preparer
from mailbridge.pipeline.tickets import file_message
from mailbridge.store import messages
from mailbridge.store.db import Store


def reprocess(db: Store, plans: dict[str, ChannelPlan], only_failed: bool = True) -> dict:
    result = {"checked": 0, "fixed": 0, "still_failing": 0, "filed": 0}
    preparers: dict[str, Preparer] = {}
    with contextlib.ExitStack() as stack:
        for message, channel, was_failing in messages.to_reprocess(db, only_failed):
            plan = plans.get(channel)  # tickets channels only
            if channel not in preparers:
                own = plan.own_addresses if plan else ()
                preparers[channel] = stack.enter_context(Preparer(own))
            prep = preparers[channel].submit([messages.raw_of(db, message)])()[0]
            assert prep is not None  # there was a message to parse
            _update(db, plan, message, prep, bool(was_failing), result)
    return result


def _update(db: Store, plan: ChannelPlan | None, message: int, prep: Prepared,
            was_failing: bool, result: dict) -> None:
    with db.atomic():
        if plan is not None:
            db.lock(f"channel:{plan.name}")  # filing reads what is stored, then adds to it
        messages.update_parse(db, message, prep.parsed, prep.classification, prep.parse_error)
        if plan is not None and prep.parsed is not None and was_failing:
            file_message(db, plan, message, prep.parsed, prep.classification)
            result["filed"] += 1
    result["checked"] += 1
    result["fixed"] += int(was_failing and prep.parsed is not None)
    result["still_failing"] += int(prep.parsed is None)
