"""The dependency direction of DESIGN.md, checked by import-linter's contracts in
pyproject.toml (layers, store/connectors independence, typer/rich only in the CLI)."""

from __future__ import annotations

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
