"""How an executor reaches the machine where its jobs' files live: a `Link`.

A link runs POSIX `sh` scripts there and reads and writes files there. `SshLink`
(`sshlink.py`) does it over one SSH connection; `HereLink` does it on this machine, for a
batch system whose login node is this machine; `WslLink` (`wsl.py`) does it in Windows
Subsystem for Linux, on this machine's files written as WSL writes them. The executor that
follows jobs by the job protocol on another machine (`ssh.py`) is written against this
interface only.

File operations raise OSError (FileNotFoundError when missing) for what the file system
says, and the link's `failure()` (an ExecutorError; a `HostBusy` when waiting may help)
when the machine cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import Protocol

from ccd.errors import ExecutorError


class Link(Protocol):
    """A way to run scripts and reach files on one machine."""

    @property
    def target(self) -> object:
        """What it connects to: hashable, printable."""
    here: bool  # this machine: paths there are paths here
    connected: bool
    reached: bool  # reached once in this process (or a previous ccd left jobs there)
    since: float
    error: str
    home: str  # the home directory there, once connected
    rtt: float | None
    in_use: int  # commands running now
    limit: int  # commands at once
    connections: int
    commands: int

    async def run(self, script: str, timeout: float = ...) -> tuple[int, str, str]:
        """`sh -s` with `script` on its standard input: (exit status, stdout, stderr)."""

    def failure(self) -> ExecutorError: ...
    async def listdir(self, path: str) -> list[str]: ...
    async def rename(self, old: str, new: str) -> None: ...
    async def write(self, path: str, data: bytes) -> None: ...
    async def put(self, files: dict[str, Path]) -> None: ...
    async def read(self, path: str, offset: int, size: int) -> bytes: ...
    async def glob(self, patterns: list[str]) -> list[str]: ...
    async def get(self, remote: str, local: Path) -> None: ...
    async def mtime(self, path: str) -> float | None: ...
    async def aclose(self) -> None: ...


class HereLink:
    """This machine as a link: scripts run by a local `sh -s`, files are local files. Paths
    there are paths here, so copying a file onto itself is skipped."""

    here = True

    def __init__(self, name: str = "localhost", limit: int = 8) -> None:
        self.target = name
        self.connected = self.reached = True
        self.since = time.time()
        self.error = ""
        self.home = os.path.expanduser("~")
        self.rtt: float | None = None
        self.in_use = 0
        self.limit = limit
        self.connections = 0
        self.commands = 0
        self._slots = asyncio.Semaphore(limit)

    def there(self, path: str) -> str:
        """How a path of this machine is written in the scripts this link runs."""
        return path

    def argv(self) -> list[str]:
        """The program that reads a script on its standard input and runs it."""
        return ["sh", "-s"]

    async def run(self, script: str, timeout: float = 60.0) -> tuple[int, str, str]:
        async with self._slots:
            self.in_use += 1
            started = time.monotonic()
            try:
                argv = self.argv()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE, start_new_session=True)
                except OSError as e:
                    raise ExecutorError(f"cannot run {argv[0]}: {e}") from e
                try:
                    async with asyncio.timeout(timeout):
                        out, err = await proc.communicate(script.encode())
                except BaseException as e:
                    # No answer in time, or cancelled (ccd stopping): end the command and
                    # close its pipes now, so no process and no pipe outlives the loop.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    if proc.stdin is not None:
                        proc.stdin.close()
                    await proc.wait()
                    if isinstance(e, TimeoutError):
                        raise ExecutorError(f"a command on {self.target} got no answer in "
                                            f"{timeout:g} s") from None
                    raise
            finally:
                self.in_use -= 1
        elapsed = time.monotonic() - started
        self.rtt = elapsed if self.rtt is None else 0.8 * self.rtt + 0.2 * elapsed
        self.commands += 1
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    def failure(self) -> ExecutorError:
        return ExecutorError(self.error or "this machine cannot run the command")

    async def listdir(self, path: str) -> list[str]:
        return await asyncio.to_thread(os.listdir, path)

    async def rename(self, old: str, new: str) -> None:
        await asyncio.to_thread(os.rename, old, new)

    async def write(self, path: str, data: bytes) -> None:
        def write() -> None:
            # Unique per write: two executors of one process may write the same file.
            part = Path(path).with_name(f".{Path(path).name}.{secrets.token_hex(8)}")
            part.write_bytes(data)
            os.replace(part, path)
        await asyncio.to_thread(write)

    async def put(self, files: dict[str, Path]) -> None:
        def put() -> None:
            for there, here in files.items():
                if Path(there) != here:
                    Path(there).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(here, there)
        await asyncio.to_thread(put)

    async def read(self, path: str, offset: int, size: int) -> bytes:
        with open(path, "rb") as f:  # a local read of at most `size`: no thread hop
            f.seek(offset)
            return f.read(size)

    async def glob(self, patterns: list[str]) -> list[str]:
        return await asyncio.to_thread(
            lambda: sorted({p for pattern in patterns for p in glob.glob(pattern)}))

    async def get(self, remote: str, local: Path) -> None:
        def get() -> None:
            if Path(remote) == local:
                return
            if os.path.isdir(remote):
                shutil.copytree(remote, local, dirs_exist_ok=True)
            else:
                shutil.copy2(remote, local)
        await asyncio.to_thread(get)

    async def mtime(self, path: str) -> float | None:
        return os.stat(path).st_mtime

    async def aclose(self) -> None:
        pass
