"""Parsing on a second core: a helper process prepares batch k while this one fetches batch
k+1 and commits batch k-1. Parsing is pure and is two thirds of the work of a sync.

The helper is `python -m mailbridge.pipeline.prepare_helper`, fed pickled batches on stdin and
answering on stdout, one request in flight. It is spawned with `close_fds`, so it never holds
the store lock, and it ends at EOF on stdin, so it cannot outlive a killed sync. It is only an
optimisation: whatever goes wrong with it (it dies, hangs past its deadline, answers garbage),
the batch is prepared in-process instead and the helper is not used again this run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from mailbridge.pipeline.prepare import Prepared, prepare

log = logging.getLogger(__name__)

HELPERS = 2
MIN_BATCH = 16  # smaller batches (a cron poll, a piped message) are not worth a process
_HEADER = struct.Struct("!Q")
# Generous: the helper parses at several MB/s even on hostile mail.
_BASE_SECONDS, _SECONDS_PER_MB = 60.0, 10.0

Job = Callable[[], list[Prepared | None]]


def prepare_all(raws: Sequence[bytes | None], own: Sequence[str]) -> list[Prepared | None]:
    return [prepare(raw, own) if raw is not None else None for raw in raws]


class _Helper:
    """One helper process; at most one request outstanding, so neither side can block the
    other on a full pipe."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # -P: the current directory must not shadow this very package in the helper.
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "mailbridge.pipeline.prepare_helper"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=env)
        self.busy = False

    def send(self, own: tuple[str, ...], raws: Sequence[bytes | None]) -> None:
        _write_frame(self.process.stdin, pickle.dumps((own, list(raws)), protocol=5))
        self.busy = True

    def receive(self, raws: Sequence[bytes | None], deadline: float) -> list[Prepared | None]:
        answer = pickle.loads(_read_frame(self.process.stdout, deadline))
        self.busy = False
        if not isinstance(answer, list) or len(answer) != len(raws):
            raise ValueError("the answer does not match the batch")
        return [dataclasses.replace(p, raw=raw) if p is not None and raw is not None else None
                for p, raw in zip(answer, raws, strict=True)]

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # a dead helper: nothing left to flush
                stream.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Preparer:
    """`submit` a batch, later call the returned job for its results. At most `depth` jobs
    may be outstanding, and jobs must be called in the order they were submitted."""

    def __init__(self, own_addresses: Sequence[str], use_helper: bool = True) -> None:
        self.own = tuple(own_addresses)
        self.use_helper = use_helper
        # Two helpers even on two cores: either one parses while the other waits for its
        # batch to be handed over or collected, so parsing never waits on this process.
        self.depth = HELPERS if use_helper else 1
        self._helpers: list[_Helper] = []

    def submit(self, raws: Sequence[bytes | None]) -> Job:
        if not self.use_helper or len(raws) < MIN_BATCH:
            return lambda: prepare_all(raws, self.own)
        try:
            helper = self._idle_helper()
            deadline = _deadline(raws)
            helper.send(self.own, raws)
        except (OSError, ValueError) as exc:
            self._give_up(f"could not hand a batch to a parsing helper: {exc}")
            return lambda: prepare_all(raws, self.own)
        return lambda: self._collect(helper, raws, deadline)

    def close(self) -> None:
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _idle_helper(self) -> _Helper:
        for helper in self._helpers:
            if not helper.busy:
                return helper
        if len(self._helpers) >= HELPERS:
            raise ValueError("more batches outstanding than helpers")
        self._helpers.append(_Helper())
        return self._helpers[-1]

    def _collect(self, helper: _Helper, raws: Sequence[bytes | None],
                 deadline: float) -> list[Prepared | None]:
        try:
            if helper not in self._helpers:
                raise OSError("the helper was stopped")
            return helper.receive(raws, deadline)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, TimeoutError) as exc:
            self._give_up(f"a parsing helper failed ({exc}); parsing in-process")
            return prepare_all(raws, self.own)

    def _give_up(self, why: str) -> None:
        log.warning("%s", why)
        self.use_helper = False
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close(kill=True)


def _deadline(raws: Sequence[bytes | None]) -> float:
    megabytes = sum(len(r) for r in raws if r is not None) / 1048576
    return time.monotonic() + _BASE_SECONDS + _SECONDS_PER_MB * megabytes


def _write_frame(stream: BinaryIO | None, payload: bytes) -> None:
    if stream is None:
        raise OSError("no pipe")
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: BinaryIO | None, deadline: float) -> bytes:
    """One frame, or TimeoutError once `deadline` (monotonic) has passed."""
    if stream is None:
        raise OSError("no pipe")
    fd = stream.fileno()
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return _read_exact(fd, size, deadline)


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError("no answer in time")
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError("the helper exited")
            chunks.append(chunk)
            remaining -= len(chunk)
    return b"".join(chunks)


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    while len(header := stdin.read(_HEADER.size)) == _HEADER.size:
        (size,) = _HEADER.unpack(header)
        own, raws = pickle.loads(stdin.read(size))
        results = [_slim(p) if p is not None else None for p in prepare_all(raws, own)]
        _write_frame(stdout, pickle.dumps(results, protocol=5))


def _slim(prepared: Prepared) -> Prepared:
    """Only what the caller lacks: it has the raw bytes, and stores attachments as metadata
    (the decoded contents stay in the raw), so neither is sent back through the pipe."""
    parsed = prepared.parsed
    if parsed is not None and parsed.attachments:
        parsed = dataclasses.replace(parsed, attachments=tuple(
            dataclasses.replace(a, data=b"") for a in parsed.attachments))
    return dataclasses.replace(prepared, raw=b"", parsed=parsed)


if __name__ == "__main__":
    # Only frames may reach the pipe: anything else that writes to stdout goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, answers)
