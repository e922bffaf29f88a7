"""Who may talk to the daemon.

- The Unix socket is trusted: it is mode 0600 in a 0700 directory, so only the user
  reaches it.
- TCP requires the token (`Authorization: Bearer <token>`), or the cookie of a browser
  session that a one-time login link opens. The token is random, created on first start,
  stored 0600 in the config directory; `ccctl token rotate` replaces it, which ends every
  session and every outstanding login link at once.
- Requests over TCP must name a loopback Host (DNS rebinding), and a mutating request
  from a browser must come from our own origin. A session cookie changes state only with
  the browser's word that the request comes from our own page (`Sec-Fetch-Site:
  same-origin`, or, from a browser too old to send it, our own `Origin`): cookies are not
  kept apart by port, so a page served on another local port is "same-site" and gets the
  cookie sent along. The paper's `GET /workflow/run/{name}` counts as a change.

A session is a signed cookie rather than a row in a sessions file:
`<id>.<expiry>.<HMAC(key, port.id.expiry)>`, the key derived from the token. A login
writes nothing, sessions survive a restart (the page reconnects by itself and stays
logged in), and a new token ends every one of them even when it is written to the file
while no daemon runs. The port in the MAC keeps a session to the daemon that opened it;
the port in the cookie's name keeps two daemons' cookies from overwriting each other. A
session lasts SESSION_TTL, a week from the login (not sliding: then the page asks for a
new link). What a signed cookie cannot do alone is end early: a logout adds its id to a
revocation list, 0600 next to the token (daemons on other ports share the token, so they
share the list, under a lock), read at start. An id is dropped once its session would
have expired anyway, so the list holds at most a week of logouts. What remains: over
plain http a browser sends the cookie to every service on 127.0.0.1, whatever its port,
and one that keeps it can replay it here, headers and all, until it expires or is logged
out: the rule above stops another port's page, not a replay (only HTTPS and a `__Host-`
cookie would).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ccd.errors import RequestError
from ccd.export import write_atomically
from ccd.settings import config_dir, token_path

LOGIN_TTL = 600.0  # seconds a one-time login link stays valid
SESSION_TTL = 7 * 86400.0  # seconds a browser session lasts from its login
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
# ASCII only ([0-9], not \d): a header's other bytes arrive as latin-1 letters and digits.
_SESSION = re.compile(
    r"(?P<id>[A-Za-z0-9_-]{22})\.(?P<expiry>[0-9]{1,12})\.(?P<mac>[A-Za-z0-9_-]{43})")


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


def replace_token() -> str:
    """A new token in place of the old one (written whole, 0600); returns it."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    write_atomically(path, token + "\n")  # mkstemp's file: 0600
    return token


def revoked_path() -> Path:
    """The ids of sessions ended by a logout before their time."""
    return config_dir() / "revoked-sessions"


