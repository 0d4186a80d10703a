"""Working the queue (issue 20): who works a ticket (the acting agent, assignment), whether it
waits for the customer (pending) and how urgent it is (priority, set by hand or by a route);
every `tickets list` filter checked. Mail comes in through a drop channel and, for our own
replies, goes out to a real SMTP server."""

from __future__ import annotations

import json

import pytest
from conftest import drop, message

from mailbridge.services.agents import AGENT_ENV


@pytest.fixture(autouse=True)
def no_acting_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AGENT_ENV, raising=False)  # the developer's own must not leak in


def desk(mb, **channel):
    spool = mb.drop_channel(**channel)
    for name in ("alice", "bob"):
        assert mb("agents", "add", name, "--email", f"{name}@example.com").exit_code == 0
    return spool


def answer(spool, n: int, auto: bool = False, sender: str = "ann@customer.example") -> None:
    """Mail `n` in the thread of m1 (the customer's, or an auto-reply)."""
    extra = "In-Reply-To: <m1@customer.example>\n" + ("Auto-Submitted: auto-replied\n"
                                                      if auto else "")
    drop(spool, message("Re: Printer broken", sender=sender, message_id=f"m{n}@customer.example",
                        extra=extra, body=f"Answer {n}."))


def ticket(mb, number: int = 1) -> dict:
    result = mb("tickets", "show", str(number), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listed(mb, *args: str, env=None) -> list[int]:
    result = mb("tickets", "list", "--format", "json", *args, env=env)
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.stdout)]


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_assignment_and_pending_survive_the_customers_replies(mb):
    spool = desk(mb)
    drop(spool, message("Printer broken"))
    ok(mb("sync"))
    assert (ticket(mb)["assignee"], ticket(mb)["priority"]) == (None, "normal")

    assert "ticket #1: nobody → alice" in ok(mb("tickets", "assign", "1", "--to", "Alice")).stderr
    assert "assignee: alice" in mb("tickets", "show", "1").stdout
    assert listed(mb, "--assignee", "alice") == [1]
    assert listed(mb, "--assignee", "bob") == listed(mb, "--assignee", "none") == []

    assert "ticket #1: open → pending" in ok(mb("tickets", "pending", "1")).stderr
    assert listed(mb) == []  # the default list is the open work, an agent's turn
    assert listed(mb, "--status", "pending") == listed(mb, "--status", "all") == [1]

    answer(spool, 2, auto=True)  # "I am out of the office": not the customer's answer
    ok(mb("sync"))
    assert (ticket(mb)["status"], ticket(mb)["assignee"]) == ("pending", "alice")
    assert ticket(mb)["message_count"] == 2

    answer(spool, 3)  # the customer answers: an agent's turn again, still alice's
    ok(mb("sync"))
    assert (ticket(mb)["status"], ticket(mb)["assignee"]) == ("open", "alice")

    ok(mb("tickets", "close", "1"))
    answer(spool, 4)
    ok(mb("sync"))
    assert (ticket(mb)["status"], ticket(mb)["assignee"]) == ("open", "alice")

    assert "alice → nobody" in ok(mb("tickets", "assign", "1", "--unassign")).stderr
    ok(mb("tickets", "assign", "1", "--to", "bob"))
    assert "bob → nobody" in ok(mb("tickets", "unassign", "1")).stderr
    assert listed(mb, "--assignee", "none") == [1]


