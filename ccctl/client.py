"""Talking to the daemon: the Unix socket first, else `CCD_URL` with `CCD_TOKEN`.

Errors come back as `ClientError` with one line a person can act on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

from ccd.errors import CcdError
from ccd.settings import default_socket


class ClientError(CcdError):
    """The daemon refused a request (`status` is the HTTP status) or cannot be reached
    (`status` is None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """A thin, synchronous client of the REST API."""

    def __init__(self, timeout: float = 30) -> None:
        socket = Path(os.environ.get("CCD_SOCKET") or default_socket())
        url = os.environ.get("CCD_URL")
        if socket.exists() and not url:
            transport = httpx.HTTPTransport(uds=str(socket))
            self.http = httpx.Client(transport=transport, base_url="http://localhost",
                                     timeout=timeout)
            self.where = f"unix:{socket}"
        elif url:
            token = os.environ.get("CCD_TOKEN") or _token_file()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
            self.where = url
        else:
            raise ClientError(f"ccd is not running (no socket at {socket}): start it with `ccd`"
                              " or `systemctl --user start ccd`, or set CCD_URL and CCD_TOKEN")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; a 4xx/5xx or a dead daemon becomes a ClientError."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ClientError(f"ccd is not answering at {self.where}: start it with `ccd` or "
                              "`systemctl --user start ccd`") from None
        except httpx.HTTPError as e:
            raise ClientError(f"talking to ccd at {self.where} failed: {e}") from None
        if response.status_code >= 400:
            raise ClientError(_message(response), response.status_code)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def events(self, path: str, after: int | None = None
               ) -> Generator[tuple[int, str, dict[str, Any]], None, None]:
        """Follow a server-sent event stream: (id, event, data) until it ends."""
        headers = {"Last-Event-ID": str(after)} if after is not None else {}
        try:
            with self.http.stream("GET", path, headers=headers, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(_message(response), response.status_code)
                event_id, event, data = 0, "message", ""
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        event_id = int(line[3:].strip())
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        yield event_id, event, json.loads(data)
                        event, data = "message", ""
        except httpx.TransportError as e:  # refused, or the stream broke (daemon restarting)
            raise ClientError(f"lost ccd at {self.where}: {e}") from None


def _message(response: httpx.Response) -> str:
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
    from ccd.auth import token_path

    try:
        return token_path().read_text().strip()
    except OSError:
        return None
