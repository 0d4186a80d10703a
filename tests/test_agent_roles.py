"""Agents' roles (issue 21): `agents add/set --admin`, `agents list` showing the role, and
My Inbox deletion, which only administrators may do ("Only agents who are administrators in
Halo will be able to delete emails from the My Inbox Module"). The acting agent comes from
--as, $MAILBRIDGE_AGENT or [me] agent; My Inbox mail comes in through a sales drop channel."""

from __future__ import annotations

import json

import pytest
from conftest import drop
from test_sales import AGENT, mail, sales_channel

from mailbridge.services.agents import AGENT_ENV


@pytest.fixture(autouse=True)
def no_acting_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AGENT_ENV, raising=False)  # the developer's own must not leak in


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def agents(mb) -> dict[str, dict]:
    return {a["name"]: a for a in json.loads(ok(mb("agents", "list", "--format", "json")).stdout)}


def inbox(mb) -> list[int]:
    return [i["id"] for i in json.loads(ok(mb("inbox", "list", "--format", "json")).stdout)]


def my_inbox(mb, *subjects: str) -> list[int]:
    """A sales channel with matching off, its mail in Anna's My Inbox; the agents alice (an
    administrator) and bob (not one)."""
    spool = sales_channel(mb, matching=False)
    for subject in subjects:
        drop(spool, mail("bob@acme.test", AGENT, subject))
    ok(mb("sync"))
    ok(mb("agents", "add", "alice", "--email", "alice@us.test", "--admin"))
    ok(mb("agents", "add", "bob", "--email", "bob@us.test"))
    return inbox(mb)


def test_a_role_is_given_by_add_and_toggled_by_set_and_listed(mb):
    mb.drop_channel()
    assert "agent alice added" in ok(mb("agents", "add", "alice", "--email", "a@us.test",
                                        "--signature", "Alice", "--admin")).stderr
    ok(mb("agents", "add", "bob", "--email", "b@us.test"))
    assert {n: a["admin"] for n, a in agents(mb).items()} == {"alice": True, "bob": False}

    # add changes only what it is given: the role and signature stay
    ok(mb("agents", "add", "alice", "--email", "alice@us.test"))
    assert (agents(mb)["alice"]["admin"], agents(mb)["alice"]["signature"]) == (True, "Alice")

    set_ = ok(mb("agents", "set", "BOB", "--admin"))  # the name as stored, whatever the case
    assert "agent bob updated: an administrator" in set_.stderr
    ok(mb("agents", "set", "alice", "--no-admin", "--notify-no-messages"))
    found = agents(mb)
    assert {n: a["admin"] for n, a in found.items()} == {"alice": False, "bob": True}
    assert (found["alice"]["email"], found["alice"]["signature"],
            found["alice"]["notify_no_messages"]) == ("alice@us.test", "Alice", True)
    ok(mb("agents", "set", "alice", "--email", "alice@new.test"))
    assert (agents(mb)["alice"]["email"], agents(mb)["alice"]["admin"]) == ("alice@new.test",
                                                                             False)

    table = ok(mb("agents", "list", "--format", "tsv")).stdout.splitlines()
    assert table[0].split("\t")[:3] == ["name", "email", "admin"]
    assert [line.split("\t")[2] for line in table[1:]] == ["false", "true"]


@pytest.mark.parametrize(("args", "message"), [
    (("agents", "set", "carol", "--admin"), "no agent called carol"),
    (("agents", "set", "alice"), "nothing to change"),
    (("agents", "set", "alice", "--email", "not an address"), "address"),
])
def test_agents_set_refuses_what_it_cannot_do(mb, args, message):
    mb.drop_channel()
    ok(mb("agents", "add", "alice", "--email", "a@us.test"))
    result = mb(*args)
    assert result.exit_code == 2 and result.stdout == ""
    [error, *_] = result.stderr.splitlines()
    assert error.startswith("mailbridge: error: ") and message in error
    assert agents(mb)["alice"]["admin"] is False


def test_an_administrator_deletes_from_my_inbox(mb):
    first, second = my_inbox(mb, "Spam-ish", "Deal")
    deleted = ok(mb("inbox", "delete", str(first), "--as", "alice"))
    assert f"inbox #{first} deleted by alice" in deleted.stderr
    assert inbox(mb) == [second]
    assert mb.value("SELECT handled FROM inbox_items WHERE id=?", (first,)) == "deleted by alice"
    assert mb.value("SELECT count(*) FROM messages") == 2  # the stored mail stays


