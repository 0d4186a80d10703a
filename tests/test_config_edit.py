"""Commands that edit the config keep the user's file: on a copy of config.example.toml every
comment survives, in order, and only the keys the command names change; a rejected edit
leaves the file byte for byte as it was."""

from __future__ import annotations

import difflib
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from mailbridge.config.load import load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"


def comments(text: str) -> list[str]:
    """Every comment of a TOML text (whole-line and trailing), in order."""
    found = []
    for line in text.splitlines():
        quote = None
        for i, ch in enumerate(line):
            if quote:
                quote = None if ch == quote and line[i - 1] != "\\" else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                found.append(line[i:].rstrip())
                break
    return found


def channel(data: dict, name: str) -> dict:
    return next(c for c in data["channel"] if c["name"] == name)


def block(text: str, name: str) -> str:
    """The lines of channel `name`'s block: from its header to the next [[...]] header."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("[[channel]]") and lines[i + 1] == f'name = "{name}"'
                 + lines[i + 1][len(f'name = "{name}"'):])
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[[")),
               len(lines))
    return "".join(lines[start:end])


@pytest.fixture
def example(mb):
    shutil.copy(EXAMPLE, mb.config)
    mb.config.chmod(0o644)
    return mb


def _disable(d):
    channel(d, "support")["enabled"] = False


def _enable_o365(d):
    channel(d, "o365")["enabled"] = True


def _disable_mailbox(d):
    channel(d, "o365")["incoming"]["mailboxes"][0] = {"address": "help@contoso.com",
                                                      "enabled": False}


def _enable_mailbox(d):
    channel(d, "o365")["incoming"]["mailboxes"][2]["enabled"] = True


def _remove_mailboxes(d):
    del channel(d, "o365")["incoming"]["mailboxes"][1:]


def _set_keys(d):
    ch = channel(d, "imap-desk")
    ch["no_messages_hours"] = 0.5
    ch["incoming"]["port"] = 995
    ch["incoming"]["folders"] = ["INBOX", "Sent"]
    ch["outgoing"] = {"type": "sendmail", "from_name": "Desk Team"}


def _unset_keys(d):
    del channel(d, "support")["schedule"]
    del channel(d, "support")["outgoing"]["bcc"]


def _set_mailbox_key(d):
    channel(d, "o365")["incoming"]["mailboxes"][1]["queue"] = "money"


def _add_channel(d):
    d["channel"].append({"name": "new", "mode": "tickets", "main_email": "new@example.com",
                         "default_queue": "general", "incoming": {"type": "drop"}})


EDITS = {
    "disable": (["channels", "disable", "support"], _disable),
    "enable": (["channels", "enable", "o365"], _enable_o365),
    "disable-mailbox": (["channels", "disable", "o365", "--mailbox", "help@contoso.com"],
                        _disable_mailbox),
    "enable-mailbox": (["channels", "enable", "o365", "-m", "sales@contoso.com"],
                       _enable_mailbox),
    "remove-mailbox": (["channels", "remove-mailbox", "o365", "billing@contoso.com",
                        "sales@contoso.com", "--yes"], _remove_mailboxes),  # and their lines
    "set": (["channels", "set", "imap-desk", "no_messages_hours", "0.5", "incoming.port", "995",
             "incoming.folders", '["INBOX", "Sent"]', "outgoing.type", "sendmail",
             "outgoing.from_name", "Desk Team"], _set_keys),
    "set-inline": (["channels", "set", "o365", "outgoing.bcc", "archive@contoso.com"],
                   lambda d: channel(d, "o365")["outgoing"].update(bcc="archive@contoso.com")),
    "unset": (["channels", "unset", "support", "schedule", "outgoing.bcc"], _unset_keys),
    "set-mailbox": (["channels", "set", "o365", "queue", "money", "--mailbox",
                     "billing@contoso.com"], _set_mailbox_key),
    "add-channel": (["add-channel", "--no-input", "--name", "new", "--main-email",
                     "new@example.com"], _add_channel),
}

LOST = {"remove-mailbox": ["# queue: its new tickets' queue", "# enabled: synced or not (true)"],
        "unset": [c for c in comments(block(EXAMPLE.read_text(), "support"))
                  if "how often" in c or "cron expression" in c or "engagements 1h" in c
                  or "APScheduler" in c or "which runs it" in c
                  or "a blind copy" in c or "servers that keep no Sent" in c]}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edit_keeps_every_comment_and_changes_only_its_keys(example, case):
    argv, change = EDITS[case]
    if case == "add-channel":
        argv = [*argv, "--spool", str(example.root / "spool")]
    before = example.config.read_text()
    expected = tomllib.loads(before)
    change(expected)
    if case == "add-channel":
        channel(expected, "new")["incoming"]["spool"] = str(example.root / "spool")

    result = example(*argv)
    assert result.exit_code == 0, result.stderr
    after = example.config.read_text()
    assert tomllib.loads(after) == expected
    lost = LOST.get(case, [])
    assert comments(after) == [c for c in comments(before) if c not in lost]
    assert stat.S_IMODE(example.config.stat().st_mode) == 0o600
    load_config(example.config)


def changes(before: str, after: str) -> list[str]:
    """The lines removed (-) and added (+), each after the line above it (@)."""
    out = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=1):
        if line[:3] not in ("+++", "---", "@@ "):
            out.append(line if line[:1] in "+-" else "@" + line[1:])
    return out


def test_a_changed_value_keeps_its_comment_in_its_column(example):
    assert example("channels", "disable", "support").exit_code == 0
    assert changes(EXAMPLE.read_text(), example.config.read_text())[1:3] == [
        "-enabled = true                  # disabled channels stay in the config and store, "
        "not synced",
        "+enabled = false                 # disabled channels stay in the config and store, "
        "not synced",
    ]


def test_a_new_key_goes_below_the_tables_last_key(example):
    """Not below the comments that introduce the next section, nor with a blank line, nor
    between a key's comment and the indented lines that continue it."""
    assert example("channels", "disable", "imap-desk").exit_code == 0
    assert example("channels", "set", "cs-anna", "incoming.port", "993",
                   "outgoing.type", "sendmail").exit_code == 0
    assert changes(EXAMPLE.read_text(), example.config.read_text()) == [
        '@main_email = "desk@example.com"   # when the IMAP username is not the mailbox address',
        "+enabled = false",
        "@# Incoming: IMAP (Usedesk's \"external connection\"): unread mail becomes tickets and "
        "is marked",
        "@                                # shared folders",  # below a comment's last line
        "+port = 993",
        "+",
        "+[channel.outgoing]",
        '+type = "sendmail"',
        "@",
    ]


