"""The add-channel wizard on a real (pseudo-)terminal: each answer is checked when it is given,
by the config's rule for its key, and asked for again, so a wrong one never costs the answers
after it; a flag's value is checked before the first question; on a host without a usable
keyring the password is given as an env, file or command reference instead (checked to give
a password now), and the connection is tested against a real Dovecot before it is written."""

from __future__ import annotations

import os
import sys
import tomllib

import pytest
from conftest import Mailbridge
from terminal_session import Terminal


@pytest.fixture
def home(tmp_path) -> Mailbridge:
    """A config with a channel called support (the store is never opened)."""
    found = Mailbridge(tmp_path)
    found.drop_channel()
    return found


def wizard(home: Mailbridge, *flags: str, **env: str) -> Terminal:
    return Terminal([sys.executable, "-m", "mailbridge", "--config", str(home.config),
                     "add-channel", *flags], {**os.environ, "COLUMNS": "200", **env})


def channel(home: Mailbridge, name: str) -> dict:
    found = tomllib.loads(home.config.read_text())["channel"]
    return next(c for c in found if c["name"] == name)


# Each question: its prompt, then the answers typed and what each wrong one is told.
ROUNDS = [
    (r"Channel name: ", [
        ("Support Desk", r"channel name Support Desk: must be lowercase letters, digits"),
        ("support", r"a channel called support exists already"), ("desk", None)]),
    (r"Mode \(tickets/engagements/sales\) \[tickets\]: ", [
        ("sale", r'did you mean "sales"\?'), ("tickets", None)]),
    (r"Incoming connection \(drop/imap/m365\) \[drop\]: ", [
        ("dorp", r'did you mean "drop"\?'), ("drop", None)]),
    (r"Main e-mail address \(blank: none\): ", [
        ("desk at example", r"must be an e-mail address like support@example.com"),
        ("desk@example.com", None)]),
    (r"Default queue \[general\]: ", [
        ("Billing Dept", r"queue Billing Dept: must be lowercase"), ("billing", None)]),
    (r"Schedule \(blank: mode default\): ", [
        ("5 minutes", r'must be a duration like "5m"'), ("15m", None)]),
]


def test_each_wrong_answer_is_asked_again_at_once(home):
    term = wizard(home)
    for prompt, answers in ROUNDS:
        for typed, complaint in answers:
            term.answer(prompt, typed)
            if complaint:
                term.expect(complaint + r".*; try again")
    assert term.wait() == 0, term.seen
    assert "added channel desk" in term.seen
    added = channel(home, "desk")
    assert {k: added[k] for k in ("mode", "main_email", "default_queue", "schedule")} == {
        "mode": "tickets", "main_email": "desk@example.com", "default_queue": "billing",
        "schedule": "15m"}


def test_a_wrong_flag_ends_it_before_the_first_question(home):
    term = wizard(home, "--main-email", "not-an-address")
    assert term.wait() == 2
    assert term.seen.startswith("mailbridge: error: address not-an-address: must be an")
    assert "Channel name" not in term.seen


def test_without_a_keyring_the_password_is_given_as_a_reference(home, imap_user):
    before = home.config.read_text()
    term = wizard(home, "--name", "desk", "--mode", "tickets", "--incoming", "imap", "--host",
                  "127.0.0.1",
                  "--security", "none", "--port", str(imap_user.port), "--username",
                  imap_user.username, "--main-email", "desk@example.com",
                  "--default-queue", "general", "--schedule", "5m",
                  PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
                  DESK_PASSWORD=imap_user.password)
    term.expect(r"no OS keyring backend is usable on this host.*env:VAR.*file:PATH.*command:")
    term.answer(r"Password reference: ", "keyring:mailbridge/desk")
    term.expect(r"no OS keyring backend.*; try again")
    term.answer(r"Password reference: ", "env:DESK_PASSWRD")
    term.expect(r"environment variable DESK_PASSWRD is not set; try again")
    term.answer(r"Password reference: ", "env:DESK_PASSWORD")
    term.answer(r'Folders \(comma-separated, or "\*"\) \[INBOX\]: ', "")
    assert term.wait() == 0, term.seen
    assert imap_user.password not in term.seen + home.config.read_text()
    assert home.config.read_text().startswith(before)
    assert channel(home, "desk")["incoming"]["password"] == {"env": "DESK_PASSWORD"}


def test_with_a_keyring_the_password_is_asked_hidden_and_kept_there(home, imap_user):
    term = wizard(home, "--name", "desk", "--mode", "tickets", "--incoming", "imap", "--host",
                  "127.0.0.1",
                  "--security", "none", "--port", str(imap_user.port), "--username",
                  imap_user.username, "--folders", "INBOX", "--main-email",
                  "desk@example.com", "--default-queue", "general", "--schedule", "5m")
    term.answer(r"Password \(kept in the OS keyring\): ", imap_user.password)
    assert term.wait() == 0, term.seen
    assert imap_user.password not in term.seen  # not echoed
    assert channel(home, "desk")["incoming"]["password"] == {"keyring": "mailbridge/desk"}
