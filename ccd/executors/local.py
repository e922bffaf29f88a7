"""Run jobs on this machine: the wrapper as a detached child, watched through a pidfd.

posix_spawn + pidfd instead of asyncio's subprocess machinery: no transport, no pipes, no
watcher thread per child, and the same pidfd also watches a job that a previous ccd
started (not our child) after a restart. File reads here are synchronous on purpose: the
status file and the new bytes of a local log are read in microseconds, far less than a
hop to a thread would cost. Linux only (pidfd_open, /proc).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ccd.errors import ExecutorError
from ccd.executors.protocol import (
    CLAIMED_ELSEWHERE,
    WRAPPER,
    Launch,
    Observation,
    parse_status,
)
from ccd.progress import LogFollower

_SH = shutil.which("sh") or "/bin/sh"
_QUIET = [
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    (os.POSIX_SPAWN_DUP2, 1, 2),
]
_LOG_CHUNK = 1 << 20  # read at most this much new log per job per poll


@dataclass(slots=True)
class _Watched:
    pid: int
    child: bool  # ours to reap; otherwise a job a previous ccd started
    tstart: float
    returncode: int | None = None
    gone: bool = False
    tend: float | None = None  # when we saw it end (file mtimes are coarse: ~4 ms)
    log: LogFollower = field(default_factory=LogFollower)


class LocalExecutor:
    """Executor for `kind: local`."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self._watched: dict[Path, _Watched] = {}
        self._loop = asyncio.get_running_loop()

    async def start(self, launch: Launch) -> None:
        """Start the wrapper in its own session, detached from ccd."""
        d = launch.job_dir
        try:
            d.mkdir(parents=True, exist_ok=True)
            if launch.script is not None:
                shutil.copyfile(launch.script, d / launch.script.name)
            env = os.environ if not launch.env else {**os.environ, **dict(launch.env)}
            pid = os.posix_spawn(_SH, [_SH, WRAPPER, str(d), launch.cwd, launch.venv,
                                       launch.command],
                                 env, file_actions=_QUIET, setsid=True)
        except OSError as e:
            raise ExecutorError(f"cannot start job {launch.job.name!r}: {e}") from e
        self._watch(d, pid, child=True, tstart=time.time())

    async def prepare(self, launch: Launch) -> None:
        """Create the job's directory while its parent runs (a file-system round trip that
        costs up to a millisecond on a busy disk)."""
        with contextlib.suppress(OSError):  # start() will try again and report it
            launch.job_dir.mkdir(parents=True, exist_ok=True)

    async def attempts(self, launch: Launch) -> int:
        """Attempts set aside are the directories `<job>@1`, `<job>@2`, ... beside the job's
        (`@` cannot appear in a job name)."""
        pattern = f"{glob.escape(launch.job.name)}@*"
        return sum(1 for _ in launch.job_dir.parent.glob(pattern))

    async def archive(self, launch: Launch) -> None:
        """Rename the job's directory to `<job>@N`: atomic, so a crash leaves either the
        ended attempt in place (it is set aside again) or a fresh start."""
        n = await self.attempts(launch) + 1
        self._unwatch(launch.job_dir)
        try:
            os.rename(launch.job_dir, launch.job_dir.with_name(f"{launch.job.name}@{n}"))
        except OSError as e:
            raise ExecutorError(f"cannot set attempt {n} of {launch.job.name!r} aside: {e}"
                                ) from e

    async def attach(self, launch: Launch) -> Observation:
        """Re-attach after a restart by the status file; never starts anything."""
        status = _read(launch.job_dir / "status")
        obs = Observation(launch.job.name)
        if status is None:
            return obs
        parsed = parse_status(status)
        obs.started, obs.pid = True, parsed.pid
        obs.tstart = _mtime(launch.job_dir)
        if parsed.exit_code is not None or parsed.pid is None or not _alive(parsed.pid, launch):
            return self._ended(launch, obs)
        self._watch(launch.job_dir, parsed.pid, child=False, tstart=obs.tstart or time.time())
        return obs

    async def poll(self, launches: Sequence[Launch]) -> list[Observation]:
        """Progress from each job's log; how it ended for those whose wrapper is gone."""
        out = []
        for launch in launches:
            w = self._watched.get(launch.job_dir)
            obs = Observation(launch.job.name)
            if w is None:
                out.append(obs)
                continue
            obs.started, obs.pid, obs.tstart = True, w.pid, w.tstart
            obs.progress = self._follow(launch.job_dir / "log", w.log)
            if w.gone:
                obs = self._ended(launch, obs, w)
            out.append(obs)
        return out

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        """Signal the job's whole process group (the wrapper leads its own session)."""
        w = self._watched.get(launch.job_dir)
        pid = w.pid if w else parse_status(_read(launch.job_dir / "status") or "").pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)

    async def read_log(self, launch: Launch, offset: int, limit: int) -> bytes:
        """Bytes of the job's log."""
        try:
            with open(launch.job_dir / "log", "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""

    async def aclose(self) -> None:
        """Stop watching; the jobs go on."""
        for d in list(self._watched):
            self._unwatch(d)

    def _watch(self, d: Path, pid: int, child: bool, tstart: float) -> None:
        w = _Watched(pid, child, tstart)
        self._watched[d] = w
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._reap(d, w, None)
            return
        self._loop.add_reader(fd, self._reap, d, w, fd)

    def _reap(self, d: Path, w: _Watched, fd: int | None) -> None:
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)
        if w.child:
            try:
                _, status = os.waitpid(w.pid, 0)
                w.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        w.gone, w.tend = True, time.time()
        self._notify()

    def _unwatch(self, d: Path) -> None:
        self._watched.pop(d, None)

    def _follow(self, log: Path, follower: LogFollower) -> int | None:
        try:
            size = os.stat(log).st_size
            if size > follower.offset:
                with open(log, "rb") as f:
                    f.seek(follower.offset)
                    follower.feed(f.read(min(size - follower.offset, _LOG_CHUNK)))
        except FileNotFoundError:
            pass
        return follower.progress or None

    def _ended(self, launch: Launch, obs: Observation, w: _Watched | None = None) -> Observation:
        """The wrapper is gone: read how the job ended, or take over from a second wrapper."""
        status = parse_status(_read(launch.job_dir / "status") or "")
        if w is not None and w.returncode == CLAIMED_ELSEWHERE and status.pid not in (None, w.pid):
            # Another wrapper (from a ccd that died while starting it) owns this job: watch it.
            self._unwatch(launch.job_dir)
            if status.exit_code is None and _alive(status.pid, launch):
                assert status.pid is not None
                self._watch(launch.job_dir, status.pid, child=False, tstart=w.tstart)
                obs.pid = status.pid
                return obs
        self._unwatch(launch.job_dir)
        obs.ended = True
        obs.tend = (w.tend if w else None) or _mtime(launch.job_dir / "status") or time.time()
        obs.exit_code = status.exit_code
        if status.exit_code is None:
            rc = w.returncode if w else None
            if rc is not None and rc < 0:
                obs.message = f"killed by {signal.Signals(-rc).name}"
            else:
                obs.message = "lost: the job's wrapper ended without recording an exit status"
        if obs.progress is None:
            log = LogFollower()
            obs.progress = self._follow(launch.job_dir / "log", log)
        return obs


def _alive(pid: int | None, launch: Launch) -> bool:
    """Is `pid` still this job's wrapper (not a recycled pid)?"""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return str(launch.job_dir).encode() in f.read()
    except OSError:
        return False


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None
