"""The systemd units in contrib/ are valid and run what the README says they run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

CONTRIB = REPO / "contrib"
UNITS = ("mailbridge.service", "mailbridge-sync.service", "mailbridge-sync.timer")


def test_units_run_the_documented_commands():
    service = (CONTRIB / "mailbridge.service").read_text()
    assert "ExecStart=/usr/local/bin/mailbridge run\n" in service
    assert "Restart=on-failure\n" in service and "ExecReload=/bin/kill -HUP $MAINPID" in service
    oneshot = (CONTRIB / "mailbridge-sync.service").read_text()
    assert "ExecStart=/usr/local/bin/mailbridge sync --quiet\n" in oneshot
    assert "SuccessExitStatus=75" in oneshot


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path):
    for unit in UNITS:  # ExecStart must exist for verify; point it at /bin/true
        text = (CONTRIB / unit).read_text().replace("/usr/local/bin/mailbridge", "/bin/true")
        (tmp_path / unit).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
