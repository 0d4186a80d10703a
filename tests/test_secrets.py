"""Secret references resolve from keyring, env, file or command; failures are exit 3 with one
line; values never reach output, logs, errors or the store."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

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


def test_file_and_command_secrets_are_their_first_line(tmp_path):
    (tmp_path / "pw").write_text(f"{SECRET}\r\nuser: ann\n")
    assert resolve({"file": str(tmp_path / "pw")}) == SECRET
    assert resolve({"command": ["printf", f"{SECRET}\\nurl: example.com\\n"]}) == SECRET
    (tmp_path / "empty").write_text("\nsecond\n")
    with pytest.raises(SecretError, match=r"secret file .*empty is empty"):
        resolve({"file": str(tmp_path / "empty")})


def channel_row(result) -> dict:
    """`secrets check --format json`'s first row about a channel (a PostgreSQL store's own
    password reference comes first)."""
    return next(r for r in json.loads(result.stdout) if r["key"].startswith("channel"))


@pytest.mark.parametrize("value", ["ab\x1bcd", "ab\tcd", "ab\x00cd", "ab\x7fcd", "ab\x9bcd"])
def test_a_secret_with_a_control_character_is_refused_in_one_line(mb, tmp_path, monkeypatch,
                                                                     value):
    """Every kind of reference: the character would end or corrupt the protocol line."""
    monkeypatch.setenv("MB_PW", value.replace("\x00", "\x01"))  # no NUL in the environment
    (tmp_path / "pw").write_text(value + "\n")
    assert mb("secrets", "set", "mailbridge/mail", input=value + "\n").exit_code == 3
    import keyring

    keyring.set_password("mailbridge", "mailbridge/mail", value)  # stored by something else
    for ref in ({"env": "MB_PW"}, {"file": str(tmp_path / "pw")},
                {"command": ["cat", str(tmp_path / "pw")]}, {"keyring": "mailbridge/mail"}):
        mb.write_config([imap_channel(ref)])
        result = mb("secrets", "check", "--format", "json")
        assert result.exit_code == 3
        problem = channel_row(result)["problem"]
        assert "contains a control character (U+00" in problem, ref
        assert value not in result.stdout + result.stderr


def test_secrets_set_keeps_the_first_line_of_stdin(mb):
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    assert mb("secrets", "set", "mailbridge/mail", input=f"{SECRET}\nmore\n").exit_code == 0
    import keyring

    assert keyring.get_password("mailbridge", "mailbridge/mail") == SECRET


def test_set_then_check_through_the_keyring(mb):
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    missing = mb("secrets", "check", "--format", "json")
    assert missing.exit_code == 3
    row = channel_row(missing)
    assert row["key"] == "channel.mail.incoming.password" and not row["ok"]
    assert "mailbridge secrets set mailbridge/mail" in row["problem"]
    assert mb("secrets", "set", "mailbridge/mail", input=SECRET + "\n").exit_code == 0
    ok = mb("secrets", "check", "--format", "json")
    assert ok.exit_code == 0
    assert channel_row(ok)["ok"] is True
    assert SECRET not in ok.stdout + ok.stderr


def test_no_keyring_backend_names_the_alternatives(mb, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core._keyring_backend = None
    result = mb("secrets", "set", "x", input="value\n")
    assert result.exit_code == 3
    assert "no OS keyring backend is usable" in result.stderr
    for alternative in ('{ env = "VAR" }', '{ file = "/run/credentials/', "systemd credentials",
                        '{ command = ['):
        assert alternative in result.stderr
    assert "keyrings.alt" not in result.stderr  # it would keep the secret in clear
    assert "Traceback" not in result.stderr


def use_backend(monkeypatch, name: str) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", name)
    import keyring.core

    keyring.core._keyring_backend = None


def test_a_keyring_that_stores_in_clear_is_refused(mb, monkeypatch):
    """keyrings.alt's PlaintextKeyring keeps base64 in a file: `secrets set` said "stored in
    the keyring" and doctor "keyring ok"."""
    use_backend(monkeypatch, "servers.keyring_backend.PlaintextKeyring")
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    stored = mb("secrets", "set", "mailbridge/mail", input=SECRET + "\n")
    assert stored.exit_code == 3
    error, hint = stored.stderr.splitlines()
    assert error.startswith("mailbridge: error: ") and "in clear" in error
    assert "mailbridge-test-keyring.json" in error  # where it would have gone
    assert '{ env = "VAR" }' in hint and "systemd credentials" in hint
    keyring_file = mb.root / "home" / ".local" / "share" / "mailbridge-test-keyring.json"
    assert not keyring_file.exists()
    doctor = mb("doctor", "--offline", "--format", "json")
    check = next(c for c in json.loads(doctor.stdout) if c["check"] == "keyring")
    assert check["status"] == "fail" and "in clear" in check["detail"]
    assert doctor.exit_code == 4


