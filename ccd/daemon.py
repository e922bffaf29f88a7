"""The ccd daemon: one asyncio process serving the API on a Unix socket and on TCP.

    ccd [--socket PATH] [--host 127.0.0.1] [--port 8000] [--no-tcp] [--state-dir DIR]
        [--archive-dir DIR]... [--print-login]

SIGTERM/SIGINT stop it gracefully: the server stops, the runs detach from their jobs
(which keep running in their own sessions), the journal is flushed. Starting it again
resumes every unfinished run. Under systemd (`Type=notify`) it reports READY=1 once both
sockets listen. Logs are JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from ccd.model import NotifySpec

log = logging.getLogger("ccd")
_STOPPED: list[int] = []  # SIGTERM/SIGINT received outside uvicorn's own handlers


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from ccd.settings import default_max_jobs, default_socket, state_dir, version

    p = argparse.ArgumentParser(prog="ccd", description="The ccd workflow daemon.")
    p.add_argument("--version", action="version", version=f"ccd {version()}")
    p.add_argument("--socket", type=Path, default=None,
                   help=f"Unix socket path [default: {default_socket()}]")
    p.add_argument("--host", default="127.0.0.1", help="TCP address [default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=8000,
                   help="TCP port; 0 picks a free one [default: 8000]")
    p.add_argument("--no-tcp", action="store_true", help="serve the Unix socket only")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"state directory [default: {state_dir()}]")
    p.add_argument("--max-jobs", type=int, default=None,
                   help="jobs at once, across all runs [default: CPUs x 4, "
                        f"{default_max_jobs()} here]")
    p.add_argument("--prune-after", type=_duration, default=None, metavar="AGE",
                   help="remove runs that ended longer ago than AGE (30d, 12h), hourly "
                        "[default: keep every run]")
    p.add_argument("--upload", type=Path, action="append", default=[],
                   help="upload this workflow file at start (make run uses it)")
    p.add_argument("--archive-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="a directory whose files `POST /workflow?archive=FILE` may name; "
                        "repeat for several [default: your home directory]")
    p.add_argument("--print-login", action="store_true",
                   help="print a one-time login link even when stdout is not a terminal "
                        "[default: only to a terminal; `ccctl open` gives one]")
    return p.parse_args(argv)


def _duration(text: str) -> float:
    from ccd.settings import duration

    try:
        return duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": round(record.created, 3), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket, mode 0600 in a 0700 directory; refuses to steal a live one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.parent.stat().st_uid != os.getuid():  # e.g. a /tmp/ccd-UID made by someone else
        raise SystemExit(f"ccd: {path.parent} belongs to another user; refusing to serve there")
    os.chmod(path.parent, 0o700)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: left by a daemon that was killed
        else:
            raise SystemExit(f"ccd: another daemon is already serving {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def tcp_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SystemExit(f"ccd: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops for a SIGTERM or SIGINT that came while ccd was
    starting, before uvicorn listened for them (it was lost: the daemon went on serving)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            for sig in _STOPPED:
                self.handle_exit(sig, None)
            yield


def sd_notify(message: str) -> bool:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())
    return True


async def serve(args: argparse.Namespace) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from ccd.auth import load_or_create_token
    from ccd.settings import default_socket, notifiers, state_dir

    state = (args.state_dir.expanduser().absolute() if args.state_dir else state_dir())
    notify, warnings = notifiers()  # a bad settings file stops the start (file:line)
    for w in warnings:
        log.warning("%s", w)
    sock_path = args.socket or default_socket()
    token = load_or_create_token()
    listeners = [unix_listener(sock_path)]
    try:
        if not args.no_tcp:
            listeners.append(tcp_listener(args.host, args.port))
        await _serve(args, state, token, listeners, sock_path, notify)
    finally:
        for sock in listeners:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()


async def _serve(args: argparse.Namespace, state: Path, token: str,
                 listeners: list[socket.socket], sock_path: Path,
                 notify: tuple[NotifySpec, ...]) -> None:
    from ccd import api
    from ccd.service import Service
    from ccd.uploads import pack

    async with Service(state, max_jobs=args.max_jobs, prune_after=args.prune_after,
                       notify=notify) as service:
        for path in args.upload:
            row = await service.add_workflow(*pack(path))
            log.info("uploaded workflow %s from %s", row.name, path)
        url = None
        if not args.no_tcp:
            host, port = listeners[1].getsockname()[:2]
            url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        archive_dirs = [d.expanduser().resolve() for d in args.archive_dir] or \
            [Path.home().resolve()]
        app, sessions = api.build(service, token, url, archive_dirs)
        # log_config=None: uvicorn's loggers go to ours, so even a traceback is one JSON line.
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=3, server_header=False,
                                log_config=None)
        server = _Server(config)
        where = [f"unix:{sock_path}"]
        if url:
            where.append(url)
            print(f"ccd {url}/  (API {url}/api/v1, docs {url}/docs)", flush=True)
            # Not into a journal or a log file: a link there logs in whoever reads it.
            if args.print_login or sys.stdout.isatty():
                print(f"login: {url}/login?code={sessions.new_code()}", flush=True)
            else:
                print("login: `ccctl open` gives a one-time link (printed here only to a "
                      "terminal, or with --print-login)", flush=True)
        else:
            print(f"ccd unix:{sock_path}  (no TCP port: the web page needs one)", flush=True)
        log.info("serving %s with state in %s", " and ".join(where), state)
        sd_notify("READY=1")
        await server.serve(sockets=listeners)
        sd_notify("STOPPING=1")
        log.info("stopping: %d run(s) detach, their jobs keep running", service.active)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("sse_starlette").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # INFO is a line per channel
    # uvicorn re-raises the signal that stopped it once it has shut down; catch it so a
    # graceful stop ends with exit status 0. One that comes before uvicorn listens for them
    # is kept, and ends the start-up (it was lost: the daemon went on serving).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: _STOPPED.append(s))
    t = time.monotonic()
    from ccd.errors import CcdError

    try:
        asyncio.run(serve(args))
    except* (CcdError, OSError) as group:  # the user's to fix: one line each, no traceback
        for e in group.exceptions:
            sys.stderr.write(f"ccd: {e}\n")
        raise SystemExit(2) from None
    log.info("stopped after %.1f s", time.monotonic() - t)
