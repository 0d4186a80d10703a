"""Where a delegated Microsoft 365 app keeps its MSAL token cache (the connectors' CacheStore):
through its `token_cache` secret reference (a keyring entry or a file on this host), or, with
`token_cache_key`, in the store, encrypted, so one sign-in serves every host of the store.

In the store the cache is held (store/token_caches.py: a lock and a transaction) while MSAL
may refresh a token, so two hosts never redeem the same refresh token; the host that comes
second takes up the cache the first one wrote. The cache is encrypted with Fernet (AES-128-CBC
and HMAC-SHA256) under a key derived from the secret with scrypt and a random salt kept
beside it: a store dump, a backup or the database's administrator sees no token."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from mailbridge.config import secrets
from mailbridge.connectors.graph.auth import CacheStore
from mailbridge.errors import MailbridgeError, SecretError
from mailbridge.store import token_caches
from mailbridge.store.backends import StoreTarget, connection
from mailbridge.store.db import Store
from mailbridge.store.token_caches import CacheRow

MIN_KEY_CHARS = 16
# scrypt's cost: about 50 ms and 16 MiB, paid once per process and salt
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def cache_for(app: dict[str, Any]) -> CacheStore:
    if app["token_cache_key"]:
        return StoredCache(app["token_store"], app["name"], app["token_cache_key"])
    return SecretCache(app["token_cache"]
                       or {"keyring": f"mailbridge/m365/{app['name']}/token-cache"})


class SecretCache:
    """The cache where the app's `token_cache` reference points: read once per process,
    written after every change. Nothing holds it against other processes."""

    def __init__(self, ref: dict[str, Any]) -> None:
        self.ref = ref
        self._seen = False

    def exclusive(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def newer(self) -> str | None:
        if self._seen:
            return None
        self._seen = True
        return secrets.read_optional(self.ref)

    def save(self, data: str) -> None:
        secrets.write(self.ref, data)
        self._seen = True


class StoredCache:
    """The app's cache in the store, encrypted with a key from its `token_cache_key`."""

    def __init__(self, target: StoreTarget, app: str, key_ref: dict[str, Any]) -> None:
        self.target, self.app, self.key_ref = target, app, key_ref
        self.version = 0  # of the cache this process last read or wrote
        self._held: _Held | None = None
        self._fernet: tuple[str, str, Any] | None = None  # (secret, salt, Fernet) last made

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[object]:
        secret = self._secret()  # every time: a key changed on this host is noticed
        with connection(self.target) as db, db.translated(), db.atomic():
            self._held = _Held(db, secret, token_caches.hold(db, self.app))
            try:
                yield self._held
                version = self._held.version
            finally:
                self._held = None
        self.version = version  # committed

    def newer(self) -> str | None:
        """Decrypted whether or not it is new, so a wrong key fails at once (and a hold that
        read the cache never writes over it with another key)."""
        held = self._require()
        if held.row is None:
            return None
        text = self._open(held.secret, held.row)
        held.salt = held.row.salt
        return text if held.row.version != self.version else None

    def save(self, data: str) -> None:
        """Over what is stored; without `newer` in the same hold, whatever key wrote it
        (`auth login --replace`), with a salt of its own."""
        held = self._require()
        held.salt = held.salt or base64.b64encode(os.urandom(16)).decode("ascii")
        sealed = self._cipher(held.secret, held.salt).encrypt(data.encode()).decode("ascii")
        held.version = token_caches.save(held.db, self.app, held.salt, sealed)

    def _require(self) -> _Held:
        if self._held is None:
            raise RuntimeError("the token cache is used outside `exclusive()`")
        return self._held

    def _secret(self) -> str:
        try:
            secret = secrets.resolve(self.key_ref)
        except MailbridgeError as exc:
            raise SecretError(f"m365 app {self.app}: token_cache_key: {exc.message}",
                              exc.hint) from None
        if len(secret) < MIN_KEY_CHARS:
            raise SecretError(f"m365 app {self.app}: token_cache_key is shorter than "
                              f"{MIN_KEY_CHARS} characters",
                              "use a random key, e.g. the output of `openssl rand -base64 32`")
        return secret

    def _open(self, secret: str, row: CacheRow) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._cipher(secret, row.salt).decrypt(row.data.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SecretError(
                f"m365 app {self.app}: token_cache_key does not decrypt the token cache in "
                "the store (it was written with another key)",
                "give this host the same token_cache_key as the others, or start a new "
                f"cache with this key: `mailbridge auth login {self.app} --replace`") from None

    def _cipher(self, secret: str, salt: str) -> Any:
        if self._fernet is None or self._fernet[:2] != (secret, salt):
            from cryptography.fernet import Fernet
            from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

            key = Scrypt(salt=base64.b64decode(salt), length=32, **SCRYPT).derive(
                secret.encode())
            self._fernet = (secret, salt, Fernet(base64.urlsafe_b64encode(key)))
        return self._fernet[2]


class _Held:
    """One hold of the stored cache: the open transaction, what it read, the salt to write
    with (the stored one, once the key has opened it)."""

    def __init__(self, db: Store, secret: str, row: CacheRow | None) -> None:
        self.db, self.secret, self.row = db, secret, row
        self.salt: str | None = None
        self.version = row.version if row else 0