def test_our_reply_leaves_a_pending_ticket_pending_and_reopens_a_closed_one(mb, smtp):
    desk(mb, outgoing={"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                       "security": "none"})
    drop(mb.root / "spool" / "support", message("Printer broken"))
    ok(mb("sync"))
    ok(mb("tickets", "pending", "1"))
    ok(mb("tickets", "reply", "1", "-m", "Which tray?"))
    assert ticket(mb)["status"] == "pending"
    ok(mb("tickets", "close", "1"))
    ok(mb("tickets", "reply", "1", "-m", "One more thing."))
    assert ticket(mb)["status"] == "open"


def test_the_acting_agent_comes_from_as_then_the_environment_then_the_config(mb):
    spool = desk(mb)
    drop(spool, message("Printer broken"))
    ok(mb("sync"))

    nobody = mb("tickets", "list", "--assignee", "me")
    assert nobody.exit_code == 2 and nobody.stdout == ""
    assert nobody.stderr.splitlines()[0] == ("mailbridge: error: --assignee me needs to know "
                                             "which agent you are")
    assert AGENT_ENV in nobody.stderr and "[me] agent" in nobody.stderr
    assert mb("tickets", "assign", "1", "--to", "me").exit_code == 2

    config = mb.config.read_text()
    mb.config.write_text(config + '\n[me]\nagent = "bob"\n')
    assert "nobody → bob" in ok(mb("tickets", "assign", "1", "--to", "me")).stderr
    assert listed(mb, "--assignee", "me") == [1]
    assert listed(mb, "--assignee", "me", env={AGENT_ENV: "alice"}) == []  # env over config
    assert listed(mb, "--assignee", "me", "--as", "bob", env={AGENT_ENV: "alice"}) == [1]

    ok(mb("tickets", "comment", "1", "-m", "Config's.", ))
    ok(mb("tickets", "comment", "1", "-m", "Env's.", env={AGENT_ENV: "alice"}))
    ok(mb("tickets", "comment", "1", "-m", "Flag's.", "--as", "bob", env={AGENT_ENV: "alice"}))
    assert [c["author"] for c in ticket(mb)["comments"]] == ["bob", "alice", "bob"]

    unknown = mb("tickets", "list", "--assignee", "me", env={AGENT_ENV: "carol"})
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines()[0] == ("mailbridge: error: no agent called carol "
                                              "(known: alice, bob)")
    assert AGENT_ENV in unknown.stderr  # where the name came from
    typo = mb("tickets", "comment", "1", "-m", "x", "--as", "alcie")
    assert typo.exit_code == 2
    assert typo.stderr.splitlines()[0] == ('mailbridge: error: no agent called alcie; did you '
                                           'mean "alice"? (known: alice, bob)')
    assert len(ticket(mb)["comments"]) == 3

    mb.config.write_text(config + '\n[me]\nagent = ""\n')
    broken = mb("tickets", "list")
    assert broken.exit_code == 2 and "me.agent: must not be empty" in broken.stderr


def test_a_route_sets_the_priority_and_lists_sort_by_it(mb):
    spool = desk(mb, routes=[{"queue": "billing", "keywords": ["refund"], "priority": "high"},
                             {"queue": "tech", "keywords": ["crash"]}])
    for n, subject in enumerate(["Hello", "Refund please", "App crash", "Another hello"], 1):
        drop(spool, message(subject, message_id=f"p{n}@customer.example"))
        ok(mb("sync"))  # one by one: their order of arrival is their order of update
    rows = json.loads(mb("tickets", "list", "--format", "json").stdout)
    assert [(r["id"], r["queue"], r["priority"]) for r in rows] == [
        (1, "general", "normal"), (2, "billing", "high"), (3, "tech", "normal"),
        (4, "general", "normal")]

    assert "priority normal → urgent" in ok(mb("tickets", "priority", "3", "urgent")).stderr
    ok(mb("tickets", "priority", "4", "low"))
    assert listed(mb, "--sort", "priority") == [3, 2, 1, 4]
    assert listed(mb, "--priority", "high") == [2]
    assert listed(mb, "--sort", "created") == [4, 3, 2, 1]
    assert listed(mb, "--sort", "id") == listed(mb) == [1, 2, 3, 4]
    # a change is an update: the tickets touched last come first
    mb.write("UPDATE tickets SET updated_at = '2030-01-01T00:00:00+00:00' WHERE id = 2")
    assert listed(mb, "--sort", "updated")[0] == 2
    mb.write("UPDATE tickets SET priority = 'high', updated_at = '2029-01-01T00:00:00+00:00' "
             "WHERE id = 1")
    assert listed(mb, "--sort", "priority") == [3, 2, 1, 4]  # same priority: latest update

    bad = mb("tickets", "priority", "1", "2", "hgih")
    assert bad.exit_code == 2 and '"low", "normal", "high", "urgent"' in bad.stderr
    missing = mb("tickets", "priority", "1", "9", "low")  # all or nothing
    assert missing.exit_code == 2 and "no ticket #9" in missing.stderr
    assert ticket(mb)["priority"] == "high"
    shown = mb("channels", "show", "support", "--format", "json")
    assert json.loads(shown.stdout)["routes"][0]["priority"] == "high"


def test_a_route_priority_must_be_one_of_the_four(mb):
    mb.drop_channel(routes=[{"queue": "billing", "keywords": ["refund"], "priority": "hi"}])
    result = mb("tickets", "list")
    assert result.exit_code == 2
    assert '"low", "normal", "high", "urgent"' in result.stderr


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("--status", "opn", '"open", "pending", "closed", "all"; did you mean "open"?'),
    ("--priority", "hgh", '"low", "normal", "high", "urgent"'),
    ("--sort", "prio", '"id", "created", "updated", "priority"'),
    ("--queue", "biling", '"billing"? (known: billing, general)'),
    ("--channel", "suport", '"support"?'),
    ("--assignee", "alcie", '"alice"? (known: alice, bob)'),
])
def test_every_list_filter_value_is_checked(mb, option, value, allowed):
    spool = desk(mb, routes=[{"queue": "billing", "keywords": ["refund"]}])
    drop(spool, message("Printer broken"))
    ok(mb("sync"))
    result = mb("tickets", "list", option, value)
    assert result.exit_code == 2 and result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("mailbridge: error: ") and value in first and allowed in first


