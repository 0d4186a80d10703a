"""`reprocess`: re-parse stored mail, taking the write lock for each message's update."""

from __future__ import annotations

from mailbridge.config.model import Config
from mailbridge.pipeline.plan import ChannelPlan
from mailbridge.pipeline.reprocess import reprocess
from mailbridge.services.connectors import plan_for
from mailbridge.store.session import writing_per_commit


def reprocess_store(config: Config, only_failed: bool = True) -> dict[str, int]:
    plans: dict[str, ChannelPlan] = {c.name: plan_for(c) for c in config.channels
                                     if c.mode == "tickets"}
    with writing_per_commit(config.store) as db:
        return reprocess(db, plans, only_failed)
