"""Who may talk to the daemon.

- The Unix socket is trusted: it is mode 0600 in a 0700 directory, so only the user
  reaches it.
- TCP requires the token (`Authorization: Bearer <token>`), or the browser's session
  cookie that a one-time login link sets. The token is random, created on first start,
  stored 0600 in the config directory.
- Requests over TCP must name a loopback Host (DNS rebinding), and a mutating request
  from a browser must come from our own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccd.settings import token_path

COOKIE = "ccd_session"
LOGIN_TTL = 600.0  # seconds a one-time login link stays valid
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_PUBLIC = ("/login", "/openapi.json", "/docs", "/vendor/", "/static/")
# No inline scripts anywhere; WebAssembly for the vendored Graphviz (viz.js) in the page.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' "
     b"'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def load_or_create_token() -> str:
    """The daemon's token, created (0600, in a 0700 directory) on first use."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token
        path.unlink()
        return load_or_create_token()
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Logins:
    """One-time login codes for the browser; the cookie they set is derived from the token,
    so a browser stays logged in across daemon restarts and loses it when the token changes."""

    def __init__(self, token: str) -> None:
        self.session = hmac.new(token.encode(), b"ccd browser session", hashlib.sha256).hexdigest()
        self._codes: dict[str, float] = {}

    def new_code(self) -> str:
        now = time.monotonic()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = now + LOGIN_TTL
        return code

    def redeem(self, code: str) -> bool:
        expires = self._codes.pop(code, None)
        return expires is not None and expires > time.monotonic()


class Guard:
    """ASGI middleware enforcing the rules of this module's docstring."""

    def __init__(self, app: ASGIApp, token: str, logins: Logins) -> None:
        self.app = app
        self.token = token
        self.logins = logins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        unix = server is None or server[1] is None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        problem = None if unix else self._check_tcp(scope, headers)
        if problem is None and scope["method"] not in _SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin not in self._origins(headers):
                problem = (403, f"cross-origin request from {origin} refused")
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if problem is not None:
            await _refuse(send_with_headers, *problem)
            return
        await self.app(scope, receive, send_with_headers)

    def _check_tcp(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOOPBACK:
            return 421, f"Host {host!r} is not this daemon (only loopback names are served)"
        path: str = scope["path"]
        if path == "/" or path.startswith(_PUBLIC):
            return None
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and _same(auth[7:].strip(), self.token):
            return None
        if _same(_cookie(headers.get("cookie", ""), COOKIE), self.logins.session):
            return None
        return 401, "this needs the ccd token: Authorization: Bearer <token> (see ccctl open)"

    @staticmethod
    def _origins(headers: dict[str, str]) -> set[str]:
        host = headers.get("host", "")
        return {f"http://{host}"} if host else set()


def _same(presented: str, secret: str) -> bool:
    """Constant time, on bytes: a header's non-ASCII bytes (read as latin-1) just do not match
    (compare_digest refuses non-ASCII str with a TypeError, which was a 500)."""
    return hmac.compare_digest(presented.encode("latin-1"), secret.encode())


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
