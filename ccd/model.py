"""The data of ccd: job and run states, the parsed workflow, job status, events.

Everything here is plain data and one pure function, `apply`, that changes a run by an
event; no I/O. Events are msgspec Structs because they also cross the wire (the journal,
the event streams, `ccctl`) in exactly this shape.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec


class JobState(enum.StrEnum):
    """Where a job is in its life. The first four are the paper's."""

    READY = "ready"  # waiting for its dependencies or a free slot
    QUEUED = "queued"  # submitted to a batch system, waiting in its queue
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # will never run: see its message (a parent, its trigger)
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        # By identity: `in` on a tuple of enum members compares with __eq__ (~14 calls a job)
        return self is not JobState.READY and self is not JobState.QUEUED \
            and self is not JobState.RUNNING

    @property
    def started(self) -> bool:
        """Handed to an executor and not ended: queued or running."""
        return self is JobState.QUEUED or self is JobState.RUNNING


class RunState(enum.StrEnum):
    """Where a run is: running until every job is final."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self is not RunState.RUNNING


class Trigger(enum.StrEnum):
    """When a job may run, given how its parents ended (a node's `trigger:`)."""

    ALL_SUCCESS = "all_success"  # every parent done (the default)
    ALL_DONE = "all_done"  # every parent final, however it ended: clean-up
    ANY_FAILED = "any_failed"  # every parent final and one failed: notification
    ONE_SUCCESS = "one_success"  # as soon as one parent is done


KINDS = ("local", "ssh", "slurm", "lsf", "wsl")
BATCH_KINDS = ("slurm", "lsf")
# A batch job's directives, as node fields (what sbatch and bsub options they become is the
# batch executor's business).
BATCH_FIELDS = ("partition", "time", "nodes", "ntasks", "cpus", "mem", "gpus", "gres",
                "account", "qos")
# Names of workflows and jobs: safe as file names, everywhere (the spec, the API, the page).
# The escaped dash keeps it valid in JSON Schema and in an HTML `pattern` (the v flag).
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,127}")
RUNNABLE_KINDS = ("local", "ssh", "slurm", "lsf", "wsl")  # the kinds with an executor
Param = str | int | float | bool | None  # a notebook parameter's value, typed as YAML reads it


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One node of a workflow as the user wrote it (the paper's Table 2 plus extensions)."""

    name: str
    kind: str = "local"
    user: str | None = None
    host: str = "localhost"
    label: str | None = None
    script: str | None = None  # as written; resolved against WorkflowSpec.base_dir
    exec: str | None = None
    venv: str | None = None
    shape: str | None = None
    style: str | None = None
    status: str | None = None  # the paper's initial status field; informational
    progress: int = 0
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    timeout: float | None = None  # seconds
    retries: int = 0  # attempts after a failure (a timeout counts as one)
    outputs: tuple[str, ...] = ()  # globs in the run's working copy: the job's results
    batch: tuple[tuple[str, str], ...] = ()  # batch directives (BATCH_FIELDS) as written
    batch_options: tuple[str, ...] = ()  # more options for sbatch / bsub, verbatim
    parameters: tuple[tuple[str, Param], ...] = ()  # a notebook's, injected by papermill
    trigger: Trigger = Trigger.ALL_SUCCESS
    when: str | None = None  # a condition (ccd.conditions), checked once it may start
    repeat_until: str | None = None  # run again after it ends done until this holds,
    repeat_max: int = 0  # at most this many times in all
    params: tuple[tuple[str, str], ...] = ()  # a sweep instance's parameters and values
    fingerprint: str | None = None  # as saved with its state (ccd.reuse): may keep it done

    @property
    def is_join(self) -> bool:
        """A node without script or exec (start/end) only joins its dependencies."""
        return self.script is None and self.exec is None

    @property
    def notebook_output(self) -> str | None:
        """Where a notebook job's executed notebook goes in the run's working copy."""
        if self.script is None or not self.script.endswith(".ipynb"):
            return None
        return f"{self.name}-output.ipynb"

    @property
    def results(self) -> tuple[str, ...]:
        """The globs of the job's results: its `outputs:`, and its executed notebook."""
        output = self.notebook_output
        return self.outputs if output is None else (*self.outputs, output)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """An entry of the optional `hosts:` inventory: how to reach a host and how much it may
    run. What is not given comes from the user's `~/.ssh/config`, as OpenSSH reads it."""

    name: str
    max_jobs: int | None = None
    hostname: str | None = None  # to connect to; default: the entry's name (an ssh alias)
    port: int | None = None
    user: str | None = None  # a job's own `user:` wins
    identity: str | None = None  # a private key file, absolute or ~/...
    known_hosts: str | None = None  # a known_hosts file, absolute or ~/...
    workdir: str | None = None  # ccd's directory on the host; default .ccd in the home
    max_sessions: int | None = None  # the server's MaxSessions; default 10 (OpenSSH's)
    poll: float | None = None  # batch systems: the most seconds between two queue queries


NOTIFIERS = ("command", "desktop", "webhook", "apprise")  # the kinds of a `notify:` entry


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """An entry of `notify:` (a workflow's, or the settings'): whom to tell that a run
    ended, and for which of its ends."""

    kind: str  # one of NOTIFIERS
    # command: its arguments, with `{name}` placeholders (ccd.notify); webhook, apprise: the
    # URL alone; desktop: nothing
    target: tuple[str, ...] = ()
    on: tuple[RunState, ...] = (RunState.DONE, RunState.FAILED, RunState.CANCELLED)
    timeout: float = 10.0  # seconds; then it is given up (a command is killed)


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A validated workflow: jobs in file order and the edges between them."""

    name: str
    source: Path  # the workflow file, absolute
    jobs: dict[str, JobSpec]
    edges: tuple[tuple[str, str], ...]
    colors: dict[str, str] = field(default_factory=dict)  # state -> colour
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # more files of the workflow (globs), copied for each run
    # Nodes with a matrix -> their number of instances (which are in `jobs`, see sweeps).
    sweeps: dict[str, int] = field(default_factory=dict)
    notify: tuple[NotifySpec, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Scripts and relative paths are resolved against the workflow file's directory."""
        return self.source.parent


class Trace(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt of a job used, as its host measured it (ccd/executors/trace.py says
    how on each kind of host); a figure is null where that host does not offer it."""

    cpu_user: Annotated[float | None, msgspec.Meta(
        description="seconds of CPU in user mode, the job's processes together")] = None
    cpu_system: Annotated[float | None, msgspec.Meta(
        description="seconds of CPU in the kernel on their behalf")] = None
    peak_rss: Annotated[int | None, msgspec.Meta(
        description="bytes: the high-water mark of the resident memory of its largest "
                    "process (not the sum of its processes)")] = None
    rss_sampled: Annotated[bool, msgspec.Meta(
        description="peak_rss is the most seen while sampling every second (a lower bound), "
                    "not the kernel's figure at the job's end")] = False
    bytes_read: Annotated[int | None, msgspec.Meta(
        description="bytes its processes read by system calls (files, pipes, sockets; "
                    "cached or not: /proc's rchar)")] = None
    bytes_written: Annotated[int | None, msgspec.Meta(
        description="bytes its processes wrote by system calls (/proc's wchar)")] = None


@dataclass(slots=True)
class JobStatus:
    """What is known about one job of a run right now (mutable; changed only by `apply`)."""

    name: str
    state: JobState = JobState.READY
    progress: int = 0
    host: str = "localhost"
    pid: int | None = None
    exit_code: int | None = None
    tstart: float | None = None  # epoch seconds
    tend: float | None = None
    modified: float | None = None
    message: str = ""  # why a job failed, was skipped or cancelled
    attempt: int = 0  # 1 from its first start; more after `retries`
    batch_id: str | None = None  # its job id in a batch system (Slurm, LSF)
    trace: Trace | None = None  # what its last attempt used, once it ended


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A job's or a run's new state, every field of it, so that applying it is assignment.

    `job` is None for the run itself; then `tstart`/`tend` are the run's t0/t1 and
    `progress` the share of done jobs. `id` is the journal's (0 until journaled): the SSE id.
    """

    id: int = 0
    run_id: str = msgspec.field(name="run")
    job: str | None
    state: JobState  # a job's; for a run: running, done, failed or cancelled
    progress: int
    time: float  # when it changed
    tstart: float | None = None
    tend: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    attempt: int = 0
    message: str = ""
    batch_id: str | None = None
    trace: Trace | None = None


@dataclass(slots=True)
class Run:
    """One execution of a workflow: its spec, every job's status and the run's own times."""

    id: str
    spec: WorkflowSpec
    jobs: dict[str, JobStatus]
    run_dir: Path  # <state dir>/runs/<id>: the spec as submitted, the working copy, local jobs
    created: float
    state: RunState = RunState.RUNNING
    t0: float | None = None
    t1: float | None = None
    message: str = ""
    workdir: Path | None = None  # where its jobs run; None: run_dir/work (runs before 0.2: the
    #                              workflow's own directory, kept by the store's migration)
    prints: dict[str, str] = field(default_factory=dict)  # job -> fingerprint (ccd.reuse)

    @property
    def work(self) -> Path:
        """The run's working copy: scripts and relative paths resolve here."""
        return self.workdir or self.run_dir / "work"


def apply(run: Run, e: Event) -> None:
    """Change a run by one of its events: the one way a run's state changes, used by the
    scheduler, the store's tests and `ccctl`."""
    if e.job is None:
        run.state = RunState(e.state)
        run.t0, run.t1, run.message = e.tstart, e.tend, e.message
        return
    s = run.jobs[e.job]
    s.state = JobState(e.state)
    s.progress, s.tstart, s.tend, s.exit_code = e.progress, e.tstart, e.tend, e.exit_code
    s.pid, s.attempt, s.message, s.modified = e.pid, e.attempt, e.message, e.time
    s.batch_id, s.trace = e.batch_id, e.trace


def job_event(run_id: str, s: JobStatus) -> Event:
    """The event that says a job is now as `s` says."""
    return Event(run_id=run_id, job=s.name, state=s.state, progress=s.progress,
                 time=s.modified or 0.0, tstart=s.tstart, tend=s.tend, exit_code=s.exit_code,
                 pid=s.pid, attempt=s.attempt, message=s.message, batch_id=s.batch_id,
                 trace=s.trace)
