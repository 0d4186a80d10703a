"""Provider auto-fill for `add-channel --email`: the shipped table is well-formed, known
providers fill IMAP and SMTP, and unknown domains are guessed only as far as a real
connection test confirms."""

from __future__ import annotations

import re
import tomllib

import pytest
from servers.dovecot import free_port
from servers.smtp import SmtpServer

from mailbridge.config import providers
from mailbridge.config.providers import Provider, Server

HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$")
REQUIRED = {"Gmail", "Outlook.com", "Yahoo Mail", "iCloud Mail", "Yandex Mail", "Mail.ru",
            "GMX", "Zoho Mail", "Fastmail"}


def test_every_provider_entry_is_well_formed():
    table = providers.providers()
    assert {p.name for p in table} >= REQUIRED
    seen: set[str] = set()
    for p in table:
        assert p.domains and all(d == d.lower() and HOST_RE.match(d) for d in p.domains), p
        assert not seen & set(p.domains), f"{p.name}: a domain is listed twice"
        seen |= set(p.domains)
        for server, ports in ((p.imap, {"ssl": 993, "starttls": 143}),
                              (p.smtp, {"ssl": 465, "starttls": 587})):
            assert HOST_RE.match(server.host), server
            assert server.security in ports, server
            assert server.port == ports[server.security], server  # the port fits the security
        assert p.password_note.strip(), f"{p.name}: say what its users must know"


def test_the_table_has_no_unknown_keys():
    from importlib import resources

    raw = tomllib.loads(resources.files("mailbridge.config").joinpath("providers.toml")
                        .read_text())
    for entry in raw["provider"]:
        assert set(entry) <= {"name", "domains", "imap", "smtp", "password_note"}
        assert set(entry["imap"]) == set(entry["smtp"]) == {"host", "port", "security"}


def test_lookup_ignores_case_and_guesses_are_ordered():
    assert providers.lookup("Someone@GMAIL.com").name == "Gmail"
    assert providers.lookup("someone@example.org") is None
    assert [(g.imap.host, g.imap.port, g.smtp.host, g.smtp.port)
            for g in providers.guesses("a@acme.test")] == [
        ("imap.acme.test", 993, "smtp.acme.test", 465),
        ("imap.acme.test", 143, "smtp.acme.test", 587),
        ("mail.acme.test", 993, "mail.acme.test", 465),
        ("mail.acme.test", 143, "mail.acme.test", 587)]


def test_a_known_provider_fills_imap_and_smtp(mb):
    result = mb("add-channel", "--no-input", "--name", "gm", "--email", "desk@gmail.com",
                "--password", "env:GM_PASSWORD", "--skip-test")
    assert result.exit_code == 0, result.stderr
    assert "Gmail" in result.stderr and "app password" in result.stderr
    channel = tomllib.loads(mb.config.read_text())["channel"][0]
    assert channel["main_email"] == "desk@gmail.com"
    assert channel["incoming"] == {
        "type": "imap", "host": "imap.gmail.com", "port": 993, "security": "ssl",
        "username": "desk@gmail.com", "password": {"env": "GM_PASSWORD"}, "folders": ["INBOX"]}
    assert channel["outgoing"] == {
        "type": "smtp", "host": "smtp.gmail.com", "port": 465, "security": "ssl",
        "username": "desk@gmail.com", "password": {"env": "GM_PASSWORD"},
        "from_email": "desk@gmail.com"}


def test_flags_win_over_the_table(mb):
    result = mb("add-channel", "--no-input", "--name", "y", "--email", "desk@yandex.ru",
                "--password", "env:P", "--skip-test", "--smtp-host", "relay.example.com",
                "--smtp-security", "starttls", "--no-outgoing")
    assert result.exit_code == 0, result.stderr
    channel = tomllib.loads(mb.config.read_text())["channel"][0]
    assert channel["incoming"]["host"] == "imap.yandex.com"
    assert "outgoing" not in channel


def test_an_unknown_domain_is_never_written_untested(mb):
    result = mb("add-channel", "--no-input", "--name", "x", "--email", "desk@acme.test",
                "--password", "env:P", "--skip-test")
    assert result.exit_code == 2
    assert "drop --skip-test, or pass --host" in result.stderr
    assert not mb.config.exists() or "acme" not in mb.config.read_text()


def test_guessed_servers_are_tried_until_one_answers(mb, dovecot, imap_user, monkeypatch):
    smtp = SmtpServer(user=imap_user.username, password=imap_user.password)
    try:
        monkeypatch.setenv("GUESS_PW", imap_user.password)
        closed = free_port()
        monkeypatch.setattr(providers, "guesses", lambda email: [
            Provider("nothing there", ("acme.test",), Server("127.0.0.1", closed, "ssl"),
                     Server("127.0.0.1", closed, "ssl")),
            Provider("the real one", ("acme.test",),
                     Server("127.0.0.1", imap_user.port, "none"),
                     Server("127.0.0.1", smtp.port, "none"))])
        result = mb("add-channel", "--no-input", "--name", "acme", "--email",
                    f"{imap_user.username}@acme.test", "--username", imap_user.username,
                    "--password", "env:GUESS_PW")
        assert result.exit_code == 0, result.stderr
        channel = tomllib.loads(mb.config.read_text())["channel"][0]
        assert channel["incoming"]["port"] == imap_user.port
        assert channel["outgoing"]["port"] == smtp.port

        monkeypatch.setattr(providers, "guesses", lambda email: [
            Provider("nothing", ("acme.test",), Server("127.0.0.1", closed, "ssl"),
                     Server("127.0.0.1", closed, "ssl"))])
        none = mb("add-channel", "--no-input", "--name", "acme2", "--email",
                  "x@acme.test", "--password", "env:GUESS_PW")
        assert none.exit_code == 2 and "no guessed server answered" in none.stderr
        assert "acme2" not in mb.config.read_text()
    finally:
        smtp.close()


@pytest.mark.parametrize("email", ["desk@gmail.com"])
def test_the_wizard_names_where_app_passwords_are_needed(mb, email):
    result = mb("add-channel", "--no-input", "--name", "n", "--email", email,
                "--password", "env:P", "--skip-test")
    assert "2-Step Verification" in result.stderr
