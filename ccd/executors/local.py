"""Run jobs on this machine: the wrapper as a detached child, watched through a pidfd.

posix_spawn + pidfd instead of asyncio's subprocess machinery: no transport, no pipes, no
watcher thread per child, and the same pidfd also watches a job that a previous ccd
started (not our child) after a restart. A job's end is pushed the moment its pidfd
fires; progress is read from the logs of all watched jobs, of every run, every `tick`
(50 ms) by one poller task that exists only while jobs run, which also samples their
memory once a second; the rest of what a job used comes with its end (`trace.py`: wait4's
rusage). File reads here are synchronous on purpose: the status file and the new bytes of
a local log are read in microseconds, far less than a hop to a thread would cost. Linux
only (pidfd_open, /proc).

A job that will probably start soon (its parent runs) gets its wrapper started ahead,
parked until its start (`parking.py`): a chain's next job then starts by a write to a pipe.

A job's files live in `<run dir>/jobs/<job>/`; an attempt set aside for `retries` is
renamed to `<job>@N` beside it.

A cancel is SIGTERM to the job's process group, SIGKILL after the grace. job.sh runs most
jobs in its own shell (no subshell: one fork less a job): SIGTERM ends the command running
then, the rest of the job does not run, and `exit=143` is written once that command has
ended. A job made only of shell builtins (`while :; do :; done`) has no child to kill: the
wrapper's shell stops it at its next command and writes `exit=143` too. A job that uses
`exec`, `trap` or the shell's state still runs in a subshell, which may ignore SIGTERM and
then ends in its own time (or at SIGKILL, with no exit line: "killed by SIGKILL").

Measured per job on the main thread, where fan500's time goes (posix_spawn holds the GIL
until the child execs, and that child's work before its exec is the thread's wait): the
environment is handed to posix_spawn as bytes built once (os.environ decodes every item on
every call: ~0.15 ms), /dev/null is dup'd from one descriptor and sh run by its real path
(no open, no symbolic link in the child), every signal is reset in one call (setsigdef:
glibc otherwise asks and sets each), the pidfds sit in an epoll set of our own, status
files and the last of a log are read with os.read/pread rather than through the io stack,
and the ended wrapper's byte counts are read here (`trace.io_of`, ~12 us) rather than by
the wrapper a byte at a time (~20-35 us of its CPU; A/B: +0.020 ms/job on fan500 when the
wrapper read them). Tried and dropped: the job directories made on a worker thread, and
posix_spawn through ctypes on a worker thread (the GIL released while the child execs):
neither was faster (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import os
import resource
import select
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccd.errors import ExecutorError, HostBusy
from ccd.executors import Deliver, LinkState, trace
from ccd.executors.parking import Parking
from ccd.executors.protocol import (
    CLAIMED_ELSEWHERE,
    NO_ROOM,
    WRAPPER,
    Launch,
    Observation,
    parse_status,
    read_log,
)
from ccd.progress import LogFollower

_SH = shutil.which("sh") or "/bin/sh"  # as the job's argv[0] shows it
_SH_FILE = os.path.realpath(_SH)  # what is executed: no symbolic link to follow per job
# Every signal at its default in the job, whatever ccd's own handling: Python ignores SIGPIPE
# and SIGXFSZ, and an ignored signal stays ignored across exec, so `yes | head -n 1` wrote
# "Broken pipe" into the log and a Python job raised BrokenPipeError. Also half of
# posix_spawn's work in the child: glibc resets each signal with one call, not two.
_SIGDEF = frozenset(signal.valid_signals())
_LOG_CHUNK = 1 << 20  # read at most this much new log per job per poll
_FULL = (errno.ENOSPC, errno.EDQUOT)
NO_ROOM_MESSAGE = "no room on this machine's disk for the job's files (the disk is full)"


@dataclass(slots=True, eq=False)
class _Watched:
    launch: Launch
    dir: str  # launch.here_text, computed once
    pid: int
    child: bool  # ours to reap; otherwise a job a previous ccd started
    tstart: float
    fd: int | None = None  # its pidfd while registered with the loop
    returncode: int | None = None
    tend: float | None = None  # when we saw it end (file mtimes are coarse: ~4 ms)
    log: LogFollower = field(default_factory=LogFollower)
    usage: tuple[resource.struct_rusage, int] | None = None  # our child's (wait4), and ours
    io: tuple[int, int] | None = None  # our child's bytes read and written, from its remains
    peak_rss: int | None = None  # bytes: the most seen by sampling


class LocalExecutor:
    """Executor for `kind: local`."""

    queues = False

    def __init__(self, deliver: Deliver, tick: float = 0.05) -> None:
        self._deliver = deliver
        self._tick = tick
        self._watched: dict[tuple[str, str], _Watched] = {}
        self._loop = asyncio.get_running_loop()
        # The watched jobs' pidfds, in an epoll set of our own that the loop watches as one
        # descriptor: adding and removing one here is a system call, through the loop's
        # add_reader/remove_reader ~15 us of Python a job (fan500's main thread is its limit).
        self._ends = select.epoll()
        self._by_fd: dict[int, _Watched] = {}
        self._loop.add_reader(self._ends.fileno(), self._reap_ended)
        self._poller: asyncio.Task[None] | None = None
        self._polls = 0
        self._sampled = 0.0  # when the running jobs' memory was last sampled
        # posix_spawn converts its environment on every call, and os.environ decodes each
        # item on the way: bytes, once, save ~0.15 ms of the main thread per job. So a job
        # gets ccd's environment as it was when this executor was made.
        self._env: dict[bytes, bytes] = dict(os.environb)
        self._parking = Parking(self._loop)
        # The wrapper's stdin, stdout and stderr: /dev/null, opened once (an open per job is
        # a path walk in the child, while posix_spawn holds ccd's thread).
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._quiet = [(os.POSIX_SPAWN_DUP2, self._null, fd) for fd in (0, 1, 2)]

    async def prepare(self, launch: Launch) -> None:
        """While its parent runs: create the job's directory and its empty log (file creates
        cost 0.04-0.6 ms each on a busy disk, in the inode allocation; the wrapper then only
        truncates the log), and start its wrapper, parked (`parking.py`). Never the status
        file: that is the wrapper's claim. Bounded by the parking's room, so a parent of
        thousands does not make thousands of directories in one burst on the loop. Here, on
        the loop: made on a worker thread instead, fan500's creates cost more CPU in the
        hand-offs and the contention for the GIL than they saved (docs/benchmarks.md)."""
        if self._parking.full or launch.key in self._parking:
            return
        d = launch.here_text
        if _prepare(d):
            self._parking.park(launch.key, _SH_FILE, self._argv(launch, d),
                               self._env_of(launch), self._quiet[1:], _SIGDEF)

    async def start(self, launch: Launch) -> int:
        """Start the wrapper in its own session, detached from ccd (or tell its parked one to
        go); its pid."""
        d = launch.here_text
        argv = self._argv(launch, d)  # the job's command as it is now: as a fresh start
        taken = self._parking.take(launch.key, argv)
        if taken is not None:
            pid, fd = taken
        else:
            fd = None
            try:
                _mkdir(d)
                pid = os.posix_spawn(_SH_FILE, [*argv, "local"], self._env_of(launch),
                                     file_actions=self._quiet, setsid=True,
                                     setsigdef=_SIGDEF)
            except OSError as e:
                if e.errno in _FULL:
                    raise HostBusy(NO_ROOM_MESSAGE) from e
                raise ExecutorError(f"cannot start job {launch.job.name!r}: {e}") from e
        self._watch(launch, d, pid, child=True, tstart=time.time(), fd=fd)
        return pid

    def _argv(self, launch: Launch, d: str) -> list[str]:
        """The wrapper's command line but for how it is started (`local`, `parked`)."""
        return [_SH, WRAPPER, d, launch.cwd, launch.venv, launch.command()]

    def _env_of(self, launch: Launch) -> dict[bytes, bytes]:
        if not launch.job.env:
            return self._env
        return {**self._env, **{k.encode(): v.encode() for k, v in launch.job.env}}

    async def attach(self, launch: Launch) -> Observation:
        """Re-attach after a restart by the status file; never starts anything."""
        d = launch.here_text
        status = _read(f"{d}/status")
        obs = Observation(launch.run_id, launch.job.name)
        for _ in range(3):  # created, its pid not written yet: a wrapper just starting
            if status is None or parse_status(status).pid is not None:
                break
            await asyncio.sleep(0.02)
            status = _read(f"{d}/status")
        if status is None:
            return obs
        parsed = parse_status(status)
        obs.started, obs.pid = True, parsed.pid
        obs.tstart = _mtime(d)
        if parsed.exit_code is not None or parsed.pid is None or not _alive(parsed.pid, d):
            return self._ended(launch, d, obs)
        self._watch(launch, d, parsed.pid, child=False, tstart=obs.tstart or time.time())
        return obs

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        """Signal the job's whole process group (the wrapper leads its own session)."""
        w = self._watched.get(launch.key)
        pid = w.pid if w else parse_status(_read(f"{launch.here_text}/status") or "").pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)

    async def attempts(self, launch: Launch) -> int:
        """Attempts set aside are the directories `<job>@1`, `<job>@2`, ... beside the job's
        (`@` cannot appear in a job name)."""
        d = launch.here
        return sum(1 for _ in d.parent.glob(f"{glob.escape(d.name)}@*"))

    async def archive(self, launch: Launch) -> None:
        """Rename the job's directory to `<job>@N`: atomic, so a crash leaves either the
        ended attempt in place (it is set aside again) or a fresh start."""
        d = launch.here
        n = await self.attempts(launch) + 1
        self._unwatch(launch.key)
        self._parking.drop(launch.key)
        try:
            os.rename(d, d.with_name(f"{d.name}@{n}"))
        except OSError as e:
            raise ExecutorError(f"cannot set attempt {n} of {launch.job.name!r} aside: {e}"
                                ) from e

    async def read_log(self, launch: Launch, offset: int, limit: int) -> tuple[bytes, int]:
        """Bytes of the job's log, and its size."""
        return read_log(launch.here / "log", offset, limit)

    def counters(self) -> dict[str, int]:
        return {"jobs": len(self._watched), "polls": self._polls, "parked": len(self._parking)}

    def links(self) -> list[LinkState]:
        return []

    async def aclose(self) -> None:
        """Stop watching; the jobs go on (the parked wrappers end: their jobs never began)."""
        self._parking.close()
        for key in list(self._watched):
            self._unwatch(key)
        if not self._ends.closed:
            self._loop.remove_reader(self._ends.fileno())
            self._ends.close()
            os.close(self._null)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    # -- watching -------------------------------------------------------------------------

    def _watch(self, launch: Launch, d: str, pid: int, child: bool, tstart: float,
               fd: int | None = None) -> None:
        w = _Watched(launch, d, pid, child, tstart)
        self._watched[launch.key] = w
        try:
            w.fd = os.pidfd_open(pid) if fd is None else fd
        except ProcessLookupError:
            self._loop.call_soon(self._reap, w)
        else:
            self._ends.register(w.fd, select.EPOLLIN)
            self._by_fd[w.fd] = w
        if self._poller is None:
            # The first memory sample a second from now: a job that ends sooner is not
            # sampled at all (wait4 tells its peak), so a burst of short jobs costs nothing.
            self._sampled = time.monotonic()
            self._poller = asyncio.create_task(self._poll(), name="ccd local executor")
        if not child:  # no wait4 for it: sampling is its only measure of memory, from now
            self._sampled = 0.0

    def _unwatch(self, key: tuple[str, str]) -> None:
        w = self._watched.pop(key, None)
        if w is not None and w.fd is not None:
            self._ends.unregister(w.fd)
            del self._by_fd[w.fd]
            os.close(w.fd)
            w.fd = None

    def _reap_ended(self) -> None:
        for fd, _ in self._ends.poll(0):
            w = self._by_fd.get(fd)
            if w is not None:
                self._reap(w)

    async def _poll(self) -> None:
        """Progress of every watched job, every tick, while there are any."""
        try:
            while self._watched:
                await asyncio.sleep(self._tick)
                self._polls += 1
                if time.monotonic() - self._sampled >= trace.SAMPLE_EVERY:
                    self._sample()
                for w in list(self._watched.values()):
                    before = w.log.progress
                    if self._follow(f"{w.dir}/log", w.log) > before:
                        self._deliver(Observation(w.launch.run_id, w.launch.job.name, True,
                                                  w.pid, tstart=w.tstart,
                                                  progress=w.log.progress))
        finally:
            self._poller = None

    def _sample(self) -> None:
        """The memory of every running job, once a second: one that ends sooner costs
        nothing here."""
        self._sampled = time.monotonic()
        for w in self._watched.values():
            w.peak_rss = max(w.peak_rss or 0, trace.peak_rss(w.pid) or 0) or None

    def _reap(self, w: _Watched) -> None:
        if self._watched.get(w.launch.key) is not w:
            return  # no longer watched (archived, or closed)
        self._unwatch(w.launch.key)
        if w.child:
            try:
                w.io = trace.io_of(w.pid)  # before wait4: a zombie's, then gone
                _, status, usage = os.wait4(w.pid, 0)
                w.returncode = os.waitstatus_to_exitcode(status)
                w.usage = usage, trace.own_peak_kb(usage.ru_maxrss)
            except ChildProcessError:
                pass
        w.tend = time.time()
        obs = Observation(w.launch.run_id, w.launch.job.name, True, w.pid, tstart=w.tstart)
        self._deliver(self._ended(w.launch, w.dir, obs, w))

    def _follow(self, log: str, follower: LogFollower, grown: bool = False) -> int:
        """Feed the log's new bytes to `follower`; `grown`: known to have grown, or worth
        reading without asking its size first (a stat is cheaper than a read only while
        nothing is new)."""
        try:
            if not grown and os.stat(log).st_size <= follower.offset:
                return follower.progress
            fd = os.open(log, os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(fd, _LOG_CHUNK, follower.offset)
            finally:
                os.close(fd)
            if data:
                follower.feed(data)
        except FileNotFoundError:
            pass
        return follower.progress

    def _ended(self, launch: Launch, d: str, obs: Observation, w: _Watched | None = None
               ) -> Observation:
        """The wrapper is gone: read how the job ended, or take over from a second wrapper."""
        status = parse_status(_read(f"{d}/status") or "")
        if (w is not None and w.returncode == CLAIMED_ELSEWHERE and status.pid is not None
                and status.pid != w.pid and status.exit_code is None and _alive(status.pid, d)):
            # Another wrapper (from a ccd that died while starting it) owns this job: watch it.
            self._watch(launch, d, status.pid, child=False, tstart=w.tstart)
            obs.pid = status.pid
            return obs
        if w is not None and w.returncode == NO_ROOM and status.pid in (None, w.pid) \
                and status.exit_code is None:
            obs.started, obs.pid, obs.nostart = False, None, NO_ROOM_MESSAGE
            return obs
        obs.ended = True
        obs.tend = (w.tend if w else None) or _mtime(f"{d}/status") or time.time()
        obs.exit_code = status.exit_code
        if w is not None and w.usage is not None:
            obs.trace = trace.of_wait4(status.trace, *w.usage, w.peak_rss, w.io)
        else:
            obs.trace = trace.with_peak(status.trace, w.peak_rss if w else None)
        if status.exit_code is None:
            rc = w.returncode if w else None
            if rc is not None and rc < 0:
                obs.message = f"killed by {signal.Signals(-rc).name}"
            else:
                obs.message = "lost: the job's wrapper ended without recording an exit status"
        log = w.log if w else LogFollower()
        obs.progress = self._follow(f"{d}/log", log, grown=True) or None
        return obs


def _alive(pid: int | None, job_dir: str) -> bool:
    """Is `pid` still this job's wrapper (not a recycled pid)?"""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return job_dir.encode() in f.read()
    except OSError:
        return False


def _read(path: str) -> str | None:
    """A status file's text (a few bytes: os.read, without the io stack's layers)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = b""
        while chunk := os.read(fd, 4096):
            data += chunk
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def _prepare(d: str) -> bool:
    """Make a job's directory and its empty log; False if it could not (start() will try
    again and say why)."""
    try:
        _mkdir(d)
        os.close(os.open(f"{d}/log", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
    except OSError:
        return False
    return True


def _mkdir(d: str) -> None:
    """`d` and, the first time, `jobs/` above it (Path.mkdir's parents=True costs more)."""
    try:
        os.mkdir(d)
    except FileExistsError:
        pass
    except FileNotFoundError:
        Path(d).mkdir(parents=True, exist_ok=True)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None
