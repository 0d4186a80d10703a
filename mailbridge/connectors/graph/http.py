"""Graph requests with Microsoft's rules for well-behaved clients: `Retry-After` honoured on
429/503/504 (seconds or an HTTP date), one token refresh on a 401, a bounded retry of
idempotent requests whose connection dropped, a timeout on every call, `@odata.nextLink`
followed verbatim, and `$batch` for up to 20 requests in one round trip (throttled members
are sent again, the others kept). Requests go one at a time, well under Outlook's limit of
4 concurrent requests per mailbox. Every failure becomes a mailbridge error."""

from __future__ import annotations

import base64
import email.utils
import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from mailbridge.errors import NetworkError, RemoteError, TemporaryError, TlsError

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 503, 504)
MAX_ATTEMPTS = 8  # throttled or dropped tries of one request before giving up for this run
MAX_DROPS = 3
MAX_WAIT = 300.0  # seconds of Retry-After one request may wait in total
BATCH_LIMIT = 20  # Graph's maximum number of requests in one $batch
# Immutable ids stay the same when a person moves a message to another folder, so the
# ledger recognises it (Outlook's default ids change with every move). Large pages where a
# query takes its page size from this header (delta queries).
PREFER = 'IdType="ImmutableId", odata.maxpagesize=500'


class TokenSource(Protocol):
    def token(self, account: str | None, force: bool = False) -> str: ...


class MaybeSent(NetworkError):
    """A request that must not be repeated lost its connection after it went out: the
    server may have acted on it."""


class GraphError(RemoteError):
    """Graph answered with an error body: `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Part:
    """One answer inside a `$batch` response."""

    status: int
    headers: dict[str, str]
    body: Any
    delegated: bool = False  # the token is a user's: a refusal's remedy differs

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def content(self) -> bytes:
        """A non-JSON body (the MIME of `$value`) arrives base64-encoded inside the batch."""
        if isinstance(self.body, str):
            return base64.b64decode(self.body)
        return b""

    def error(self) -> tuple[str, str]:
        err = self.body.get("error", {}) if isinstance(self.body, dict) else {}
        return err.get("code", f"HTTP {self.status}"), err.get("message", "")

    def failure(self, label: str) -> GraphError:
        return graph_error(label, self.status, *self.error(), delegated=self.delegated)


def session_for(ca_bundle: str | None, timeout: float) -> requests.Session:
    """A requests session whose TLS trusts the system store plus `ca_bundle` (extra CA
    certificates, e.g. a TLS-inspecting proxy's) and whose calls all time out."""
    session = _TimeoutSession(timeout)
    if ca_bundle:
        context = ssl.create_default_context()
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"ca_bundle {ca_bundle}: {exc}",
                           "point ca_bundle at a PEM file of CA certificates") from None
        session.mount("https://", _ContextAdapter(context))
    return session


class _TimeoutSession(requests.Session):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


class _ContextAdapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)


