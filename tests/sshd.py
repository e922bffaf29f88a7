"""Real OpenSSH servers on loopback addresses, and a relay that can cut the network.

For the SSH executor's tests (issue 11). `Sshd` is a real /usr/sbin/sshd on 127.0.0.N with
its own host key, config and log; `SshHosts` starts three (127.0.0.1, .2, .3) and writes
what a client needs: a key, known_hosts, and an OpenSSH ssh_config with an alias per server
plus a ProxyJump alias. `Relay` forwards TCP to one of them and can freeze like a dead link.

Remote commands run as a dedicated user, USER, whose login shell is /bin/sh and whose home
has no start-up files: a heavy `.bashrc` adds ~90 ms to every remote command. Each server
also has its own empty work directory owned by USER, so a workflow spanning three "hosts"
does not find one host's files on another. All of this needs root (sshd's privilege
separation, creating USER), as CI has.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
USER = "ccd-ssh-test"
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def unavailable() -> str | None:
    """Why test servers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "a test sshd needs root (CI runs as root)"
    if not SSHD.exists():
        return f"{SSHD} is missing: apt-get install openssh-server (make test does, as root)"
    return None


def ensure_user() -> None:
    """Create USER when missing: shell /bin/sh, a home without start-up files, and the
    password '*' (with UsePAM no, sshd refuses every key of an account locked with '!',
    which is what useradd leaves by default)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        with tempfile.TemporaryDirectory() as empty_skel:
            subprocess.run(["/usr/sbin/useradd", "--create-home", "--skel", empty_skel,
                            "--shell", "/bin/sh", "--password", "*", USER], check=True)


def keygen(path: Path) -> Path:
    """A new ed25519 key pair without passphrase: `path` and `path.pub`. Returns `path`."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return path


def public_key(private_key: Path) -> str:
    """The 'ssh-ed25519 AAAA...' part of a key's .pub file (no comment)."""
    kind, blob, *_ = Path(f"{private_key}.pub").read_text().split()
    return f"{kind} {blob}"


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


