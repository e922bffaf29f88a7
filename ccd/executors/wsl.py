"""Run jobs in Windows Subsystem for Linux from a Windows host, by the job protocol, on the
files ccd already has.

ccd runs on Windows (Python for Windows); a job of `kind: wsl` runs in a WSL distribution:
`host:` names it (`localhost`, the default, is the default distribution), `user:` the user
there (default: the distribution's). Every command is `wsl.exe [--distribution D] [--user
U] --exec sh -s` with the script on standard input, so neither a Windows shell nor the
user's login shell parses anything a workflow says; `wsl.exe` is found on PATH (on Windows,
in System32).

No file is copied. WSL sees drive C: at /mnt/c, so the jobs' directories and the run's
working copy stay in ccd's state directory, as for local jobs, and the executor is
`SshExecutor` with a `WslLink`, a link that is `here`. Only the spelling differs: the link's
`there()` writes a path of this machine as WSL writes it (`C:\\Users\\me\\ccd` is
`/mnt/c/Users/me/ccd`), that is the one place a Windows path enters a script (the state
directory; every other path there is built from what `pwd` printed in it); the link's file
operations take paths as WSL writes them and go back (`windows_path`). A state directory
inside a distribution (`\\\\wsl.localhost\\Ubuntu\\home\\me\\ccd`) is `/home/me/ccd` there.

The wrapper starts under `setsid`: in its own session it is not hung up when `wsl.exe`
returns (WSL issues 3670 and 5143: a plain `cmd &` may die with the command that started
it), and a cancel signals its process group only. The distribution needs `sh`, `setsid`
(util-linux or busybox) and `ps`.

What this costs, not measured (there is no Windows host in CI): a command is a `wsl.exe`
process, one per poll tick for all the jobs of a distribution; files under /mnt cross
WSL 2's 9P file server, slow for much I/O, so a job that writes a lot should write in the
distribution's own file system. Assumed, not asked: the automount root is /mnt (wsl.conf's
`[automount] root` unchanged). Tested: the command lines and the path translation, and the
whole protocol through a stand-in `wsl.exe` on Linux; not tested: a real Windows and WSL.
"""

from __future__ import annotations

import asyncio
import os
import re
import string
from collections.abc import Callable
from pathlib import Path, PureWindowsPath

from ccd.errors import ExecutorError
from ccd.executors import Deliver
from ccd.executors.links import HereLink, Link
from ccd.executors.protocol import Launch
from ccd.executors.ssh import SshExecutor, _Job

MOUNT = "/mnt"  # where WSL mounts the Windows drives (wsl.conf's default)
_WSL_SHARES = ("wsl$", "wsl.localhost")  # \\wsl$\<distro>\... is that distribution's /
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")  # a distribution's or a user's


def wsl_path(path: str, distro: str = "") -> str:
    """A Windows path as WSL writes it: `C:\\x` is `/mnt/c/x`; `\\\\wsl$\\D\\x` is `/x` in
    distribution D (`distro`, if known, must be D). ValueError if WSL cannot see it."""
    p = PureWindowsPath(path.removeprefix("\\\\?\\"))
    if not p.is_absolute():
        raise ValueError(f"{path!r} is not an absolute Windows path")
    rest = "/".join(p.parts[1:])
    drive = p.drive
    if len(drive) == 2 and drive[1] == ":" and drive[0] in string.ascii_letters:
        return f"{MOUNT}/{drive[0].lower()}" + (f"/{rest}" if rest else "")
    server, _, share = drive.lstrip("\\").partition("\\")
    if server.lower() not in _WSL_SHARES:
        raise ValueError(f"{path!r} is not on a drive: WSL does not see it")
    if distro and share.lower() != distro.lower():
        raise ValueError(f"{path!r} is in distribution {share!r}, not {distro!r}")
    return f"/{rest}"


def windows_path(path: str, distro: str) -> str:
    """A path as WSL writes it, as Windows does: `/mnt/c/x` is `C:\\x`; any other absolute
    path is in `distro`, `\\\\wsl.localhost\\<distro>\\x`. ValueError if it has no such
    spelling."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    if "\\" in path:
        raise ValueError(f"{path!r} has a backslash: Windows would read it as a separator")
    parts = [part for part in path.split("/") if part]
    if parts[:1] == [MOUNT[1:]] and len(parts) > 1 and len(parts[1]) == 1 \
            and parts[1] in string.ascii_letters:
        return f"{parts[1].upper()}:\\" + "\\".join(parts[2:])
    if not distro:
        raise ValueError(f"{path!r} is inside a distribution whose name is not known")
    return f"\\\\wsl.localhost\\{distro}\\" + "\\".join(parts)


def wsl_argv(distro: str, user: str | None, program: str = "wsl.exe") -> list[str]:
    """The command that runs `sh -s` in `distro` ("" the default one) as `user`."""
    argv = [program]
    if distro:
        argv += ["--distribution", distro]
    if user:
        argv += ["--user", user]
    return [*argv, "--exec", "sh", "-s"]


def distribution_of(host: str) -> str:
    """The distribution a job's `host:` names: "" (the default one) for localhost."""
    return "" if host in ("", "localhost") else host


