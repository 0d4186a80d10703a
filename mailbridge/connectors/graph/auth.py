"""Sign-in to Microsoft 365 with MSAL: app-only (client credentials, a secret or a
certificate) or delegated (device code once, then silent refresh). One MSAL application per
configured app lives as long as the process. A delegated app's token cache lives in the
caller's CacheStore: every acquisition that may refresh runs while the store holds the cache
against other processes (hosts), first taking up what another one stored meanwhile and then
saving what changed, because Microsoft rotates refresh tokens: each host goes on from the
newest one, and nobody's sign-in is overwritten. An access token in hand is reused without
asking the store. MSAL's error answers become one-line mailbridge errors."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from mailbridge import redact
from mailbridge.errors import AuthError, NetworkError, TlsError, UsageError

log = logging.getLogger(__name__)

EARLY = 300  # renew an access token this many seconds before it expires
# AADSTS codes meaning the user must sign in again: revoked or expired grant, password
# changed, MFA or consent now required.
RELOGIN_CODES = {50173, 700082, 50076, 50079, 65001, 70008, 50078, 50133, 700084}


class CacheStore(Protocol):
    """Where a delegated app's serialized MSAL token cache lives (a secret reference, or the
    store that several hosts share)."""

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        """Hold the cache against other processes until the block ends (where the store
        can); what `save` wrote is kept only if the block ends without an error."""
        ...

    def newer(self) -> str | None:
        """Inside `exclusive`: the cache as stored, if it changed since this object last
        read or wrote it (else None)."""
        ...

    def save(self, data: str) -> None:
        """Inside `exclusive`: store `data`."""
        ...


@dataclass(frozen=True)
class AppSettings:
    name: str
    tenant_id: str
    client_id: str
    auth: str  # "app" | "delegated"
    authority_url: str
    graph_url: str
    # Reads the secret, or {private_key, thumbprint}: called again after a refusal, so a
    # credential replaced under the same reference (`secrets set`) works without a restart.
    credential: Callable[[], str | dict[str, str]] | None = None
    scopes: tuple[str, ...] = ("Mail.ReadWrite",)  # delegated permissions asked for

    @property
    def authority(self) -> str:
        return f"{self.authority_url.rstrip('/')}/{self.tenant_id}"

    def scope_urls(self) -> list[str]:
        if self.auth == "app":
            return [self.graph_url.rstrip("/") + "/.default"]
        return [f"{self.graph_url.rstrip('/')}/{s}" for s in self.scopes]


class AppAuth:
    """Access tokens for one app: `token(account)`; account is the mailbox a delegated token
    is for (its own sign-in, else the app's only one); app-only tokens ignore it."""

    def __init__(self, settings: AppSettings, session: requests.Session,
                 cache_store: CacheStore | None = None) -> None:
        self.settings, self.session, self.cache_store = settings, session, cache_store
        self._app: Any = None
        self._cache: Any = None
        self._memo: dict[str | None, tuple[str, float]] = {}
        self._lock = threading.Lock()  # the threads of this process take turns too
        self.last_error: str | None = None

    # --- tokens ----------------------------------------------------------------------------
    def token(self, account: str | None, force: bool = False) -> str:
        key = None if self.settings.auth == "app" else (account or "").lower()
        memo = self._memo.pop(key, None) if force else self._memo.get(key)
        if memo and not force and memo[1] - EARLY > time.time():
            return memo[0]
        result = (self._app_token(force) if self.settings.auth == "app"
                  else self._user_token(account, force))
        if "access_token" not in result:
            raise self._failure(result, account)
        self.last_error = None
        self._memo[key] = (result["access_token"], time.time() + int(result.get("expires_in",
                                                                                 3599)))
        return result["access_token"]

    def _app_token(self, force: bool) -> dict[str, Any]:
        app = self.app()
        if force:
            app.remove_tokens_for_client()
        result = self._call(lambda: app.acquire_token_for_client(self.settings.scope_urls()))
        if result.get("error") == "invalid_client":  # read the credential again, once
            self._app = None
            app = self.app()
            result = self._call(lambda: app.acquire_token_for_client(
                self.settings.scope_urls()))
        return result

    def _user_token(self, account: str | None, force: bool) -> dict[str, Any]:
        """A cached access token, or a refreshed one (saved with the rotated refresh token
        before the cache is let go)."""
        with self._held():
            who = self.account_for(account)
            result = self._call(lambda: self._app.acquire_token_silent_with_error(
                self.settings.scope_urls(), who, force_refresh=force))
        if result is None:
            raise self._relogin(account, "no usable sign-in is cached")
        return result

    def account_for(self, mailbox: str | None) -> dict[str, Any]:
        accounts = self.app().get_accounts()
        for found in accounts:
            if mailbox and found.get("username", "").lower() == mailbox.lower():
                return found
        if len(accounts) == 1:  # a service account signed in once for every mailbox
            return accounts[0]
        raise self._relogin(mailbox, "nobody is signed in" if not accounts
                            else f"no sign-in for {mailbox}")

    # --- delegated sign-in -----------------------------------------------------------------
    def login(self, show: Callable[[str], None], mailbox: str | None = None,
              replace: bool = False) -> str:
        """The device-code flow: `show` gets Microsoft's instructions (URL and code). Returns
        the account signed in. The sign-in is added to the cache (`replace`: the cache holds
        it alone, e.g. after the cache's key changed), or to nothing if it is not `mailbox`."""
        if self.settings.auth != "delegated":
            raise UsageError(f"m365 app {self.settings.name} signs in as an application "
                             "(auth = \"app\"): there is no user sign-in",
                             "only apps with auth = \"delegated\" need `auth login`")
        if not replace:
            with self._held():  # a cache that cannot be read fails before the user signs in
                pass
        import msal

        fresh = msal.SerializableTokenCache()  # the new sign-in alone, merged in at the end
        app = self._public_app(fresh)
        flow = self._call(lambda: app.initiate_device_flow(scopes=self.settings.scope_urls()))
        if "user_code" not in flow:
            raise self._failure(flow, mailbox)
        show(flow["message"])
        result = self._call(lambda: app.acquire_token_by_device_flow(flow))
        if "access_token" not in result:
            raise self._failure(result, mailbox)
        who = (result.get("id_token_claims") or {}).get("preferred_username", "")
        if mailbox and who.lower() != mailbox.lower():
            raise AuthError(f"m365 app {self.settings.name}: signed in as {who}, not {mailbox}",
                            f"sign in with the {mailbox} account")
        with self._held(reload=not replace):
            kept = "" if replace else self._cache.serialize()
            self._cache.deserialize(merged(kept, fresh.serialize()))
            self._cache.has_state_changed = True
        self._memo.clear()
        return who

    def accounts(self) -> list[dict[str, Any]]:
        """Signed-in accounts with their access tokens' expiry, for `auth status`."""
        with self._held():
            expiry: dict[str, float] = {}
            for entry in self._cache.search("AccessToken"):
                home = entry.get("home_account_id")
                expiry[home] = max(expiry.get(home, 0), float(entry.get("expires_on", 0)))
            return [{"account": a.get("username"),
                     "token_expires": _iso(expiry.get(a.get("home_account_id")))}
                    for a in self._app.get_accounts()]

    # --- MSAL ------------------------------------------------------------------------------
    def app(self) -> Any:
        if self._app is None:
            import msal

            s = self.settings
            if s.auth == "app":
                self._cache = msal.TokenCache()
                credential = s.credential() if s.credential else None
                self._app = self._call(lambda: msal.ConfidentialClientApplication(
                    s.client_id, client_credential=credential, token_cache=self._cache,
                    **self._common()))
            else:  # filled from the cache store by `_held`
                self._cache = msal.SerializableTokenCache()
                self._app = self._public_app(self._cache)
        return self._app

    def _public_app(self, cache: Any) -> Any:
        import msal

        return self._call(lambda: msal.PublicClientApplication(
            self.settings.client_id, token_cache=cache, **self._common()))

    def _common(self) -> dict[str, Any]:
        return {"authority": self.settings.authority, "http_client": self.session,
                "instance_discovery": False}

    @contextlib.contextmanager
    def _held(self, reload: bool = True) -> Iterator[None]:
        """The delegated cache held against other processes and threads: brought up to date
        with what another host stored (unless not `reload`), then saved if it changed."""
        self.app()  # MSAL's discovery request goes before the hold, not inside it
        with self._lock:
            if self.cache_store is None:
                yield
                return
            with self.cache_store.exclusive():
                stored = self.cache_store.newer() if reload else None
                if stored is not None:
                    self._cache.deserialize(stored)
                yield
                changed = self._cache.has_state_changed
                if changed:
                    self.cache_store.save(self._cache.serialize())
            if changed:  # kept: the hold ended without an error
                self._cache.has_state_changed = False

    def _call(self, fn: Callable[[], Any]) -> Any:
        name, url = self.settings.name, self.settings.authority_url
        try:
            return fn()
        except requests.exceptions.SSLError:
            raise TlsError(f"m365 app {name}: the TLS certificate of {url} could not be "
                           "verified", "set ca_bundle for the app to the CA that signed it"
                           ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NetworkError(f"m365 app {name}: {url} did not answer ({type(exc).__name__})",
                               "check the network; the next sync tries again") from None
        except ValueError as exc:  # MSAL's tenant discovery refused the authority
            raise AuthError(f"m365 app {name}: {url} does not know tenant "
                            f"{self.settings.tenant_id}", "check tenant_id and authority_url"
                            ) from exc

    def _failure(self, result: dict[str, Any], account: str | None) -> AuthError:
        error = result.get("error", "error")
        text = redact.scrub((result.get("error_description") or error).splitlines()[0])
        first = text.split(". ")[0].rstrip(".")
        self.last_error = first
        codes = set(result.get("error_codes") or [])
        if error in ("invalid_grant", "interaction_required") or codes & RELOGIN_CODES:
            return self._relogin(account, first)
        hint = {"invalid_client": "check client_secret (or the certificate) of the app; a new "
                                  "secret is stored with `mailbridge secrets set …`",
                "unauthorized_client": "check client_id and tenant_id of the app",
                "invalid_scope": "grant the app the Mail permissions in Entra ID"}.get(error)
        return AuthError(f"m365 app {self.settings.name}: sign-in refused: {first}", hint)

    def _relogin(self, account: str | None, why: str) -> AuthError:
        self.last_error = why
        name = self.settings.name
        command = f"mailbridge auth login {name}"
        accounts = self._app.get_accounts() if self._app is not None else []
        if account and len(accounts) != 1:
            command += f" --mailbox {account}"
        return AuthError(f"m365 app {name}: {why}", f"run `{command}`")


def merged(cache: str, added: str) -> str:
    """Two serialized MSAL caches in one: each kind of entry (AccessToken, RefreshToken,
    IdToken, Account, AppMetadata) keyed as MSAL keys it, those of `added` winning."""
    found: dict[str, dict[str, Any]] = json.loads(cache) if cache else {}
    for kind, entries in json.loads(added).items():
        found.setdefault(kind, {}).update(entries)
    return json.dumps(found)


def _iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
