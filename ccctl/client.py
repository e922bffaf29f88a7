"""Talking to the daemon: the Unix socket first, else `CCD_URL` with `CCD_TOKEN`.

The socket is trusted only if it and its directory belong to this user and no one else may
write there: without XDG_RUNTIME_DIR it lives in /tmp/ccd-UID, which another user could
create first to receive our uploads.

Plain `http.client` rather than httpx: importing httpx costs 70-100 ms here (its command
line module pulls in click and rich, its auth module urllib.request), more than the whole
budget of a `ccctl status` (< 100 ms with process start). Errors come back as
`ClientError` with one line a person can act on.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from ccd.errors import ClientError, NoDaemon
from ccd.settings import default_socket


class Response:
    """A finished response: status, headers and the whole body."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Client:
    """A thin, synchronous client of the REST API; one connection per request."""

    def __init__(self, timeout: float = 30) -> None:
        sock = Path(os.environ.get("CCD_SOCKET") or default_socket())
        url = os.environ.get("CCD_URL")
        self.timeout = timeout
        self.headers: dict[str, str] = {}
        if sock.exists():
            _check_owner(sock)
            self._socket = str(sock)
            self.where = f"unix:{sock}"
        elif url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ClientError(f"CCD_URL must look like http://127.0.0.1:8000, not {url!r}")
            self._url = parts
            token = os.environ.get("CCD_TOKEN") or _token_file()
            if token:
                self.headers["Authorization"] = f"Bearer {token}"
            self.where = url
        else:
            raise NoDaemon(f"ccd is not running (no socket at {sock}): start it with `ccd`"
                           " or `systemctl --user start ccd`, or set CCD_URL and CCD_TOKEN")

    def probe(self) -> None:
        """Raise NoDaemon if the socket is there but nothing listens (a daemon killed with
        -9 leaves it) and no CCD_URL names another daemon: a connect, no request."""
        if not hasattr(self, "_socket"):
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self._socket)
            except (ConnectionRefusedError, FileNotFoundError) as e:
                kind = ClientError if os.environ.get("CCD_URL") else NoDaemon
                raise kind(f"ccd is not answering at {self.where} ({e.strerror}): start it "
                           "with `ccd` or `systemctl --user start ccd`") from None

    def close(self) -> None:
        """Nothing stays open between requests."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if hasattr(self, "_socket"):
            return _UnixConnection(self._socket, timeout)
        kind = (http.client.HTTPSConnection if self._url.scheme == "https"
                else http.client.HTTPConnection)
        return kind(self._url.hostname or "", self._url.port, timeout=timeout)

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any,
              content: bytes | None, headers: dict[str, str],
              timeout: float | None) -> tuple[http.client.HTTPConnection,
                                              http.client.HTTPResponse]:
        if params:
            path += "?" + urlencode(params)
        if body is not None:
            content = json.dumps(body).encode()
            headers = {**headers, "Content-Type": "application/json"}
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=content, headers={**self.headers, **headers})
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ClientError(f"ccd is not answering at {self.where} ({e}): start it with "
                              "`ccd` or `systemctl --user start ccd`") from None

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send a request; a 4xx/5xx or a dead daemon becomes a ClientError."""
        conn, raw = self._send(method, path, params, json, content, headers or {},
                               self.timeout)
        try:
            response = Response(raw.status, raw.headers, raw.read())
        except (OSError, http.client.HTTPException) as e:
            raise ClientError(f"lost ccd at {self.where}: {e}") from None
        finally:
            conn.close()
        if response.status_code >= 400:
            raise ClientError(_message(response), response.status_code)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def stream(self, path: str, params: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> Generator[bytes, None, None]:
        """A response body as it arrives (no timeout: it may be quiet for long)."""
        conn, raw = self._send("GET", path, params, None, None, headers or {}, None)
        try:
            if raw.status >= 400:
                raise ClientError(_message(Response(raw.status, raw.headers, raw.read())),
                                  raw.status)
            while chunk := raw.read1(65536):
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            raise ClientError(f"lost ccd at {self.where}: {e}") from None
        finally:
            conn.close()

    def events(self, path: str, after: int | None = None
               ) -> Generator[tuple[int, str, dict[str, Any]], None, None]:
        """Follow a server-sent event stream: (id, event, data) until it ends."""
        headers = {"Last-Event-ID": str(after)} if after is not None else {}
        event_id, event, data = 0, "message", ""
        for line in _lines(self.stream(path, headers=headers)):
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                yield event_id, event, json.loads(data)
                event, data = "message", ""


def _check_owner(sock: Path) -> None:
    """Refuse a socket someone else could have put there: the directory and the socket, both
    the name and what it points to, must be ours and writable by no one else."""
    uid = os.getuid()
    for path in (sock.parent, sock):
        try:
            found = (os.lstat(path), os.stat(path))
        except OSError as e:
            raise ClientError(f"refusing to talk to {sock}: cannot check {path}: "
                              f"{e.strerror}") from None
        for st in found:
            if st.st_uid != uid:
                problem = f"{path} belongs to {_user(st.st_uid)}, not to you (uid {uid})"
            elif not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
                problem = f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
            else:
                continue
            raise ClientError(f"refusing to talk to {sock}: {problem}, so another user may be "
                              "listening there; remove it, or set XDG_RUNTIME_DIR or CCD_SOCKET")


def _user(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")


def _message(response: Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"ccd answered {response.status_code}: {response.text[:200]}"
    text = body.get("error", "") if isinstance(body, dict) else str(body)
    problems = body.get("problems") if isinstance(body, dict) else None
    if problems:
        return "\n".join(problems)
    return text or f"ccd answered {response.status_code}"


def _token_file() -> str | None:
    from ccd.settings import token_path

    try:
        return token_path().read_text().strip()
    except OSError:
        return None
