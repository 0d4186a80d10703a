"""A delegated Microsoft 365 sign-in kept in the store (`token_cache_key`), on both backends,
against the Graph fake (tests/servers/graph.py, which rotates refresh tokens as Microsoft
documents and notes every stale one redeemed): made on one host, used by the others; two hosts
refreshing at once take turns, each from the newest refresh token; encrypted in the store; a
wrong key refused; carried by `store migrate`. Other hosts are `python -m mailbridge`
processes with homes of their own (no keyring entry, no file: only the store is shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PG_PASSWORD_ENV, Mailbridge, m365_config, message
from test_fleet import wait_for

from mailbridge.errors import ConfigError

KEY_ENV = "MB_TOKEN_KEY"
KEY = "3q2+7w-a-test-token-cache-key"
WAIT = 60.0


def mail(i: int, box: str) -> bytes:
    return message(subject=f"Question {i} for {box}", message_id=f"q{i}-{box}@customer.example",
                   sender=f"cust{i}@customer.example")


def sign_in(mb: Mailbridge, graph, monkeypatch,
            mailboxes: tuple[str, ...] = ("a@contoso.com", "svc@contoso.com")) -> None:
    """A service account svc@ reading its own mailbox and a@'s, its cache in the store."""
    monkeypatch.setenv(KEY_ENV, KEY)
    graph.add_mailbox("svc@contoso.com")
    graph.delegations["svc@contoso.com"] = {"a@contoso.com"}
    graph.approve_device_as = "svc@contoso.com"
    m365_config(mb, graph, list(mailboxes), auth="delegated",
                app_keys={"token_cache_key": {"env": KEY_ENV}})
    login = mb("auth", "login", "contoso")
    assert login.exit_code == 0, login.output
    assert "signed in as svc@contoso.com" in login.stderr


def host_env(mb: Mailbridge, name: str, **env: str) -> dict[str, str]:
    """Another host: a home of its own, the same config and store."""
    home = mb.root / name
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), **env}


