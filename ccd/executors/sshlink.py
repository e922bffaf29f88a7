"""One SSH connection to one host, shared by every job of every run there (asyncssh).

A `Link` connects when first needed and keeps the connection: channels are multiplexed on
it up to one below the server's MaxSessions (the SFTP session counts as one; a refused
channel is waited for and tried again, and the limit learned), keepalive notices a dead
link, and whoever needs the link next reconnects it, no sooner than a backoff that doubles
after each failure (0.5 s to 30 s). Every command runs as `sh -s` with its script on
standard input, so the user's login shell (bash, csh, fish) only ever parses `sh -s`:
nothing a workflow says is quoted for a shell we do not know.

What OpenSSH would read applies: `~/.ssh/config` (aliases, ports, users, keys, ProxyJump,
ServerAliveInterval, ConnectTimeout) and known_hosts; the workflow's `hosts:` entry
overrides it. A host key is always checked: an unknown or changed key is an error that
says how to accept it, never accepted silently (not even with `UserKnownHostsFile none`).

Errors: `ExecutorError` when retrying cannot help (authentication, the host key, no shell
or no SFTP there), or when the host was never reached in this process (an unreachable
host fails a job's start at once); `LinkDown` (a `HostBusy`) when a link that worked is
down: whoever asked waits and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import posixpath
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import asyncssh

from ccd.errors import ExecutorError, HostBusy
from ccd.executors.protocol import Launch

log = logging.getLogger("ccd.ssh")

DEFAULT_SESSIONS = 10  # OpenSSH's MaxSessions
KEEPALIVE = (3.0, 3)  # seconds, count: a dead link is noticed in ~12 s (unless ssh config says)
CONNECT_TIMEOUT = 10.0  # unless ssh config says (ConnectTimeout)
COMMAND_TIMEOUT = 30.0  # a command with no answer for this long: the link is dead
BACKOFF = (0.5, 30.0)  # seconds between connection attempts: first, most


class LinkDown(HostBusy):
    """A host that was reached before cannot be reached now; ask again later."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a link goes: the host as the workflow names it, and what its `hosts:` entry and
    the job say about reaching it (None: as `~/.ssh/config` says)."""

    name: str  # the job's `host`
    address: str  # what to connect to: the entry's hostname, else the name (an ssh alias)
    port: int | None = None
    user: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    sessions: int = DEFAULT_SESSIONS

    @classmethod
    def of(cls, launch: Launch) -> Target:
        h, job = launch.host, launch.job
        if h is None:
            return cls(job.host, job.host, user=job.user)
        return cls(job.host, h.hostname or job.host, h.port, job.user or h.user, h.identity,
                   h.known_hosts, h.max_sessions or DEFAULT_SESSIONS)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.address}{port}"


class _Client(asyncssh.SSHClient):
    def __init__(self, link: SshLink) -> None:
        self._link = link

    def connection_lost(self, exc: Exception | None) -> None:
        self._link._lost(self, exc)


class SshLink:
    """The connection to one target, its channels and its health."""

    here = False  # its paths are on another machine

    def __init__(self, target: Target, changed: Callable[[], None] = lambda: None) -> None:
        self.target = target
        self._changed = changed
        self._conn: asyncssh.SSHClientConnection | None = None
        self._client: asyncssh.SSHClient | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._opening: asyncio.Future[asyncssh.SSHClientConnection] | None = None
        self.connected = False
        self.reached = False  # connected once (or a previous ccd left jobs there)
        self.since = time.time()  # of the current state
        self.error = ""  # why it is not connected
        self._permanent = False  # retrying cannot help (authentication, host key)
        self._retry_at = 0.0  # monotonic: no new attempt before
        self._backoff = BACKOFF[0]
        self.home = ""  # the remote home directory
        self.rtt: float | None = None  # seconds, smoothed, of commands that answered
        self.connections = 0  # opened in this process
        self.commands = 0
        self.in_use = 0  # channels open now
        self.limit = max(1, target.sessions - 2)  # one below MaxSessions, SFTP included
        self._slots = asyncio.Condition()

    # -- connecting -----------------------------------------------------------------------

    async def connect(self) -> asyncssh.SSHClientConnection:
        """The open connection; one attempt at a time, not before the backoff has passed."""
        if self._conn is not None:
            return self._conn
        if time.monotonic() < self._retry_at:
            raise self.failure()
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> asyncssh.SSHClientConnection:
        t = self.target
        conn = None
        try:
            options = await self._options()
            # connect() builds its options again from these and its own arguments, so the
            # port goes there too (its default would replace ours).
            conn = await asyncssh.connect(t.address, t.port or (), options=options,
                                          client_factory=lambda: _Client(self))
            self._client = cast(asyncssh.SSHClient, conn.get_owner())
            probe = await conn.run("sh -s", input='printf "ccd-ok %s\\n" "$HOME"\n',
                                   check=False, timeout=COMMAND_TIMEOUT)
            out = str(probe.stdout or "")
            if not out.startswith("ccd-ok "):
                said = (str(probe.stderr or "").strip() or out.strip())[:300] \
                    or f"exit status {probe.exit_status}"
                self._permanent = True
                raise ExecutorError(f"{self._named()}: cannot run a POSIX shell there "
                                    f"(`sh -s`): {said}")
            self.home = out[len("ccd-ok "):].strip()
            try:
                self._sftp = await conn.start_sftp_client()
            except (asyncssh.Error, OSError) as e:
                self._permanent = True
                raise ExecutorError(f"{self._named()}: no SFTP subsystem there: {e}") from e
        except BaseException as e:
            if conn is not None:
                conn.abort()
            self._conn = self._client = self._sftp = None
            self._opening = None
            if isinstance(e, asyncio.CancelledError):
                raise
            message = e.args[0] if isinstance(e, ExecutorError) else self._explain(e)
            self._failed(message)
            raise self.failure() from None
        self._conn, self._opening = conn, None
        self.connected = self.reached = True
        self.since, self.error, self._permanent = time.time(), "", False
        self._backoff = BACKOFF[0]
        self.connections += 1
        log.info("connected to %s", self._named())
        self._changed()
        return conn

    async def _options(self) -> asyncssh.SSHClientConnectionOptions:
        """Options as `~/.ssh/config` gives them, the inventory's on top, and ccd's
        defaults where neither says (keepalive, connect timeout, a known_hosts file)."""
        t = self.target
        given: dict[str, object] = {}
        if t.port:
            given["port"] = t.port
        if t.user:
            given["username"] = t.user
        if t.identity:
            given["client_keys"] = [os.path.expanduser(t.identity)]
        if t.known_hosts:
            given["known_hosts"] = os.path.expanduser(t.known_hosts)
        options = await asyncssh.SSHClientConnectionOptions.construct(host=t.address, **given)
        more: dict[str, object] = {}
        if not options.keepalive_interval:
            more.update(keepalive_interval=KEEPALIVE[0], keepalive_count_max=KEEPALIVE[1])
        if options.connect_timeout is None:
            more["connect_timeout"] = CONNECT_TIMEOUT
        if options.known_hosts is None:  # `UserKnownHostsFile none` would turn checking off
            more["known_hosts"] = os.path.expanduser("~/.ssh/known_hosts")
        if more:
            options = await asyncssh.SSHClientConnectionOptions.construct(options, **more)
        return cast(asyncssh.SSHClientConnectionOptions, options)

    def _explain(self, e: BaseException) -> str:
        """A connection failure in words a user can act on."""
        where = self._named()
        if isinstance(e, asyncssh.HostKeyNotVerifiable):
            self._permanent = True
            return (f"{where}: host key not verifiable ({e.reason}): it is not in known_hosts "
                    "or it changed; check it and add it (ssh-keyscan, or `ssh` there once)")
        if isinstance(e, asyncssh.PermissionDenied):
            self._permanent = True
            return f"{where}: authentication failed ({e.reason})"
        if isinstance(e, asyncssh.ChannelOpenError):  # it let us in, then no session
            return f"{where}: the server refused a session right after login: {e.reason}"
        if isinstance(e, asyncssh.DisconnectError):
            return f"{where}: {e.reason}"
        if isinstance(e, TimeoutError):
            return f"{where}: no answer within the connect timeout"
        if isinstance(e, OSError):  # refused, unreachable, no such name
            why = os.strerror(e.errno) if e.errno and e.errno > 0 else e.strerror or str(e)
            return f"{where}: cannot connect: {why}"
        if isinstance(e, ValueError):  # a bad ssh config or key file
            self._permanent = True
            return f"{where}: {e}"
        return f"{where}: {type(e).__name__}: {e}"

    def _named(self) -> str:
        t = self.target
        return f"host {t.name!r} ({t})" if str(t) != t.name else f"host {t.name!r}"

    def _failed(self, message: str) -> None:
        was = self.connected
        self.connected = False
        if was or message != self.error:
            self.since = time.time()
        self.error = message
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF[1])
        log.warning("%s", message)
        self._changed()

    def failure(self) -> ExecutorError:
        """What to raise while the link is down: retrying helps only if it worked before
        and the failure is not one that retrying cannot fix."""
        if self._permanent or not self.reached:
            return ExecutorError(self.error)
        retry = max(0.5, self._retry_at - time.monotonic())
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        return LinkDown(f"{self.error} (since {since})", retry)

    def _lost(self, client: asyncssh.SSHClient, exc: Exception | None) -> None:
        if client is not self._client:
            return  # an older connection
        self._conn = self._client = self._sftp = None
        self._retry_at = 0.0  # the first reconnect at once; then the backoff
        why = f"connection lost: {exc}" if exc else "connection closed"
        self._failed(f"{self._named()}: {why}")

    # -- using ----------------------------------------------------------------------------

    async def run(self, script: str, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str, str]:
        """Run `script` with `sh -s` there: (exit status, stdout, stderr). Raises LinkDown
        (or ExecutorError, see `connect`) when the connection fails, before or during."""
        conn = await self.connect()
        async with self._channel():
            for _ in range(100):
                started = time.monotonic()
                try:
                    async with asyncio.timeout(timeout):
                        done = await conn.run("sh -s", input=script, check=False)
                except asyncssh.ChannelOpenError:
                    # The server refused a session: MaxSessions is lower than we thought.
                    self.limit = max(1, min(self.limit, self.in_use - 1))
                    await asyncio.sleep(0.05)
                    continue
                except TimeoutError:
                    self.abort(f"a command got no answer in {timeout:g} s")
                    raise self.failure() from None
                except (asyncssh.Error, OSError) as e:
                    self._drop(conn, e)
                    raise self.failure() from None
                break
            else:
                raise LinkDown(f"{self._named()}: the server refuses every new session")
        if done.exit_status is None and done.exit_signal is None:
            self._drop(conn, None)  # no exit status: the connection went while it ran
            raise self.failure()
        elapsed = time.monotonic() - started
        self.rtt = elapsed if self.rtt is None else 0.8 * self.rtt + 0.2 * elapsed
        self.commands += 1
        return done.exit_status or 0, str(done.stdout or ""), str(done.stderr or "")

    # -- files, by SFTP (one session, requests pipelined on it) ----------------------------

    async def listdir(self, path: str) -> list[str]:
        async with self._files() as sftp:
            return [str(name) for name in await sftp.listdir(path)]

    async def rename(self, old: str, new: str) -> None:
        async with self._files() as sftp:
            await sftp.rename(old, new)

    async def write(self, path: str, data: bytes) -> None:
        """Write a whole file atomically (a reader sees all of it or none)."""
        # Unique per write: two links (aliases of one host) may write the same file.
        part = f"{posixpath.dirname(path)}/.{posixpath.basename(path)}.{secrets.token_hex(8)}"
        async with self._files() as sftp:
            async with sftp.open(part, "wb") as f:
                await f.write(data)
            try:
                await sftp.posix_rename(part, path)
            except asyncssh.SFTPOpUnsupported:  # not OpenSSH's server: plain rename
                await sftp.rename(part, path)

    async def put(self, files: dict[str, Path]) -> None:
        """Copy local files there (remote path: local path), times kept, 16 at a time."""
        async with self._files(timeout=None) as sftp:
            for parent in sorted({posixpath.dirname(remote) for remote in files}):
                await sftp.makedirs(parent, exist_ok=True)
            at_once = asyncio.Semaphore(16)  # each holds a file open there

            async def put(remote: str, path: Path) -> None:
                async with at_once:
                    await sftp.put(str(path), remote, preserve=True)

            await asyncio.gather(*(put(remote, path) for remote, path in files.items()))

    async def read(self, path: str, offset: int, size: int) -> bytes:
        async with self._files() as sftp, sftp.open(path, "rb") as f:
            return cast(bytes, await f.read(size, offset))

    async def glob(self, patterns: list[str]) -> list[str]:
        async with self._files() as sftp:
            found = await sftp.glob(patterns, error_handler=lambda e: None)
            return [str(p) for p in found]

    async def get(self, remote: str, local: Path) -> None:
        """Copy a file or directory from there, times kept."""
        async with self._files(timeout=None) as sftp:
            await sftp.get(remote, str(local), preserve=True, recurse=True)

    async def mtime(self, path: str) -> float | None:
        """When a file there last changed (whole seconds), or None."""
        async with self._files() as sftp:
            attrs = await sftp.stat(path)
        return float(attrs.mtime) if attrs.mtime is not None else None

    @contextlib.asynccontextmanager
    async def _files(self, timeout: float | None = COMMAND_TIMEOUT
                     ) -> AsyncIterator[asyncssh.SFTPClient]:
        """The SFTP client, its errors as OSError (FileNotFoundError when missing), and the
        link's failure (see `connect`) when the connection goes meanwhile."""
        await self.connect()
        conn, sftp = self._conn, self._sftp
        if conn is None or sftp is None:
            raise self.failure()
        try:
            async with asyncio.timeout(timeout):
                yield sftp
        except TimeoutError:
            self.abort(f"a file operation got no answer in {timeout:g} s")
            raise self.failure() from None
        except (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection,
                asyncssh.DisconnectError, asyncssh.ChannelOpenError) as e:
            self._drop(conn, e)
            raise self.failure() from None
        except asyncssh.SFTPNoSuchFile as e:
            raise FileNotFoundError(errno.ENOENT, e.reason) from None
        except asyncssh.SFTPError as e:
            raise OSError(e.reason) from None

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[None]:
        async with self._slots:
            await self._slots.wait_for(lambda: self.in_use < self.limit)
            self.in_use += 1
        try:
            yield
        finally:
            async with self._slots:
                self.in_use -= 1
                self._slots.notify()

    def _drop(self, conn: asyncssh.SSHClientConnection, e: BaseException | None) -> None:
        """A command failed on `conn` as a dead connection does: close it, mark the link down."""
        if conn is self._conn:
            self.abort(f"connection lost: {e}" if e else "connection lost")

    def abort(self, why: str) -> None:
        """Drop the connection now (a frozen link): the next use reconnects."""
        conn, client = self._conn, self._client
        if conn is None:
            return
        self._conn = self._client = self._sftp = None
        self._retry_at = 0.0
        conn.abort()
        if client is not None:
            self._failed(f"{self._named()}: {why}")

    async def aclose(self) -> None:
        conn = self._conn
        self._conn = self._client = self._sftp = None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.wait_closed()
