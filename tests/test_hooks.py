"""[[hook]]s run by `mailbridge run` (a real child process): once per event, in order, the
event on stdin; a failing hook is tried again after a backoff and then goes on without
skipping; a SIGKILL of `run` while a hook runs repeats that one event on the next start (at
least once), never skips one and never repeats one whose hook finished; bad [[hook]] tables
are one-line config errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w
from conftest import drop, message

from mailbridge.connectors.drop import make_spool

WAIT = 60.0

# Records "cursor kind" for each event; fails while a `fail` file holds a count above 0
# (taking one off each time); blocks while a `block` file exists (writing its pid first).
HOOK = r"""
import json, os, sys, time
root = sys.argv[1]
event = json.load(sys.stdin)
assert os.environ["MAILBRIDGE_CURSOR"] == str(event["cursor"])
with open(os.path.join(root, "ran.txt"), "a") as out:
    out.write(f"{event['cursor']} {event['kind']}\n")
fail = os.path.join(root, "fail")
left = int(open(fail).read()) if os.path.exists(fail) else 0
if left > 0:
    open(fail, "w").write(str(left - 1))
    print("the notifier is down", file=sys.stderr)
    sys.exit(3)
block = os.path.join(root, "block")
if os.path.exists(block):
    open(block, "w").write(str(os.getpid()))
    time.sleep(600)