def start(mb: Mailbridge, name: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mailbridge", "--config", str(mb.config),
                             *args], env=host_env(mb, name, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def on_host(mb: Mailbridge, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    proc = start(mb, name, *args, **env)
    out, err = proc.communicate(timeout=WAIT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stored(mb: Mailbridge) -> tuple[int, str]:
    return mb.query("SELECT version, data FROM token_caches WHERE app='contoso'")[0]


def test_a_sign_in_made_on_one_host_serves_another(mb, graph, monkeypatch):
    sign_in(mb, graph, monkeypatch)
    graph.deliver("a@contoso.com", mail(1, "a"))
    graph.deliver("svc@contoso.com", mail(2, "svc"))
    assert not (mb.root / "cache.json").exists()
    assert stored(mb)[0] == 1

    synced = on_host(mb, "host-b", "sync")
    assert synced.returncode == 0, synced.stderr
    assert graph.unread("a@contoso.com") == [] and graph.unread("svc@contoso.com") == []
    assert mb.value("SELECT count(*) FROM tickets") == 2
    there = on_host(mb, "host-b", "auth", "status", "--format", "json")
    here = mb("auth", "status", "--format", "json")
    assert there.returncode == 0 and here.exit_code == 0, there.stderr + here.stderr
    for status in (there, here):
        rows = json.loads(status.stdout)
        assert [(r["account"], r["ok"]) for r in rows] == [("svc@contoso.com", True)]
    assert graph.stale_refreshes == []


def test_two_hosts_refreshing_at_once_take_turns_from_the_newest_refresh_token(
        mb, graph, monkeypatch):
    """`auth status` always refreshes. Host A's refresh is held at the identity platform while
    host B starts: B waits for A's hold on the cache instead of redeeming the same refresh
    token, then goes on from the one A stored."""
    sign_in(mb, graph, monkeypatch)
    graph.expire_tokens()
    graph.hold_refreshes()

    def discoveries() -> int:
        return sum(1 for _m, path in graph.log if path.endswith("openid-configuration"))

    host_a = start(mb, "host-a", "auth", "status", "--format", "json")
    wait_for("host A's refresh", lambda: graph.refreshes_held == 1, WAIT)
    seen = discoveries()
    host_b = start(mb, "host-b", "auth", "status", "--format", "json")
    wait_for("host B to start signing in", lambda: discoveries() > seen, WAIT)
    time.sleep(1.0)  # time enough for host B to reach the identity platform, if it could
    assert graph.refreshes_held == 1  # host B waits for the cache, not at the door
    graph.release_refreshes()
    for proc in (host_a, host_b):
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert json.loads(out)[0]["ok"]
    assert graph.refreshes == 2 and graph.stale_refreshes == []
    version, _data = stored(mb)
    assert version == 3  # the sign-in, then one refresh per host

    graph.deliver("a@contoso.com", mail(3, "a"))
    graph.expire_tokens()
    again = mb("sync")  # this host's cache was two refreshes behind
    assert again.exit_code == 0, again.output
    assert graph.stale_refreshes == []


def test_a_refresh_on_one_host_keeps_a_sign_in_made_on_another_meanwhile(mb, graph,
                                                                         monkeypatch):
    sign_in(mb, graph, monkeypatch, ("svc@contoso.com", "b@contoso.com"))
    assert mb("auth", "status").exit_code == 0  # this host has read svc@'s sign-in
    graph.approve_device_as = "b@contoso.com"
    login = on_host(mb, "host-b", "auth", "login", "contoso", "--mailbox", "b@contoso.com")
    assert login.returncode == 0, login.stderr

    graph.expire_tokens()
    here = mb("auth", "status", "--format", "json")  # refreshes both, from the newest cache
    assert here.exit_code == 0, here.output
    there = on_host(mb, "host-c", "auth", "status", "--format", "json")
    assert there.returncode == 0, there.stderr
    for status in (here.stdout, there.stdout):
        assert sorted((r["account"], r["ok"]) for r in json.loads(status)) == [
            ("b@contoso.com", True), ("svc@contoso.com", True)]
    graph.deliver("b@contoso.com", mail(1, "b"))
    assert on_host(mb, "host-c", "sync").returncode == 0
    assert graph.unread("b@contoso.com") == [] and graph.stale_refreshes == []


def test_a_token_one_host_refreshed_is_used_by_the_next_and_a_valid_one_costs_no_store_trip(
        mb, graph, monkeypatch):
    sign_in(mb, graph, monkeypatch)
    graph.expire_tokens()
    graph.deliver("a@contoso.com", mail(1, "a"))
    first = on_host(mb, "host-b", "sync")
    assert first.returncode == 0, first.stderr
    assert graph.refreshes == 1
    graph.deliver("a@contoso.com", mail(2, "a"))
    second = on_host(mb, "host-c", "sync")
    assert second.returncode == 0, second.stderr
    assert graph.refreshes == 1  # host C took host B's access token from the store

    from mailbridge.services.token_caches import StoredCache

    holds = []
    exclusive = StoredCache.exclusive
    monkeypatch.setattr(StoredCache, "exclusive",
                        lambda self: holds.append(1) or exclusive(self))
    for i in range(3, 30):
        graph.deliver("a@contoso.com", mail(i, "a"))
    requests_before = len(graph.log)
    synced = mb("sync")
    assert synced.exit_code == 0, synced.output
    assert mb.value("SELECT count(*) FROM tickets") == 29
    assert len(holds) <= 2 < len(graph.log) - requests_before  # a token per mailbox at most


def test_the_cache_is_encrypted_and_a_wrong_or_missing_key_is_refused(mb, graph, monkeypatch):
    sign_in(mb, graph, monkeypatch)
    graph.expire_tokens()
    assert mb("auth", "status").exit_code == 0  # a refresh, saved
    dump = mb.dump()
    secrets = [*graph.refresh_tokens, *graph.tokens, KEY]
    assert len(secrets) >= 5
    assert not [s for s in secrets if s.encode() in dump]
    assert b"RefreshToken" not in dump and b"svc@contoso.com" not in dump
    before = stored(mb)
    check = mb("secrets", "check", "--format", "json")
    assert {"key": "m365.contoso.token_cache_key", "reference": f"env {KEY_ENV}", "ok": True,
            "problem": None} in json.loads(check.stdout)

    wrong = on_host(mb, "host-b", "sync", **{KEY_ENV: "another-key-of-ample-length"})
    assert wrong.returncode == 3, wrong.stderr
    assert wrong.stderr.splitlines() == [
        "mailbridge: support: failed: m365 app contoso: token_cache_key does not decrypt the "
        "token cache in the store (it was written with another key)",
        "mailbridge: hint: give this host the same token_cache_key as the others, or start a "
        "new cache with this key: `mailbridge auth login contoso --replace`"]
    status = on_host(mb, "host-b", "auth", "status", **{KEY_ENV: "another-key-of-ample-length"})
    assert status.returncode == 3 and "token_cache_key" in status.stdout + status.stderr
    assert stored(mb) == before  # nothing written with the wrong key

    missing = on_host(mb, "host-b", "auth", "login", "contoso", **{KEY_ENV: ""})
    assert missing.returncode == 3
    assert missing.stderr.splitlines()[0] == ("mailbridge: error: m365 app contoso: "
                                              f"token_cache_key: environment variable {KEY_ENV} "
                                              "is not set")
    short = on_host(mb, "host-b", "auth", "login", "contoso", **{KEY_ENV: "short"})
    assert short.returncode == 3 and "shorter than 16 characters" in short.stderr
    assert "enter the code" not in missing.stderr + short.stderr  # refused before signing in
    assert stored(mb) == before


def test_a_new_key_starts_a_new_cache_with_auth_login_replace(mb, graph, monkeypatch):
    sign_in(mb, graph, monkeypatch)
    new_key = {KEY_ENV: "a-new-key-after-the-old-one-leaked"}
    refused = on_host(mb, "host-b", "auth", "login", "contoso", **new_key)
    assert refused.returncode == 3 and "--replace" in refused.stderr
    replaced = on_host(mb, "host-b", "auth", "login", "contoso", "--replace", **new_key)
    assert replaced.returncode == 0, replaced.stderr
    graph.deliver("a@contoso.com", mail(1, "a"))
    synced = on_host(mb, "host-c", "sync", **new_key)
    assert synced.returncode == 0, synced.stderr
    old = on_host(mb, "host-d", "sync")
    assert old.returncode == 3 and "token_cache_key does not decrypt" in old.stderr


def test_store_migrate_carries_the_sign_in(tmp_path, graph, pg_url, monkeypatch):
    sqlite = Mailbridge(tmp_path)
    sign_in(sqlite, graph, monkeypatch)
    moved = sqlite("store", "migrate", "--to", pg_url, "--password", f"env:{PG_PASSWORD_ENV}")
    assert moved.exit_code == 0, moved.stderr
    pg = Mailbridge(tmp_path, pg_url)
    m365_config(pg, graph, ["a@contoso.com", "svc@contoso.com"], auth="delegated",
                app_keys={"token_cache_key": {"env": KEY_ENV}})
    assert stored(pg) == stored(sqlite)
    graph.deliver("svc@contoso.com", mail(1, "svc"))
    graph.expire_tokens()
    synced = on_host(pg, "host-b", "sync")
    assert synced.returncode == 0, synced.stderr
    assert pg.value("SELECT count(*) FROM tickets") == 1


def test_token_cache_key_is_for_delegated_apps_and_replaces_token_cache(tmp_path):
    from mailbridge.config.load import validate

    key = {"env": KEY_ENV}
    delegated = {"name": "both", "tenant_id": "t", "client_id": "c", "auth": "delegated",
                 "token_cache_key": key}
    apps = [{"name": "app-only", "tenant_id": "t", "client_id": "c", "auth": "app",
             "client_secret": {"env": "S"}, "token_cache_key": key},
            {**delegated, "token_cache": {"file": "/x"}}]
    with pytest.raises(ConfigError) as refused:
        validate({"m365": apps}, Path("c.toml"))
    assert refused.value.problems == [
        'c.toml: m365[app-only].token_cache_key: only a delegated app (auth = "delegated") '
        "keeps a token cache",
        "c.toml: m365[both].token_cache: give token_cache or token_cache_key, not both (with "
        "token_cache_key the cache is kept in the store)"]
    good = validate({"m365": [delegated], "store": {"path": str(tmp_path / "s.db")}},
                    Path("c.toml"))
    assert good.m365[0]["token_store"] == good.store
