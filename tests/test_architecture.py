"""The dependency direction of DESIGN.md, checked by import-linter's contracts in
pyproject.toml (layers, store/connectors independence, typer/rich only in the CLI)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the test extras (scripts/test.sh)")
    done = subprocess.run([exe, "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


SQL = re.compile(r"""["'](?:SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|"""
                 r"""CREATE\s+(?:TABLE|INDEX)\s|PRAGMA\s)""", re.IGNORECASE)


def test_no_sql_outside_the_store():
    """Every query lives in mailbridge/store, where both backends' dialects are handled."""
    found = [f"{path.relative_to(REPO)}:{n}" for path in sorted((REPO / "mailbridge").rglob("*.py"))
             if "store" not in path.relative_to(REPO / "mailbridge").parts[:1]
             for n, line in enumerate(path.read_text().splitlines(), 1) if SQL.search(line)]
    assert found == []