class Sessions:
    """The token, the one-time login codes and the browser sessions signed with the token,
    for the daemon on `port`; `clock` is the wall clock (a session's expiry outlives us)."""

    def __init__(self, token: str, port: int, clock: Callable[[], float] = time.time) -> None:
        self.cookie = f"ccd_session_{port}"
        self._port = port
        self._clock = clock
        self._codes: dict[str, float] = {}
        self._use(token)
        self._revoked = _read_revoked(revoked_path(), clock())

    @property
    def token(self) -> str:
        return self._token

    def _use(self, token: str) -> None:
        self._token = token
        self._key = hmac.new(token.encode(), b"ccd browser session", hashlib.sha256).digest()

    def token_matches(self, presented: str) -> bool:
        """Constant time, on bytes: a header's non-ASCII bytes (read as latin-1) just do not
        match (compare_digest refuses non-ASCII str with a TypeError)."""
        return hmac.compare_digest(presented.encode("latin-1", "replace"), self._token.encode())

    def new_code(self) -> str:
        """A one-time login code, good for LOGIN_TTL."""
        now = time.monotonic()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = now + LOGIN_TTL
        return code

    def redeem(self, code: str) -> bool:
        expires = self._codes.pop(code, None)
        return expires is not None and expires > time.monotonic()

    def open(self) -> str:
        """A new session: the cookie's value."""
        session, expiry = secrets.token_urlsafe(16), int(self._clock() + SESSION_TTL)
        return f"{session}.{expiry}.{self._sign(session, expiry)}"

    def valid(self, value: str) -> bool:
        """Signed with the current token for this port, not expired, not logged out."""
        m = _SESSION.fullmatch(value)
        if m is None:
            return False
        session, expiry = m["id"], int(m["expiry"])
        signed = hmac.compare_digest(m["mac"].encode(), self._sign(session, expiry).encode())
        return signed and self._clock() < expiry and session not in self._revoked

    def close(self, value: str) -> None:
        """Log a session out, here and in the revocation list (blocking file I/O)."""
        if not self.valid(value):
            return
        session, expiry = value.split(".")[:2]
        self._revoked[session] = float(expiry)
        self._revoked = _add_revoked(revoked_path(), session, float(expiry), self._clock())

    def rotate(self) -> None:
        """A new token, on disk and here: every session and login code ends (blocking)."""
        self._use(replace_token())
        self._codes.clear()

    def _sign(self, session: str, expiry: int) -> str:
        mac = hmac.new(self._key, f"{self._port}.{session}.{expiry}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _read_revoked(path: Path, now: float) -> dict[str, float]:
    """The revocation list without the sessions that have expired; a torn line is skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    revoked = {}
    for line in lines:
        session, _, expiry = line.partition(" ")
        with contextlib.suppress(ValueError):
            if float(expiry) > now:
                revoked[session] = float(expiry)
    return revoked


def _add_revoked(path: Path, session: str, expiry: float, now: float) -> dict[str, float]:
    """Add one id to the list on disk, under a lock (daemons on other ports share it), and
    return the whole list."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(path.with_name(f"{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        revoked = _read_revoked(path, now)
        revoked[session] = expiry
        write_atomically(path, "".join(f"{s} {e:.0f}\n" for s, e in revoked.items()))
        return revoked
    finally:
        os.close(lock)


class Caller(Enum):
    """How a request proved who sent it."""

    SOCKET = "the Unix socket"
    TOKEN = "the token"
    SESSION = "a browser session"
    ANYONE = "nothing (a public path)"


class Guard:
    """ASGI middleware enforcing the rules of this module's docstring; `changing_gets` are
    the path prefixes where a GET changes state."""

    def __init__(self, app: ASGIApp, sessions: Sessions,
                 changing_gets: tuple[str, ...] = ()) -> None:
        self.app = app
        self.sessions = sessions
        self.changing_gets = changing_gets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        server = scope.get("server")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = (Caller.SOCKET if server is None or server[1] is None
                      else self._caller(scope, headers))
            if scope["method"] not in _SAFE_METHODS or \
                    scope["path"].startswith(self.changing_gets):
                self._check_origin(headers, caller)
        except RequestError as e:
            await _refuse(send_with_headers, e.status, str(e))
            return
        await self.app(scope, receive, send_with_headers)

    def _caller(self, scope: Scope, headers: dict[str, str]) -> Caller:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOOPBACK:
            raise RequestError(f"Host {host!r} is not this daemon (only loopback names are "
                               "served)", 421)
        path: str = scope["path"]
        if path == "/" or path.startswith(_PUBLIC):
            return Caller.ANYONE
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and self.sessions.token_matches(auth[7:].strip()):
            return Caller.TOKEN
        if self.sessions.valid(_cookie(headers.get("cookie", ""), self.sessions.cookie)):
            return Caller.SESSION
        raise RequestError("this needs the ccd token: Authorization: Bearer <token> (see "
                           "ccctl open)", 401)

    @staticmethod
    def _check_origin(headers: dict[str, str], caller: Caller) -> None:
        origin = headers.get("origin")
        host = headers.get("host", "")
        if origin is not None and origin != f"http://{host}":
            raise RequestError(f"cross-origin request from {origin} refused", 403)
        site = headers.get("sec-fetch-site")
        ours = site == "same-origin" or (site is None and origin is not None)
        if caller is Caller.SESSION and not ours:
            said = f"Sec-Fetch-Site: {site}" if site else "neither Sec-Fetch-Site nor Origin"
            raise RequestError(f"a browser session changes things only from ccd's own page "
                               f"(this request has {said}); from elsewhere send the token: "
                               "Authorization: Bearer <token>", 403)


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