@pytest.mark.parametrize("name", ["support", "o365", "sales-m365"])
def test_remove_takes_only_the_channels_own_lines(example, name):
    before = example.config.read_text()
    own = block(before, name)
    assert example("channels", "remove", name, "--yes").exit_code == 0
    after = example.config.read_text()
    assert after.replace("\n\n", "\n") == before.replace(own, "").replace("\n\n", "\n")
    expected = tomllib.loads(before)
    expected["channel"].remove(channel(expected, name))
    assert tomllib.loads(after) == expected


def test_remove_keeps_the_comments_above_the_next_channel(mb):
    mb.config.write_text(
        '# Support inbox\n[[channel]]\nname = "a"\nincoming = { type = "drop" }\n'
        "# a: forwarded by the MTA\n\n"
        '# Sales inbox: Anna\'s copy\n[[channel]]\nname = "b"\n'
        '[channel.incoming]\ntype = "drop"\n\n# end of the channels\n')
    assert mb("channels", "remove", "a", "--yes").exit_code == 0
    assert mb.config.read_text() == (
        '# Support inbox\n# Sales inbox: Anna\'s copy\n[[channel]]\nname = "b"\n'
        '[channel.incoming]\ntype = "drop"\n\n# end of the channels\n')
    assert mb("channels", "remove", "b", "--yes").exit_code == 0
    assert mb.config.read_text() == "# Support inbox\n# Sales inbox: Anna's copy\n" \
                                    "# end of the channels\n"


