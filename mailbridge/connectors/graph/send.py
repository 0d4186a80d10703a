"""Outgoing through Microsoft 365: Graph `sendMail` with the message as MIME (base64, as
`text/plain`), sent as the configured mailbox. Graph takes the recipients from the MIME
headers, so envelope recipients missing from To/Cc (the channel's blind copy) are added as a
Bcc header, which Exchange removes before delivery. A MIME send always keeps a copy in Sent
Items. 202 means accepted; a refusal (4xx) is permanent; a connection lost after the request
went out, or a server error, may have sent it: the outbox marks it unknown, never resends."""

from __future__ import annotations

import base64
import json
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from mailbridge.connectors.base import SendFailed, SendUnknown
from mailbridge.connectors.graph.http import GraphClient, GraphError, MaybeSent, segment
from mailbridge.errors import AuthError


class GraphSender:
    def __init__(self, client: GraphClient, mailbox: str) -> None:
        self.client, self.mailbox = client, mailbox

    def check(self) -> dict[str, Any]:
        """Get a token and read from its claims whether it may send as the mailbox: Mail.Send,
        or for a signed-in user sending as someone else, Mail.Send.Shared. Nothing is sent
        and the mailbox is not touched."""
        token = self.client.auth.token(self.mailbox)
        granted = _claims(token)
        permissions = set((granted.get("roles") or []) + (granted.get("scp") or "").split())
        user = str(granted.get("upn") or granted.get("preferred_username") or "")
        other = bool(user) and user.lower() != self.mailbox.lower()
        needed = ("Mail.Send.Shared",) if other else ("Mail.Send", "Mail.Send.Shared")
        if granted and not permissions & set(needed):
            hint = ("set shared = true for the app, grant it Mail.Send.Shared in Entra ID, "
                    f"run `mailbridge auth login`, and give {user} Send As on the mailbox"
                    if other else "grant Mail.Send to the app in Entra ID (admin consent)")
            raise AuthError(f"{self.client.label}: the token for {self.mailbox} does not "
                            f"carry the {needed[0]} permission", hint)
        return {"mailbox": self.mailbox, "login": "ok",
                "mail_send": "granted" if granted else "not checked (opaque token)"}

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> dict[str, str]:
        mime = with_blind_copies(raw, recipients)
        try:
            self.client.post_once(f"/users/{segment(self.mailbox)}/sendMail", self.mailbox,
                                  base64.b64encode(mime), "text/plain")
        except MaybeSent as exc:
            raise SendUnknown(exc.message) from None
        except GraphError as exc:
            if exc.status >= 500:
                raise SendUnknown(exc.message) from None
            # the remedy goes with it: it is what `outbox list` shows later
            text = f"{exc.message}; {exc.hint}" if exc.hint else exc.message
            raise SendFailed(text, permanent=True) from None
        return {}

    def close(self) -> None:
        """Nothing to close: the HTTP session belongs to the app's sign-in, which lives as
        long as the process, so `run` keeps its connections to Microsoft between syncs."""


def with_blind_copies(raw: bytes, recipients: list[str]) -> bytes:
    headers = BytesHeaderParser().parsebytes(raw)
    shown = {a.lower() for _, a in getaddresses(headers.get_all("To", []) +
                                                headers.get_all("Cc", []))}
    hidden = [r for r in recipients if r.lower() not in shown]
    if not hidden:
        return raw
    newline = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    return b"Bcc: " + ", ".join(hidden).encode() + newline + raw


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, unverified (Graph verifies it); {} if opaque."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
