"""The parsing helper processes: same results as parsing in-process, a dead or hung helper
costs nothing but speed, and a helper never outlives the sync that started it."""

from __future__ import annotations

import dataclasses
import os
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


def test_a_killed_helper_costs_only_speed(caplog):
    raws = batch()
    with Preparer(()) as preparer:
        job = preparer.submit(raws)
        preparer._helpers[0].process.kill()
        results = job()
        assert [comparable(p) for p in results] == [comparable(p) for p in prepare_all(raws, ())]
        assert not preparer.use_helper and preparer._helpers == []
        assert preparer.submit(raws)()[0].parsed.subject == "Subject 0"  # in-process now
    assert "parsing in-process" in caplog.text


def test_a_hung_helper_is_abandoned_at_its_deadline(monkeypatch):
    monkeypatch.setattr(prepare_helper, "_BASE_SECONDS", 0.5)
    monkeypatch.setattr(prepare_helper, "_SECONDS_PER_MB", 0.0)
    raws = batch()
    with Preparer(()) as preparer:
        job = preparer.submit(raws)
        process = preparer._helpers[0].process
        os.kill(process.pid, 19)  # SIGSTOP: alive, never answers
        started = time.monotonic()
        results = job()
        assert time.monotonic() - started < 10
        assert results[0].parsed.subject == "Subject 0"
        assert process.wait(timeout=10) is not None  # killed, not left stopped


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
