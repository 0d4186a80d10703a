"""Long output on a terminal goes through a pager, as git's does: `$PAGER`, else `less -FRX`
(-F: output that fits the window is just printed; -R: colours; -X: it stays on the screen).
An empty PAGER, or `cat`, turns it off; so does a pager that cannot be started."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator

DEFAULT = "less -FRX"
_paging = False  # stdout is a pager's, which shows on a terminal


def _command() -> list[str] | None:
    words = shlex.split(os.environ.get("PAGER", DEFAULT))
    return None if not words or words == ["cat"] else words


@contextlib.contextmanager
def paged() -> Iterator[None]:
    """stdout goes to the pager until the block ends, then the pager is waited for. Quitting
    the pager early ends the output quietly; Ctrl-C is the pager's (less stays, as in git).
    Inside a paged block another one is a no-op (stdout is a pipe)."""
    global _paging
    command = _command() if sys.stdout.isatty() else None
    if command is None:
        yield
        return
    env = {"LESS": "FRX", "LV": "-c", **os.environ}
    try:
        pager = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    except OSError:  # no such program: the terminal itself
        yield
        return
    terminal = sys.stdout
    sys.stdout = io.TextIOWrapper(pager.stdin, encoding=terminal.encoding, errors="replace",
                                  write_through=True)
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    _paging = True
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:  # the person quit the pager before the end
        pass
    finally:
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.close()
        sys.stdout, _paging = terminal, False
        pager.wait()
        signal.signal(signal.SIGINT, interrupt)


def to_terminal() -> bool:
    """Whether stdout shows on a terminal, directly or through the pager."""
    return _paging or sys.stdout.isatty()
