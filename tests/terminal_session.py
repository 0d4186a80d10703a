"""A command run on a pseudo-terminal, as a person runs it: stdin, stdout and stderr are the
terminal, which is also its controlling terminal (so hidden password prompts work). The test
waits for what the command prints and types answers; every wait is bounded."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.seen = ""  # everything printed so far (CR LF as LF)
        self._read_to = 0
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its terminal
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)

    def expect(self, pattern: str) -> re.Match:
        """Wait for `pattern` (a regex) in what is printed after the last match."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = re.compile(pattern).search(self.seen, self._read_to)
            if found:
                self._read_to = found.end()
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pattern!r} not printed; the terminal shows:\n"
                                     f"{self.seen[self._read_to:]}")

    def answer(self, pattern: str, text: str) -> None:
        """Wait for the prompt `pattern`, then type `text` and Enter."""
        self.expect(pattern)
        os.write(self.fd, text.encode() + b"\r")

    def wait(self) -> int:
        """Read to the end and return the exit code (the command is killed after timeout)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        for _ in range(int(self.timeout * 10)):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"the command did not end; the terminal shows:\n{self.seen}")

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False at the end of output."""
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the command ended and closed the terminal
            return False
        if not chunk:
            return False
        self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return True
