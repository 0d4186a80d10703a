"""The parsing helper processes: same results as parsing in-process; a message that runs past
its deadline, hangs or kills its helper is stored raw and flagged, the rest of its batch is
parsed by a fresh helper; and a helper never outlives the sync that started it."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES, message, needs_corpus

from mailbridge.pipeline import prepare_helper
from mailbridge.pipeline.prepare_helper import MIN_BATCH, Preparer, prepare_all


def batch(mail: Path = SAMPLES) -> list[bytes | None]:
    """Enough mail for the helpers, the .eml files of `mail` (the bundled samples: KOI8-R, an
    attachment, a bounce…), and two items that cannot be parsed."""
    raws: list[bytes | None] = [message(f"Subject {i}", message_id=f"{i}@helper.test")
                                for i in range(MIN_BATCH)]
    raws += [path.read_bytes() for path in sorted(mail.glob("*.eml"))]
    raws.append(b"")  # nothing to parse: stored raw with its error
    raws.append(None)  # the connector could not read this item
    return raws


def comparable(prepared):
    """Everything the store keeps; decoded attachment bytes are not sent back by a helper."""
    if prepared is None:
        return None
    parsed = prepared.parsed
    if parsed is not None:
        parsed = dataclasses.replace(parsed, attachments=tuple(
            dataclasses.replace(a, data=b"") for a in parsed.attachments))
    return dataclasses.replace(prepared, parsed=parsed)


@needs_corpus
def test_helpers_give_the_same_results_as_parsing_in_process():
    raws = batch(CORPUS / "zammad" / "mail")  # real-world, often broken mail
    assert len(raws) > MIN_BATCH + 100
    own = ("support@example.com",)
    with Preparer(own) as preparer:
        first, second = preparer.submit(raws), preparer.submit(raws[::-1])
        helpers = [h.process.pid for h in preparer._helpers]
        got_first, got_second = first(), second()
    assert len(helpers) == 2  # both batches were really handed to helper processes
    expected = [comparable(p) for p in prepare_all(raws, own)]
    assert [comparable(p) for p in got_first] == expected
    assert [comparable(p) for p in got_second] == expected[::-1]
    assert got_first[0].raw == raws[0]  # the caller's raw bytes are put back
    assert got_first[-2].parse_error == "empty message"
    assert got_first[-1] is None


def test_small_batches_are_parsed_in_process():
    with Preparer(()) as preparer:
        job = preparer.submit([message()])
        assert preparer._helpers == []
        assert job()[0].parsed.subject == "Hello"


def test_helpers_parse_below_the_priority_of_the_process_that_fetches_and_commits():
    with Preparer(()) as preparer:
        job = preparer.submit(batch())
        job()  # the helper has begun: it lowers its priority first
        helper = preparer._helpers[0].process.pid
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, helper) == min(mine + prepare_helper.NICENESS,
                                                                19)
        assert prepare_helper.NICENESS > 0


def test_a_killed_helper_costs_only_the_message_it_was_on(caplog):
    raws = batch()
    with Preparer(()) as preparer:
        job = preparer.submit(raws)
        first = preparer._helpers[0].process
        first.kill()
        results = job()
        assert first.wait(timeout=10) is not None
        assert results[0].parsed is None  # stored raw, flagged: it may be what killed it
        assert "ended its parsing helper" in results[0].parse_error
        assert results[0].raw == raws[0]
        expected = [comparable(p) for p in prepare_all(raws[1:], ())]
        assert [comparable(p) for p in results[1:]] == expected  # a fresh helper did the rest
        assert preparer.use_helper and first not in [h.process for h in preparer._helpers]
    assert "it is stored raw" in caplog.text


def test_a_hung_helper_is_killed_at_the_deadline(monkeypatch):
    monkeypatch.setattr(prepare_helper, "_BASE_SECONDS", 0.5)
    monkeypatch.setattr(prepare_helper, "_SECONDS_PER_MB", 0.0)
    monkeypatch.setattr(prepare_helper, "_GRACE_SECONDS", 0.5)
    raws = batch()
    with Preparer(()) as preparer:
        job = preparer.submit(raws)
        process = preparer._helpers[0].process
        os.kill(process.pid, signal.SIGSTOP)  # alive, never answers, deaf to its alarm
        started = time.monotonic()
        results = job()
        assert time.monotonic() - started < 10
        assert results[0].parse_error == ("parsing took longer than its deadline of 0.5 s; "
                                          "stored raw")
        assert results[1].parsed.subject == "Subject 1"
        assert process.wait(timeout=10) is not None  # killed, not left stopped


def slow_to_parse() -> bytes:
    """11 MB of nested <div>: linear, but a good half second of parsing."""
    html = b"<div>" * 1_000_000 + b"x" + b"</div>" * 1_000_000
    return b"From: a@example.com\nSubject: slow\nContent-Type: text/html\n\n" + html


def test_the_helper_stops_a_slow_parse_itself_and_carries_on(monkeypatch):
    monkeypatch.setattr(prepare_helper, "_BASE_SECONDS", 0.05)
    monkeypatch.setattr(prepare_helper, "_SECONDS_PER_MB", 0.0)
    raws = [slow_to_parse(), message("After", message_id="after@x")]
    with Preparer(()) as preparer:
        job = preparer.submit(raws)  # two messages, but one is large: a helper parses them
        helper = preparer._helpers[0].process
        slow, after = job()
        assert preparer._helpers[0].process is helper  # answered itself, was not killed
    assert slow.parsed is None and slow.raw == raws[0]
    assert slow.parse_error == "parsing took longer than its deadline of 0.05 s; stored raw"
    assert after.parsed.subject == "After"


def test_a_helper_killed_mid_batch_costs_only_the_message_it_was_on():
    raws = batch()
    raws.insert(5, slow_to_parse())
    with Preparer(()) as preparer:
        job = preparer.submit(raws)
        helper = preparer._helpers[0]
        deadline = time.monotonic() + 60
        while not helper.answers.holds(5) and time.monotonic() < deadline:
            time.sleep(0.01)  # five messages done: it is on the slow one
        helper.process.kill()
        results = job()
    assert results[5].parsed is None and "ended its parsing helper" in results[5].parse_error
    others = raws[:5] + raws[6:]
    assert [comparable(p) for p in results[:5] + results[6:]] == [
        comparable(p) for p in prepare_all(others, ())]


def test_small_messages_in_a_small_batch_are_parsed_in_process():
    large = message(body="x" * (prepare_helper.IN_PROCESS_BYTES + 1))
    with Preparer(()) as preparer:
        preparer.submit([message()] * (MIN_BATCH - 1))()
        assert preparer._helpers == []
        assert preparer.submit([message(), large])()[1].parsed is not None
        assert len(preparer._helpers) == 1


CHILD = """
import os, sys
from mailbridge.pipeline.prepare_helper import Preparer
raws = [b"Subject: s\\n\\nbody\\n"] * 20
preparer = Preparer(())
preparer.submit(raws)
print(preparer._helpers[0].process.pid, flush=True)
os._exit(9)  # as if SIGKILLed mid-sync
"""


def test_a_helper_ends_with_the_sync_that_started_it():
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, timeout=60,
                           text=True)
    helper = int(child.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(helper):
        time.sleep(0.05)
    assert not _alive(helper)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stream", [b"", b"\x00\x00"])
def test_the_helper_stops_at_the_end_of_its_input(stream):
    done = subprocess.run([sys.executable, "-P", "-m", "mailbridge.pipeline.prepare_helper"],
                          input=stream, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
