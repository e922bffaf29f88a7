"""Run jobs through a batch system (Slurm): the job protocol inside a batch job.

`kind: slurm` submits, on the cluster's login node, a batch script whose one command is
ccd's job wrapper (`job.sh`), so a batch job keeps the protocol of every other job: a
status file claimed once (a requeued batch job never runs the job twice), `exit=` as the
truth for its exit code, a log with its progress. The login node is this machine when
the job's `host` is `localhost` (the files are then in the state directory, which the
compute nodes must see, as on any cluster with a shared home) and otherwise an SSH host,
reached through the SSH pool, with the files synced as for `kind: ssh` (`ssh.py`, which
this executor extends).

Watching costs the controller one `squeue` per cluster per poll, for all jobs of all
runs (jobs are named `ccd.<run>.<job>`, so one query by name finds them all, even one
submitted just before a crash), and `scontrol show job` only for a job that left the
queue without its wrapper recording an end. The same command reads the status files.
The interval adapts: 1 s while the youngest job is young, up to 30 s for long ones, and
backs off to 60 s while the controller does not answer (shown as the host's error,
failing no job). A job missing from the queue is not declared lost on one observation.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from ccd.executors import Deliver, LinkState
from ccd.executors.links import HereLink, Link
from ccd.executors.protocol import Launch, Observation
from ccd.executors.ssh import _HELPERS, WRAPPER_NAME, SshExecutor, _Job, _parse_poll

INTERVAL = (1.0, 30.0)  # seconds between queue queries: young jobs, old jobs
DOWN_INTERVAL = 60.0  # most, while the controller does not answer
MISSES = 3  # polls without a trace of a job before asking scontrol, then giving up

# Slurm's job states (squeue %T): waiting, running, and what ended it.
WAITING = frozenset(("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                     "RESV_DEL_HOLD"))
ENDED = {
    "COMPLETED": "", "FAILED": "", "CANCELLED": "cancelled in Slurm",
    "TIMEOUT": "timeout: it reached its Slurm time limit",
    "NODE_FAIL": "node failure: Slurm lost the node it ran on",
    "OUT_OF_MEMORY": "out of memory: Slurm killed it at its memory limit",
    "PREEMPTED": "preempted by Slurm", "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "Slurm's deadline passed", "SPECIAL_EXIT": "Slurm special exit",
    "REVOKED": "revoked by Slurm",
}
_OPTIONS = {"partition": "--partition", "time": "--time", "nodes": "--nodes",
            "ntasks": "--ntasks", "cpus": "--cpus-per-task", "mem": "--mem",
            "gpus": "--gpus", "gres": "--gres", "account": "--account", "qos": "--qos"}
_SCONTROL = re.compile(r"JobId=(\d+) .*?JobState=(\S+)(?: Reason=(\S+))?")


@dataclass(frozen=True, slots=True)
class Queued:
    """A job as the queue shows it."""

    state: str  # Slurm's, e.g. PENDING
    reason: str  # why it waits; "None" when it does not


def job_name(launch: Launch) -> str:
    return f"ccd.{launch.run_id}.{launch.job.name}"


def sbatch_script(launch: Launch, wrapper: str, args: list[str]) -> str:
    """The batch script: the `#SBATCH` lines of the job's own script (read from the run's
    copy), its env, then the wrapper in the foreground."""
    lines = ["#!/bin/sh"]
    if launch.job.script:
        lines += _directives(launch.work / launch.job.script)
    lines += [f"export {name}={shlex.quote(value)}" for name, value in launch.job.env]
    lines.append(" ".join(["exec sh", shlex.quote(wrapper), *map(shlex.quote, args)]))
    return "\n".join(lines) + "\n"


def _directives(script: object) -> list[str]:
    """The `#SBATCH` lines at the top of a script (before its first command)."""
    try:
        with open(str(script), encoding="utf-8", errors="replace") as f:
            head = f.read(65536).splitlines()
    except OSError:
        return []
    out = []
    for line in head[1:] if head and head[0].startswith("#!") else head:
        stripped = line.strip()
        if stripped.startswith("#SBATCH"):
            out.append(stripped)
        elif stripped and not stripped.startswith("#"):
            break
    return out


def sbatch_options(launch: Launch, job_dir: str, work: str) -> list[str]:
    """sbatch's options: the name ccd finds it by, where Slurm's own output goes (the job's
    output is the wrapper's log), the node's directives, then its verbatim `sbatch:`."""
    options = [f"--job-name={job_name(launch)}", f"--output={job_dir}/batch.out",
               f"--chdir={work}", "--parsable"]
    options += [f"{_OPTIONS[field]}={value}" for field, value in launch.job.batch]
    return [*options, *launch.job.batch_options]


def parse_queue(text: str) -> dict[str, Queued]:
    """`squeue -h -o '%i|%T|%r'` and `scontrol -o show job` lines, by job id."""
    out = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            out[parts[0].strip()] = Queued(parts[1].strip(), parts[2].strip())
        elif (m := _SCONTROL.match(line.strip())) is not None:
            out[m.group(1)] = Queued(m.group(2), m.group(3) or "None")
    return out


class BatchExecutor(SshExecutor):
    """Executor for `kind: slurm` jobs whose login node is `host`."""

    queues = True
    kind = "slurm"

    def __init__(self, host: str, deliver: Deliver, changed: Callable[[], None] = lambda: None,
                 tick: float = INTERVAL[0]) -> None:
        super().__init__(host, deliver, changed, tick)
        self._here: HereLink | None = None
        self._down: dict[Link, tuple[str, float]] = {}  # link -> (controller error, interval)
        self.rpcs = 0  # queue queries and job lookups sent to the controller

    def _link(self, launch: Launch) -> Link:
        if launch.job.host == "localhost" and (launch.host is None or not launch.host.hostname):
            if self._here is None:
                self._here = HereLink()
                self._links["localhost"] = self._here
            return self._here
        return super()._link(launch)

    # -- starting -------------------------------------------------------------------------

    def _start_script(self, job: _Job) -> str:
        launch, q = job.launch, shlex.quote
        d = f"{job.root}/{job.dir}"
        args = [d, launch.cwd_in(job.work), self._venv(job), launch.command(job.work)]
        body = sbatch_script(launch, f"{job.root}/{WRAPPER_NAME}", args)
        end = f"CCD_BATCH_{secrets.token_hex(8)}"  # no line of the script can be it
        options = " ".join(q(o) for o in sbatch_options(launch, d, job.work))
        return (f"d={q(d)} w={q(job.work)}\n"
                '{ [ -d "$d" ] && [ -d "$w" ]; } || mkdir -p "$d" "$w" || exit 1\n'
                f"sbatch {options} <<'{end}'\n{body}{end}\n")

    def _began(self, job: _Job, status: int, out: str, err: str) -> bool:
        """sbatch printed the job's id (`ID` or `ID;cluster`), or why it refused it."""
        self.rpcs += 1
        batch_id = out.strip().split(";")[0]
        if status != 0 or not batch_id.isdigit():
            said = " ".join(err.split())[:500] or f"exit status {status}"
            self._not_begun(job, said.replace("sbatch: error: ", ""))
            return False
        job.batch_id, job.phase, job.queued = batch_id, "running", "submitted"
        self._report(job, queued="submitted", batch_id=batch_id)
        return True

    # -- watching -------------------------------------------------------------------------

    def _interval(self, link: Link) -> float:
        down = self._down.get(link)
        if down is not None:
            return down[1]
        now = time.time()
        ages = [now - (j.tstart or now) for j in self._jobs.values() if j.link is link]
        return min(INTERVAL[1], max(INTERVAL[0], min(ages, default=0) / 10))

    def _poll_script(self, jobs: list[_Job]) -> str:
        by_root: dict[str, list[_Job]] = {}
        for job in jobs:
            by_root.setdefault(job.root, []).append(job)
        lines = [_HELPERS, "CCD_NOPID=1"]
        for root, group in by_root.items():
            tokens = " ".join(shlex.quote(j.dir) for j in group)
            lines.append(f"if cd {shlex.quote(root)}; then ccd_poll {tokens}; else echo =; fi")
        names = ",".join(sorted({job_name(j.launch) for j in jobs}))
        lines.append("echo '%queue'")
        lines.append(f"squeue -h -t all -o '%i|%j|%T|%r' --name={shlex.quote(names)} 2>&1; "
                     'echo "%rc $?"')
        for job in jobs:  # left the queue without an end: ask once (not every tick)
            if job.batch_id and job.misses == MISSES:
                lines.append(f"scontrol -o show job {job.batch_id} 2>/dev/null")
        return "\n".join(lines) + "\n"

    async def _take(self, jobs: list[_Job], out: str) -> None:
        files, _, rest = out.partition("%queue\n")
        squeue, _, lookups = rest.partition("%rc ")
        code, _, lookups = lookups.partition("\n")
        link = jobs[0].link
        self.rpcs += 1 + sum(1 for j in jobs if j.batch_id and j.misses == MISSES)
        if code.strip() != "0":  # the controller does not answer: nothing is decided
            error = " ".join(squeue.split())[:300] or "no answer"
            was = self._down.get(link)
            self._down[link] = (f"slurm controller: {error}",
                                min(DOWN_INTERVAL, was[1] * 2 if was else 2 * INTERVAL[0]))
            if was is None:
                self._changed()
            return
        if self._down.pop(link, None) is not None:
            self._changed()
        by_id: dict[str, Queued] = {}
        by_name: dict[str, str] = {}
        for line in squeue.splitlines():
            parts = line.split("|")
            if len(parts) == 4 and parts[0].isdigit():
                by_id[parts[0]] = Queued(parts[2], parts[3])
                by_name.setdefault(parts[1], parts[0])  # the newest is listed first
        by_id |= parse_queue(lookups)
        states, sizes = _parse_poll(jobs, files)
        grown = []
        for job in jobs:
            if job.batch_id is None:  # after a restart, before its id was recorded
                job.batch_id = job.launch.batch_id or by_name.get(job_name(job.launch))
            said = states.get(id(job), ("n", None, None))
            queued = by_id.get(job.batch_id or "")
            if said[0] == "e":
                if queued is not None and ENDED.get(queued.state):
                    job.note = ENDED[queued.state]
                job.phase = "ending"
                self._spawn(self._finish(job, said[2], lost=False, size=sizes.get(id(job), 0)))
            elif queued is not None and queued.state in WAITING:
                job.misses = 0
                self._tell(job, queued=_reason(queued))
            elif said[0] in ("r", "s") or (queued is not None and queued.state not in ENDED):
                job.misses = 0
                if job.queued is not None or job.phase == "unknown":
                    job.tstart = time.time()
                    self._tell(job, queued=None, pid=said[1])
                size = sizes.get(id(job), 0)
                if size > job.follower.offset:
                    grown.append(self._pull(job, size))
            else:  # ended in Slurm without an exit line, or not in the queue at all
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
        """It left the queue and its wrapper recorded no end: why, as Slurm says."""
        self._forget(job)
        if queued is None and not job.seen and job.phase == "unknown":
            # Never submitted, or long gone without running: its start is the scheduler's.
            self._answer(job, Observation(job.launch.run_id, job.launch.job.name))
            return
        why = ENDED.get(queued.state, queued.state.lower()) if queued else \
            "lost: Slurm no longer knows it and its wrapper recorded no end"
        self._answer(job, Observation(job.launch.run_id, job.launch.job.name, True, None,
                                      True, None, job.tstart, time.time(),
                                      message=why or "ended in Slurm without its wrapper "
                                      "recording an exit status", batch_id=job.batch_id))

    # -- cancelling -----------------------------------------------------------------------

    def _signal_script(self, job: _Job, signal: str) -> str:
        self.rpcs += 1
        if not job.batch_id:
            return super()._signal_script(job, signal)
        return f"scancel {'--signal=KILL --full ' if signal == 'KILL' else ''}{job.batch_id}\n"

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "rpcs": self.rpcs}

    def _link_state(self, link: Link) -> LinkState:
        """The login node's link, as down while its controller does not answer."""
        state = super()._link_state(link)
        down = self._down.get(link)
        return dataclasses.replace(state, kind=self.kind, connected=state.connected and not down,
                                   error=down[0] if down else state.error)


def _reason(q: Queued) -> str:
    """What the table shows for a waiting job: Slurm's reason, e.g. `queued: Resources`."""
    reason = q.reason if q.reason and q.reason != "None" else q.state.lower()
    return f"{reason}" if q.state == "PENDING" else f"{q.state.lower()}: {reason}"