def test_a_chain_that_would_store_in_clear_is_refused(monkeypatch):
    """Without PYTHON_KEYRING_BACKEND keyring chains every usable backend and stores in the
    first: keyrings.alt beside no OS keyring is such a chain."""
    from keyring.backends.chainer import ChainerBackend
    from servers.keyring_backend import PlaintextKeyring, TmpKeyring

    from mailbridge.config.secrets import cleartext_store

    monkeypatch.setattr(ChainerBackend, "backends", [PlaintextKeyring(), TmpKeyring()])
    assert cleartext_store(ChainerBackend()).endswith("mailbridge-test-keyring.json")
    monkeypatch.setattr(ChainerBackend, "backends", [TmpKeyring(), PlaintextKeyring()])
    assert cleartext_store(ChainerBackend()) is None


def test_a_subprocess_uses_the_tests_keyring(mb):
    """conftest's keyring reaches a mailbridge started as a separate process too."""
    mb.write_config([imap_channel({"keyring": "mailbridge/mail"})])
    done = subprocess.run([sys.executable, "-m", "mailbridge", "--config", str(mb.config),
                           "secrets", "set", "mailbridge/mail"], input=SECRET, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert channel_row(mb("secrets", "check", "--format", "json"))["ok"] is True


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
    assert "chosen by PYTHON_KEYRING_BACKEND" in channel_row(checked)["problem"]
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


def test_resolved_secrets_are_scrubbed_from_library_logs(caplog, monkeypatch):
    monkeypatch.setenv("MB_PW", SECRET)
    resolve({"env": "MB_PW"})
    caplog.handler.addFilter(redact.RedactingFilter())
    logging.getLogger("imapclient.imaplib").warning("> b'0001 LOGIN user %s'", SECRET)
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


def test_a_name_equal_to_a_short_password_is_shown_as_it_is(mb, monkeypatch):
    """Redaction masked a secret's text wherever it occurred: a channel and a user named like
    their password were shown as ********."""
    from servers.dovecot import free_port

    monkeypatch.setenv("MB_PW", "support")
    mb.write_config([{"name": "support", "incoming": {
        "type": "imap", "host": "127.0.0.1", "port": free_port(), "security": "none",
        "username": "support", "password": {"env": "MB_PW"}, "timeout": 5}}])
    for args in (("channels", "test", "support"), ("sync",)):
        result = mb(*args)
        assert result.exit_code in (4, 75), result.output
        assert "channel support: 127.0.0.1" in result.stderr
        assert redact.MASK not in result.stderr


def test_a_server_that_quotes_the_password_never_shows_it(mb, monkeypatch):
    from servers.smtp import SmtpServer

    smtp = SmtpServer(user="desk", password="the-right-one",
                      refusal="535 5.7.8 password {password} is wrong for desk")
    try:
        monkeypatch.setenv("MB_PW", SECRET)
        spool = mb.drop_channel("desk")
        mb.write_config([{"name": "desk", "incoming": {"type": "drop", "spool": str(spool)},
                          "outgoing": {"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                                       "security": "none", "username": "desk",
                                       "password": {"env": "MB_PW"}}}])
        result = mb("channels", "test", "desk")
        assert result.exit_code == 3, result.output
        assert f"password {redact.MASK} is wrong for desk" in result.stderr
        assert SECRET not in result.stdout + result.stderr
    finally:
        smtp.close()


def test_an_imap_error_quoting_the_login_is_masked(monkeypatch):
    from imapclient.exceptions import LoginError

    from mailbridge.connectors.imap_session import _text

    monkeypatch.setenv("MB_PW", SECRET)
    resolve({"env": "MB_PW"})
    refused = LoginError(f"b'[AUTHENTICATIONFAILED] LOGIN desk {SECRET} failed'")
    assert _text(refused) == f"[AUTHENTICATIONFAILED] LOGIN desk {redact.MASK} failed"
