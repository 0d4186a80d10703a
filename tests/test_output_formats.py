"""One format contract for every command that lists or shows something: `--format
table|json|jsonl|csv|tsv`, each meaning the same everywhere. json is one document, jsonl one
compact value a line, csv and tsv a header and rows with the same value rules (true/false,
lists as JSON text, nothing for an empty value; never Python's True, None or ['…']), and no
box-drawn table in a pipe. The walk covers every command that takes --format, so a new one
is held to the contract the day it is added."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import drop, message
from typer.main import get_command

from mailbridge.cli.app import app

FORMATS = ("table", "json", "jsonl", "csv", "tsv")
BOXES = re.compile("[\u2500-\u257f]")  # box-drawing characters
PYTHON_REPR = re.compile(r"^(True|False|None)$|\['|\[\{'|': ")
# The arguments each command needs (everything else runs as it is); a command that lists or
# shows something must take --format.
ARGS = {
    "tickets show": ["1"], "tickets attachments": ["1"], "channels show": ["desk"],
    "channels test": ["cs"], "clients show": ["ACME"], "engagements show": ["1"],
    "opportunities show": ["1"],
    "messages show": ["1"], "doctor": ["--offline"], "sync": ["--no-send"],
    "tickets search": ["printer"], "engagements search": ["renewal"],
    "opportunities search": ["quote"],
    "inbox show": ["1"], "notes show": ["1"], "campaigns show": ["1"],
}
SHOWS = {"tickets show", "channels show", "channels test", "clients show",
         "engagements show", "opportunities show", "messages show", "inbox show",
         "notes show"}
# Each run of these gives other values (it changes the store, or counts seconds): their csv
# and tsv are compared by header only.
CHANGING = {"contacts import", "opportunities import", "store migrate", "leases list",
            "leases hosts"}


def leaves(group=None, prefix=()):
    group = group or get_command(app)
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if hasattr(cmd, "commands"):
            yield from leaves(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def takes_format(cmd) -> bool:
    return any("--format" in getattr(p, "opts", ()) for p in cmd.params)


WITH_FORMAT = sorted(" ".join(path) for path, cmd in leaves() if takes_format(cmd))


def test_every_list_and_show_command_takes_format():
    readers = [" ".join(path) for path, _ in leaves()
               if path[-1] in ("list", "show", "status", "doctor", "info", "hosts", "check",
                               "test")]
    assert [r for r in readers if r not in WITH_FORMAT] == []


@pytest.fixture
def populated(mb, tmp_path):
    """A ticket with a reply in the outbox, an engagement, an opportunity with mail, a My
    Inbox item, a CRM note, an agent, a contact, a client domain, a campaign and a message
    that could only be stored raw."""
    connected = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    desk = mb.drop_channel("desk", outgoing={"type": "smtp", "host": "127.0.0.1", "port": 9,
                                             "security": "none"})
    cs = mb.drop_channel("cs", mode="engagements", owner="anna@us.test",
                         connected_at=connected)
    sales = mb.drop_channel("sales", mode="sales", owner="anna@us.test", agent="Anna",
                            matching=False, connected_at=connected,
                            outgoing={"type": "sendmail"})  # Anna's quotations, campaigns
    assert mb("contacts", "add", "bob@acme.test", "--client", "ACME", "--create").exit_code == 0
    assert mb("agents", "add", "Anna", "--email", "anna@us.test").exit_code == 0
    drop(desk, message("Printer on fire", message_id="t@x"))
    drop(desk, b"\x00\x01 not mail at all")
    drop(cs, message("Renewal", sender="bob@acme.test", message_id="e@x",
                     extra="Cc: anna@us.test\n"))
    drop(sales, message("Quote", sender="eve@evil.test", message_id="s@x"))
    drop(sales, message("Quote 2", sender="eve@evil.test", message_id="s2@x"))
    drop(sales, message("Quote 3", sender="eve@evil.test", message_id="s3@x"))
    assert mb("sync", "--no-send").exit_code == 4  # the raw message
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    assert mb("inbox", "new-opportunity", "1").exit_code == 0
    assert mb("clients", "set", "ACME", "--domain", "acme.test").exit_code == 0
    assert mb("inbox", "note", "3", "--client", "ACME").exit_code == 0  # a CRM note
    (tmp_path / "offer.txt").write_text("Our offer for {client}.")
    assert mb("campaigns", "send", "--subject", "Offer", "--body-file",
              str(tmp_path / "offer.txt"), "--client", "ACME", "--as", "Anna").exit_code == 0
    (tmp_path / "contacts.csv").write_text("email,name,client\ncid@acme.test,Cid,ACME\n")
    (tmp_path / "quote.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "opps.csv").write_text("summary,contact,client,type,project\n"
                                       "Deal,cid@acme.test,ACME,,no\n")
    return mb


def _args(path: str, fmt: str, tmp_path) -> list[str]:
    if path == "contacts import":
        return [str(tmp_path / "contacts.csv")]
    if path == "opportunities import":
        return [str(tmp_path / "opps.csv")]
    if path == "opportunities quote":  # --format is its dry run's
        return ["1", "--file", str(tmp_path / "quote.pdf"), "--as", "Anna", "--dry-run"]
    if path == "store migrate":
        return ["--to", f"sqlite://{tmp_path / f'copy-{fmt}.db'}"]
    return ARGS.get(path, [])


@pytest.mark.parametrize("path", WITH_FORMAT)
def test_every_command_keeps_the_format_contract(populated, tmp_path, path):
    mb = populated
    tables = {}
    for fmt in (*FORMATS, None):  # None: the default, in a pipe
        chosen = ("--format", fmt) if fmt else ()
        result = mb(*path.split(), *_args(path, fmt or "default", tmp_path), *chosen)
        assert result.exit_code in (0, 4), (path, fmt, result.output)
        out = result.stdout
        assert not BOXES.search(out), (path, fmt, out)  # not a terminal: no boxes
        if fmt == "json":
            json.loads(out)
        elif fmt == "jsonl":
            lines = out.splitlines()
            assert all(json.loads(line) is not None for line in lines), (path, out)
            if path in SHOWS:
                assert len(lines) == 1, (path, out)
        elif fmt in ("csv", "tsv"):
            rows = (list(csv.reader(io.StringIO(out))) if fmt == "csv"
                    else [line.split("\t") for line in out.splitlines()])
            assert rows, (path, fmt)
            assert all(len(r) == len(rows[0]) for r in rows), (path, fmt, out)
            assert not [c for r in rows for c in r if PYTHON_REPR.search(c)], (path, fmt, out)
            if path in SHOWS:
                assert len(rows) == 2, (path, fmt, out)  # the header and the record
            tables[fmt] = rows
        elif fmt == "table":
            assert not re.search(r"\b(True|False|None)\b|\['", out), (path, out)
    if path in CHANGING:
        assert tables["csv"][0] == tables["tsv"][0], path
    else:
        assert tables["csv"] == tables["tsv"], path  # the same values, by the same rules


def test_a_show_page_shows_values_as_a_person_reads_them(populated):
    page = populated("channels", "show", "desk").stdout
    assert "enabled: yes" in page
    assert not re.search(r"\b(True|False|None)\b|\['", page), page


def test_values_in_csv_and_tsv(populated):
    rows = list(csv.DictReader(io.StringIO(populated("channels", "list", "--format",
                                                     "csv").stdout)))
    assert {r["enabled"] for r in rows} == {"true"}
    assert {r["outgoing"] for r in rows} == {"smtp", "sendmail", ""}
    outbox = populated("outbox", "list", "--format", "tsv").stdout.splitlines()
    header = outbox[0].split("\t")
    assert outbox[1].split("\t")[header.index("recipients")] == '["ann@customer.example"]'