def test_removing_the_last_channel_keeps_the_comments_above_the_next_table(mb):
    mb.config.write_text('[[channel]]\nname = "a"\nincoming = { type = "drop" }\n\n'
                         "# where the store lives\n[store]\n# path = \"x\"\n")
    assert mb("channels", "remove", "a", "--yes").exit_code == 0
    assert mb.config.read_text() == '# where the store lives\n[store]\n# path = "x"\n'


def test_a_new_outgoing_section_goes_above_the_comments_of_the_next_channel(mb):
    mb.config.write_text('[[channel]]\nname = "a"\n[channel.incoming]\ntype = "drop"\n\n'
                         '# the b channel\n[[channel]]\nname = "b"\nincoming = { type = "drop" }\n')
    assert mb("channels", "set", "a", "outgoing.type", "sendmail").exit_code == 0
    assert mb.config.read_text() == (
        '[[channel]]\nname = "a"\n[channel.incoming]\ntype = "drop"\n\n'
        '[channel.outgoing]\ntype = "sendmail"\n\n'
        '# the b channel\n[[channel]]\nname = "b"\nincoming = { type = "drop" }\n')


# -- channels set / unset --------------------------------------------------------------------

def test_set_reads_each_value_as_its_keys_type(example):
    result = example("channels", "set", "support", "enabled", "false", "signature", "true",
                     "window_hours", "48", "outgoing.port", "2525",
                     "outgoing.password", "env:SMTP_PASSWORD", "schedule", "*/5 * * * *",
                     "routes", '[{ queue = "vip", keywords = ["urgent"] }]',
                     "owner_aliases", '["a@example.com"]')
    assert result.exit_code == 0, result.stderr
    ch = channel(tomllib.loads(example.config.read_text()), "support")
    assert (ch["enabled"], ch["signature"], ch["window_hours"], ch["schedule"]) == (
        False, "true", 48, "*/5 * * * *")
    assert ch["outgoing"]["port"] == 2525
    assert ch["outgoing"]["password"] == {"env": "SMTP_PASSWORD"}
    assert ch["routes"] == [{"queue": "vip", "keywords": ["urgent"]}]
    assert ch["owner_aliases"] == ["a@example.com"]
    assert 'password = { env = "SMTP_PASSWORD" }' in example.config.read_text()


@pytest.mark.parametrize(("argv", "error", "hint"), [
    (["support", "outgoing.frm_name", "x"], "channel support has no key outgoing.frm_name",
     "did you mean outgoing.from_name?"),
    (["support", "port", "25"], "channel support has no key port", "did you mean outgoing.port?"),
    (["support", "incoming.host", "x"], "channel support has no key incoming.host",
     "incoming.host is for incoming.type imap; this channel's is drop"),
    (["cs-anna", "outgoing.bcc", "x@example.com"], "channel cs-anna has no key outgoing.bcc",
     "set outgoing.type first"),
    (["support", "name", "help"], "support: the name cannot be changed", "add a new channel"),
    (["support", "quoting", "sometimes"], "channel.support.quoting: must be one of", None),
    (["imap-desk", "incoming.port", "http"], "channel.imap-desk.incoming.port: must be an "
     "integer 1–65535", None),
    (["support", "default_queue", '"vip"\nenabled = false'], "channel.support.default_queue: "
     "must be lowercase", None),  # one value, not a TOML document
    (["support", "enabled"], "enabled has no value", "give every KEY a VALUE"),
    (["nope", "enabled", "true"], "no channel called nope", None),
    (["o365", "queue", "x", "--mailbox", "zed@contoso.com"], "channel o365 has no mailbox "
     "zed@contoso.com", None),
    (["support", "queue", "x", "--mailbox", "a@example.com"], "not a Microsoft 365 channel",
     None),
])
def test_set_rejects_and_leaves_the_file_alone(example, argv, error, hint):
    result = example("channels", "set", *argv)
    assert result.exit_code == 2
    assert error in result.stderr
    assert hint is None or "mailbridge: hint: " in result.stderr and hint in result.stderr
    assert "Traceback" not in result.stderr
    assert example.config.read_text() == EXAMPLE.read_text()


def test_set_never_writes_a_plain_secret(example):
    result = example("channels", "set", "imap-desk", "incoming.password", "hunter22-secret")
    assert result.exit_code == 2
    assert "must be a secret reference" in result.stderr
    assert "hunter22" not in result.stderr + result.stdout
    assert example.config.read_text() == EXAMPLE.read_text()


