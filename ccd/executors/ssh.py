"""Run jobs on other machines over SSH, by the job protocol, through one `Link` per host.

The remote host needs a POSIX `sh` and the SFTP subsystem, nothing else. ccd keeps its
files there below the host's `workdir` (default `~/.ccd`):

    job-<hash>.sh                   the wrapper (uploaded once, named by its content)
    runs/<run>/work/                what the run's jobs there need of its working copy
    runs/<run>/jobs/<job>/          status and log, as locally; `<job>@N` set aside

Starting a job opens one channel: `sh -s` reads a script that launches the wrapper in the
background and prints its pid. sshd gives each session its own process group, which the
wrapper keeps after the session ends, so a cancel signals that group. Before that, the job's
script, the workflow's `files:` and the declared outputs of the jobs it depends on go to
`work/` by SFTP, ahead of time through `prepare` while its parent runs (each file once per
run and host, again only if it changed). After it ends, its own `outputs:` come back into
the run's working copy on this machine, before its end is reported.

Watching: every `tick` one command reads the status of all running jobs of a link, of
every run, and the size of their logs (`remote.sh`); new log bytes are then read by SFTP on
the open connection, appended to a copy of the log on this machine (`<run dir>/jobs/<job>/
log`, which is what `read_log` serves, whether the host is reachable or not) and scanned
for progress. A link that goes down loses nothing: jobs there stay running (lost is not
failed); the poller reconnects with backoff and catches up from the status files. A job
that ended meanwhile is adopted with its exit code; one whose wrapper vanished without an
exit line (killed, the host restarted) is reported lost.

Nothing here blocks the scheduler for a round trip it can avoid: `start`, `prepare` and
`cancel` hand the work to tasks and report through `deliver`; `attach` waits at most until
the host answers or is found unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shlex
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ccd import workdir
from ccd.errors import ExecutorError, HostBusy
from ccd.executors import Deliver, LinkState, trace
from ccd.executors.links import HereLink, Link
from ccd.executors.protocol import WRAPPER, Launch, Observation, read_log
from ccd.executors.sshlink import SshLink, Target
from ccd.progress import LogFollower

log = logging.getLogger("ccd.ssh")

_WRAPPER = Path(WRAPPER).read_bytes()
WRAPPER_NAME = f"job-{hashlib.sha256(_WRAPPER).hexdigest()[:16]}.sh"
_HELPERS = Path(WRAPPER).with_name("remote.sh").read_text()
DEFAULT_WORKDIR = ".ccd"
_LOG_CHUNK = 1 << 20  # bytes of a running job's log read per tick
_PATIENCE = 15.0  # seconds `attach` waits for a host before saying it cannot tell


@dataclass(eq=False)
class _Job:
    """A job this executor watches."""

    launch: Launch
    link: Link
    mirror: Path  # its directory on this machine: the copy of its log
    phase: str  # starting, running, unknown (after a restart), ending
    tstart: float | None = None
    pid: int | None = None  # the wrapper's, once known
    root: str = ""  # ccd's directory on the host, absolute, once known
    seen: bool = False  # its status file was seen: it started
    signal: str = ""  # a cancel to send when the link is back
    answer: asyncio.Future[Observation] | None = None  # for `attach`, until it can tell
    follower: LogFollower = field(default_factory=LogFollower)
    batch_id: str | None = None  # batch jobs: its id in the queue
    queued: str | None = None  # batch jobs: the queue's reason last reported
    misses: int = 0  # batch jobs: polls in a row that did not find it in the queue
    note: str = ""  # why it failed, if it does, beyond its exit code
    changed: float | None = None  # batch jobs: when it was last seen to change state
    peak_rss: int | None = None  # bytes: the most its largest process had when sampled

    @property
    def dir(self) -> str:
        """Its job directory, relative to `root`."""
        return f"runs/{self.launch.run_id}/jobs/{self.launch.job.name}"

    @property
    def work(self) -> str:
        return f"{self.root}/runs/{self.launch.run_id}/work"


class SshExecutor:
    """Executor for `kind: ssh` on one host (per name in the workflows)."""

    kind = "ssh"
    queues = False
    detach = ""  # before the wrapper's `sh`: what makes it outlive the start command

    def __init__(self, host: str, deliver: Deliver, changed: Callable[[], None] = lambda: None,
                 tick: float = 0.1) -> None:
        self.host = host
        self._deliver = deliver
        self._changed = changed
        self._tick = tick
        self._links: dict[object, Link] = {}
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._pollers: dict[Link, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._roots: dict[tuple[Link, str], asyncio.Future[str]] = {}
        self._synced: dict[tuple[Link, str], dict[str, tuple[int, int]]] = {}
        self._syncing: dict[tuple[Link, str], asyncio.Lock] = {}
        self._prepared: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sampled: dict[Link, float] = {}  # when the memory of its jobs was last sampled
        self.polls = 0

    # -- the Executor interface -----------------------------------------------------------

    async def prepare(self, launch: Launch) -> None:
        """Copy the job's files there while its parent runs."""
        if launch.key not in self._prepared:
            link = self._link(launch)
            self._prepared[launch.key] = self._spawn(self._ready(link, launch))

    async def start(self, launch: Launch) -> int | None:
        """Start it in a task (its files, then one command); the task reports the start,
        or why not, through `deliver`."""
        job = self._jobs.get(launch.key)
        if job is not None and job.phase in ("starting", "running"):
            return job.pid  # already started, or found running there: follow it
        # Else unknown (its host could not say after a restart): start it; should it have
        # started after all, its wrapper stands down and the status file tells.
        job = self._jobs[launch.key] = _Job(launch, self._link(launch), launch.here,
                                            "starting", tstart=time.time())
        self._spawn(self._start(job))
        return None

    async def attach(self, launch: Launch) -> Observation:
        """What the host says of the job, asked with every other job of the same moment in
        one command. Raises HostBusy if the host cannot be asked within `_PATIENCE`."""
        link = self._link(launch)
        job = _Job(launch, link, launch.here, "unknown")
        if job.mirror.is_dir():  # a ccd started it there: a failure is not a first contact
            link.reached = True
        job.answer = asyncio.get_running_loop().create_future()
        job.follower = LogFollower(offset=_size(job.mirror / "log"))
        self._jobs[launch.key] = job
        self._poll_on(link)
        try:
            async with asyncio.timeout(_PATIENCE):
                return await asyncio.shield(job.answer)
        except TimeoutError:
            raise HostBusy(f"host {self.host!r} did not answer in {_PATIENCE:g} s") from None

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        """Signal the job's process group there, in a task; while the link is down, when it
        is back; a forced cancel that cannot reach the host ends the job as cancelled."""
        job = self._jobs.get(launch.key)
        if job is None:
            return
        job.signal = "KILL" if force else "TERM"
        if job.phase in ("running", "unknown") and job.link.connected:
            self._spawn(self._send_signal(job))
        elif force and job.phase != "ending":
            self._forget(job)
            self._report(job, ended=True, exit_code=None, tend=time.time(),
                         message=f"cancelled while host {self.host!r} was unreachable: the "
                                 "job may still be running there")

    async def attempts(self, launch: Launch) -> int:
        """Attempts set aside there: `<job>@1`, `<job>@2`, ... beside the job's directory."""
        link = self._link(launch)
        root = await self._root(link, launch)
        try:
            names = await link.listdir(f"{root}/runs/{launch.run_id}/jobs")
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise ExecutorError(f"cannot count the attempts of {launch.job.name!r} on "
                                f"host {self.host!r}: {e}") from e
        prefix = f"{launch.job.name}@"
        return sum(1 for n in names if str(n).startswith(prefix))

    async def archive(self, launch: Launch) -> None:
        """Rename the job's directory there, then its copy here, to `<job>@N`."""
        n = await self.attempts(launch) + 1
        link = self._link(launch)
        root = await self._root(link, launch)
        jobs = f"{root}/runs/{launch.run_id}/jobs"
        name = launch.job.name
        self._jobs.pop(launch.key, None)
        try:
            await link.rename(f"{jobs}/{name}", f"{jobs}/{name}@{n}")
        except OSError as e:
            raise ExecutorError(f"cannot set attempt {n} of {name!r} aside on host "
                                f"{self.host!r}: {e}") from e
        mirror = launch.here
        with contextlib.suppress(FileNotFoundError):
            os.rename(mirror, mirror.with_name(f"{mirror.name}@{n}"))

    async def read_log(self, launch: Launch, offset: int, limit: int) -> tuple[bytes, int]:
        """From the copy of the log on this machine: no round trip, and there when the host
        is not."""
        return read_log(launch.here / "log", offset, limit)

    def counters(self) -> dict[str, int]:
        return {"jobs": len(self._jobs), "polls": self.polls, "links": len(self._links),
                "connections": sum(link.connections for link in self._links.values())}

    def links(self) -> list[LinkState]:
        return [self._link_state(link) for link in self._links.values()]

    def _link_state(self, link: Link) -> LinkState:
        jobs = sum(1 for j in self._jobs.values() if j.link is link)
        return LinkState(self.kind, self.host, str(link.target), link.connected, link.since,
                         link.error, link.rtt, link.in_use, link.limit, jobs,
                         link.connections, link.commands)

    async def aclose(self) -> None:
        """Stop watching and close the connections; the jobs go on there."""
        tasks = [*self._tasks, *self._pollers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links.values():
            await link.aclose()
        self._jobs.clear()

    # -- starting -------------------------------------------------------------------------

    def _link(self, launch: Launch) -> Link:
        target = Target.of(launch)
        link = self._links.get(target)
        if link is None:
            link = self._links[target] = SshLink(target, self._changed)
        return link

    async def _start(self, job: _Job) -> None:
        try:
            await self._get_ready(job)
            status, out, err = await job.link.run(self._start_script(job))
        except HostBusy as e:  # the link is down: not started; try again later
            self._forget(job)
            self._report(job, nostart=str(e))
            return
        except ExecutorError as e:
            self._forget(job)
            self._report(job, ended=True, exit_code=None, tend=time.time(), message=str(e))
            return
        if not self._began(job, status, out, err):
            return
        if job.signal:
            self._spawn(self._send_signal(job))
        self._poll_on(job.link)

    async def _get_ready(self, job: _Job) -> None:
        """Everything but the start command: its log's directory here, its files there
        (after what `prepare` began), ccd's directory there."""
        job.mirror.mkdir(parents=True, exist_ok=True)  # for the log; see `attach`
        prepared = self._prepared.pop(job.launch.key, None)
        if prepared is not None:
            with contextlib.suppress(Exception):
                await prepared
        await self._ready(job.link, job.launch)
        job.root = await self._root(job.link, job.launch)

    def _began(self, job: _Job, status: int, out: str, err: str) -> bool:
        """Act on what the start command said: the wrapper's pid, or why not."""
        if status != 0 or not out.strip().isdigit():
            self._not_begun(job, err.strip()[:500] or f"exit status {status}")
            return False
        job.pid, job.phase = int(out.strip()), "running"
        self._report(job, pid=job.pid)
        return True

    def _not_begun(self, job: _Job, said: str) -> None:
        self._forget(job)
        if "No space left" in said or "Disk quota" in said:
            self._report(job, nostart=f"no room on host {self.host!r}: {said}")
        else:
            self._report(job, ended=True, exit_code=None, tend=time.time(),
                         message=f"cannot start on host {self.host!r}: {said}")

    def _start_script(self, job: _Job) -> str:
        launch, q = job.launch, shlex.quote
        d = f"{job.root}/{job.dir}"
        lines = [f"d={q(d)} w={q(job.work)}",
                 '{ [ -d "$d" ] && [ -d "$w" ]; } || mkdir -p "$d" "$w" || exit 1']
        lines += [f"export {name}={q(value)}" for name, value in launch.job.env]
        args = " ".join(q(a) for a in (d, launch.cwd_in(job.work), self._venv(job),
                                       launch.command(job.work)))
        lines.append(f"{self.detach}sh {q(job.root + '/' + WRAPPER_NAME)} {args} "
                     "</dev/null >/dev/null 2>&1 &")
        lines.append('echo "$!"')
        return "\n".join(lines) + "\n"

    def _venv(self, job: _Job) -> str:
        """The job's `venv:` there: ~/ is the remote home, relative is in the run's copy."""
        venv = job.launch.job.venv
        if not venv:
            return ""
        if venv.startswith("~/"):
            return f"{job.link.home}/{venv[2:]}"
        return venv if venv.startswith("/") else f"{job.work}/{venv}"

    async def _root(self, link: Link, launch: Launch) -> str:
        """ccd's directory on the host, absolute; made, with the wrapper in it, once. On
        this machine's files, the state directory (as the link writes it): the jobs' files
        are where local jobs' are."""
        written = launch.host.workdir if launch.host and launch.host.workdir else DEFAULT_WORKDIR
        if isinstance(link, HereLink):
            written = link.there(str(launch.run_dir.parent.parent))
        key = (link, written)
        made = self._roots.get(key)
        if made is None or (made.done() and made.exception() is not None):
            made = self._roots[key] = asyncio.ensure_future(self._make_root(link, written))
        return await asyncio.shield(made)

    async def _make_root(self, link: Link, written: str) -> str:
        q = shlex.quote
        where = f'"$HOME"/{q(written[2:])}' if written.startswith("~/") else q(written)
        status, out, err = await link.run(
            f"mkdir -p {where} && cd {where} && pwd && "
            f"if [ -f {WRAPPER_NAME} ]; then echo have; else echo need; fi\n")
        lines = out.split("\n")
        if status != 0 or len(lines) < 2:
            raise ExecutorError(f"host {self.host!r}: cannot use {written} as ccd's directory "
                                f"there: {err.strip()[:300] or f'exit status {status}'}")
        root = lines[0]
        if lines[1] == "need":
            try:
                await link.write(f"{root}/{WRAPPER_NAME}", _WRAPPER)
            except OSError as e:
                raise ExecutorError(f"host {self.host!r}: cannot copy ccd's job wrapper to "
                                    f"{root}: {e}") from e
        return root

    async def _ready(self, link: Link, launch: Launch) -> None:
        """The job's files are there: its script, the workflow's `files:` and its
        ancestors' outputs, each copied when new or changed since the last copy."""
        root = await self._root(link, launch)
        if link.here:
            return  # its files are where they are
        key = (link, launch.run_id)
        lock = self._syncing.setdefault(key, asyncio.Lock())
        async with lock:
            wanted = await asyncio.to_thread(_wanted, launch)
            synced = self._synced.setdefault(key, {})
            todo = {rel: (path, stamp) for rel, (path, stamp) in wanted.items()
                    if synced.get(rel) != stamp}
            if not todo:
                return
            work = f"{root}/runs/{launch.run_id}/work"
            try:
                await link.put({f"{work}/{rel}": path for rel, (path, _) in todo.items()})
            except OSError as e:
                raise ExecutorError(f"cannot copy the files of {launch.job.name!r} to host "
                                    f"{self.host!r}: {e}") from e
            synced.update((rel, stamp) for rel, (_, stamp) in todo.items())

    # -- watching -------------------------------------------------------------------------

    def _poll_on(self, link: Link) -> None:
        if link not in self._pollers:
            self._pollers[link] = asyncio.create_task(self._poll(link),
                                                      name=f"ccd ssh poller {link.target}")

    async def _poll(self, link: Link) -> None:
        """While jobs run there: one command per tick for all of them, then their new log
        bytes. A link that is down is reconnected by the next poll after its backoff."""
        try:
            first = True
            while any(j.link is link and j.phase != "ending" for j in self._jobs.values()):
                if not first:
                    await asyncio.sleep(self._interval(link))
                first = False
                jobs = [j for j in self._jobs.values()
                        if j.link is link and j.phase in ("running", "unknown")]
                if not jobs:
                    continue
                try:
                    for job in jobs:
                        if not job.root:
                            job.root = await self._root(link, job.launch)
                    _, out, _ = await link.run(self._poll_script(jobs))
                except ExecutorError as e:
                    self._unanswered(jobs, e)
                    continue
                self.polls += 1
                await self._take(jobs, out)
                await self._resend_signals(link)
        finally:
            self._pollers.pop(link, None)

    def _interval(self, link: Link) -> float:
        """Seconds between two polls of `link`."""
        return self._tick

    def _poll_script(self, jobs: list[_Job]) -> str:
        link, now = jobs[0].link, time.monotonic()
        sample = now - self._sampled.get(link, -trace.SAMPLE_EVERY) >= trace.SAMPLE_EVERY
        if sample:  # the memory of its running jobs, at most every SAMPLE_EVERY seconds
            self._sampled[link] = now
        return _poll_script(jobs, sample)

    def _unanswered(self, jobs: list[_Job], e: ExecutorError) -> None:
        """The host cannot be asked: `attach` stops waiting; everything else waits."""
        for job in jobs:
            if job.answer is not None and not job.answer.done():
                job.answer.set_exception(HostBusy(str(e)))

    async def _take(self, jobs: list[_Job], out: str) -> None:
        """Act on one poll's answer."""
        states, sizes = _parse_poll(jobs, out)
        grown = []
        for job in jobs:
            said = states.get(id(job))
            if said is None:
                continue
            state, pid, exit_code, more = said
            size = sizes.get(id(job), 0)
            if state in ("r", "s"):
                job.seen = True
                if more:
                    job.peak_rss = max(job.peak_rss or 0, trace.sampled_kb(more) or 0) or None
                if pid is not None and pid != job.pid:
                    job.pid = pid
                    if job.phase == "running":
                        self._report(job, pid=pid)
                if job.phase == "unknown":
                    job.phase = "running"
                    job.tstart = await self._stat_time(job, job.dir)
                    self._answer(job, Observation(job.launch.run_id, job.launch.job.name, True,
                                                  job.pid, tstart=job.tstart))
                if size > job.follower.offset:
                    grown.append(self._pull(job, size))
            elif state in ("e", "l"):
                job.phase = "ending"
                self._spawn(self._finish(job, exit_code, lost=state == "l", size=size,
                                         used=more))
            elif job.phase == "unknown" or state == "d" or job.seen:
                self._forget(job)
                if job.phase == "unknown":  # never started: its start is the scheduler's
                    self._answer(job, Observation(job.launch.run_id, job.launch.job.name))
                elif job.seen:
                    self._report(job, ended=True, exit_code=None, tend=time.time(),
                                 message=f"lost: its status file on host {self.host!r} is gone")
                else:  # its wrapper left without claiming it: no room there
                    self._report(job, nostart=f"no room on host {self.host!r} for the job's "
                                              "files (its wrapper could not start it)")
        if grown:
            await asyncio.gather(*grown)

    async def _pull(self, job: _Job, size: int, everything: bool = False) -> None:
        """Copy the log's new bytes here and report progress if it went up."""
        before = job.follower.progress
        path = f"{job.root}/{job.dir}/log"
        try:
            while job.follower.offset < size:
                want = size - job.follower.offset if everything else _LOG_CHUNK
                data = await job.link.read(path, job.follower.offset, min(want, 4 * _LOG_CHUNK))
                if not data:
                    break
                if job.link.here:
                    pass  # the log is its own copy
                elif len(data) > 65536:
                    await asyncio.to_thread(_append, job.mirror / "log", data)
                else:
                    _append(job.mirror / "log", data)  # microseconds: not worth a thread
                job.follower.feed(data)
                if not everything:
                    break
        except OSError as e:
            if everything:
                raise
            log.debug("cannot read the log of %s on %s: %s", job.launch.job.name, self.host, e)
            return
        if job.follower.progress > before and job.phase == "running":
            self._report(job, pid=job.pid, progress=job.follower.progress)

    async def _finish(self, job: _Job, exit_code: int | None, lost: bool, size: int,
                      used: str = "") -> None:
        """The job ended there: copy the rest of its log and its outputs, then report with
        what it used (`used`: its status file's trace)."""
        seen_running = job.phase == "ending" and job.answer is None
        tend = time.time() if seen_running else None
        try:
            await self._pull(job, size, everything=True)
            await self._fetch_outputs(job)
            if job.tstart is None:
                job.tstart = await self._stat_time(job, job.dir)
            if tend is None:
                tend = await self._stat_time(job, f"{job.dir}/status")
        except (OSError, ExecutorError) as e:
            log.info("job %s on %s ended; collecting it again: %s", job.launch.job.name,
                     self.host, e)
            job.phase = "running" if job.answer is None else "unknown"
            if job.answer is not None and not job.answer.done():
                job.answer.set_exception(HostBusy(str(e)))
                job.answer = None
            self._poll_on(job.link)
            return
        self._forget(job)
        message = job.note if exit_code else ""
        if lost:
            message = (f"lost: the job's wrapper on host {self.host!r} ended without "
                       "recording an exit status (killed, or the host restarted)")
        obs = Observation(job.launch.run_id, job.launch.job.name, True, job.pid, True,
                          exit_code, job.tstart, tend or time.time(),
                          job.follower.progress or None, message,
                          trace=trace.with_peak(trace.parse(used) if used else None,
                                                job.peak_rss))
        self._answer(job, obs)

    async def _fetch_outputs(self, job: _Job) -> None:
        """Copy the job's results (`outputs:`, an executed notebook) into the run's working
        copy."""
        patterns = job.launch.job.results
        if not patterns or job.link.here:
            return
        work = job.work
        found = await job.link.glob([f"{work}/{p}" for p in patterns])
        local = job.launch.work
        for remote in found:
            rel = PurePosixPath(str(remote)).relative_to(work)
            if ".." in rel.parts:
                continue
            target = local / rel
            if not (target.parent == local or workdir.inside(target.parent, local)):
                continue  # a symlink here would take it out of the working copy
            await asyncio.to_thread(_make_room_for, target)
            await job.link.get(remote, target)

    async def _stat_time(self, job: _Job, rel: str) -> float | None:
        """When a file there last changed (whole seconds over SFTP)."""
        try:
            return await job.link.mtime(f"{job.root}/{rel}")
        except (OSError, ExecutorError):
            return None

    # -- cancelling -----------------------------------------------------------------------

    async def _send_signal(self, job: _Job) -> None:
        signal = job.signal
        if not signal or not job.root:
            return
        try:
            await job.link.run(self._signal_script(job, signal))
        except ExecutorError:
            return  # sent again when the link is back
        if job.signal == signal:
            job.signal = ""

    def _signal_script(self, job: _Job, signal: str) -> str:
        q = shlex.quote
        return f"{_HELPERS}\ncd {q(job.root)} && ccd_kill {signal} {q(job.dir)}\n"

    async def _resend_signals(self, link: Link) -> None:
        for job in list(self._jobs.values()):
            if job.link is link and job.signal and job.phase in ("running", "unknown"):
                self._spawn(self._send_signal(job))

    # -- bookkeeping ----------------------------------------------------------------------

    def _answer(self, job: _Job, obs: Observation) -> None:
        """Tell `attach` if it still waits; else the scheduler through `deliver`."""
        if job.answer is not None and not job.answer.done():
            job.answer.set_result(obs)
        else:
            self._deliver(obs)
        job.answer = None

    def _report(self, job: _Job, **fields: Any) -> None:
        launch = job.launch
        started = not fields.get("nostart")
        self._deliver(Observation(launch.run_id, launch.job.name, started=started,
                                  tstart=job.tstart if started else None, **fields))

    def _forget(self, job: _Job) -> None:
        if self._jobs.get(job.launch.key) is job:
            del self._jobs[job.launch.key]

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ssh executor for %s: %r", self.host, task.exception(),
                      exc_info=task.exception())


