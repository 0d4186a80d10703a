"""A local HTTPS fake of the Microsoft identity platform (v2.0) and the Graph v1.0 mail API,
written from Microsoft's documentation, for the parts mailbridge uses:

- `{tenant}/v2.0/.well-known/openid-configuration`, the token endpoint (client credentials
  with a secret or a certificate's signed client assertion, device code with
  `authorization_pending`, refresh token with rotation as Microsoft documents it: every
  redemption returns a new refresh token and the old one keeps working; the fake notes each
  redemption of a token that was redeemed before, a client's stale copy, in
  `stale_refreshes`), the device-code endpoint; errors
  as `{"error", "error_description": "AADSTSnnn: …", "error_codes"}`;
- `/users/{id}` and `/me`: `mailFolders/{id or well-known name}`, `messages` with `$filter`
  (receivedDateTime, isRead), `$orderby` (the documented rule: an ordered property must come
  first in the filter, else `InefficientFilter`), `$select`, `$top`, `@odata.nextLink` with
  `$skip` applied to the *current* result set (so marking mail read while paging an
  `isRead eq false` listing skips mail, as it does at Microsoft),
  `$expand=singleValueExtendedProperties($filter=id eq '…')` (the message size, PidTagMessageSize
  `Integer 0x0E08`, is the one property it knows; Graph writes the id back as `Integer 0xe08`
  and leaves the collection out when the property is not set), `messages/{id}/$value`,
  `PATCH messages/{id}`, and `$batch` (at most 20 requests; non-JSON bodies base64-encoded);
- delta queries: `mailFolders/delta` (every folder of the hierarchy, flat) and
  `mailFolders/{id}/messages/delta` with `changeType`, `$select`, `$filter=receivedDateTime
  ge|gt …`, `Prefer: odata.maxpagesize`, `$skiptoken` pages and a `$deltatoken` link whose
  state is the folder as it was when the round began; `@removed` for messages gone; an
  expired state is `410` with `syncStateNotFound`, a reset `410` + `Location`, `resyncRequired`;
- errors in Graph's `{"error": {"code", "message"}}` shape: `InvalidAuthenticationToken`,
  `ErrorAccessDenied` (application access policy, missing permission), `ErrorInvalidUser`,
  `MailboxNotEnabledForRESTAPI`, `ErrorItemNotFound`, `ErrorSendAsDenied` (a signed-in user
  sending from another user's mailbox without Send As on it);
- fault injection: 429/503 with Retry-After, dropped connections, expired access tokens,
  revoked refresh tokens, throttled requests inside a `$batch`, refresh-token grants held
  until the test lets them go.

Ids depend on `Prefer: IdType="ImmutableId"`: without it a message's id changes when it moves
folder, as Outlook's default REST ids do. Everything binds 127.0.0.1 only."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import trustme

WELL_KNOWN = ("inbox", "sentitems", "drafts", "deleteditems", "junkemail", "outbox",
              "archive", "conversationhistory")
DISPLAY = {"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts",
           "deleteditems": "Deleted Items", "junkemail": "Junk Email", "outbox": "Outbox",
           "archive": "Archive", "conversationhistory": "Conversation History"}
READ = {"Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"}
SEND = {"Mail.Send"}
WRITE = {"Mail.ReadWrite"}
# "Use the delegated permissions, Mail.Read.Shared or Mail.ReadWrite.Shared, to respectively
# read or write messages in a shared or delegated folder": a delegated token reaches another
# user's mailbox only with a .Shared permission (Mail.Send.Shared to send from it), which also
# covers the user's own mail.
SHARED = ".Shared"
DEFAULT_PAGE = 10  # documented default page size of a message list
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXPAND = re.compile(r"singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)", re.I)
MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)
HOLD_SECONDS = 60  # the longest a held refresh-token grant waits (hold_refreshes)


class Reply(Exception):
    """Ends a request with this status, body and headers."""

    def __init__(self, status: int, body: object = None, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def graph_error(status: int, code: str, message: str, headers: dict | None = None) -> Reply:
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
             "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
    return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}},
                 headers)


def identity_error(status: int, error: str, code: int, text: str) -> Reply:
    return Reply(status, {"error": error, "error_description": f"AADSTS{code}: {text}",
                          "error_codes": [code], "timestamp": datetime.now(UTC).isoformat(),
                          "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})


@dataclass
class Message:
    immutable_id: str
    folder: str
    raw: bytes
    received: datetime
    is_read: bool = False
    moves: int = 0  # a REST id changes with every move, an immutable one never

    def rest_id(self) -> str:
        return f"{self.immutable_id}-r{self.moves}"


@dataclass
class Mailbox:
    address: str
    has_mailbox: bool = True
    folders: dict[str, dict] = field(default_factory=dict)  # id -> folder
    messages: dict[str, Message] = field(default_factory=dict)  # immutable id -> message

    def folder_id(self, name: str) -> str:
        for fid, folder in self.folders.items():
            if fid == name or folder.get("wellKnownName") == name.lower():
                return fid
        raise graph_error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")


@dataclass
class DeltaState:
    """A messages/delta state token: the round's query and the folder as it was (id -> isRead)
    when the round that issued it began."""

    mailbox: str
    folder: str
    query: dict[str, str]
    seen: dict[str, bool]
    pending: list[dict] = field(default_factory=list)  # the rest of a round, for $skiptoken
    next_seen: dict[str, bool] = field(default_factory=dict)


@dataclass
class Token:
    client_id: str
    user: str | None  # None for an app-only token
    scopes: set[str]
    expires: float


@dataclass
class Fault:
    kind: str  # "status" | "drop" | "batch"
    count: int
    path: str = ""  # only requests whose path contains this
    status: int = 429
    retry_after: str | None = "1"
    after: int = 0  # matching requests to let through first


class GraphFake:
    def __init__(self, tenant: str = "contoso-tenant") -> None:
        self.tenant = tenant
        self.root = Path(tempfile.mkdtemp(prefix="mb-graph-"))
        ca = trustme.CA()
        self.ca_file = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.apps: dict[str, dict] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, Token] = {}
        self.redeemed: set[str] = set()  # refresh tokens exchanged for a new one
        self.refreshes = 0  # refresh-token grants answered
        self.stale_refreshes: list[str] = []  # refresh tokens redeemed a second time
        self.refresh_gate: threading.Event | None = None  # see hold_refreshes
        self.refreshes_held = 0
        self.device_codes: dict[str, dict] = {}
        self.denied_by_policy: set[tuple[str, str]] = set()  # (client_id, mailbox)
        self.delegations: dict[str, set[str]] = {}  # user -> mailboxes it may read
        self.send_as: dict[str, set[str]] = {}  # user -> mailboxes it may send as
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str]] = []  # (method, path) of every HTTP request
        self.batched: list[tuple[str, str]] = []  # requests inside $batch
        self.prefer_seen: list[str] = []
        self.sent: list[tuple[str, bytes]] = []  # (mailbox, MIME) accepted by sendMail
        self.delta_states: dict[str, DeltaState] = {}
        self.delta_reset: str | None = None  # "syncStateNotFound" | "resyncRequired"
        self.token_lifetime = 3599
        self.device_interval = 1
        self.lock = threading.RLock()
        self.counter = 0
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- test set-up -----------------------------------------------------------------------
    def add_app(self, client_id: str, secret: str | None = None,
                roles: tuple[str, ...] = ("Mail.ReadWrite", "Mail.Send"),
                certificate: bytes | None = None) -> None:
        """`certificate`: the PEM of a certificate credential uploaded to the app."""
        self.apps[client_id] = {"secret": secret, "roles": set(roles),
                                "certificate": certificate}

    def add_mailbox(self, address: str, has_mailbox: bool = True) -> Mailbox:
        box = Mailbox(address.lower(), has_mailbox)
        for name in WELL_KNOWN:
            box.folders[self._id("AQMkF")] = {"displayName": DISPLAY[name], "wellKnownName": name,
                                              "parentFolderId": None}
        self.mailboxes[box.address] = box
        return box

    def add_folder(self, address: str, name: str, parent: str | None = "inbox",
                   well_known: str | None = None) -> str:
        """`parent` None: at the top of the mailbox; `well_known`: the folder's well-known
        name (e.g. "clutter", which GET mailFolders/clutter then finds)."""
        box = self.mailboxes[address.lower()]
        fid = self._id("AQMkF")
        box.folders[fid] = {"displayName": name,
                            "parentFolderId": None if parent is None else box.folder_id(parent)}
        if well_known:
            box.folders[fid]["wellKnownName"] = well_known
        return fid

    def deliver(self, address: str, raw: bytes, folder: str = "inbox", is_read: bool = False,
                received: datetime | None = None) -> str:
        with self.lock:
            box = self.mailboxes[address.lower()]
            self.counter += 1
            when = received or datetime.now(UTC) - timedelta(seconds=10_000 - self.counter)
            msg = Message(self._id("AAkALgAA"), box.folder_id(folder), raw, when, is_read)
            box.messages[msg.immutable_id] = msg
            return msg.immutable_id

    def move(self, address: str, message_id: str, folder: str) -> None:
        box = self.mailboxes[address.lower()]
        msg = box.messages[message_id]
        msg.folder, msg.moves = box.folder_id(folder), msg.moves + 1

    def unread(self, address: str) -> list[Message]:
        return [m for m in self.mailboxes[address.lower()].messages.values() if not m.is_read]

    # --- faults ----------------------------------------------------------------------------
    def throttle(self, count: int, path: str = "", status: int = 429,
                 retry_after: str | None = "1", after: int = 0) -> None:
        self.faults.append(Fault("status", count, path, status, retry_after, after))

    def drop(self, count: int = 1, path: str = "", after: int = 0) -> None:
        self.faults.append(Fault("drop", count, path, after=after))

    def throttle_in_batch(self, count: int, retry_after: str = "1", after: int = 0) -> None:
        self.faults.append(Fault("batch", count, retry_after=retry_after, after=after))

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires = 0

    def expire_delta(self, code: str = "syncStateNotFound") -> None:
        """Every delta token issued so far stops working: `syncStateNotFound` (the token
        cache dropped it) or `resyncRequired` (maintenance: 410 with a Location header)."""
        with self.lock:
            self.delta_states.clear()
            self.delta_reset = code

    def hold_refreshes(self) -> None:
        """Refresh-token grants wait at the door (HOLD_SECONDS at most) until
        `release_refreshes`, so a test can have one in flight while another host starts."""
        self.refresh_gate = threading.Event()

    def release_refreshes(self) -> None:
        if self.refresh_gate is not None:
            self.refresh_gate.set()

    def _at_refresh_gate(self) -> None:
        gate = self.refresh_gate
        if gate is not None:
            with self.lock:
                self.refreshes_held += 1
            gate.wait(HOLD_SECONDS)

    def revoke(self, user: str) -> None:
        with self.lock:
            for key in [k for k, t in self.refresh_tokens.items() if t.user == user]:
                del self.refresh_tokens[key]

    def _fault(self, kind: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind and fault.count > 0 and fault.path in path:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.count -= 1
                    return fault
        return None

    def _id(self, prefix: str) -> str:
        return prefix + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    # --- identity platform -----------------------------------------------------------------
    def _check_assertion(self, app: dict, client_id: str, assertion: str,
                         endpoint: str) -> None:
        """A certificate credential: a JWT signed with the certificate's key, naming it by
        its thumbprint (`x5t`, or `x5t#S256`), for this token endpoint, issued by the app."""
        import jwt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        def refused(text: str) -> Reply:
            return identity_error(401, "invalid_client", 700027, text)

        if app["certificate"] is None:
            raise refused("Client assertion failed signature validation.")
        cert = x509.load_pem_x509_certificate(app["certificate"])
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise refused("Client assertion is not a valid JWT.") from None
        # MSAL pads its x5t with "=", which Entra accepts
        if str(header.get("x5t")).rstrip("=") != _b64url(cert.fingerprint(hashes.SHA1())) \
                and str(header.get("x5t#S256")).rstrip("=") != \
                _b64url(cert.fingerprint(hashes.SHA256())):
            raise refused("The certificate with identifier used to sign the client assertion "
                          "is not registered on application.")
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"],
                                audience=endpoint)
        except jwt.PyJWTError:
            raise refused("Client assertion contains an invalid signature.") from None
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise refused("Client assertion is not issued by the application.")

    def openid_configuration(self, tenant: str) -> dict:
        base = f"{self.url}/{tenant}"
        return {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{self.url}/{self.tenant}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "private_key_jwt",
                                                          "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token",
                                             "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"]}

    def token(self, form: dict[str, str], endpoint: str) -> dict:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            raise identity_error(400, "unauthorized_client", 700016,
                                 f"Application with identifier '{client_id}' was not found "
                                 f"in the directory '{self.tenant}'.")
        if grant == "client_credentials":
            if form.get("client_assertion_type") == JWT_BEARER:
                self._check_assertion(app, client_id, form.get("client_assertion", ""), endpoint)
            elif app["secret"] is None or form.get("client_secret") != app["secret"]:
                raise identity_error(401, "invalid_client", 7000215,
                                     "Invalid client secret provided. Ensure the secret being "
                                     "sent in the request is the client secret value, not "
                                     "the client secret ID.")
            if not form.get("scope", "").endswith("/.default"):
                raise identity_error(400, "invalid_scope", 1002012,
                                     "The provided value for scope is not valid. Client "
                                     "credential flows must have a scope value with /.default "
                                     "suffixed to the resource identifier.")
            return self._issue(client_id, None, app["roles"])
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            grant_info = self.device_codes.get(form.get("device_code", ""))
            if grant_info is None:
                raise identity_error(400, "expired_token", 70020,
                                     "The provided value for the input parameter "
                                     "'device_code' is not valid. This device code has expired.")
            if grant_info["user"] is None:
                grant_info["polls"] += 1
                if grant_info["auto_user"] and grant_info["polls"] >= 2:
                    grant_info["user"] = grant_info["auto_user"]
                raise identity_error(400, "authorization_pending", 70016,
                                     "OAuth 2.0 device flow error. Authorization is pending. "
                                     "Continue polling.")
            del self.device_codes[form["device_code"]]
            return self._issue(client_id, grant_info["user"], grant_info["scopes"], True)
        if grant == "refresh_token":
            presented = form.get("refresh_token", "")
            old = self.refresh_tokens.get(presented)
            if old is None:
                raise identity_error(400, "invalid_grant", 50173,
                                     "The provided grant has expired due to it being revoked, "
                                     "a fresh auth token is needed. The user might have "
                                     "changed or reset their password.")
            # "Refresh tokens replace themselves with a fresh token upon every use. The
            # Microsoft identity platform doesn't revoke old refresh tokens when used to
            # fetch new access tokens." (Refresh tokens in the Microsoft identity platform.)
            # So an old one is honoured, but a client that presents it again kept a copy it
            # should have replaced (two hosts refreshing from one cache): noted.
            if presented in self.redeemed:
                self.stale_refreshes.append(presented)
            self.redeemed.add(presented)
            self.refreshes += 1
            return self._issue(client_id, old.user, old.scopes, True)
        raise identity_error(400, "unsupported_grant_type", 70003,
                             "The app requested an unsupported grant type.")

    def device_code(self, form: dict[str, str], approve_as: str | None) -> dict:
        if form.get("client_id") not in self.apps:
            raise identity_error(400, "unauthorized_client", 700016, "Application not found.")
        code, user_code = self._id("DAQABAAEA"), uuid.uuid4().hex[:8].upper()
        scopes = set(form.get("scope", "").split())
        self.device_codes[code] = {"user": None, "polls": 0, "auto_user": approve_as,
                                   "scopes": scopes}
        uri = "https://microsoft.com/devicelogin"
        return {"user_code": user_code, "device_code": code, "verification_uri": uri,
                "expires_in": 900, "interval": self.device_interval,
                "message": f"To sign in, use a web browser to open the page {uri} and enter "
                           f"the code {user_code} to authenticate."}

    approve_device_as: str | None = None

    def _issue(self, client_id: str, user: str | None, scopes: set[str],
               refresh: bool = False) -> dict:
        with self.lock:
            short = sorted({s.rsplit("/", 1)[-1] for s in scopes} - {"openid", "profile",
                                                                      "offline_access"})
            claims = {"aud": self.url, "tid": self.tenant, "appid": client_id,
                      "jti": self._id(""), "exp": int(time.time()) + self.token_lifetime,
                      **({"scp": " ".join(short), "upn": user} if user else {"roles": short})}
            access = ".".join(_b64(x) for x in ({"typ": "JWT", "alg": "RS256"}, claims, "sig"))
            token = Token(client_id, user, set(scopes), time.time() + self.token_lifetime)
            self.tokens[access] = token
            body = {"token_type": "Bearer", "expires_in": self.token_lifetime,
                    "ext_expires_in": self.token_lifetime, "access_token": access}
            if refresh and user:
                rt = "0.ARoA" + self._id("")
                self.refresh_tokens[rt] = token
                oid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
                claims = {"aud": client_id, "iss": f"{self.url}/{self.tenant}/v2.0",
                          "iat": int(time.time()), "exp": int(time.time()) + 3600,
                          "name": user.split("@")[0], "oid": oid, "sub": oid,
                          "preferred_username": user, "tid": self.tenant, "ver": "2.0"}
                info = {"uid": oid, "utid": self.tenant}
                body.update(refresh_token=rt, scope=" ".join(sorted(scopes)),
                            id_token=".".join(_b64(x) for x in (
                                {"typ": "JWT", "alg": "none"}, claims, "")),
                            client_info=_b64(info))
            return body

    # --- Graph -----------------------------------------------------------------------------
    def authorize(self, header: str) -> Token:
        token = self.tokens.get(header.removeprefix("Bearer ").strip())
        if token is None:
            raise graph_error(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well "
                              "formed, there are no dots (.).")
        if token.expires <= time.time():
            raise graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, "
                              "the token is expired.")
        return token

    def graph(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
              body: bytes, token: Token) -> tuple[int, dict, object]:
        immutable = 'idtype="immutableid"' in headers.get("prefer", "").lower().replace(" ", "")
        self.prefer_seen.append(headers.get("prefer", ""))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] == ["me"]:
            if token.user is None:
                raise graph_error(400, "BadRequest", "/me request is only valid with delegated "
                                  "authentication flow.")
            parts = ["users", token.user, *parts[1:]]
        if len(parts) < 3 or parts[0] != "users":
            raise graph_error(400, "BadRequest", f"Resource not found for the segment "
                              f"'{parts[0] if parts else ''}'.")
        box = self._mailbox(parts[1], token)
        rest = parts[2:]
        if rest == ["mailFolders", "delta"] and method == "GET":
            every = [self._folder_json(box, f) for f in box.folders]
            return 200, {}, {"value": every, "@odata.deltaLink": f"{self.url}/v1.0{path}?"
                             f"$deltatoken={self._id('F')}"}
        if rest[0] == "mailFolders" and rest[2:] == ["messages", "delta"] and method == "GET":
            self._need(token, READ)
            return self._delta(box, box.folder_id(rest[1]), path, query, headers, immutable)
        if rest[0] == "mailFolders" and len(rest) == 2 and method == "GET":
            fid = box.folder_id(rest[1])
            return 200, {}, self._folder_json(box, fid)
        if rest[0] == "mailFolders" and len(rest) == 1 and method == "GET":
            top = [self._folder_json(box, f) for f, d in box.folders.items()
                   if d["parentFolderId"] is None]
            return 200, {}, {"value": top}
        if rest[0] == "messages" and len(rest) == 1 and method == "GET":
            self._need(token, READ)
            return 200, {}, self._list(box, path, query, immutable)
        if rest == ["sendMail"] and method == "POST":
            return self._send_mail(box, token, headers, body)
        if rest[0] == "messages" and len(rest) >= 2:
            msg = self._message(box, rest[1])
            if len(rest) == 3 and rest[2] == "$value" and method == "GET":
                self._need(token, READ - {"Mail.ReadBasic"})
                return 200, {"Content-Type": "text/plain"}, msg.raw
            if len(rest) == 2 and method == "PATCH":
                self._need(token, WRITE, box)
                changes = json.loads(body or b"{}")
                with self.lock:
                    if "isRead" in changes:
                        msg.is_read = bool(changes["isRead"])
                return 200, {}, self._message_json(box, msg, None, immutable)
        raise graph_error(400, "BadRequest", "Unsupported request in this fake: "
                          f"{method} {path}")

    def _send_mail(self, box: Mailbox, token: Token, headers: dict[str, str],
                   body: bytes) -> tuple[int, dict, object]:
        # "applications that use user tokens use the Mail.Send.Shared permission" to send
        # from another user, and the signed-in user "MUST have at least one of" Send As or
        # Send on Behalf on that mailbox (Full Access too, through /users/{from}: _mailbox).
        self._need(token, SEND, box)
        if token.user is not None and box.address != token.user.lower() \
                and box.address not in self.send_as.get(token.user.lower(), set()):
            raise graph_error(403, "ErrorSendAsDenied", "The user account which was used to "
                              "submit this request does not have the right to send mail on "
                              "behalf of the specified sending account. Cannot submit message.")
        if not headers.get("content-type", "").startswith("text/plain"):
            raise graph_error(400, "BadRequest", "This fake takes MIME sends only.")
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            raise graph_error(400, "ErrorMimeContentInvalidBase64String",
                              "Invalid base64 string for MIME content.") from None
        with self.lock:
            self.sent.append((box.address, mime))
            self.counter += 1
            sent = Message(self._id("AAkALgAA"), box.folder_id("sentitems"), mime,
                           datetime.now(UTC), True)
            box.messages[sent.immutable_id] = sent
        return 202, {}, b""

    def _mailbox(self, user: str, token: Token) -> Mailbox:
        box = self.mailboxes.get(user.lower())
        if box is None:
            raise graph_error(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if not box.has_mailbox:
            raise graph_error(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either "
                              "inactive, soft-deleted, or is hosted on-premise.")
        if token.user is None and (token.client_id, box.address) in self.denied_by_policy:
            raise graph_error(403, "ErrorAccessDenied", "Access to OData is disabled: Blocked "
                              "by tenant configured AppOnly AccessPolicy settings.")
        if token.user is not None and box.address != token.user.lower():
            if box.address not in self.delegations.get(token.user.lower(), set()):
                raise graph_error(403, "ErrorAccessDenied", "Access is denied. Check "
                                  "credentials and try again.")
            self._need(token, READ, box)  # any use of another user's mailbox reads it
        return box

    def _need(self, token: Token, any_of: set[str], box: Mailbox | None = None) -> None:
        """`box`: the mailbox used; a delegated token needs the .Shared variant for another
        user's (without `box`, _mailbox has checked that already)."""
        granted = {s.rsplit("/", 1)[-1] for s in token.scopes}  # .../Mail.Read is Mail.Read
        shared = {p + SHARED for p in any_of}
        others = box is not None and token.user is not None and box.address != token.user.lower()
        if not granted & (shared if others else any_of | shared):
            raise graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials "
                              "and try again.")

    def _message(self, box: Mailbox, mid: str) -> Message:
        for msg in box.messages.values():
            if mid in (msg.immutable_id, msg.rest_id()):
                return msg
        raise graph_error(404, "ErrorItemNotFound", "The specified object was not found in "
                          "the store.")

    def _folder_json(self, box: Mailbox, fid: str) -> dict:
        folder = box.folders[fid]
        inside = [m for m in box.messages.values() if m.folder == fid]
        return {"id": fid, "displayName": folder["displayName"],
                "parentFolderId": folder["parentFolderId"],
                "childFolderCount": sum(1 for f in box.folders.values()
                                        if f["parentFolderId"] == fid),
                "unreadItemCount": sum(1 for m in inside if not m.is_read),
                "totalItemCount": len(inside), "isHidden": False}

    def _message_json(self, box: Mailbox, msg: Message, select: list[str] | None,
                      immutable: bool, expand: str | None = None) -> dict:
        full = {"id": msg.immutable_id if immutable else msg.rest_id(),
                "receivedDateTime": msg.received.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "isRead": msg.is_read, "parentFolderId": msg.folder,
                "internetMessageId": _header(msg.raw, "message-id"),
                "subject": _header(msg.raw, "subject")}
        keep = full if select is None else {k: v for k, v in full.items()
                                            if k == "id" or k in select}
        if expand is not None and expand.lower().split() == ["integer", "0x0e08"]:
            keep["singleValueExtendedProperties"] = [{"id": "Integer 0xe08",
                                                      "value": str(len(msg.raw))}]
        return {"@odata.etag": f'W/"{msg.immutable_id[-8:]}"', **keep}

    def _list(self, box: Mailbox, path: str, query: dict[str, str], immutable: bool) -> dict:
        clauses = _parse_filter(query.get("$filter", ""))
        order = query.get("$orderby", "").split()
        if order:
            if order[0] != "receivedDateTime" or order[1:] not in ([], ["asc"], ["desc"]):
                raise graph_error(400, "BadRequest", "Could not find a property named "
                                  f"'{order[0]}' on type 'Microsoft.OutlookServices.Message'.")
            if clauses and clauses[0][0] != order[0]:
                raise graph_error(400, "InefficientFilter", "The restriction or sort order is "
                                  "too complex for this operation.")
        top = int(query.get("$top", DEFAULT_PAGE))
        skip = int(query.get("$skip", 0))
        with self.lock:
            found = [m for m in box.messages.values() if all(_match(m, c) for c in clauses)]
        found.sort(key=lambda m: m.received, reverse=order[1:] == ["desc"] or not order)
        select = query["$select"].split(",") if "$select" in query else None
        expand = _expansion(query)
        page = found[skip:skip + top]
        out: dict = {"value": [self._message_json(box, m, select, immutable, expand)
                               for m in page]}
        if skip + top < len(found):
            out["@odata.nextLink"] = f"{self.url}/v1.0{path}?" + urlencode(
                {**query, "$skip": str(skip + top)}, quote_via=quote, safe="$,")
        return out

    def _delta(self, box: Mailbox, fid: str, path: str, query: dict[str, str],
               headers: dict[str, str], immutable: bool) -> tuple[int, dict, object]:
        link = f"{self.url}/v1.0{path}?"
        with self.lock:
            if "$skiptoken" in query or "$deltatoken" in query:
                key = query.get("$skiptoken") or query.get("$deltatoken") or ""
                state = self.delta_states.get(key)
                if state is None or (state.mailbox, state.folder) != (box.address, fid):
                    return self._delta_gone(link)
                if "$deltatoken" in query:  # a new round from that state
                    state = self._round(box, fid, state.query, state.seen)
            else:
                if query.get("changeType", "created") not in ("created", "updated", "deleted"):
                    raise graph_error(400, "ErrorInvalidUrlQuery", "changeType must be "
                                      "created, updated or deleted.")
                clauses = _parse_filter(query.get("$filter", ""))
                if any(c[0] != "receivedDateTime" or c[1] not in ("ge", "gt") for c in clauses):
                    raise graph_error(400, "ErrorInvalidUrlQueryFilter", "Only receivedDateTime "
                                      "ge or gt is supported in a delta query.")
                state = self._round(box, fid, query, {})
            found = MAXPAGESIZE.search(headers.get("prefer", ""))
            size = int(found.group(1)) if found else DEFAULT_PAGE
            page, state.pending = state.pending[:size], state.pending[size:]
            select = state.query["$select"].split(",") if "$select" in state.query else None
            expand = _expansion(state.query)
            value = [item if "@removed" in item else
                     self._message_json(box, box.messages[item["id"]], select, immutable,
                                        expand)
                     for item in page]
            token = self._id("D")
            self.delta_states[token] = state
            if state.pending:
                return 200, {}, {"value": value, "@odata.nextLink": f"{link}$skiptoken={token}"}
            state.seen = state.next_seen
            return 200, {}, {"value": value, "@odata.deltaLink": f"{link}$deltatoken={token}"}

    def _round(self, box: Mailbox, fid: str, query: dict[str, str],
               seen: dict[str, bool]) -> DeltaState:
        """The changes since `seen`, as of now (the next round starts from this moment)."""
        clauses = _parse_filter(query.get("$filter", ""))
        now = {m.immutable_id: m.is_read for m in box.messages.values()
               if m.folder == fid and all(_match(m, c) for c in clauses)}
        kind = query.get("changeType")
        changes: list[dict] = []
        if kind in (None, "created"):
            changes += [{"id": i} for i in now if i not in seen]
        if kind in (None, "updated"):
            changes += [{"id": i} for i in now if i in seen and seen[i] != now[i]]
        if kind in (None, "deleted"):
            changes += [{"id": i, "@removed": {"reason": "deleted"}} for i in seen
                        if i not in now]
        order = {m.immutable_id: m.received for m in box.messages.values()}
        changes.sort(key=lambda c: order.get(c["id"], datetime.min.replace(tzinfo=UTC)))
        return DeltaState(box.address, fid, query, seen, changes, now)

    def _delta_gone(self, link: str) -> tuple[int, dict, object]:
        if self.delta_reset == "resyncRequired":
            raise graph_error(410, "resyncRequired", "Resync required. Replace any local "
                              "cached data with a full synchronization.",
                              {"Location": f"{link}$deltatoken="})
        raise graph_error(410, "syncStateNotFound", "The sync state generation is not found "
                          "or the delta token is expired.")

    def batch(self, payload: dict, token_header: str) -> dict:
        requests = payload.get("requests") or []
        if len(requests) > 20:
            raise graph_error(400, "BadRequest", "The number of requests in the batch exceeds "
                              "the maximum of 20.")
        responses = []
        for req in requests:
            url = req["url"] if req["url"].startswith("/") else "/" + req["url"]
            split = urlsplit(url)
            inner_headers = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
            self.batched.append((req["method"], split.path))
            fault = self._fault("batch", split.path)
            if fault is not None:
                responses.append({"id": req["id"], "status": 429,
                                  "headers": {"Retry-After": fault.retry_after},
                                  "body": graph_error(429, "ApplicationThrottled",
                                                      "Application is over its "
                                                      "MailboxConcurrency limit.").body})
                continue
            try:
                token = self.authorize(token_header)
                body = req.get("body")
                raw_body = json.dumps(body).encode() if body is not None else b""
                status, out_headers, result = self.graph(
                    req["method"], split.path,
                    {k: v[0] for k, v in parse_qs(split.query).items()},
                    inner_headers, raw_body, token)  # the envelope's headers stay outside
            except Reply as reply:
                status, out_headers, result = reply.status, reply.headers, reply.body
            if isinstance(result, bytes):  # a non-JSON body travels base64-encoded
                result = base64.b64encode(result).decode()
                out_headers = {"Content-Type": out_headers.get("Content-Type", "text/plain")}
            else:
                out_headers = {"Content-Type": "application/json", **out_headers}
            responses.append({"id": req["id"], "status": status, "headers": out_headers,
                              "body": result})
        return {"responses": responses}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64(value: object) -> str:
    return _b64url(value.encode() if isinstance(value, str) else json.dumps(value).encode())