def test_set_can_give_a_drop_channel_an_outgoing_connection_in_one_command(example):
    result = example("channels", "set", "cs-anna", "outgoing.type", "sendmail",
                     "outgoing.from_name", "Anna", "outgoing.bcc", "anna-sent@company.com")
    assert result.exit_code == 0, result.stderr
    out = load_config(example.config).channel("cs-anna").outgoing
    assert (out["type"], out["from_name"], out["bcc"]) == ("sendmail", "Anna",
                                                           "anna-sent@company.com")


def test_unset_restores_the_default_and_keeps_required_keys(example):
    assert load_config(example.config).channel("cs-anna").window_hours == 24
    assert example("channels", "set", "cs-anna", "window_hours", "72").exit_code == 0
    assert load_config(example.config).channel("cs-anna").window_hours == 72
    result = example("channels", "unset", "cs-anna", "window_hours", "schedule")
    assert result.exit_code == 0, result.stderr
    assert "removed window_hours, schedule" in result.stderr
    assert load_config(example.config).channel("cs-anna").window_hours == 24
    again = example("channels", "unset", "cs-anna", "window_hours")
    assert again.exit_code == 0 and "not set; nothing to remove" in again.stderr
    before = example.config.read_text()
    required = example("channels", "unset", "cs-anna", "incoming.host")
    assert required.exit_code == 2
    assert "channel.cs-anna.incoming.host: is required" in required.stderr
    assert example.config.read_text() == before


def test_set_on_one_mailbox(example):
    result = example("channels", "set", "o365", "queue", "help", "enabled", "false",
                     "--mailbox", "HELP@contoso.com")
    assert result.exit_code == 0, result.stderr
    box = load_config(example.config).channel("o365").mailboxes[0]
    assert (box["address"], box["queue"], box["enabled"]) == ("help@contoso.com", "help", False)
    assert '  { address = "help@contoso.com", queue = "help", enabled = false },\n' in \
        example.config.read_text()
    unknown = example("channels", "set", "o365", "qeue", "x", "-m", "help@contoso.com")
    assert unknown.exit_code == 2 and "did you mean queue?" in unknown.stderr


def test_an_edit_of_an_unchanged_value_does_not_rewrite_the_file(example):
    before = example.config.stat().st_mtime_ns, example.config.stat().st_ino
    assert example("channels", "enable", "support").exit_code == 0  # enabled already
    assert example("channels", "enable", "imap-desk").exit_code == 0  # enabled by default
    assert (example.config.stat().st_mtime_ns, example.config.stat().st_ino) == before


def test_channels_written_as_inline_tables_can_be_edited_too(mb):
    mb.config.write_text('channel = [{ name = "a", incoming = { type = "drop" } },\n'
                         '  { name = "b", incoming = { type = "drop" } }]  # two\n')
    assert mb("channels", "set", "a", "default_queue", "first").exit_code == 0
    assert mb("channels", "remove", "b", "--yes").exit_code == 0
    assert mb.config.read_text() == ('channel = [{ name = "a", incoming = { type = "drop" }, '
                                     'default_queue = "first" }]  # two\n')


def test_the_comment_counter_sees_every_comment_of_the_example():
    """The comment check above is only as good as `comments`: it finds each of the example's
    comments (220 lines hold one) and ignores a # inside a string."""
    text = EXAMPLE.read_text()
    assert len(comments(text)) == sum(1 for line in text.splitlines() if "#" in line)
    assert comments('a = "x # y"  # z\nb = \'#\'\n') == ["# z"]


# -- add-channel: the channel card without an editor ------------------------------------------