"""


class Desk:
    def __init__(self, mb) -> None:
        self.mb = mb
        self.spool = mb.root / "spool" / "support"
        make_spool(self.spool)
        (mb.root / "hook.py").write_text(HOOK)
        mb.config.write_text(tomli_w.dumps({
            "store": mb.store_table(),
            "channel": [{"name": "support", "main_email": "support@example.com",
                         "schedule": "1s",
                         "incoming": {"type": "drop", "spool": str(self.spool)}}],
            "hook": [{"name": "notify", "on": ["ticket.created", "ticket.closed"],
                      "command": [sys.executable, str(mb.root / "hook.py"), str(mb.root)],
                      "timeout": 30}]}))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbridge", "--config", str(self.mb.config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=WAIT)
        assert self.proc.returncode == 0, err.decode()
        return err.decode()

    def ran(self) -> list[tuple[int, str]]:
        path = self.mb.root / "ran.txt"
        if not path.exists():
            return []
        return [(int(c), k) for c, k in (line.split() for line in path.read_text().splitlines())]

    def events(self, *kinds: str) -> list[tuple[int, str]]:
        return [(c, k) for c, k in self.mb.query("SELECT id, kind FROM events ORDER BY id")
                if k in kinds]

    def wait(self, what: str, check) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            assert self.proc is None or self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.ran()}"
            time.sleep(0.05)

    def mail(self, *subjects: str) -> None:
        for i, subject in enumerate(subjects):
            drop(self.spool, message(subject, message_id=f"{subject}-{i}@customer.example"))


def test_a_hook_runs_once_per_event_in_order_and_a_failure_is_retried(mb):
    desk = Desk(mb)
    desk.start()
    desk.mail("One", "Two", "Three")
    desk.wait("three tickets", lambda: len(desk.ran()) == 3)
    assert mb("tickets", "close", "2").exit_code == 0
    desk.wait("the close", lambda: len(desk.ran()) == 4)
    assert desk.ran() == desk.events("ticket.created", "ticket.closed")
    assert [k for _c, k in desk.ran()] == ["ticket.created"] * 3 + ["ticket.closed"]

    (mb.root / "fail").write_text("1")  # the next event fails once, then goes through
    desk.mail("Four", "Five")
    desk.wait("the failure", lambda: mb.value("SELECT failures FROM hook_state") == 1)
    shown = mb("status", "--format", "table").stdout
    assert "notify" in shown and "exited 3: the notifier is down" in shown
    desk.wait("the retry", lambda: len(desk.ran()) == 7)
    expected = desk.events("ticket.created", "ticket.closed")
    assert desk.ran() == expected[:5] + expected[4:]  # the failed one twice, none skipped
    # the cursor moves once the program has exited, a moment after it recorded its run
    desk.wait("the cursor", lambda: mb.value("SELECT cursor FROM hook_state") == expected[-1][0])
    assert mb.value("SELECT failures FROM hook_state") == 0
    desk.stop()


def test_sigkill_of_run_while_a_hook_runs_repeats_that_event_only(mb):
    desk = Desk(mb)
    desk.start()
    desk.mail("One", "Two")
    desk.wait("two tickets", lambda: len(desk.ran()) == 2)
    block = mb.root / "block"
    block.write_text("")
    desk.mail("Three", "Four")
    desk.wait("the blocked hook", lambda: block.read_text() != "")
    assert desk.proc is not None
    desk.proc.kill()  # run dies between the hook's side effect and the cursor's commit
    desk.proc.wait(timeout=WAIT)
    os.kill(int(block.read_text()), signal.SIGKILL)  # it ran in a session of its own
    block.unlink()
    before = desk.ran()
    assert len(before) == 3
    assert mb.value("SELECT cursor FROM hook_state") == before[1][0]

    desk.start()
    desk.wait("the rest", lambda: len(desk.ran()) == 5)
    expected = desk.events("ticket.created")
    assert len(expected) == 4
    assert desk.ran() == expected[:3] + expected[2:]  # the one in flight again, then on
    desk.stop()


def write_hook(mb, **hook) -> None:
    mb.config.write_text(tomli_w.dumps({"store": mb.store_table(), "hook": [hook]}))


def test_bad_hooks_are_one_line_config_errors(mb):
    cases = [
        ({"on": "ticket.created", "command": ["true"], "shell": True}, "hook.0.shell: unknown"),
        ({"on": "ticket.created", "command": []}, "hook.0.command: must not be empty"),
        ({"on": "ticket.creatd", "command": ["true"]},
         'did you mean "ticket.created"'),
        ({"on": "ticket.created", "command": "notify-send hi"},
         "hook.0.command: must be a list"),
    ]
    for hook, said in cases:
        write_hook(mb, **hook)
        result = mb("status")
        assert result.exit_code == 2, hook
        assert said in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    mb.config.write_text(tomli_w.dumps({"store": mb.store_table(), "hook": [
        {"on": "ticket.created", "command": ["/bin/notify"]},
        {"on": "ticket.closed", "command": ["/usr/bin/notify"]}]}))
    twice = mb("status")
    assert twice.exit_code == 2 and "'notify' is the name of another hook" in twice.stderr


def test_the_example_config_documents_hooks():
    text = (Path(__file__).parents[1] / "config.example.toml").read_text()
    assert "[[hook]]" in text and "on = " in text and "timeout" in text
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    from mailbridge.store.events import KINDS

    for kind in KINDS:
        assert f"`{kind}`" in readme, kind
    assert json.dumps(list(KINDS))  # the one list, plain strings


@pytest.mark.parametrize("store_backend", ["postgresql"])
def test_two_hosts_on_a_shared_store_run_a_hook_once_and_hand_it_over(mb):
    """Two `run` processes on one PostgreSQL store: the hook is leased (`hook:notify`), so
    each event runs once; when its holder stops, the other takes the hook over."""
    first, second = Desk(mb), Desk(mb)
    first.start()
    second.start()
    first.mail("One", "Two", "Three", "Four")
    first.wait("four tickets", lambda: len(first.ran()) == 4)
    holder = mb.value("SELECT owner FROM leases WHERE channel='hook:notify'")
    assert holder is not None
    by_pid = {str(d.proc.pid): d for d in (first, second) if d.proc is not None}
    stopping = by_pid[holder.rsplit(":", 1)[1]]
    other = second if stopping is first else first
    stopping.stop()  # gives the hook's lease back
    first.mail("Five", "Six")
    other.wait("the other host", lambda: len(first.ran()) == 6)
    assert mb.value("SELECT owner FROM leases WHERE channel='hook:notify'") != holder
    assert first.ran() == first.events("ticket.created", "ticket.closed")  # each once
    other.stop()


def test_a_hook_that_hangs_is_killed_with_its_children_at_its_timeout(tmp_path):
    from mailbridge.config.model import Hook
    from mailbridge.services.hooks import retry_in, run_command

    event = {"cursor": 7, "kind": "ticket.created"}
    pids = tmp_path / "pids"
    hangs = Hook("slow", ("ticket.created",),
                 ("sh", "-c", f'sleep 300 & echo $! > {pids}; wait'), 1)
    assert run_command(hangs, event, lambda: False) == "timed out after 1 s"
    child = int(pids.read_text())
    deadline = time.monotonic() + WAIT
    while Path(f"/proc/{child}").exists() and \
            Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the hook's child outlived it"
        time.sleep(0.05)
    missing = Hook("gone", ("ticket.created",), ("/nonexistent/notify",), 5)
    assert run_command(missing, event, lambda: False).startswith("cannot run /nonexistent")
    said = Hook("said", ("ticket.created",), ("sh", "-c", "cat >/dev/null; echo no >&2; exit 4"),
                5)
    assert run_command(said, event, lambda: False) == "exited 4: no"
    assert [retry_in(n) for n in (0, 1, 2, 6, 7, 40)] == [5, 10, 20, 300, 300, 300]