def _header(raw: bytes, name: str) -> str | None:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("latin-1")
    found = re.search(rf"^{name}:\s*(.*)$", head, re.I | re.M)
    return found.group(1).strip() if found else None


CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|ge|gt|le|lt)\s+(\S+)\s*$", re.I)


def _expansion(query: dict[str, str]) -> str | None:
    """The extended property id a `$expand` asks for; anything else it could ask is a 400."""
    if "$expand" not in query:
        return None
    found = EXPAND.fullmatch(query["$expand"])
    if found is None:
        raise graph_error(400, "BadRequest", "Parsing OData Select and Expand failed: "
                          f"unsupported $expand in this fake: {query['$expand']}")
    return found.group(1)


def _parse_filter(text: str) -> list[tuple[str, str, object]]:
    clauses: list[tuple[str, str, object]] = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.I) if text.strip() else []:
        found = CLAUSE.match(part)
        if not found or found.group(1) not in ("receivedDateTime", "isRead"):
            raise graph_error(400, "ErrorInvalidUrlQueryFilter", "The query filter contains "
                              "one or more invalid nodes.")
        prop, op, value = found.group(1), found.group(2).lower(), found.group(3)
        if prop == "isRead":
            if value not in ("true", "false") or op not in ("eq", "ne"):
                raise graph_error(400, "ErrorInvalidUrlQueryFilter", "The query filter "
                                  "contains one or more invalid nodes.")
            clauses.append((prop, op, value == "true"))
        else:
            clauses.append((prop, op, datetime.fromisoformat(value.replace("Z", "+00:00"))))
    return clauses