def retry_after(headers: Any, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or an HTTP date), else a backoff."""
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    if value:
        value = str(value).strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    return float(min(2 ** attempt, 60))


class GraphClient:
    def __init__(self, graph_url: str, auth: TokenSource, session: requests.Session,
                 label: str, delegated: bool = False) -> None:
        self.delegated = delegated  # a signed-in user's token, not the application's
        self.base = graph_url.rstrip("/") + "/v1.0"
        self.auth, self.session, self.label = auth, session, label
        self.server_date: datetime | None = None  # Graph's clock, from the last answer

    def relative(self, link: str) -> str:
        """A link Graph gave (nextLink, deltaLink) as the relative url a `$batch` takes."""
        return link.removeprefix(self.base)

    def get(self, path: str, account: str | None, params: dict[str, str] | None = None
            ) -> dict[str, Any]:
        return self._send("GET", path, account, params=params).json()

    def pages(self, path: str, account: str | None, params: dict[str, str]
              ) -> Iterator[list[dict[str, Any]]]:
        """Each page's `value`; `@odata.nextLink` is followed exactly as given."""
        page = self.get(path, account, params)
        while True:
            yield page.get("value", [])
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get(link, account)

    def patch(self, path: str, account: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("PATCH", path, account, json=body).json()

    def post_once(self, path: str, account: str | None, data: bytes, content_type: str
                  ) -> requests.Response:
        """A POST with effects (sending mail): retried after a throttling answer, which
        means it was not accepted, but never after a dropped connection (MaybeSent)."""
        return self._send("POST", path, account, idempotent=False, data=data,
                          extra_headers={"Content-Type": content_type})

    def batch(self, calls: list[tuple[str, str, dict | None]], account: str | None
              ) -> list[Part]:
        """Runs (method, relative url, json body) calls in `$batch` round trips; the answers
        come back in the calls' order. Members throttled inside the batch are sent again after
        the longest Retry-After; only idempotent calls belong here."""
        answers: dict[int, Part] = {}
        for start in range(0, len(calls), BATCH_LIMIT):
            todo = dict(enumerate(calls[start:start + BATCH_LIMIT], start))
            waited, refreshed = 0.0, False
            for attempt in range(MAX_ATTEMPTS):
                payload = {"requests": [self._member(i, *call) for i, call in todo.items()]}
                found = self._send("POST", "/$batch", account, json=payload).json()
                wait = 0.0
                for item in found.get("responses", []):
                    part = Part(int(item["status"]), item.get("headers") or {},
                                item.get("body"), self.delegated)
                    index = int(item["id"])
                    if part.status in RETRY_STATUS:
                        wait = max(wait, retry_after(part.headers, attempt))
                    elif part.status == 401 and not refreshed:
                        self.auth.token(account, force=True)
                        refreshed = True
                    else:
                        answers[index] = part
                        todo.pop(index, None)
                if not todo:
                    break
                waited = self._wait(waited, wait, "$batch")
            else:
                raise self._gave_up("$batch")
        return [answers[i] for i in range(len(calls))]

    def _member(self, index: int, method: str, url: str, body: dict | None) -> dict[str, Any]:
        # The envelope's headers do not reach the requests inside a batch: each carries its own.
        member: dict[str, Any] = {"id": str(index), "method": method, "url": url,
                                  "headers": {"Prefer": PREFER}}
        if body is not None:
            member["body"] = body
            member["headers"]["Content-Type"] = "application/json"
        return member

    def _send(self, method: str, path: str, account: str | None, idempotent: bool = True,
              extra_headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else self.base + path
        refreshed, drops, waited = False, 0, 0.0
        for attempt in range(MAX_ATTEMPTS):
            headers = {"Authorization": "Bearer " + self.auth.token(account, force=False),
                       "Prefer": PREFER, **(extra_headers or {})}
            try:
                response = self.session.request(method, url, headers=headers, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise TlsError(f"{self.label}: the TLS certificate of {_host(url)} could not "
                               f"be verified ({_reason(exc)})",
                               "set ca_bundle for the app to the CA that signed it") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                drops += 1
                if not idempotent and not _before_sending(exc):
                    raise MaybeSent(f"{self.label}: the connection to {_host(url)} broke "
                                    "after the request was sent") from None
                if not idempotent or drops >= MAX_DROPS:
                    raise NetworkError(f"{self.label}: {_host(url)} did not answer "
                                       f"({type(exc).__name__})",
                                       "check the network; the next sync resumes") from None
                log.info("%s: connection dropped (%s), retrying", self.label,
                         type(exc).__name__)
                time.sleep(min(2 ** drops, 10))
                continue
            if response.status_code == 401 and not refreshed:
                self.auth.token(account, force=True)  # expired or revoked mid-run: once
                refreshed = True
                continue
            if response.status_code in RETRY_STATUS:
                log.info("%s: HTTP %s, waiting as Graph asks", self.label,
                         response.status_code)
                waited = self._wait(waited, retry_after(response.headers, attempt), path)
                continue
            if response.status_code >= 400:
                raise self._error(response)
            self._note_date(response.headers.get("Date"))
            return response
        raise self._gave_up(path)

    def _note_date(self, value: str | None) -> None:
        try:
            self.server_date = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            self.server_date = None

    def _wait(self, waited: float, wait: float, what: str) -> float:
        """Sleep as Graph asked, unless that takes this request past MAX_WAIT in total;
        returns the total waited."""
        if waited + wait > MAX_WAIT:
            raise TemporaryError(f"{self.label}: Graph kept throttling {what} for over "
                                 f"{MAX_WAIT:.0f} s", "the next sync resumes where this stopped")
        time.sleep(wait)
        return waited + wait

    def _gave_up(self, what: str) -> TemporaryError:
        return TemporaryError(f"{self.label}: Graph kept refusing {what} "
                              f"({MAX_ATTEMPTS} tries)", "the next sync resumes where this "
                              "stopped")

    def _error(self, response: requests.Response) -> GraphError:
        try:
            err = response.json().get("error")
        except (ValueError, AttributeError):
            err = None
        err = err if isinstance(err, dict) else {}
        return graph_error(self.label, response.status_code,
                           err.get("code") or f"HTTP {response.status_code}",
                           err.get("message", ""), self.delegated)


def graph_error(label: str, status: int, code: str, message: str,
                delegated: bool = False) -> GraphError:
    """A Graph error in one line, with the remedy for the ones a configuration causes."""
    hint = (DELEGATED_HINTS.get(code) if delegated else None) or HINTS.get(code)
    text = f"{label}: {code}" + (f": {message}" if message else "")
    return GraphError(status, code, text, hint)


HINTS = {
    "ErrorAccessDenied": "the app lacks the Mail permission, or an application access policy "
                         "or RBAC scope excludes this mailbox; ask the Exchange administrator",
    "ErrorInvalidUser": "check the mailbox address in the channel's mailboxes",
    "MailboxNotEnabledForRESTAPI": "the mailbox is inactive, soft-deleted or on-premises; "
                                   "give the user an Exchange Online licence or remove it",
    "InefficientFilter": "this is a mailbridge bug; please report it",
    "ErrorSendAsDenied": "the signed-in account needs Send As (or Send on Behalf) and Full "
                         "Access on this mailbox; ask the Exchange administrator",
}
# A signed-in user (a service account) reads another user's mailbox only with the .Shared
# permission and that user's grant of access to the mailbox.
DELEGATED_HINTS = {
    "ErrorAccessDenied": "the signed-in account may not read this mailbox: another user's "
                         "needs the app's Mail.Read.Shared (or Mail.ReadWrite.Shared) "
                         "permission and Read and manage (Full Access) on it for that account; "
                         "ask the Exchange administrator",
}


def _before_sending(exc: Exception) -> bool:
    """The connection failed before the request left (refused, no route, connect timeout)."""
    from urllib3.exceptions import NewConnectionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.exceptions.ConnectTimeout) \
        or isinstance(reason, NewConnectionError)


def segment(value: str) -> str:
    """A mailbox address or id as one URL path segment."""
    return quote(value, safe="@")


def _host(url: str) -> str:
    return url.split("/")[2] if "://" in url else url


def _reason(exc: Exception) -> str:
    text = str(exc)
    for known in ("self-signed certificate", "unable to get local issuer certificate",
                  "certificate has expired", "Hostname mismatch"):
        if known.lower() in text.lower():
            return known
    return "certificate verify failed"
