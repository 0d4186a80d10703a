"""Re-parse stored raw mail after a parser fix; messages of tickets channels that now parse
are filed. (Engagements and sales decide what to copy before storing, so what they stored
unparsed stays a raw copy with its new parse.)"""

from __future__ import annotations

from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.prepare import prepare
from mailbridge.pipeline.tickets import file_message
from mailbridge.store import messages
from mailbridge.store.db import Store


def reprocess(db: Store, plans: dict[str, ChannelPlan], only_failed: bool = True) -> dict:
    result = {"checked": 0, "fixed": 0, "still_failing": 0, "filed": 0}
    for message, channel, was_failing in messages.to_reprocess(db, only_failed):
        plan = plans.get(channel)  # tickets channels only
        prep = prepare(messages.raw_of(db, message), plan.own_addresses if plan else ())
        with db.atomic():
            messages.update_parse(db, message, prep.parsed, prep.classification, prep.parse_error)
            if plan is not None and prep.parsed is not None and was_failing:
                file_message(db, plan, message, prep.parsed, prep.classification)
                result["filed"] += 1
        result["checked"] += 1
        result["fixed"] += int(bool(was_failing) and prep.parsed is not None)
        result["still_failing"] += int(prep.parsed is None)
    return result