def _wanted(launch: Launch) -> dict[str, tuple[Path, tuple[int, int]]]:
    """The files of the working copy that the job needs there, with (size, mtime_ns)."""
    work = launch.work
    found: dict[str, Path] = {}
    script = launch.job.script
    if script and not PurePosixPath(script).is_absolute():
        found[PurePosixPath(script).as_posix()] = work / script
    for pattern in launch.inputs:
        for path in sorted(work.glob(pattern)):
            found.update(workdir.files_at(path, work))
    out = {}
    for rel, path in found.items():
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            out[rel] = (path, (st.st_size, st.st_mtime_ns))
    return out


def _poll_script(jobs: list[_Job], sample: bool = False) -> str:
    """One command for all `jobs`: the helpers, then one `ccd_poll` per ccd directory;
    `sample`: with the memory of the running ones."""
    by_root: dict[str, list[_Job]] = {}
    for job in jobs:
        by_root.setdefault(job.root, []).append(job)
    lines = [_HELPERS, "CCD_SAMPLE=1"] if sample else [_HELPERS]
    for root, group in by_root.items():
        tokens = " ".join(shlex.quote(j.dir if j.seen or j.pid is None else f"{j.dir}:{j.pid}")
                          for j in group)
        lines.append(f"if cd {shlex.quote(root)}; then ccd_poll {tokens}; else echo =; fi")
    return "\n".join(lines) + "\n"


