"""Parsing in helper processes: on a second core, and under a deadline per message.

A helper (`python -m mailbridge.pipeline.prepare_helper`) is fed batches on stdin (a pickled
frame saying what follows, then each raw message as a frame of its own, written and read
without a copy of it being made) and answers on stdout, one frame per message, one batch in
flight. It prepares batch k while this
process fetches batch k+1 and commits batch k-1; a small batch (a cron poll, a piped message)
is parsed in-process unless one of its messages is large, because only a helper can be
stopped: the parser is linear, so a message of at most `IN_PROCESS_BYTES` parses in well under
a second whatever it holds, and any larger one goes to a helper.

Each message has a deadline (`parse_seconds`). The helper enforces it itself with an alarm;
should the helper not answer even then (stuck in C code, killed, out of memory), it is killed
here. Either way the message is stored raw, flagged with a parse error naming the deadline,
and the rest of the batch goes to a fresh helper: one hostile message costs its own parse, not
the batch or the sync. Helpers run in their own process group and ignore SIGINT and SIGTERM
(Ctrl-C and `systemctl stop` are this process's to handle); they end at EOF on stdin, so they
cannot outlive a killed sync, and are spawned with `close_fds`, so they never hold a lock.
They run at a lower priority (`NICENESS`) than this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from mailbridge.pipeline.prepare import Prepared, prepare, unparsed

log = logging.getLogger(__name__)

HELPERS = 2
MIN_BATCH = 16  # fewer messages, all of them small, are not worth a process
IN_PROCESS_BYTES = 256 * 1024
# Hostile mail parses at a few MB/s; ordinary mail, large attachments included, far faster.
_BASE_SECONDS, _SECONDS_PER_MB = 10.0, 1.0
_GRACE_SECONDS = 5.0  # the helper's own alarm fires first; this is for a helper that is stuck
# Helpers run below the calling process's priority: its fetches and commits are the
# pipeline's critical path, and where the cores are busy it waited for one behind them.
# Into a PostgreSQL server on a machine of its own a sync with mailbridge on one core was
# 15 % faster so; into SQLite on two cores it was the same.
NICENESS = 5
_HEADER = struct.Struct("!Q")



@dataclasses.dataclass(frozen=True)
class Job:
    """Call it for the results of a submitted batch. `ready` says, without waiting, whether
    the call would not wait for a helper (a batch parsed in-process always is: the call
    parses it)."""

    collect: Callable[[], list[Prepared | None]]
    ready: Callable[[], bool] = lambda: True

    def __call__(self) -> list[Prepared | None]:
        return self.collect()


def parse_seconds(size: int) -> float:
    """How long a message of `size` bytes may take to parse."""
    return _BASE_SECONDS + _SECONDS_PER_MB * size / 1048576


def _seconds(raw: bytes | None) -> float:
    return parse_seconds(len(raw)) if raw is not None else 0.0


def _over_deadline(raw: bytes, seconds: float) -> Prepared:
    return unparsed(raw, f"parsing took longer than its deadline of {seconds:.3g} s; stored raw")


def prepare_all(raws: Sequence[bytes | None], own: Sequence[str]) -> list[Prepared | None]:
    return [prepare(raw, own) if raw is not None else None for raw in raws]


def _wants_helper(raws: Sequence[bytes | None]) -> bool:
    return len(raws) >= MIN_BATCH or any(len(r) > IN_PROCESS_BYTES for r in raws if r)


class _Helper:
    """One helper process; one batch outstanding, read back message by message."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # -P: the current directory must not shadow this very package in the helper.
        # process_group: Ctrl-C on the terminal reaches this process only.
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "mailbridge.pipeline.prepare_helper"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=env,
            process_group=0)
        self.answers = _FrameReader(self.process.stdout.fileno())  # type: ignore[union-attr]
        self.busy = False
        self.since = 0.0  # when the helper began the message it is on, or later

    def send(self, own: tuple[str, ...], raws: Sequence[bytes | None]) -> None:
        present = [raw is not None for raw in raws]
        request = (own, present, [_seconds(raw) for raw in raws])
        _write_frame(self.process.stdin, pickle.dumps(request, protocol=5), flush=False)
        for raw in raws:
            if raw is not None:
                _write_frame(self.process.stdin, raw, flush=False)
        _write_frame(self.process.stdin, b"")  # (flushes)
        self.busy = True
        self.since = time.monotonic()

    def progress(self, raw: bytes | None) -> None:
        """Wait until the helper is done with the next message: TimeoutError past its
        deadline, EOFError if the helper ended."""
        if self.answers.read(self.since + _seconds(raw) + _GRACE_SECONDS):
            raise ValueError("a result where progress was due")
        self.since = time.monotonic()

    def results(self, raws: Sequence[bytes | None]) -> list[Prepared | None]:
        """The batch's results, which follow the last progress frame."""
        size = sum(len(raw) for raw in raws if raw is not None)
        answer = pickle.loads(self.answers.read(self.since + _GRACE_SECONDS + size / 1e7))
        if not isinstance(answer, list) or len(answer) != len(raws) or any(
                (p is None) != (raw is None) or (p is not None and not isinstance(p, Prepared))
                for p, raw in zip(answer, raws, strict=False)):
            raise ValueError("the answer does not match the batch")
        return [dataclasses.replace(p, raw=raw) if p is not None and raw is not None else None
                for p, raw in zip(answer, raws, strict=True)]

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # a dead helper: nothing left to flush
                stream.close()  # type: ignore[union-attr]
        self.answers.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Preparer:
    """`submit` a batch, later call the returned job for its results. At most `HELPERS` jobs
    may be outstanding, and jobs must be called in the order they were submitted. Two helpers
    even on two cores: one parses the newest batch while the other's batch is collected."""

    def __init__(self, own_addresses: Sequence[str], use_helper: bool = True) -> None:
        self.own = tuple(own_addresses)
        self.use_helper = use_helper
        self._helpers: list[_Helper] = []

    def submit(self, raws: Sequence[bytes | None]) -> Job:
        if not self.use_helper or not _wants_helper(raws):
            return Job(lambda: prepare_all(raws, self.own))
        try:
            helper = self._idle_helper()
            helper.send(self.own, raws)
        except (OSError, ValueError) as exc:
            self._give_up(f"could not hand a batch to a parsing helper: {exc}")
            return Job(lambda: prepare_all(raws, self.own))
        return Job(lambda: self._collect(helper, raws),
                   lambda: helper.answers.holds(len(raws) + 1))

    def close(self, kill: bool = False) -> None:
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close(kill)

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Interrupted (Ctrl-C, an error): what the helpers are parsing is not wanted.
        self.close(kill=exc_type is not None)

    def _idle_helper(self) -> _Helper:
        for helper in self._helpers:
            if not helper.busy:
                return helper
        if len(self._helpers) >= HELPERS:
            raise ValueError("more batches outstanding than helpers")
        self._helpers.append(_Helper())
        return self._helpers[-1]

    def _collect(self, helper: _Helper, raws: Sequence[bytes | None]) -> list[Prepared | None]:
        for index, raw in enumerate(raws):
            try:
                if helper not in self._helpers:
                    raise OSError("the helper was stopped")
                helper.progress(raw)
                continue
            except TimeoutError:
                why = f"took longer than its deadline of {_seconds(raw):.3g} s"
            except EOFError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    helper.process.wait(timeout=1)
                why = f"ended its parsing helper (exit status {helper.process.returncode})"
            except (OSError, ValueError) as exc:
                return self._give_up(f"a parsing helper failed ({exc})", raws)
            # The message it was on is the likely cause: stored raw, the others parsed anew.
            log.warning("parsing a message %s; it is stored raw", why)
            self._helpers.remove(helper)
            helper.close(kill=True)
            flagged = None if raw is None else unparsed(raw, f"parsing {why}; stored raw")
            before, after = raws[:index], raws[index + 1:]
            return [*(self.submit(before)() if before else []), flagged,
                    *(self.submit(after)() if after else [])]
        try:
            results = helper.results(raws)
        except (OSError, ValueError, EOFError, TimeoutError, pickle.UnpicklingError) as exc:
            return self._give_up(f"a parsing helper failed ({exc})", raws)
        helper.busy = False
        return results

    def _give_up(self, why: str, raws: Sequence[bytes | None] = ()) -> list[Prepared | None]:
        """Helpers are not used again this run; `raws` are parsed in-process."""
        log.warning("%s; parsing in-process", why)
        self.use_helper = False
        self.close(kill=True)
        return prepare_all(raws, self.own)


