"""A command run on a pseudo-terminal of a given size, as a person's terminal would run it:
stdin, stdout and stderr are the terminal, and everything written is read until it exits."""

from __future__ import annotations

import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from fcntl import ioctl
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Screen:
    output: bytes
    exit_code: int
    seconds: float

    @property
    def text(self) -> str:
        """What was written, colours removed, with the terminal's \\r\\n as \\n."""
        return ANSI.sub("", self.output.decode("utf-8", "replace")).replace("\r\n", "\n")


def run_on_terminal(argv: list[str], env: dict[str, str], cwd: Path | None = None,
                    columns: int = 80, lines: int = 24, timeout: float = 120) -> Screen:
    leader, follower = pty.openpty()
    ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True, start_new_session=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last writer has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Screen(b"".join(chunks), code, time.perf_counter() - start)
