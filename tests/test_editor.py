"""Writing a reply, forward or comment in an editor: everything is checked before the editor
opens, the editor starts from a template (subject, recipients, the latest message quoted as
comment lines), and a text that cannot be queued is kept as a private draft that `--file`
takes back. The editor is a real program: a script set as $EDITOR (or found as
sensible-editor on PATH) that records what it was given and writes what the test says."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from pathlib import Path

import pytest
from conftest import drop, message

SCRIPT = """#!{python}
import os, pathlib, sys
draft = pathlib.Path(sys.argv[-1])
log = pathlib.Path(os.environ["FAKE_EDITOR_LOG"])
log.write_text(log.read_text() + draft.read_text() + "\\f" if log.exists() else
               draft.read_text() + "\\f")
if os.environ.get("FAKE_EDITOR_CTRL_C"):  # Ctrl-C reaches the terminal's foreground group
    import signal, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(0.5)
if os.environ.get("FAKE_EDITOR_REMOVE"):
    pathlib.Path(os.environ["FAKE_EDITOR_REMOVE"]).unlink()
draft.write_text(os.environ.get("FAKE_EDITOR_TEXT", "") + draft.read_text())
sys.exit(int(os.environ.get("FAKE_EDITOR_EXIT", "0")))
"""


class FakeEditor:
    def __init__(self, folder: Path, name: str = "fake-editor") -> None:
        folder.mkdir(exist_ok=True)
        self.path = folder / name
        self.path.write_text(SCRIPT.format(python=sys.executable))
        self.path.chmod(0o755)
        self.log = folder / "editor.log"

    def env(self, text: str = "", **extra: str) -> dict:
        return {"EDITOR": str(self.path), "VISUAL": None, "FAKE_EDITOR_LOG": str(self.log),
                "FAKE_EDITOR_TEXT": text, **extra}

    @property
    def templates(self) -> list[str]:
        return self.log.read_text().split("\f")[:-1] if self.log.exists() else []


@pytest.fixture
def editor(tmp_path) -> FakeEditor:
    return FakeEditor(tmp_path / "bin")


def desk(mb, outgoing: bool = True) -> None:
    spool = mb.drop_channel(**({"outgoing": {"type": "sendmail"}} if outgoing else {}))
    drop(spool, message("Printer broken", body="It is broken.\nTray 2.",
                        extra="Cc: Bob <bob@customer.example>\n"))
    assert mb("sync").exit_code == 0


def drafts_folder(mb) -> Path:
    return mb.root / "home" / ".local" / "share" / "mailbridge" / "drafts"


def outgoing_texts(mb) -> list[str]:
    shown = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)
    return [m["text"] for m in shown["messages"] if m["direction"] == "out"]


def test_the_editor_starts_from_a_template_whose_comment_lines_are_left_out(mb, editor):
    desk(mb)
    result = mb("tickets", "reply", "1", "--edit",
                env=editor.env("We are on it.\n#42 is the part number.\n"))
    assert result.exit_code == 0, result.output
    [template] = editor.templates
    assert template.startswith("\n\n# Reply to ticket #1: Printer broken\n")
    assert "# To: ann@customer.example, bob@customer.example (one mail each)\n" in template
    assert "an empty text cancels the reply" in template
    assert "# On Mon, 16 Nov 2026 09:00:00 +0000, Ann wrote:\n# > It is broken.\n# > Tray 2." \
        in template
    assert outgoing_texts(mb)[0].startswith("We are on it.\n#42 is the part number.\n\n")
    assert "Printer broken" not in outgoing_texts(mb)[0].split("wrote:")[0]
    assert list(drafts_folder(mb).iterdir()) == []  # queued: the draft is gone


@pytest.mark.parametrize(("argv", "wanted"), [
    (("tickets", "forward", "1", "--to", "vendor@example.org"), "has no outgoing connection"),
    (("tickets", "reply", "1"), "has no outgoing connection"),
    (("tickets", "reply", "7"), "no ticket #7"),
    (("tickets", "comment", "7"), "no ticket #7"),
    (("tickets", "comment", "1", "--as", "nobody"), "no agent called nobody"),
])
def test_nothing_is_written_in_vain_what_can_be_checked_is_checked_first(mb, editor, argv,
                                                                         wanted):
    desk(mb, outgoing=False)
    result = mb(*argv, "--edit", env=editor.env("Lost words."))
    assert result.exit_code == 2 and wanted in result.stderr, result.output
    assert editor.templates == []  # the editor never opened


@pytest.mark.parametrize(("argv", "wanted"), [
    (("--as", "nobody"), "no agent called nobody"),
    (("--attach", "missing.pdf"), "missing.pdf: cannot attach"),
    (("--drop", "carol@customer.example"), "not among the recipients"),
])
def test_a_reply_checks_agent_attachments_and_recipients_first(mb, editor, argv, wanted):
    desk(mb)
    result = mb("tickets", "reply", "1", "--edit", *argv, env=editor.env("Lost words."))
    assert result.exit_code == 2 and wanted in result.stderr, result.output
    assert editor.templates == []


def test_a_text_that_cannot_be_queued_is_kept_and_taken_back_with_file(mb, editor, tmp_path):
    desk(mb)
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4")
    # the attachment disappears while the agent writes: queueing fails after the editor
    failed = mb("tickets", "reply", "1", "--edit", "--attach", str(report), "--cc",
                "carl@customer.example",
                env=editor.env("An hour of careful words.", FAKE_EDITOR_REMOVE=str(report)))
    assert failed.exit_code == 2, failed.output
    lines = failed.stderr.splitlines()
    assert lines[-2].startswith("mailbridge: error: ") and "cannot attach" in lines[-2]
    assert lines[-1].startswith("mailbridge: note: the text is kept in ")
    [draft] = drafts_folder(mb).iterdir()
    assert f"kept in {draft}; queue it with: " in lines[-1]
    assert draft.read_text() == "An hour of careful words.\n"  # the text alone, no template
    assert stat.S_IMODE(draft.stat().st_mode) == 0o600
    assert stat.S_IMODE(draft.parent.stat().st_mode) == 0o700
    assert outgoing_texts(mb) == []

    again = shlex.split(lines[-1].partition("queue it with: ")[2])
    assert again[:3] == ["mailbridge", "--config", str(mb.config)]
    assert "--cc" in again and "--edit" not in again
    assert again[again.index("--file") + 1] == str(draft)
    report.write_bytes(b"%PDF-1.4")
    queued = mb(*again[3:])  # the fixture adds --config itself
    assert queued.exit_code == 0, queued.output
    assert outgoing_texts(mb)[0].startswith("An hour of careful words.\n")
    assert not draft.exists()  # used up


def test_an_editor_that_fails_keeps_the_text_and_an_empty_text_does_nothing(mb, editor):
    desk(mb)
    failed = mb("tickets", "comment", "1", "--edit",
                env=editor.env("Half a thought", FAKE_EDITOR_EXIT="1"))
    assert failed.exit_code == 2 and "exited with status 1" in failed.stderr
    [draft] = drafts_folder(mb).iterdir()
    assert draft.read_text() == "Half a thought\n" and str(draft) in failed.stderr
    finished = mb("tickets", "comment", "1", "--file", str(draft), "--edit",
                  env=editor.env("Whole thought: "))
    assert finished.exit_code == 0, finished.output
    assert list(drafts_folder(mb).iterdir()) == []  # the draft edited on is used up too
    comments = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["comments"]
    assert [c["text"] for c in comments] == ["Whole thought: Half a thought"]

    empty = mb("tickets", "comment", "1", "--edit", env=editor.env(""))
    assert empty.exit_code == 2 and "the text is empty; nothing was done" in empty.stderr
    assert list(drafts_folder(mb).iterdir()) == []
    assert len(json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["comments"]) == 1


def test_ctrl_c_while_the_editor_is_open_is_the_editor_s(mb, editor):
    """vi takes Ctrl-C for itself; mailbridge, waiting, must not stop and kill it."""
    desk(mb)
    result = mb("tickets", "comment", "1", "--edit",
                env=editor.env("Still here.", FAKE_EDITOR_CTRL_C="1"))
    assert result.exit_code == 0, result.output
    assert json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["comments"][0][
        "text"] == "Still here."


def test_without_editor_variables_debian_s_sensible_editor_is_used(mb, tmp_path):
    desk(mb)
    sensible = FakeEditor(tmp_path / "debian-bin", "sensible-editor")
    env = {**sensible.env("Noted."), "EDITOR": None,
           "PATH": f"{sensible.path.parent}:/nonexistent"}
    result = mb("tickets", "comment", "1", "--edit", env=env)
    assert result.exit_code == 0, result.output
    assert "# Internal comment on ticket #1: Printer broken" in sensible.templates[0]

    none = mb("tickets", "comment", "1", "--edit", env={**env, "PATH": str(tmp_path)})
    assert none.exit_code == 2 and "no editor" in none.stderr and "--message" in none.stderr


def test_a_forward_is_written_in_the_editor_too(mb, editor):
    desk(mb)
    result = mb("tickets", "forward", "1", "--to", "vendor@example.org", "--edit",
                env=editor.env("Can you look?"))
    assert result.exit_code == 0, result.output
    assert "# To: vendor@example.org, with the whole conversation" in editor.templates[0]
