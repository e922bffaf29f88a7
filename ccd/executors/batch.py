"""Run jobs through a batch system: the job protocol inside a batch job.

A batch job (`kind: slurm` or `kind: lsf`; the dialects: `slurm.py`, `lsf.py`) is
submitted, on the cluster's login node, as a batch script whose one command is ccd's job
wrapper (`job.sh`), so a batch job keeps the protocol of every other job: a
status file claimed once (a requeued batch job never runs the job twice), `exit=` as the
truth for its exit code, a log with its progress. The login node is this machine when
the job's `host` is `localhost` (the files are then in the state directory, which the
compute nodes must see, as on any cluster with a shared home) and otherwise an SSH host,
reached through the SSH pool, with the files synced as for `kind: ssh` (`ssh.py`, which
this executor extends).

Watching costs the controller one queue query (`squeue`, `bjobs`) per cluster per poll,
for all jobs of all runs (jobs are named `ccd.<run>.<job>`, so one query by name finds them
all, even one submitted just before a crash), and one lookup (`scontrol show job`, `bjobs
ID`) only for a job that left the queue without its wrapper recording an end. The same
command reads the status files. The interval adapts: 1 s just after a job there was
submitted or started, then a tenth of the time since, up to 30 s. While the controller
does not answer (the host's error; no job fails), the status files are still read every
poll (a job that ends is seen), but the controller is asked again only after a rest that
doubles up to 60 s. A job missing from the queue is not declared lost on one observation.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ccd.errors import ExecutorError, HostBusy
from ccd.executors import Deliver, LinkState
from ccd.executors.links import HereLink, Link
from ccd.executors.protocol import Launch, Observation
from ccd.executors.ssh import _HELPERS, WRAPPER_NAME, SshExecutor, _Job, _parse_poll

INTERVAL = (1.0, 30.0)  # seconds between queue queries: young jobs, old jobs
DOWN_INTERVAL = 60.0  # most, while the controller does not answer
MISSES = 3  # polls without a trace of a job before asking about it alone, then giving up


@dataclass(frozen=True, slots=True)
class Queued:
    """A job as the queue shows it."""

    state: str  # the batch system's word, e.g. PENDING
    reason: str  # why it waits; "" when it does not


class Dialect(Protocol):
    """What differs between batch systems: how to submit, query, look up and cancel, and
    what their states mean. Commands are `sh` text run on the login node."""

    @property
    def kind(self) -> str:
        """The node kind: slurm, lsf."""

    @property
    def waiting(self) -> frozenset[str]:
        """The states of a job still waiting in the queue."""

    @property
    def ended(self) -> Mapping[str, str]:
        """The states of a job that left the queue, and what to say if it failed."""

    def submit(self, launch: Launch, job_dir: str, work: str, body: str) -> str:
        """Submit `body` (a batch script) so that the job's id is printed."""

    def submitted(self, status: int, out: str, err: str) -> str | None:
        """The new job's id from what `submit` printed, or None."""

    def error(self, err: str) -> str:
        """A refused submission's message, as the user should read it."""

    def query(self, names: list[str]) -> str:
        """Print every job with one of `names` (and only those), recently ended ones too;
        one call to the controller."""

    def parse(self, out: str) -> tuple[dict[str, Queued], dict[str, str]]:
        """What `query` or `lookup` printed: jobs by id, and ids by job name."""

    def lookup(self, batch_id: str) -> str:
        """Print what the controller still knows of a job that left the queue."""

    def cancel(self, batch_id: str, force: bool) -> str: ...

    def submit_array(self, launch: Launch, out_dir: str, work: str, body: str, tasks: int,
                     throttle: int | None) -> str | None:
        """Submit `body` as a job array of `tasks` tasks (at most `throttle` at once) so
        that its id is printed; None if this batch system's arrays are not used."""

    def directives(self, script_head: list[str]) -> list[str]:
        """The batch system's own lines at the top of a job's script, kept in the batch
        script ccd submits."""


def job_name(launch: Launch, batch_id: str | None = None) -> str:
    """The batch job's name: `ccd.<run>.<job>`; a task of a job array is named after its
    sweep's node (`ccd.<run>.<node>`), as the array is."""
    if batch_id is not None and "_" in batch_id:
        return f"ccd.{launch.run_id}.{sweep_node(launch)}"
    return f"ccd.{launch.run_id}.{launch.job.name}"


