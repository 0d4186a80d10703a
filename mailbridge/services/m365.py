"""Microsoft 365 apps from the config: one sign-in object per app for the process lifetime,
its token cache where the app's config keeps it (services/token_caches.py), the Graph fetcher
and the mailbox access test for a channel, and `auth login` / `auth status`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mailbridge.config import secrets
from mailbridge.config.model import Channel, Config
from mailbridge.connectors.graph.auth import AppAuth, AppSettings
from mailbridge.connectors.graph.fetch import GraphFetcher, GraphSettings
from mailbridge.connectors.graph.http import GraphClient, session_for
from mailbridge.connectors.graph.probe import probe_mailboxes
from mailbridge.connectors.graph.send import GraphSender
from mailbridge.domain.checks import pick
from mailbridge.errors import MailbridgeError, SecretError, UsageError
from mailbridge.services.token_caches import cache_for

_AUTHS: dict[str, AppAuth] = {}


def app_auth(app: dict[str, Any]) -> AppAuth:
    """The app's sign-in, made once per process (MSAL keeps its tokens in it)."""
    # Keyed by the whole entry, so a config reloaded by `run` (SIGHUP) with another
    # ca_bundle, authority or credential reference gets a new sign-in object.
    key = json.dumps(app, sort_keys=True, default=str)
    found = _AUTHS.get(key)
    if found is None:
        settings = AppSettings(
            name=app["name"], tenant_id=app["tenant_id"], client_id=app["client_id"],
            auth=app["auth"], authority_url=app["authority_url"], graph_url=app["graph_url"],
            credential=(lambda: _credential(app)) if app["auth"] == "app" else None,
            scopes=tuple(app["permissions"]))
        cache = cache_for(app) if app["auth"] == "delegated" else None
        found = AppAuth(settings, session_for(app["ca_bundle"], app["timeout"]), cache)
        _AUTHS[key] = found
    return found


def _credential(app: dict[str, Any]) -> str | dict[str, str]:
    if app["client_secret"]:
        return secrets.resolve(app["client_secret"])
    if app["certificate_path"] and app["certificate_thumbprint"]:
        path = Path(app["certificate_path"]).expanduser()
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise SecretError(f"m365 app {app['name']}: certificate {path}: {exc.strerror}"
                              ) from None
        _check_rsa_key(key, f"m365 app {app['name']}: certificate_path {path}")
        return {"private_key": key.decode("ascii"), "thumbprint": app["certificate_thumbprint"]}
    raise UsageError(f"m365 app {app['name']} signs in as an application but has no "
                     "credential", "set client_secret, or certificate_path and "
                     "certificate_thumbprint")


def _check_rsa_key(pem: bytes, where: str) -> None:
    """MSAL signs the client assertion with RS256, so only an unencrypted RSA key in PEM
    will do; anything else would fail deep inside the JWT library."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SecretError(f"{where} is not an unencrypted RSA private key in PEM form",
                          "point it at the private key of the certificate uploaded to the "
                          "app registration")


def client_for(channel: Channel, app_name: str) -> GraphClient:
    return _client(channel.apps[app_name], f"channel {channel.name}")


def _client(app: dict[str, Any], label: str) -> GraphClient:
    auth = app_auth(app)
    return GraphClient(app["graph_url"], auth, auth.session, label,
                       delegated=app["auth"] == "delegated")


def enabled_mailboxes(channel: Channel) -> tuple[str, ...]:
    return tuple(m["address"] for m in channel.mailboxes if m["enabled"])


def build_fetcher(channel: Channel, since: datetime | None) -> GraphFetcher:
    client = client_for(channel, channel.incoming["app"])
    return GraphFetcher(channel.name, client, GraphSettings(
        enabled_mailboxes(channel), mark_read=channel.mode == "tickets", mode=channel.mode,
        since=since,
        import_read=channel.incoming["import_read"],
        max_message_mb=channel.incoming["max_message_mb"]))


def build_sender(out: dict[str, Any], label: str,
                 apps: dict[str, dict[str, Any]]) -> GraphSender:
    """A sender for a channel's outgoing table, or the alerts' one (`label`: the channel)."""
    where = f"channel {label}"
    if not out.get("save_to_sent", True):
        raise UsageError(f"{where}: Microsoft 365 keeps every MIME mail it "
                         "sends in Sent Items; save_to_sent = false cannot be honoured",
                         "remove save_to_sent (or set it to true)")
    return GraphSender(_client(apps[out["app"]], where), out["mailbox"])


def mailbox_senders(channel: Channel) -> dict[str, GraphSender]:
    """A sales channel's mail goes out as each enabled mailbox itself, through the app that
    reads it (a delegated service account needs Mail.Send.Shared and Send As on each)."""
    client = client_for(channel, channel.incoming["app"])
    return {address: GraphSender(client, address) for address in enabled_mailboxes(channel)}


def test_mailboxes(channel: Channel) -> dict[str, Any]:
    """`channels test` for Microsoft 365: one row per enabled mailbox."""
    client = client_for(channel, channel.incoming["app"])
    rows = probe_mailboxes(client, enabled_mailboxes(channel), channel.mode)
    return {"channel": channel.name, "app": channel.incoming["app"], "mailboxes": rows,
            "failed": sum(1 for r in rows if r["problem"])}


def _app(config: Config, name: str) -> dict[str, Any]:
    found = pick("[[m365]] app", name, [app["name"] for app in config.m365],
                 "add one to the config (see config.example.toml)")
    return next(app for app in config.m365 if app["name"] == found)


def login(config: Config, name: str, show: Callable[[str], None],
          mailbox: str | None = None, replace: bool = False) -> str:
    return app_auth(_app(config, name)).login(show, mailbox, replace)


def status(config: Config) -> list[dict[str, Any]]:
    """Per app and signed-in account: whether a token can be had now (a real refresh, not
    the cached access token, so a revoked grant shows) and its error if not, with the
    access token's expiry."""
    return [row for app in config.m365 for row in _app_status(app)]


def _app_status(app: dict[str, Any]) -> list[dict[str, Any]]:
    auth = app_auth(app)

    def row(account: str | None, error: str | None, expires: str | None = None) -> dict:
        return {"app": app["name"], "auth": app["auth"], "account": account,
                "token_expires": expires, "ok": error is None, "error": error}

    if app["auth"] == "app":
        return [row("(application)", _failure(lambda: auth.token(None, force=True)))]
    try:
        accounts = [a["account"] for a in auth.accounts()]
    except MailbridgeError as exc:
        return [row(None, exc.message)]
    if not accounts:
        return [row(None, f"nobody is signed in (run `mailbridge auth login {app['name']}`)")]
    errors = {who: _failure(lambda w=who: auth.token(w, force=True)) for who in accounts}
    expiry = {a["account"]: a["token_expires"] for a in auth.accounts()}  # after refreshing
    return [row(who, errors[who], expiry.get(who)) for who in accounts]


def _failure(check: Callable[[], object]) -> str | None:
    try:
        check()
    except MailbridgeError as exc:
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return None