def test_add_channel_sets_every_field_of_the_channel_card(mb):
    assert mb("init").exit_code == 0
    result = mb("add-channel", "--no-input", "--skip-test", "--name", "support",
                "--main-email", "support@example.com", "--spool", str(mb.root / "spool"),
                "--additional-email", "help@example.com", "--outgoing", "sendmail",
                "--from-name", "Acme Support", "--from-email", "help@example.com",
                "--bcc", "archive@example.com", "--signature", "-- \nAcme",
                "--use-common-signature", "--quoting", "send_to_client",
                "--no-forward-creates-ticket", "--no-messages-hours", "0.5",
                "--default-queue", "general", "--route", "billing:invoice, refund",
                "--route", "tech:error", "--set", "schedule=15m")
    assert result.exit_code == 0, result.stderr
    ch = load_config(mb.config).channel("support")
    assert (ch.additional_email, ch.signature, ch.use_common_signature, ch.quoting,
            ch.forward_creates_ticket, ch.no_messages_hours, ch.default_queue, ch.schedule) == (
        "help@example.com", "-- \nAcme", True, "send_to_client", False, 0.5, "general", "15m")
    assert [(r.queue, r.keywords) for r in ch.routes] == [("billing", ("invoice", "refund")),
                                                          ("tech", ("error",))]
    assert {k: ch.outgoing[k] for k in ("type", "from_name", "from_email", "bcc")} == {
        "type": "sendmail", "from_name": "Acme Support", "from_email": "help@example.com",
        "bcc": "archive@example.com"}
    assert mb.config.read_text().startswith("# mailbridge configuration")


def test_add_channel_sets_the_sales_and_engagements_keys(mb):
    result = mb("add-channel", "--no-input", "--skip-test", "--name", "sales-anna", "--mode",
                "sales", "--incoming", "imap", "--host", "imap.example.com", "--username",
                "anna@example.com", "--password", "env:ANNA", "--agent", "Anna",
                "--no-matching", "--match-to", "projects", "--matching-type", "domain",
                "--import-sent-items", "--hide-email-chain", "--owner-alias",
                "a.smith@example.com", "--window-hours", "48",
                "--set", "incoming.max_message_mb=20")
    assert result.exit_code == 0, result.stderr
    ch = load_config(mb.config).channel("sales-anna")
    assert (ch.agent, ch.matching, ch.match_to, ch.matching_type, ch.import_sent_items,
            ch.hide_email_chain, ch.owner_aliases, ch.window_hours) == (
        "Anna", False, "projects", "domain", True, True, ["a.smith@example.com"], 48)
    assert ch.incoming["max_message_mb"] == 20
    assert "window_hours = 48\n" in mb.config.read_text()


def test_add_channel_can_send_through_microsoft_365(mb):
    mb.write_config([], m365=[{"name": "contoso", "tenant_id": "t", "client_id": "c",
                               "client_secret": {"env": "X"}}])
    result = mb("add-channel", "--no-input", "--skip-test", "--name", "help", "--outgoing",
                "m365", "--app", "contoso", "--email", "help@contoso.com", "--incoming", "drop",
                "--from-name", "Contoso Help")
    assert result.exit_code == 0, result.stderr
    out = load_config(mb.config).channel("help").outgoing
    assert (out["type"], out["app"], out["mailbox"], out["from_name"]) == (
        "m365", "contoso", "help@contoso.com", "Contoso Help")


@pytest.mark.parametrize(("argv", "error", "hint"), [
    (["--bcc", "x@example.com"], "--bcc is for the outgoing connection", "--outgoing sendmail"),
    (["--route", "billing"], "--route billing: not QUEUE:KEYWORD,KEYWORD…", "billing:invoice"),
    (["--set", "colour=red"], "channel new has no key colour", "channels set --help"),
    (["--set", "schedule"], "--set schedule: not KEY=VALUE", None),
    (["--quoting", "sometimes"], "channel.new.quoting: must be one of", None),
    (["--outgoing", "smtp"], "an SMTP outgoing connection needs a host", "--smtp-host"),
    (["--outgoing", "m365"], "needs an app and a mailbox", "--app NAME"),
    (["--outgoing", "pigeon"], "outgoing connection must be one of", None),
])
def test_add_channel_rejects_card_flags_it_cannot_use(mb, argv, error, hint):
    assert mb("init").exit_code == 0
    before = mb.config.read_text()
    result = mb("add-channel", "--no-input", "--skip-test", "--name", "new", *argv)
    assert result.exit_code == 2
    assert error in result.stderr
    assert hint is None or hint in result.stderr
    assert mb.config.read_text() == before