def test_queues_and_status_count_the_unassigned_open_tickets(mb):
    spool = desk(mb)
    for n in range(1, 5):
        drop(spool, message(f"Question {n}", message_id=f"q{n}@customer.example"))
    ok(mb("sync"))
    ok(mb("tickets", "assign", "1", "--to", "alice"))
    ok(mb("tickets", "pending", "2"))
    ok(mb("tickets", "close", "3"))
    [general] = json.loads(mb("queues", "list", "--format", "json").stdout)
    assert general == {"queue": "general", "open": 2, "unassigned": 1, "pending": 1, "total": 4}
    [row] = json.loads(mb("status", "--format", "json").stdout)
    assert row["unassigned"] == 1


def test_a_store_from_before_the_workflow_gets_unassigned_normal_tickets(mb, monkeypatch):
    from mailbridge.store import migrations
    from mailbridge.store.backends import close_all

    mb.drop_channel()
    with monkeypatch.context() as older:
        older.setattr(migrations, "STEPS", tuple(s for s in migrations.STEPS
                                                 if s.__name__ != "m011_ticket_workflow"))
        mb.write("INSERT INTO queues (name, created_at) VALUES ('general', 'then')")
        mb.write("INSERT INTO tickets (channel, queue, status, kind, subject, requester_name, "
                 "requester_email, created_at, updated_at, message_count) VALUES ('support', "
                 "'general', 'open', 'human', 'Old', '', 'a@b.example', 'then', 'then', 0)")
        close_all()
    ok(mb("sync"))  # migrates
    [row] = json.loads(ok(mb("tickets", "list", "--format", "json")).stdout)
    assert (row["status"], row["priority"], row["assignee"]) == ("open", "normal", None)


def test_a_terminal_shows_urgent_in_red_and_high_in_yellow():
    from mailbridge.cli.table import Style, render

    rows = [{"id": 1, "priority": "urgent"}, {"id": 2, "priority": "high"},
            {"id": 3, "priority": "normal"}]
    lines = render(rows, {"id": "id", "priority": "prio"}, Style(80, colour=True)).lines
    assert "\x1b[31murgent" in lines[1] and "\x1b[33mhigh" in lines[2]
    assert "\x1b[" not in lines[3]