class WslLink(HereLink):
    """A WSL distribution as a link: scripts run by `sh -s` through wsl.exe, files are this
    machine's, their paths written as WSL writes them in scripts and in file operations."""

    def __init__(self, distro: str, user: str | None, limit: int = 8,
                 windows: bool = os.name == "nt") -> None:
        for name in (distro, user):
            if name and not _NAME.fullmatch(name):
                raise ExecutorError(f"{name!r} cannot name a WSL distribution or user")
        super().__init__(f"{user + '@' if user else ''}{distro or 'default distribution'}",
                         limit)
        self.distro = distro  # as the workflow names it; once connected, as WSL does
        self.user = user
        self.windows = windows  # this machine's paths are Windows paths (else as they are)
        self.connected = self.reached = False
        self.home = ""
        self._connecting = asyncio.Lock()

    def argv(self) -> list[str]:
        return wsl_argv(self.distro, self.user)

    def there(self, path: str) -> str:
        try:
            return wsl_path(path, self.distro) if self.windows else path
        except ValueError as e:
            raise ExecutorError(f"WSL ({self.target}): {e}") from None

    def here_of(self, path: str) -> str:
        """A path as WSL writes it, as this machine does (for its file operations)."""
        if not self.windows:
            return path
        try:
            return windows_path(path, self.distro)
        except ValueError as e:
            raise OSError(f"WSL ({self.target}): {e}") from None

    async def run(self, script: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """`sh -s` in the distribution; the first one learns its home and its name."""
        if not self.connected:
            await self._connect(timeout)
        return await super().run(script, timeout)

    async def _connect(self, timeout: float) -> None:
        async with self._connecting:
            if self.connected:
                return
            try:
                status, out, err = await super().run(
                    'printf "ccd-ok %s\\n%s\\n" "$HOME" "$WSL_DISTRO_NAME"\n', timeout)
            except ExecutorError as e:
                self.error = str(e)
                raise
            lines = out.split("\n")
            if status != 0 or not lines[0].startswith("ccd-ok "):
                said = err.replace("\0", "").strip()[:300] or f"exit status {status}"
                self.error = f"cannot run sh in WSL ({self.target}): {said}"
                raise ExecutorError(self.error)
            self.home = lines[0][len("ccd-ok "):]
            self.distro = self.distro or (lines[1] if len(lines) > 1 else "")
            self.connected = self.reached = True
            self.error = ""

    def failure(self) -> ExecutorError:
        return ExecutorError(self.error or f"WSL ({self.target}) cannot run the command")

    async def listdir(self, path: str) -> list[str]:
        return await super().listdir(self.here_of(path))

    async def rename(self, old: str, new: str) -> None:
        await super().rename(self.here_of(old), self.here_of(new))

    async def write(self, path: str, data: bytes) -> None:
        await super().write(self.here_of(path), data)

    async def put(self, files: dict[str, Path]) -> None:
        await super().put({self.here_of(there): here for there, here in files.items()})

    async def read(self, path: str, offset: int, size: int) -> bytes:
        return await super().read(self.here_of(path), offset, size)

    async def glob(self, patterns: list[str]) -> list[str]:
        found = await super().glob([self.here_of(p) for p in patterns])
        return [self.there(p) for p in found]

    async def get(self, remote: str, local: Path) -> None:
        await super().get(self.here_of(remote), local)

    async def mtime(self, path: str) -> float | None:
        return await super().mtime(self.here_of(path))


class WslExecutor(SshExecutor):
    """Executor for `kind: wsl` in one distribution (`host`), per user."""

    kind = "wsl"
    detach = "setsid "

    def __init__(self, host: str, deliver: Deliver, changed: Callable[[], None] = lambda: None,
                 tick: float = 0.1) -> None:
        super().__init__(host, deliver, changed, tick)
        self.distro = distribution_of(host)

    def _link(self, launch: Launch) -> Link:
        user = launch.job.user
        link = self._links.get(user)
        if link is None:
            link = self._links[user] = WslLink(self.distro, user)
        return link

    def _start_script(self, job: _Job) -> str:
        return ("command -v setsid >/dev/null || "
                "{ echo 'setsid not found (util-linux)' >&2; exit 1; }\n"
                + super()._start_script(job))
