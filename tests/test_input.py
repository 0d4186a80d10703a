"""Every value typed on the command line is checked, by the rules the config uses: a number
out of range, a name or address the config would refuse, or a filter naming something that
does not exist is exit 2 and one line (naming the known values, with "did you mean"), never
an internal error and never a silently empty list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from conftest import drop, message
from test_cli import _command, all_commands
from test_sales import AGENT, mail, sales_channel

from mailbridge.cli.params import Checked
from mailbridge.config.load import validate
from mailbridge.errors import ConfigError

HUGE = "99999999999999999999999"
SAMPLES = ("1", "open", "general", "a@b.example")  # valid values for other parameters


def parser(param) -> Checked | None:
    found = getattr(param.type, "func", None)
    return found if isinstance(found, Checked) else None


def numeric_params():
    for path in all_commands():
        for param in getattr(_command(path), "params", []):
            checked = parser(param)
            if checked is not None and checked.convert in (int, float):
                # every range starts at 1 or 0 (a cursor: 0 is the start of the stream)
                below = "0" if checked.convert is int and not _valid(checked, "0") else "-1"
                for value in (HUGE, below, "nan", "12abc"):
                    yield pytest.param(path, param.name, value,
                                       id=f"{' '.join(path)} {param.name} {value}")


def argv_with(path, target: str, value: str) -> list[str]:
    """The command line of `path` with `value` for the parameter `target` and a valid value
    for every other required one."""
    options, arguments = [], []
    for param in _command(path).params:
        if param.name != target and not param.required:
            continue
        given = value if param.name == target else _sample(param)
        if param.param_type_name == "argument":
            arguments.append(given)
        else:
            options += [max(param.opts, key=len), given]
    return [*path, *options, *arguments]


def _valid(checked, value: str) -> bool:
    try:
        checked(value)
    except Exception:  # noqa: BLE001 - any refusal
        return False
    return True


def _sample(param) -> str:
    checked = parser(param)
    for candidate in SAMPLES:
        try:
            if checked is not None:
                checked(candidate)
            return candidate
        except Exception:  # noqa: BLE001 - not this one: try the next sample
            continue
    return "x"


@pytest.mark.parametrize(("path", "name", "value"), list(numeric_params()))
def test_every_number_a_command_takes_is_range_checked(mb, path, name, value):
    result = mb(*argv_with(path, name, value))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("mailbridge: error: ") and f" {value}: must be " in line


def test_every_number_parameter_has_a_range():
    """A new command with a plain `int` would let a 23-digit id through to SQLite again."""
    unchecked = [f"{' '.join(p)} {param.name}" for p in all_commands()
                 for param in getattr(_command(p), "params", [])
                 if param.type.name in ("int", "float", "int range", "float range")
                 and not getattr(param, "count", False)]
    assert unchecked == []
    assert len(list(numeric_params())) >= 4 * 20  # ids, --limit, ports, --wait, --backfill-hours


@pytest.mark.parametrize("since", [HUGE + "d", "0d", "99999999999w"])
def test_a_duration_out_of_range_is_one_line(mb, since):
    mb.drop_channel()
    result = mb("engagements", "list", "--since", since)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f'mailbridge: error: --since {since}: must be a duration like "12h", "7d", "2w", '
        "at most 100 years"]


# Names and addresses: the command line takes exactly what the config takes.
QUEUES = [("billing", True), ("tech-2", True), ("a_b", True), ("Billing", False),
          ("../x", False), ("a\tb", False), ("a\nb", False), ("", False), ("x" * 64, False),
          ("é", False)]
AGENTS = [("Anna", True), ("Anna Smith", True), ("Zoë", True), ("a\tb", False),
          ("a\nb", False), ("\x1b[31mred", False), ("   ", False), ("x" * 201, False)]
ADDRESSES = [("anna@example.com", True), ('a b"@x.com', False), ('"a"@x.com', False),
             ("a@b", False), ("a@b.c, d@e.f", False), ("<a@b.c>", False)]


def config_accepts(channel_keys: dict) -> bool:
    channel = {"name": "s", "incoming": {"type": "drop"}, **channel_keys}
    try:
        validate({"channel": [channel]}, Path("c.toml"))
    except ConfigError:
        return False
    return True


def refused_in_one_line(result) -> bool:
    lines = result.stderr.splitlines()
    return (result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("mailbridge: error")
            and "\x1b" not in result.stderr and "\t" not in result.stderr)


@pytest.mark.parametrize(("queue", "valid"), QUEUES)
def test_a_queue_name_is_checked_as_the_config_checks_it(mb, queue, valid):
    spool = mb.drop_channel()
    drop(spool, message())
    assert mb("sync").exit_code == 0
    assert config_accepts({"default_queue": queue}) is valid
    result = mb("tickets", "move", "1", "--queue", queue, "--create")
    assert result.exit_code == 0 if valid else refused_in_one_line(result), result.stderr
    moved = json.loads(mb("tickets", "list", "--format", "json").stdout)[0]["queue"]
    assert moved == (queue if valid else "general")


@pytest.mark.parametrize(("name", "valid"), AGENTS)
def test_an_agent_name_is_checked_as_the_config_checks_it(mb, name, valid):
    mb.drop_channel()
    assert config_accepts({"mode": "sales", "agent": name}) is valid
    result = mb("agents", "add", name, "--email", "anna@example.com")
    assert result.exit_code == 0 if valid else refused_in_one_line(result), result.stderr


@pytest.mark.parametrize(("address", "valid"), ADDRESSES)
def test_an_address_is_checked_as_the_config_checks_it(mb, address, valid):
    mb.drop_channel()
    assert config_accepts({"main_email": address}) is valid
    for args in (("agents", "add", "anna", "--email", address),
                 ("contacts", "add", address, "--client", "ACME", "--create"),
                 ("opportunities", "add", "--summary", "Deal", "--contact", address)):
        result = mb(*args)
        assert result.exit_code == 0 if valid else refused_in_one_line(result), args


def test_a_forward_address_is_checked_before_anything_is_queued(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    assert mb("sync").exit_code == 0
    result = mb("tickets", "forward", "1", "--to", "vendor at example.org", "-m", "x")
    assert result.exit_code == 2
    assert result.stderr == ("mailbridge: error: address vendor at example.org: must be an "
                             "e-mail address like support@example.com\n")
    assert json.loads(mb("outbox", "list", "--format", "json").stdout) == []


def test_csv_rows_follow_the_same_rules(mb, tmp_path):
    mb.drop_channel()
    rows = tmp_path / "contacts.csv"
    rows.write_text('email,name,client\n"a b""@x.com",A,ACME\nb@x.com,"B\tB",ACME\n'
                    "c@x.com,C,ACME\n")
    result = mb("contacts", "import", str(rows), "--format", "json")
    assert result.exit_code == 4
    assert [(r["line"], r["result"], r["reason"]) for r in json.loads(result.stdout)] == [
        (2, "rejected", "email: must be an e-mail address like support@example.com"),
        (3, "rejected", "name: must be one line without tabs or control characters"),
        (4, "added", "")]


# Values that name something: a typo is an error naming what exists.
def _tickets(mb):
    spool = mb.drop_channel(routes=[{"queue": "billing", "keywords": ["invoice"]}])
    drop(spool, message("Invoice 7"))
    assert mb("sync").exit_code == 0


def _clients(mb):
    mb.drop_channel()
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    assert mb("agents", "add", "Alice", "--email", "alice@example.com").exit_code == 0


NO_SUPORT = ('mailbridge: error: no channel called suport; did you mean "support"? '
             "(known: support)")
NAMED = [
    (_tickets, ("tickets", "list", "--status", "opn"),
     'mailbridge: error: --status opn: must be one of "open", "pending", "closed", "all"; did '
     'you mean "open"?'),
    *((_tickets, args, NO_SUPORT) for args in (("tickets", "list", "--channel", "suport"),
                                               ("channels", "disable", "suport"),
                                               ("sync", "Support", "suport"))),
    (_tickets, ("auth", "login", "contoso"),
     "mailbridge: error: no [[m365]] app called contoso (known: none yet)"),
    (_tickets, ("tickets", "list", "--queue", "biling"),
     'mailbridge: error: no queue called biling; did you mean "billing"? (known: billing, '
     "general)"),
    (_tickets, ("outbox", "list", "--state", "pendng"),
     'mailbridge: error: outbox state pendng: must be one of "pending", "sending", "sent", '
     '"failed", "unknown", "cancelled"; did you mean "pending"?'),
    (_tickets, ("tickets", "list", "--format", "jsn"),
     'mailbridge: error: --format jsn: must be one of "table", "json", "jsonl", "csv", "tsv"; '
     'did you mean "json"?'),
    (_tickets, ("opportunities", "list", "--status", "closd"),
     'mailbridge: error: --status closd: must be one of "open", "closed", "all"; did you '
     'mean "closed"?'),
    (_clients, ("contacts", "list", "--client", "ACNE"),
     'mailbridge: error: no client called ACNE; did you mean "ACME"? (known: ACME)'),
    (_clients, ("engagements", "list", "--client", "acm"),
     'mailbridge: error: no client called acm; did you mean "ACME"? (known: ACME)'),
    (_clients, ("engagements", "list", "--contact", "bobb@acme.test"),
     'mailbridge: error: no contact called bobb@acme.test; did you mean "bob@acme.test"? '
     "(known: bob@acme.test)"),
    (_clients, ("clients", "show", "ACMEE"),
     'mailbridge: error: no client called ACMEE; did you mean "ACME"? (known: ACME)'),
    (_clients, ("agents", "remove", "Alise"),
     'mailbridge: error: no agent called Alise; did you mean "Alice"? (known: Alice)'),
    (_clients, ("inbox", "list", "--agent", "Bob"),
     "mailbridge: error: no agent called Bob (known: Alice)"),
    (_clients, ("add-channel", "--no-input", "--name", "x", "--mode", "sale"),
     'mailbridge: error: mode sale: must be one of "tickets", "engagements", "sales"; did '
     'you mean "sales"?'),
]


@pytest.mark.parametrize(("setup", "args", "line"), NAMED, ids=[" ".join(a) for _, a, _ in NAMED])
def test_a_value_naming_nothing_is_one_line_with_the_known_ones(mb, setup, args, line):
    setup(mb)
    result = mb(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == line
    assert all(x.startswith("mailbridge: hint: ") for x in result.stderr.splitlines()[1:])


def test_known_values_are_found_whatever_their_case(mb):
    spool = sales_channel(mb, matching=False)
    drop(spool, mail("bob@acme.test", AGENT, "A question"))
    assert mb("sync").exit_code == 0
    for spelled in ("Anna", "anna", "ANNA"):
        result = mb("inbox", "list", "--agent", spelled, "--format", "json")
        assert result.exit_code == 0, result.stderr
        assert [i["subject"] for i in json.loads(result.stdout)] == ["A question"]
    listed = mb("tickets", "list", "--channel", "SALES", "--format", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []


def test_a_long_list_of_known_values_is_cut(mb):
    spool = mb.drop_channel()
    drop(spool, message())
    assert mb("sync").exit_code == 0
    for i in range(20):
        assert mb("tickets", "move", "1", "--queue", f"q{i:02d}", "--create").exit_code == 0
    result = mb("tickets", "list", "--queue", "zzz")
    assert "q10 and 9 more)" in result.stderr.splitlines()[0]


def test_a_schedule_is_checked_with_the_config(mb):
    data = {"channel": [
        {"name": "a", "schedule": "a b c d e", "incoming": {"type": "drop"}},
        {"name": "b", "schedule": "99999999999d", "incoming": {"type": "drop"}},
        {"name": "c", "schedule": "0m", "incoming": {"type": "drop"}},
        {"name": "d", "schedule": "*/5 * * * *", "incoming": {"type": "drop"}}]}
    with pytest.raises(ConfigError) as info:
        validate(data, Path("c.toml"))
    found = info.value.problems
    assert len(found) == 3
    assert found[0].startswith("c.toml: channel.a.schedule: is not a cron expression")
    assert found[1] == ('c.toml: channel.b.schedule: must be a duration like "30s", "5m", '
                        '"12h", "7d", at most 366 days')
    assert found[2].startswith("c.toml: channel.c.schedule: must be a duration")
    mb.config.write_text(tomli_w.dumps({"store": {"path": str(mb.store)}, **data}))
    for command in (("sync",), ("doctor", "--offline"), ("status",)):
        result = mb(*command)
        assert result.exit_code == 2, command
        assert "channel.a.schedule: is not a cron expression" in result.stdout + result.stderr
