"""Config: every problem reported at once, unknown keys and plaintext secrets rejected,
writes atomic and private, the example and the init template valid."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mailbridge.cli.app import app
from mailbridge.config.load import load_config, validate
from mailbridge.errors import ConfigError
from mailbridge.services.channels import add_channel

REPO = Path(__file__).resolve().parents[1]


def problems(data):
    with pytest.raises(ConfigError) as info:
        validate(data, Path("config.toml"))
    return info.value.problems


def test_every_problem_is_reported_together():
    found = problems({"channel": [
        {"name": "support", "mode": "tix", "colour": "red",
         "incoming": {"type": "imap", "host": "h", "port": "993", "username": "u",
                      "password": "hunter22"}},
        {"name": "support", "incoming": {"type": "carrier-pigeon"}},
    ], "stroe": {}})
    assert ("config.toml: stroe: unknown key (expected one of: store, alerts, me, sales, "
            'campaigns, m365, channel, hook); did you mean "store"?' in found)
    assert "config.toml: channel.support.mode: must be one of \"tickets\", \"engagements\", " \
           "\"sales\"" in found
    assert "config.toml: channel.support.colour: unknown key" in found
    assert "config.toml: channel.support.incoming.port: must be an integer 1–65535" in found
    assert any(p.startswith("config.toml: channel.support.incoming.password: must be a secret "
                            "reference") for p in found)
    assert "config.toml: channel.support.incoming.type: must be one of \"drop\", \"imap\", " \
           "\"m365\"" in found
    assert "config.toml: channel.support.name: is used by another channel" in found
    assert not any("hunter22" in p for p in found)


def test_m365_channel_must_name_a_known_app():
    found = problems({"channel": [{"name": "o", "incoming": {"type": "m365", "app": "nope",
                                                             "mailboxes": ["a@b.example"]}}]})
    assert found == ['config.toml: channel.o.incoming.app: names no [[m365]] entry called "nope"']


def test_defaults_fill_in():
    config = validate({"channel": [{"name": "s", "mode": "engagements",
                                    "incoming": {"type": "drop"}}]}, Path("c.toml"))
    ch = config.channel("s")
    assert (ch.enabled, ch.schedule, ch.quoting, ch.default_queue) == (
        True, "1h", "display_and_send", "general")


def test_example_config_documents_valid_keys():
    config = load_config(REPO / "config.example.toml")
    assert {c.incoming["type"] for c in config.channels} >= {"drop", "imap", "m365"}


def test_malformed_and_half_written_configs_are_one_clear_error(mb):
    mb.config.write_text('[[channel]]\nname = "support"\nincoming = { type = "dr')
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"mailbridge: error: {mb.config}: not valid TOML")
    assert "Traceback" not in result.stderr


def test_missing_config_names_init(mb):
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert "no such config file" in result.stderr
    assert "mailbridge init" in result.stderr


def test_init_writes_a_private_valid_config_and_refuses_to_overwrite(mb):
    assert mb("init").exit_code == 0
    assert stat.S_IMODE(mb.config.stat().st_mode) == 0o600
    assert load_config(mb.config).channels == ()
    again = mb("init")
    assert again.exit_code == 2 and "--force" in again.stderr


def test_add_channel_keeps_comments_and_validates(mb):
    assert mb("init").exit_code == 0
    result = mb("add-channel", "--no-input", "--name", "support", "--main-email",
                "help@example.com", "--spool", str(mb.root / "sp"))
    assert result.exit_code == 0, result.stderr
    text = mb.config.read_text()
    assert text.startswith("# mailbridge configuration")
    assert (mb.root / "sp" / "new").is_dir()
    bad = mb("add-channel", "--no-input", "--name", "Bad Name")
    assert bad.exit_code == 2 and "channel name Bad Name: must be lowercase" in bad.stderr
    assert mb.config.read_text() == text  # a rejected channel leaves the file untouched
    dup = mb("add-channel", "--no-input", "--name", "support")
    assert dup.exit_code == 2 and "exists already" in dup.stderr


def test_enable_disable_remove_round_trip(mb):
    mb.drop_channel("a")
    mb.drop_channel("b")
    assert mb("channels", "disable", "a").exit_code == 0
    assert not load_config(mb.config).channel("a").enabled
    assert mb("channels", "enable", "a").exit_code == 0
    assert load_config(mb.config).channel("a").enabled
    assert mb("channels", "remove", "a", "--yes").exit_code == 0
    assert [c.name for c in load_config(mb.config).channels] == ["b"]
    missing = mb("channels", "disable", "zzz")
    assert missing.exit_code == 2 and "no channel called zzz" in missing.stderr


def test_add_channel_service_rejects_duplicates(tmp_path):
    path = tmp_path / "c.toml"
    add_channel(path, {"name": "x", "incoming": {"type": "drop", "spool": str(tmp_path / "s")}})
    with pytest.raises(Exception, match="exists already"):
        add_channel(path, {"name": "x", "incoming": {"type": "drop"}})


def test_example_config_mentions_every_key_the_schema_knows():
    import re

    from mailbridge.config import schema

    text = (REPO / "config.example.toml").read_text()
    specs = [schema.STORE, schema.ALERTS, schema.ME, schema.SALES, schema.CAMPAIGNS,
             schema.M365_APP, schema.CHANNEL, schema.ROUTE, schema.HOOK,
             *schema.INCOMING.values(), *schema.OUTGOING.values()]
    missing = sorted({key for spec in specs for key in spec
                      if not re.search(rf"(?:^|[\s{{,#]){key}\s*=", text)})
    assert missing == []


def test_title_is_shown_beside_the_name_by_channels_list_and_status(mb):
    """Usedesk: the channel name "will be displayed in the general list of channels"; the
    slug stays the key, the title is what people read (default: the slug)."""
    mb.drop_channel("support", title="Support Desk")
    mb.drop_channel("billing")
    listed = json.loads(mb("channels", "list", "--format", "json").stdout)
    assert [(c["name"], c["title"]) for c in listed] == [("support", "Support Desk"),
                                                         ("billing", "billing")]
    table = mb("channels", "list").stdout.splitlines()  # tsv in a pipe
    assert table[0].split("\t")[:2] == ["name", "title"]
    assert table[1].split("\t")[:2] == ["support", "Support Desk"]
    status = json.loads(mb("status", "--format", "json").stdout)  # before the first sync
    assert [(r["channel"], r["title"]) for r in status] == [("support", "Support Desk"),
                                                            ("billing", "billing")]
    assert mb("sync").exit_code == 0
    status = mb("status").stdout.splitlines()
    assert status[0].split("\t")[:2] == ["channel", "title"]
    assert status[1].split("\t")[:2] == ["support", "Support Desk"]
    assert problems({"channel": [{"name": "s", "title": 3, "incoming": {"type": "drop"}}]}) \
        == ["config.toml: channel.s.title: must be a string"]


def test_a_bad_type_does_not_hide_the_keys_beside_it():
    found = problems({"channel": [{"name": "s", "mdoe": "tickets", "incoming": {
        "type": "imapp", "hots": "x", "host": "y", "spool": "/z"}}]})
    assert found == [
        'config.toml: channel.s.mdoe: unknown key; did you mean "mode"?',
        'config.toml: channel.s.incoming.type: must be one of "drop", "imap", "m365"; did you '
        'mean "imap"?',
        'config.toml: channel.s.incoming.hots: unknown key; did you mean "host"?']


def test_every_bad_mailbox_entry_is_reported():
    found = problems({"channel": [{"name": "s", "incoming": {"type": "m365", "app": "a",
                                                             "mailboxes": [
        {"address": "a@x.example", "queu": "q"}, 7, {"address": "nope", "enabled": 1},
        "a@x.example"]}}], "m365": [{"name": "a", "tenant_id": "t", "client_id": "c"}]})
    assert found == [
        'config.toml: channel.s.incoming.mailboxes: entry 1: unknown key queu; did you mean '
        '"queue"?',
        "config.toml: channel.s.incoming.mailboxes: entry 2 must be an address or a table",
        "config.toml: channel.s.incoming.mailboxes: entry 3 (address): must be an e-mail "
        "address like support@example.com",
        "config.toml: channel.s.incoming.mailboxes: entry 3 (enabled): must be true or false",
        "config.toml: channel.s.incoming.mailboxes: a@x.example is listed twice"]


def test_a_flood_of_unknown_keys_is_cut_and_counted(mb):
    lines = ['[[channel]]', 'name = "s"', '[channel.incoming]', 'type = "drop"',
             *(f"k{i} = 1" for i in range(200_000))]
    mb.config.write_text("\n".join(lines) + "\n")
    result = mb("channels", "list")
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 31
    assert errors[-1] == f"mailbridge: error: {mb.config}: and 199970 more problems"


@pytest.mark.parametrize("nested", ["a = " + "[" * 2000 + "]" * 2000,
                                    "a = " + "{ b = " * 2000 + "1" + " }" * 2000])
def test_deep_nesting_is_a_config_error(mb, nested):
    mb.config.write_text(nested + "\n")
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (f"mailbridge: error: {mb.config}: not valid TOML: "
                                             "arrays or tables nested too deeply")
    assert "Traceback" not in result.stderr


def test_a_fifo_or_a_device_is_refused_without_reading_it(mb):
    import os

    os.mkfifo(mb.config)  # nobody writes to it: reading it would block for ever
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"mailbridge: error: {mb.config}: is not a regular file"
    other = mb.runner.invoke(app, ["--config", "/dev/zero", "channels", "list"])
    assert other.exit_code == 2 and "/dev/zero: is not a regular file" in other.stderr


def test_a_syntax_error_never_suggests_init(mb):
    mb.config.write_text('[[channel]]\nname = "support"\nmode = tickets\n')
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert "line 3" in result.stderr
    assert "init" not in result.stderr  # init would write a new file over the user's channels
    assert result.stderr.splitlines()[1] == ("mailbridge: hint: fix the file at the line and "
                                             "column named (it was not changed)")