def sweep_node(launch: Launch) -> str:
    """The sweep node a job is an instance of (its name without `.param-value`s)."""
    job = launch.job
    suffix = "".join(f".{p}-{v}" for p, v in job.params)
    return job.name[:-len(suffix)] if suffix and job.name.endswith(suffix) else job.name


def batch_script(dialect: Dialect, launch: Launch, wrapper: str, args: list[str]) -> str:
    """The batch script: the directives of the job's own script (read from the run's copy),
    its env, then the wrapper in the foreground."""
    lines = ["#!/bin/sh"]
    if launch.job.script:
        lines += dialect.directives(_head(launch.work / launch.job.script))
    lines += [f"export {name}={shlex.quote(value)}" for name, value in launch.job.env]
    lines.append(" ".join(["exec sh", shlex.quote(wrapper), *map(shlex.quote, args)]))
    return "\n".join(lines) + "\n"


def _head(script: Path) -> list[str]:
    """A script's lines before its first command (its shebang left out)."""
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            lines = f.read(65536).splitlines()
    except OSError:
        return []
    out = []
    for line in lines[1:] if lines and lines[0].startswith("#!") else lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        out.append(stripped)
    return out


class BatchExecutor(SshExecutor):
    """Executor for batch jobs (`dialect.kind`) whose login node is `host`."""

    queues = True

    def __init__(self, host: str, dialect: Dialect, deliver: Deliver,
                 changed: Callable[[], None] = lambda: None, tick: float = INTERVAL[0]) -> None:
        super().__init__(host, deliver, changed, tick)
        self.dialect = dialect
        self._here: HereLink | None = None
        # link -> (the controller's error, seconds between queries, no query before)
        self._down: dict[Link, tuple[str, float, float]] = {}
        self._arrays: dict[tuple[object, ...], list[_Job]] = {}  # sweep instances to submit
        self.rpcs = 0  # queue queries and job lookups sent to the controller

    def _link(self, launch: Launch) -> Link:
        if launch.job.host == "localhost" and (launch.host is None or not launch.host.hostname):
            if self._here is None:
                self._here = HereLink()
                self._links["localhost"] = self._here
            return self._here
        return super()._link(launch)

    # -- starting -------------------------------------------------------------------------

    async def start(self, launch: Launch) -> int | None:
        """A sweep's instances that start together, with the same directives, go as one
        job array (one submission); any other job as its own batch job."""
        if not launch.job.params or launch.batch_id:
            return await super().start(launch)
        job = self._jobs.get(launch.key)
        if job is not None and job.phase in ("starting", "running"):
            return job.pid
        job = self._jobs[launch.key] = _Job(launch, self._link(launch), launch.here,
                                            "starting", tstart=time.time())
        key = (launch.run_id, sweep_node(launch), id(job.link), launch.job.batch,
               launch.job.batch_options, launch.job.script)
        group = self._arrays.setdefault(key, [])
        group.append(job)
        if len(group) == 1:  # the scheduler starts every ready job before this task runs
            self._spawn(self._start_array(key))
        return None

    async def _start_array(self, key: tuple[object, ...]) -> None:
        jobs = self._arrays.pop(key)
        first = jobs[0]
        if len(jobs) == 1:
            await self._start(first)
            return
        try:
            for job in jobs:
                await self._get_ready(job)
            script = self._array_script(jobs)
            status, out, err = (0, "", "") if script is None else \
                await first.link.run(script)
        except HostBusy as e:
            for job in jobs:
                self._forget(job)
                self._report(job, nostart=str(e))
            return
        except ExecutorError as e:
            for job in jobs:
                self._forget(job)
                self._report(job, ended=True, exit_code=None, tend=time.time(),
                             message=str(e))
            return
        if script is None:  # no arrays here: one submission each
            for job in jobs:
                self._spawn(self._start(job))
            return
        self.rpcs += 1
        array_id = self.dialect.submitted(status, out, err)
        if array_id is None:
            said = self.dialect.error(err)[:500] or f"exit status {status}"
            for job in jobs:
                self._not_begun(job, said)
            return
        for i, job in enumerate(jobs):
            job.batch_id, job.phase, job.queued = f"{array_id}_{i}", "running", "submitted"
            self._report(job, queued="submitted", batch_id=job.batch_id)
            if job.signal:
                self._spawn(self._send_signal(job))
        self._poll_on(first.link)

    def _array_script(self, jobs: list[_Job]) -> str | None:
        """The submission of `jobs` as one array: task i runs the wrapper for jobs[i]."""
        first, q = jobs[0], shlex.quote
        wrapper = f"{first.root}/{WRAPPER_NAME}"
        cases = []
        for i, job in enumerate(jobs):
            launch, d = job.launch, f"{job.root}/{job.dir}"
            args = [d, launch.cwd_in(job.work), self._venv(job), launch.command(job.work)]
            exports = "".join(f"export {n}={q(v)}; " for n, v in launch.job.env)
            cases.append(f"{i}) {exports}exec sh {q(wrapper)} {' '.join(map(q, args))} ;;")
        head = batch_script(self.dialect, first.launch, wrapper, []).splitlines()[:-1]
        head = [line for line in head if not line.startswith("export ")]  # per task below
        body = "\n".join([*head, 'case "$SLURM_ARRAY_TASK_ID" in', *cases,
                          "*) exit 64 ;;", "esac"]) + "\n"
        host = first.launch.host
        submit = self.dialect.submit_array(
            first.launch, f"{first.root}/runs/{first.launch.run_id}/jobs", first.work, body,
            len(jobs), host.max_jobs if host else None)
        if submit is None:
            return None
        dirs = " ".join(q(f"{j.root}/{j.dir}") for j in jobs)
        return f"mkdir -p {dirs} {q(first.work)} || exit 1\n{submit}"

    def _start_script(self, job: _Job) -> str:
        launch, q = job.launch, shlex.quote
        d = f"{job.root}/{job.dir}"
        args = [d, launch.cwd_in(job.work), self._venv(job), launch.command(job.work)]
        body = batch_script(self.dialect, launch, f"{job.root}/{WRAPPER_NAME}", args)
        return (f"d={q(d)} w={q(job.work)}\n"
                '{ [ -d "$d" ] && [ -d "$w" ]; } || mkdir -p "$d" "$w" || exit 1\n'
                + self.dialect.submit(launch, d, job.work, body))

    def _began(self, job: _Job, status: int, out: str, err: str) -> bool:
        """The submission printed the job's id, or why it was refused."""
        self.rpcs += 1
        batch_id = self.dialect.submitted(status, out, err)
        if batch_id is None:
            self._not_begun(job, self.dialect.error(err)[:500] or f"exit status {status}")
            return False
        job.batch_id, job.phase, job.queued = batch_id, "running", "submitted"
        self._report(job, queued="submitted", batch_id=batch_id)
        return True

    # -- watching -------------------------------------------------------------------------

    def _interval(self, link: Link) -> float:
        """A tenth of the time since the latest change seen of any job there (submitted,
        started), from 1 s to 30 s (or the host's `poll`): a job that starts after a long
        wait in the queue is watched closely again."""
        now = time.time()
        jobs = [j for j in self._jobs.values() if j.link is link]
        most = next((j.launch.host.poll for j in jobs if j.launch.host and j.launch.host.poll),
                    INTERVAL[1])
        youngest = min((now - (j.changed or j.tstart or now) for j in jobs), default=0.0)
        return min(most, max(INTERVAL[0], youngest / 10))

    def _poll_script(self, jobs: list[_Job]) -> str:
        by_root: dict[str, list[_Job]] = {}
        for job in jobs:
            by_root.setdefault(job.root, []).append(job)
        lines = [_HELPERS, "CCD_NOPID=1"]
        for root, group in by_root.items():
            tokens = " ".join(shlex.quote(j.dir) for j in group)
            lines.append(f"if cd {shlex.quote(root)}; then ccd_poll {tokens}; else echo =; fi")
        down = self._down.get(jobs[0].link)
        if down is not None and time.monotonic() < down[2]:
            return "\n".join(lines) + "\n"  # the status files only: the controller rests
        lines.append("echo '%queue'")
        names = sorted({job_name(j.launch, j.batch_id or j.launch.batch_id) for j in jobs})
        lines.append(self.dialect.query(names) + ' 2>&1; echo "%rc $?"')
        for job in jobs:  # left the queue without an end: ask once (not every tick)
            if job.batch_id and job.misses == MISSES:
                lines.append(self.dialect.lookup(job.batch_id) + " 2>/dev/null")
        return "\n".join(lines) + "\n"

    async def _take(self, jobs: list[_Job], out: str) -> None:
        files, asked, rest = out.partition("%queue\n")
        queue, _, lookups = rest.partition("%rc ")
        code, _, lookups = lookups.partition("\n")
        link = jobs[0].link
        states, sizes = _parse_poll(jobs, files)
        if asked:
            self.rpcs += 1 + sum(1 for j in jobs if j.batch_id and j.misses == MISSES)
        if asked and code.strip() != "0":  # the controller does not answer
            error = " ".join(queue.split())[:300] or "no answer"
            was = self._down.get(link)
            rest_for = min(DOWN_INTERVAL, was[1] * 2 if was else 2 * INTERVAL[0])
            self._down[link] = (f"{self.dialect.kind} controller: {error}", rest_for,
                                time.monotonic() + rest_for)
            if was is None:
                self._changed()
        if not asked or code.strip() != "0":  # nothing decided but what status files say
            for job in jobs:
                said = states.get(id(job), ("n", None, None, ""))
                if said[0] == "e":
                    job.phase = "ending"
                    self._spawn(self._finish(job, said[2], False, sizes.get(id(job), 0),
                                             said[3]))
            return
        if self._down.pop(link, None) is not None:
            self._changed()
        by_id, by_name = self.dialect.parse(queue)
        by_id |= self.dialect.parse(lookups)[0]
        ended, waiting = self.dialect.ended, self.dialect.waiting
        grown = []
        for job in jobs:
            if job.batch_id is None:  # after a restart, before its id was recorded
                job.batch_id = job.launch.batch_id or by_name.get(job_name(job.launch))
            said = states.get(id(job), ("n", None, None, ""))
            queued = by_id.get(job.batch_id or "")
            if said[0] == "e":
                if queued is not None and ended.get(queued.state):
                    job.note = ended[queued.state]
                job.phase = "ending"
                self._spawn(self._finish(job, said[2], lost=False, size=sizes.get(id(job), 0),
                                         used=said[3]))
            elif queued is not None and queued.state in waiting:
                job.misses = 0
                self._tell(job, queued=_reason(queued))
            elif said[0] in ("r", "s") or (queued is not None and queued.state not in ended):
                job.misses = 0
                if job.queued is not None or job.phase == "unknown":
                    job.tstart = job.changed = time.time()
                    self._tell(job, queued=None, pid=said[1])
                size = sizes.get(id(job), 0)
                if size > job.follower.offset:
                    grown.append(self._pull(job, size))
            else:  # ended in the queue without an exit line, or not in the queue at all
                job.misses += 1
                if job.misses > MISSES or (queued is not None and job.misses > 1):
                    self._gone(job, queued)
        for task in grown:
            await task

    def _tell(self, job: _Job, queued: str | None, pid: int | None = None) -> None:
        """Say it waits (with why) or runs, when that changed."""
        if job.phase != "unknown" and job.queued == queued:
            return
        job.phase, job.queued = "running", queued
        self._answer(job, Observation(job.launch.run_id, job.launch.job.name, True, pid,
                                      tstart=job.tstart, queued=queued,
                                      batch_id=job.batch_id))

    def _gone(self, job: _Job, queued: Queued | None) -> None:
        """It left the queue and its wrapper recorded no end: why, as the queue says."""
        self._forget(job)
        if queued is None and not job.seen and job.phase == "unknown":
            # Never submitted, or long gone without running: its start is the scheduler's.
            self._answer(job, Observation(job.launch.run_id, job.launch.job.name))
            return
        kind = self.dialect.kind
        why = self.dialect.ended.get(queued.state, queued.state.lower()) if queued else \
            f"lost: {kind} no longer knows it and its wrapper recorded no end"
        self._answer(job, Observation(job.launch.run_id, job.launch.job.name, True, None,
                                      True, None, job.tstart, time.time(),
                                      message=why or f"ended in {kind} without its wrapper "
                                      "recording an exit status", batch_id=job.batch_id))

    # -- cancelling -----------------------------------------------------------------------

    def _signal_script(self, job: _Job, signal: str) -> str:
        if not job.batch_id:
            return super()._signal_script(job, signal)
        self.rpcs += 1
        return self.dialect.cancel(job.batch_id, force=signal == "KILL") + "\n"

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "rpcs": self.rpcs}

    def _link_state(self, link: Link) -> LinkState:
        """The login node's link, as down while its controller does not answer."""
        state = super()._link_state(link)
        down = self._down.get(link)
        return dataclasses.replace(state, kind=self.dialect.kind,
                                   connected=state.connected and not down,
                                   error=down[0] if down else state.error, rpcs=self.rpcs)


def _reason(q: Queued) -> str:
    """What the table shows for a waiting job: the queue's reason (`Resources`), else its
    state in words."""
    return q.reason or q.state.lower()