def _write_frame(stream: BinaryIO | None, payload: bytes, flush: bool = True) -> None:
    if stream is None:
        raise OSError("no pipe")
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)  # (a large payload goes to the pipe as it is, not via the buffer)
    if flush:
        stream.flush()


def _read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame, or None at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) != _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) != size:
        return None
    return payload


class _FrameReader:
    """Frames from a pipe, each under a deadline; reads whatever has arrived (up to 1 MB at a
    time), so a batch of small answers costs a few reads, not two per message."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.selector = selectors.DefaultSelector()
        self.selector.register(fd, selectors.EVENT_READ)
        self.buffer = bytearray()
        self.start = 0  # where the next frame begins in the buffer

    def read(self, deadline: float) -> bytearray:
        """One frame, or TimeoutError once `deadline` (monotonic) has passed."""
        self._fill(_HEADER.size, deadline)
        (size,) = _HEADER.unpack_from(self.buffer, self.start)
        self._fill(_HEADER.size + size, deadline)
        begin = self.start + _HEADER.size
        self.start = begin + size
        return self.buffer[begin:self.start]

    def holds(self, count: int) -> bool:
        """Whether `count` whole frames have arrived (or the pipe ended); never waits."""
        with contextlib.suppress(EOFError):
            while self.selector.select(0):
                self._take()
            position = self.start
            for _ in range(count):
                if len(self.buffer) - position < _HEADER.size:
                    return False
                position += _HEADER.size + _HEADER.unpack_from(self.buffer, position)[0]
            return position <= len(self.buffer)
        return True

    def close(self) -> None:
        self.selector.close()

    def _fill(self, needed: int, deadline: float) -> None:
        while len(self.buffer) - self.start < needed:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise TimeoutError("no answer in time")
            self._take()

    def _take(self) -> None:
        del self.buffer[:self.start]
        self.start = 0
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise EOFError("the helper exited")
        self.buffer += chunk


class _DeadlinePassed(BaseException):
    """Raised by the alarm inside the parser; a BaseException, so that the parser's own
    `except Exception` (one broken part must not lose the message) does not swallow it."""


def _alarm(signum: int, frame: object) -> None:
    raise _DeadlinePassed


def _prepare_in_time(raw: bytes | None, own: Sequence[str], seconds: float
                     ) -> Prepared | None:
    if raw is None:
        return None
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            prepared = prepare(raw, own)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _DeadlinePassed:  # (or in the instant after the parse ended: close enough)
        prepared = _over_deadline(raw, seconds)
    return _slim(prepared)


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Batches of (own addresses, which messages are there, each one's deadline in seconds),
    then the messages there, one frame each, then an empty frame. The whole batch is read
    before it is parsed, so the caller is never held up writing it. An empty frame after each
    message tells the caller's clock it is done; the results follow the batch in one frame,
    so the pipe never fills up while the batch is parsed."""
    while (request := _read_frame(stdin)) is not None:
        own, present, deadlines = pickle.loads(request)
        raws = [_read_frame(stdin) if there else None for there in present]
        if _read_frame(stdin) != b"" or any(
                raw is None for raw, there in zip(raws, present, strict=True) if there):
            return  # the caller ended mid-batch: nobody wants the answers
        answers = []
        for raw, seconds in zip(raws, deadlines, strict=True):
            answers.append(_prepare_in_time(raw, own, seconds))
            _write_frame(stdout, b"")
        _write_frame(stdout, pickle.dumps(answers, protocol=5))


def _slim(prepared: Prepared) -> Prepared:
    """Only what the caller lacks: it has the raw bytes, and stores attachments as metadata
    (the decoded contents stay in the raw), so neither is sent back through the pipe."""
    parsed = prepared.parsed
    if parsed is not None and parsed.attachments:
        parsed = dataclasses.replace(parsed, attachments=tuple(
            dataclasses.replace(a, data=b"") for a in parsed.attachments))
    return dataclasses.replace(prepared, raw=b"", parsed=parsed)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _alarm)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # Only frames may reach the pipe: anything else that writes to stdout goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        _serve(sys.stdin.buffer, answers)
    except BrokenPipeError:  # the caller stopped and wants no answers: end without a word
        os._exit(0)
