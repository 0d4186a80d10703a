"""The pure health rules behind `status` and the alerts, and queue routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.domain.health import FAILING, QUIET, UNSENT, ChannelFacts, UnsentMail, conditions
from mailbridge.domain.routing import Route, first_route

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def facts(last_message=None, since=NOW - timedelta(days=3), failures=0, enabled=True):
    return ChannelFacts("c", enabled, last_message, since, failures, "boom" if failures else None)


def kinds(found) -> list[str]:
    return [c.kind for c in found]


def test_a_healthy_channel_has_no_conditions():
    assert conditions(facts(NOW - timedelta(hours=1)), 2, 3, NOW) == []


def test_quiet_after_no_messages_hours_since_the_last_message():
    found = conditions(facts(NOW - timedelta(hours=5)), 4, 3, NOW)
    assert kinds(found) == [QUIET]
    assert "no messages since 2026-11-23T07:00:00+00:00" in found[0].detail
    assert conditions(facts(NOW - timedelta(hours=3)), 4, 3, NOW) == []


def test_quiet_counts_from_the_first_sync_when_nothing_ever_arrived():
    assert kinds(conditions(facts(None, NOW - timedelta(minutes=90)), 1, 3, NOW)) == [QUIET]
    assert conditions(facts(None, NOW - timedelta(minutes=30)), 1, 3, NOW) == []
    assert conditions(facts(None, None), 1, 3, NOW) == []  # never synced: nothing to judge


def test_zero_hours_turns_the_quiet_alert_off():
    assert conditions(facts(NOW - timedelta(days=300)), 0, 3, NOW) == []


def test_fractional_hours_work():
    assert kinds(conditions(facts(NOW - timedelta(minutes=31)), 0.5, 3, NOW)) == [QUIET]


def test_failing_after_n_consecutive_failures():
    assert conditions(facts(NOW, failures=2), 0, 3, NOW) == []
    found = conditions(facts(NOW, failures=3), 0, 3, NOW)
    assert kinds(found) == [FAILING]
    assert "3 syncs in a row failed; last error: boom" in found[0].detail


def test_unsent_when_one_mail_failed_n_attempts_or_needs_a_person():
    def unsent(*rows):
        return conditions(ChannelFacts("c", True, NOW, NOW, 0, None, rows), 0, 3, NOW)

    assert unsent(UnsentMail(5, "pending", 2, "451 greylisted")) == []  # tried again
    [found] = unsent(UnsentMail(5, "pending", 2, "451"), UnsentMail(6, "pending", 3, "refused"))
    assert found.kind == UNSENT and found.detail == "outbox #6 not sent after 3 attempts: refused"
    [found] = unsent(UnsentMail(7, "unknown", 1, "connection lost"),
                     UnsentMail(8, "failed", 1, "550"))
    assert found.detail.startswith("2 outgoing mails failed or may not have gone out")


def test_disabled_channels_are_never_judged():
    assert conditions(facts(None, NOW - timedelta(days=9), 9, enabled=False), 1, 1, NOW) == []


ROUTES = [Route("billing", ("invoice", "refund")), Route("tech", ("error", "crash report"))]


@pytest.mark.parametrize(("subject", "queue"), [
    ("Invoice 42 is wrong", "billing"),
    ("where is my REFUND?", "billing"),
    ("Re: refund for the error", "billing"),  # the first matching route wins
    ("An error in the app", "tech"),
    ("crash report attached", "tech"),
    ("crash reporting question", "general"),  # whole words (and phrases) only
    ("invoices", "general"),
    ("refunded", "general"),
    ("", "general"),
    ("Hello", "general"),
])
def test_routing_by_whole_word_case_insensitive(subject, queue):
    found = first_route(subject, ROUTES)
    assert (found.queue if found else "general") == queue


def test_a_channel_without_routes_routes_nothing():
    assert first_route("invoice", []) is None