class Sshd:
    """A real sshd on a loopback address and a free port, run in the foreground (-D) as our
    child, logging (VERBOSE) to `log`. Keys of `authorized_keys` log in as USER."""

    def __init__(self, directory: Path, alias: str, address: str, authorized_keys: Path,
                 *, max_sessions: int = 64, tcp_forwarding: bool = False) -> None:
        self.alias = alias
        self.address = address
        self.port = free_port(address)
        directory.mkdir(mode=0o755)
        self.host_key = keygen(directory / "host_key")
        self.public_key = public_key(self.host_key)
        self.log = directory / "log"
        self.workdir = directory / "work"
        self.workdir.mkdir()
        shutil.chown(self.workdir, USER, USER)
        self.config = directory / "sshd_config"
        self.config.write_text(f"""\
ListenAddress {address}:{self.port}
HostKey {self.host_key}
PidFile {directory / "pid"}
AuthorizedKeysFile {authorized_keys}
AllowUsers {USER}
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
MaxSessions {max_sessions}
AllowTcpForwarding {"yes" if tcp_forwarding else "no"}
LogLevel VERBOSE
Subsystem sftp internal-sftp
""")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        """Start and wait until it listens (it says so in its log)."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-f", self.config, "-E", self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while "Server listening on" not in self.log_text():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd on {self.address}:{self.port} did not start:\n"
                                   f"{self.log_text()}")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop the server and the connections it serves (sshd alone would leave them up)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        connections: list[int] = []
        with contextlib.suppress(OSError):
            connections = [int(pid) for pid in children.read_text().split()]
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in connections:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def accepted(self) -> int:
        """How many connections have logged in so far. sshd writes the line just after it
        lets the client in, so right after a connect poll for it, do not read it once."""
        return self.log_text().count("Accepted publickey for ")


class SshHosts:
    """Three sshd on 127.0.0.1-3 (aliases ccd-a, ccd-b, ccd-c; ccd-a allows TCP forwarding,
    for the ProxyJump alias ccd-c-via-a) and a client's key, known_hosts and ssh_config."""

    user = USER
    jump_alias = "ccd-c-via-a"

    def __init__(self, directory: Path, max_sessions: int = 64) -> None:
        self.directory = directory
        self.key = keygen(directory / "client_key")
        self.untrusted_key = keygen(directory / "untrusted_key")  # authorized nowhere
        authorized_keys = directory / "authorized_keys"
        authorized_keys.write_text(public_key(self.key) + "\n")
        authorized_keys.chmod(0o644)  # sshd reads it as USER
        self.known_hosts = directory / "known_hosts"
        self.ssh_config = directory / "ssh_config"
        self.servers = [Sshd(directory / name, f"ccd-{name}", address, authorized_keys,
                             max_sessions=max_sessions, tcp_forwarding=name == "a")
                        for name, address in zip("abc", ADDRESSES, strict=True)]
        self.relays: list[Relay] = []

    def start(self) -> SshHosts:
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.stop()
            raise
        self._write()
        return self

    def stop(self) -> None:
        for relay in self.relays:
            relay.close()
        for server in self.servers:
            server.stop()
        self.kill_jobs()

    def kill_jobs(self) -> None:
        """End every job ccd left running on the servers (detached, they outlive sshd): the
        process group of each wrapper that a status file below `directory` names (the group
        sshd made for the session that started it)."""
        uid = pwd.getpwnam(USER).pw_uid
        for status in self.directory.rglob("status"):
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    pid = int(line[4:]) if line.startswith("pid=") else 0
                    if pid and Path(f"/proc/{pid}").stat().st_uid == uid:  # not reused
                        os.killpg(os.getpgid(pid), signal.SIGKILL)

    def relay(self, server: Sshd) -> Relay:
        """A relay in front of `server`, in known_hosts and ssh_config as `relay.alias`;
        closed by stop()."""
        relay = Relay(server)
        self.relays.append(relay)
        self._write()
        return relay

    def known_hosts_without(self, server: Sshd) -> Path:
        """A known_hosts file where `server`'s key is missing (an unknown host)."""
        return self._write_known_hosts(f"known_hosts-without-{server.alias}",
                                       {server.public_key: None})

    def known_hosts_changed(self, server: Sshd) -> Path:
        """A known_hosts file with another key for `server` (a changed host key)."""
        return self._write_known_hosts(f"known_hosts-changed-{server.alias}",
                                       {server.public_key: public_key(self.untrusted_key)})

    def _endpoints(self) -> list[tuple[str, str, int, str]]:
        """(alias, address, port, host key) of every server and relay."""
        return ([(s.alias, s.address, s.port, s.public_key) for s in self.servers]
                + [(r.alias, r.address, r.port, r.server.public_key) for r in self.relays])

    def _write_known_hosts(self, name: str, replace: dict[str, str | None]) -> Path:
        """Every endpoint's host key, a key in `replace` replaced (or left out: None)."""
        path = self.directory / name
        path.write_text("".join(f"[{address}]:{port} {listed}\n"
                                for _, address, port, key in self._endpoints()
                                if (listed := replace.get(key, key))))
        return path

    def _write(self) -> None:
        self._write_known_hosts("known_hosts", {})
        a, _, c = self.servers
        hosts: list[tuple[str, str, int, list[str]]] = [
            (alias, address, port, []) for alias, address, port, _ in self._endpoints()]
        hosts.append((self.jump_alias, c.address, c.port, [f"ProxyJump {a.alias}"]))
        lines = []
        for alias, address, port, extra in hosts:
            lines += [f"Host {alias}", f"HostName {address}", f"Port {port}", *extra,
                      f"User {USER}", f"IdentityFile {self.key}", "IdentitiesOnly yes",
                      f"UserKnownHostsFile {self.known_hosts}",
                      "GlobalKnownHostsFile /dev/null", "StrictHostKeyChecking yes",
                      "BatchMode yes", ""]
        self.ssh_config.write_text("\n".join(lines))


