"""`mailbridge tickets list` over a store of N tickets (default 25 000), in a pipe and on a
terminal (a pseudo-terminal of 80 columns, read to the end as a terminal would). The store is
filled through the store's repositories, not by syncing mail: what is timed is the listing
(also sorted by priority, and of the unassigned, where the checkout has --sort).
Prints figures; asserts nothing.

    python benchmarks/bench_tickets_list.py [N] [--runs R] [--source DIR]

Each figure is the median of R runs (default 3) of a whole `python -m mailbridge` process.
On a terminal the pager is `cat` (PAGER=cat), so that nothing waits for a key. `--source`
times the mailbridge of another checkout (e.g. `git worktree add /tmp/old <commit>`), run
from that folder with this interpreter: the figures before and after a change.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers.terminal import run_on_terminal  # noqa: E402

from mailbridge.config.model import StoreSettings  # noqa: E402
from mailbridge.domain.workflow import PRIORITIES  # noqa: E402
from mailbridge.store import tickets  # noqa: E402
from mailbridge.store.backends import backend  # noqa: E402

COLUMNS, LINES = 80, 24
SECONDS = 600  # bound on one run


def fill(store: Path, n: int) -> None:
    db = backend(StoreSettings.sqlite(store)).connect()
    try:
        with db.atomic():
            for i in range(n):
                tickets.create(db, "support", ("general", "billing")[i % 2],
                               f"Question number {i} about the invoice of last month, "
                               "and a few more words", f"Customer {i}",
                               f"customer{i % 500}@a-rather-long-domain.example", "human",
                               priority=PRIORITIES[i % len(PRIORITIES)])
    finally:
        db.close()


def in_a_pipe(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, timeout=SECONDS, check=True)
    return time.perf_counter() - start, done.stdout.count(b"\n")


def on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    screen = run_on_terminal(argv, env, cwd, COLUMNS, LINES, SECONDS)
    return screen.seconds, screen.output.count(b"\n")


def median(run, argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> str:
    times, lines = [], 0
    for _ in range(runs):
        took, lines = run(argv, env, cwd)
        times.append(took)
    return f"{statistics.median(times):6.2f} s (min {min(times):.2f}, max {max(times):.2f}), " \
           f"{lines} lines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=25_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose mailbridge is timed (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = root / "store.db"
        start = time.perf_counter()
        fill(store, args.n)
        print(f"{args.n} tickets stored in {time.perf_counter() - start:.1f} s")
        config = root / "config.toml"
        config.write_text(f'[store]\npath = "{store}"\n\n[[channel]]\nname = "support"\n'
                          f'incoming = {{ type = "drop", spool = "{root / "spool"}" }}\n')
        env = {**os.environ, "MAILBRIDGE_CONFIG": str(config), "PAGER": "cat",
               "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        env.pop("NO_COLOR", None)
        base = [sys.executable, "-m", "mailbridge", "tickets", "list"]
        cases = [("pipe", in_a_pipe, []), ("terminal", on_a_terminal, [])]
        if "--all" in subprocess.run(base + ["--help"], env=env, cwd=args.source,
                                     capture_output=True, text=True, check=True).stdout:
            cases += [("pipe", in_a_pipe, ["--format", "table", "--all"]),
                      ("terminal", on_a_terminal, ["--all"])]
        if "--sort" in subprocess.run(base + ["--help"], env=env, cwd=args.source,
                                      capture_output=True, text=True, check=True).stdout:
            cases += [("pipe", in_a_pipe, ["--sort", "priority"]),
                      ("terminal", on_a_terminal, ["--sort", "priority"]),
                      ("terminal", on_a_terminal, ["--assignee", "none", "--sort", "updated"])]
        print(f"mailbridge from {args.source}")
        for where, run, extra in cases:
            command = " ".join(["tickets list", *extra])
            print(f"{command:<40} {where:<9} "
                  f"{median(run, base + extra, env, args.source, args.runs)}")


if __name__ == "__main__":
    main()