def _match(msg: Message, clause: tuple[str, str, object]) -> bool:
    prop, op, value = clause
    have = msg.is_read if prop == "isRead" else msg.received
    return {"eq": have == value, "ne": have != value, "ge": have >= value, "gt": have > value,
            "le": have <= value, "lt": have < value}[op]


class _Handler(BaseHTTPRequestHandler):
    fake: GraphFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        fake = self.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.log.append((method, split.path))
        if fake._fault("drop", split.path) is not None:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        fault = fake._fault("status", split.path)
        try:
            if fault is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                code = "ApplicationThrottled" if fault.status == 429 else "ServiceUnavailable"
                raise graph_error(fault.status, code, "Application is over its "
                                  "MailboxConcurrency limit." if fault.status == 429
                                  else "Service unavailable.", headers)
            status, headers, result = self._route(method, split, body)
        except Reply as reply:
            status, headers, result = reply.status, reply.headers, reply.body
        data = result if isinstance(result, bytes) else json.dumps(result).encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, split, body: bytes) -> tuple[int, dict, object]:
        fake = self.fake
        path = split.path
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()} if method == "POST" else {}
        tenant = path.strip("/").split("/")[0]
        if path.endswith("/v2.0/.well-known/openid-configuration") and method == "GET":
            if tenant not in (fake.tenant, "organizations", "common"):
                raise identity_error(400, "invalid_tenant", 90002,
                                     f"Tenant '{tenant}' not found.")
            return 200, {}, fake.openid_configuration(tenant)
        if path == f"/{tenant}/oauth2/v2.0/token" and method == "POST":
            if form.get("grant_type") == "refresh_token":
                fake._at_refresh_gate()
            with fake.lock:
                return 200, {}, fake.token(form, f"{fake.url}{path}")
        if path == f"/{tenant}/oauth2/v2.0/devicecode" and method == "POST":
            with fake.lock:
                return 200, {}, fake.device_code(form, fake.approve_device_as)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path == "/v1.0/$batch" and method == "POST":
            fake.authorize(headers.get("authorization", ""))
            return 200, {}, fake.batch(json.loads(body), headers.get("authorization", ""))
        if path.startswith("/v1.0/"):
            token = fake.authorize(headers.get("authorization", ""))
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            return fake.graph(method, path.removeprefix("/v1.0"), query, headers, body, token)
        raise Reply(404, {"error": {"code": "NotFound", "message": "No such endpoint."}})