def _parse_poll(jobs: list[_Job], out: str
                ) -> tuple[dict[int, tuple[str, int | None, int | None, str]], dict[int, int]]:
    """Per job (by id): (state, pid, exit code, more: its trace if it ended, its memory
    sample if it runs) and its log's size."""
    by_root: dict[str, list[_Job]] = {}
    for job in jobs:
        by_root.setdefault(job.root, []).append(job)
    states: dict[int, tuple[str, int | None, int | None, str]] = {}
    sizes: dict[int, int] = {}
    sections = out.split("=\n")
    for (_, group), section in zip(by_root.items(), sections, strict=False):
        head, _, tail = section.partition(".\n")
        lines = head.splitlines()
        if len(lines) != len(group):
            continue  # its directory is not there (now): ask again next tick
        for job, line in zip(group, lines, strict=True):
            parts = line.split(None, 3)
            if len(parts) >= 3:
                more = parts[3] if len(parts) == 4 else ""
                states[id(job)] = (parts[0], _int(parts[1]), _int(parts[2]), more)
        logs = {f"{j.dir}/log": j for j in group}
        for line in tail.splitlines():
            size, _, name = line.strip().partition(" ")
            owner = logs.get(name)
            if owner is not None and size.isdigit():
                sizes[id(owner)] = int(size)
    return states, sizes


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(data)


def _make_room_for(target: Path) -> None:
    """Its directory exists; a symlink in its place (a local job's) is not followed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
