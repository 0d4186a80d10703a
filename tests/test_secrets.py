"""Secret references resolve from keyring, env, file or command; failures are exit 3 with one
line; values never reach output, logs, errors or the store."""

from __future__ import annotations

import json
import logging

import pytest

from mailbridge import redact
from mailbridge.config.secrets import resolve
from mailbridge.errors import SecretError

SECRET = "s3cret-Value-9f8e7d"


def imap_channel(password: dict) -> dict:
    return {"name": "mail", "incoming": {"type": "imap", "host": "imap.example.com",
                                         "username": "u", "password": password}}


def test_env_file_and_command_references(tmp_path, monkeypatch):
    monkeypatch.setenv("MB_PW", SECRET)
    (tmp_path / "pw").write_text(SECRET + "\n")
    assert resolve({"env": "MB_PW"}) == SECRET
    assert resolve({"file": str(tmp_path / "pw")}) == SECRET
    assert resolve({"command": ["printf", SECRET]}) == SECRET
    with pytest.raises(SecretError, match="exited with status 1"):
        resolve({"command": ["false"]})


def test_set_then_check_through_the_keyring(mb):
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    missing = mb("secrets", "check", "--format", "json")
    assert missing.exit_code == 3
    row = json.loads(missing.stdout)[0]
    assert row["key"] == "channel.mail.incoming.password" and not row["ok"]
    assert "mailbridge secrets set mailbridge/mail" in row["problem"]
    assert mb("secrets", "set", "mailbridge/mail", input=SECRET + "\n").exit_code == 0
    ok = mb("secrets", "check", "--format", "json")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)[0]["ok"] is True
    assert SECRET not in ok.stdout + ok.stderr


def test_no_keyring_backend_names_the_alternatives(mb, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core._keyring_backend = None
    result = mb("secrets", "set", "x", input="value\n")
    assert result.exit_code == 3
    assert "no OS keyring backend is usable" in result.stderr
    assert '{ env = "VAR" }' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["no_such_module.Keyring",
                                     "keyring.backends.SecretService.Keyring"])
def test_an_unusable_chosen_backend_is_one_line(mb, monkeypatch, backend):
    """A backend named in PYTHON_KEYRING_BACKEND that cannot load (not installed; no D-Bus
    session for the Secret Service on a server) made keyring raise from inside its setup."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", backend)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    import keyring.core

    keyring.core._keyring_backend = None
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    checked = mb("secrets", "check", "--format", "json")
    assert checked.exit_code == 3
    assert "chosen by PYTHON_KEYRING_BACKEND" in json.loads(checked.stdout)[0]["problem"]
    stored = mb("secrets", "set", "mailbridge/mail", input="value\n")
    assert stored.exit_code == 3
    assert "the keyring backend chosen by PYTHON_KEYRING_BACKEND" in stored.stderr
    assert "internal error" not in stored.stderr and "Traceback" not in stored.stderr


def test_plaintext_password_in_toml_is_refused_without_echoing_it(mb):
    mb.write_config([imap_channel(SECRET)])  # type: ignore[arg-type]
    result = mb("channels", "list")
    assert result.exit_code == 2
    assert "must be a secret reference" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_channel_show_prints_references_not_values(mb, monkeypatch):
    monkeypatch.setenv("MB_PW", SECRET)
    mb.write_config([imap_channel({"env": "MB_PW"})])
    result = mb("channels", "show", "mail", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["incoming"]["password"] == "env MB_PW"
    assert SECRET not in result.stdout


def test_resolved_secrets_are_scrubbed_from_logs(caplog, monkeypatch):
    monkeypatch.setenv("MB_PW", SECRET)
    resolve({"env": "MB_PW"})
    logger = logging.getLogger("mailbridge.test")
    handler = logging.StreamHandler()
    handler.addFilter(redact.RedactingFilter())
    caplog.handler.addFilter(redact.RedactingFilter())
    logger.warning("LOGIN user %s", SECRET)
    assert SECRET not in caplog.text
    assert redact.MASK in caplog.text


def test_secrets_never_reach_the_store(mb, monkeypatch):
    monkeypatch.setenv("MB_PW", SECRET)
    spool = mb.drop_channel()
    mb.write_config([
        {"name": "support", "incoming": {"type": "drop", "spool": str(spool)},
         "outgoing": {"type": "smtp", "host": "smtp.example.com", "username": "u",
                      "password": {"env": "MB_PW"}}}])
    assert mb("secrets", "check").exit_code == 0
    assert mb("sync").exit_code == 0
    assert SECRET.encode() not in mb.dump()
    assert SECRET not in mb.config.read_text()
