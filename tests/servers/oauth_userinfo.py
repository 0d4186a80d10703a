"""A stand-in for an identity provider's userinfo endpoint, so Dovecot can accept XOAUTH2
(its oauth2 passdb in `introspection_mode = auth`: GET with `Authorization: Bearer TOKEN`,
a JSON object naming the user on 200). Loopback only; tokens are issued by the test."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class UserInfoServer:
    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server.requests += 1
                auth = self.headers.get("Authorization", "")
                user = server.tokens.get(auth.removeprefix("Bearer ").strip())
                # An unknown token is an inactive account, not an endpoint failure: Dovecot
                # answers the former with a plain login failure, the latter as UNAVAILABLE.
                body = json.dumps({"mail": user, "active": "true"} if user
                                  else {"mail": "", "active": "false"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/userinfo"

    def issue(self, username: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = username
        return token

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