def test_an_agent_who_is_not_an_administrator_is_refused_and_nothing_is_deleted(mb):
    [item] = my_inbox(mb, "Spam-ish")
    refused = mb("inbox", "delete", str(item), "--as", "bob")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "mailbridge: error: agent bob is not an administrator: only administrators delete mail "
        "from My Inbox",
        "mailbridge: hint: act as one with --as NAME (administrators: alice), or `mailbridge "
        "agents set bob --admin` gives the role"]
    assert inbox(mb) == [item]

    ok(mb("agents", "set", "alice", "--no-admin"))
    nobody = mb("inbox", "delete", str(item), "--as", "alice")
    assert nobody.exit_code == 2 and "no agent is one yet" in nobody.stderr
    ok(mb("agents", "set", "bob", "--admin"))
    ok(mb("inbox", "delete", str(item), "--as", "bob"))
    assert inbox(mb) == []


def test_without_an_acting_agent_inbox_delete_says_how_to_name_yourself(mb):
    [item] = my_inbox(mb, "Spam-ish")
    nobody = mb("inbox", "delete", str(item))
    assert nobody.exit_code == 2 and nobody.stdout == ""
    assert nobody.stderr.splitlines()[0] == ("mailbridge: error: inbox delete needs to know "
                                             "which agent you are")
    assert "--as NAME" in nobody.stderr and AGENT_ENV in nobody.stderr
    assert "[me] agent" in nobody.stderr
    unknown = mb("inbox", "delete", str(item), "--as", "carol")
    assert unknown.exit_code == 2 and "no agent called carol" in unknown.stderr
    assert inbox(mb) == [item]


def test_the_self_declared_admin_flag_is_gone(mb):
    [item] = my_inbox(mb, "Spam-ish")
    gone = mb("inbox", "delete", str(item), "--admin")
    assert gone.exit_code == 2
    assert gone.stderr.splitlines()[0] == "mailbridge: error: no such option: --admin"
    assert inbox(mb) == [item]


@pytest.mark.parametrize("source", ["--as", "env", "config"])
def test_the_acting_administrator_comes_from_as_the_environment_or_the_config(mb, source):
    first, second = my_inbox(mb, "One", "Two")
    config = mb.config.read_text()
    if source == "config":
        mb.config.write_text(config + '\n[me]\nagent = "alice"\n')
    args = ("--as", "alice") if source == "--as" else ()
    env = {AGENT_ENV: "alice"} if source == "env" else None
    assert "deleted by alice" in ok(mb("inbox", "delete", str(first), *args, env=env)).stderr
    assert inbox(mb) == [second]
    # each source gives way to the one before it: bob (no administrator) wins and is refused
    if source != "--as":
        mb.config.write_text(config + '\n[me]\nagent = "alice"\n')
        over = ("--as", "bob") if source == "env" else ()
        refused = mb("inbox", "delete", str(second), *over,
                     env={AGENT_ENV: "alice" if source == "env" else "bob"})
        assert refused.exit_code == 2 and "agent bob is not an administrator" in refused.stderr
        assert inbox(mb) == [second]


def test_a_store_from_before_roles_keeps_its_agents_as_non_administrators(mb, monkeypatch):
    from mailbridge.store import migrations
    from mailbridge.store.backends import close_all

    mb.drop_channel()
    with monkeypatch.context() as older:
        older.setattr(migrations, "STEPS", tuple(s for s in migrations.STEPS
                                                 if s.__name__ != "m014_agent_roles"))
        mb.write("INSERT INTO agents (name, email, signature, notify_no_messages, created_at) "
                 "VALUES ('old', 'old@us.test', 'Old', 1, 'then')")
        close_all()
    ok(mb("sync"))  # migrates
    assert agents(mb)["old"] == {"name": "old", "email": "old@us.test", "signature": "Old",
                                 "notify_no_messages": True, "admin": False,
                                 "created_at": "then"}
    ok(mb("agents", "set", "old", "--admin"))
    assert agents(mb)["old"]["admin"] is True