@contextlib.contextmanager
def ssh_hosts(max_sessions: int = 64) -> Iterator[SshHosts]:
    """Three running servers in a fresh directory; everything stopped and removed after."""
    ensure_user()
    # Not pytest's tmp_path: sshd reads the authorized keys as USER, who cannot enter
    # /tmp/pytest-of-root (0700).
    directory = Path(tempfile.mkdtemp(prefix="ccd-sshd-"))
    directory.chmod(0o755)
    try:
        hosts = SshHosts(directory, max_sessions).start()
        try:
            yield hosts
        finally:
            hosts.stop()
    finally:
        shutil.rmtree(directory)


class Relay:
    """A TCP relay on a free port of `server`'s address, forwarding to `server`, run by an
    event loop in its own thread. `freeze()` makes it a dead link: nothing is delivered in
    either direction and nothing is closed; `thaw()` delivers what was held back, as TCP
    does when a link comes back (it retransmits what was lost), so a frozen connection
    resumes where it stopped. A connection opened while frozen is accepted (the kernel
    completes the handshake anyway) but sees no byte until thaw. Thread-safe: only the
    loop's thread touches sockets; the methods return once it has done what they ask."""

    _loop: asyncio.AbstractEventLoop
    _serving: asyncio.Task[object] | None  # set by the loop's thread before __init__ returns

    def __init__(self, server: Sshd) -> None:
        self.server = server
        self.alias = f"{server.alias}-relay"
        self.address = server.address
        self.connections = 0  # accepted so far
        self._listener = socket.create_server((self.address, 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = asyncio.Event()
        self._flowing.set()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name=self.alias,
                                        daemon=True)
        self._thread.start()
        started.wait()

    def freeze(self) -> None:
        """Deliver no more bytes, either way, until thaw(); close nothing."""
        self._call(self._set_flowing(False))

    def thaw(self) -> None:
        """Deliver what was held back, then forward again."""
        self._call(self._set_flowing(True))

    def close(self) -> None:
        """Close every connection and the listening socket; end the thread. Idempotent."""
        if self._thread.is_alive():
            assert self._serving is not None
            self._loop.call_soon_threadsafe(self._serving.cancel)
            self._thread.join()

    def _call(self, coroutine: Coroutine[None, None, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    def _run(self, started: threading.Event) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._serving = asyncio.current_task()
            assert self._serving is not None
            started.set()
            with self._listener:
                async with asyncio.TaskGroup() as connections:
                    while True:
                        conn, _ = await self._loop.sock_accept(self._listener)
                        self.connections += 1
                        connections.create_task(self._relay(conn))

        with contextlib.suppress(asyncio.CancelledError):  # close() ends it so
            asyncio.run(serve())

    async def _relay(self, conn: socket.socket) -> None:
        writers: list[asyncio.StreamWriter] = []
        try:
            client_in, client_out = await asyncio.open_connection(sock=conn)
            writers.append(client_out)
            server_in, server_out = await asyncio.open_connection(self.server.address,
                                                                  self.server.port)
            writers.append(server_out)
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(client_in, server_out))
                pumps.create_task(self._pump(server_in, client_out))
        except* OSError:
            pass  # a side reset or the server is down: close both ends
        finally:
            # Every end closed before waiting on any: a close() of the relay that cancels
            # this task during a wait must not leave the other end open, to be collected
            # after its loop has gone ("loop is closed").
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            conn.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        # The gate is checked after each read, so a chunk read just before a freeze waits
        # with the rest, which stays in the kernel's socket buffers (reading stops too).
        while data := await source.read(65536):
            await self._flowing.wait()
            sink.write(data)
            await sink.drain()
        await self._flowing.wait()
        if sink.can_write_eof():
            sink.write_eof()
