"""A channel's `schedule` ("5m", "1h", or a five-field cron expression) as an APScheduler
trigger, and when it fires next. APScheduler costs ~100 ms to import, so only `run` and
`status` load it, inside these functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbridge.config.model import Channel
from mailbridge.domain.checks import DURATION_RE, UNIT_SECONDS

MAX_JITTER_SECONDS = 30


def interval_seconds(schedule: str) -> int | None:
    match = DURATION_RE.match(schedule)
    return int(match[1]) * UNIT_SECONDS[match[2]] if match else None


def trigger_for(channel: Channel, jitter: bool = True) -> Any:
    """An APScheduler trigger; a little jitter so channels on one server do not poll in step."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    seconds = interval_seconds(channel.schedule)
    if seconds is not None:
        spread = min(MAX_JITTER_SECONDS, seconds // 10) if jitter else 0
        return IntervalTrigger(seconds=seconds, jitter=spread or None, timezone=UTC)
    return CronTrigger.from_crontab(channel.schedule, timezone=UTC)  # checked with the config


def next_run(channel: Channel, last_start: datetime | None, now: datetime) -> datetime:
    """When `run` will sync the channel next, given when its last sync started."""
    if last_start is None:
        return now
    fire = trigger_for(channel, jitter=False).get_next_fire_time(last_start, now)
    return max(fire, now) if fire else now
