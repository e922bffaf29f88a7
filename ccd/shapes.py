"""The API's shapes, declared once: every request and response body as a msgspec Struct.

The handlers encode these, `ccctl` decodes them, and the OpenAPI document's schemas are
generated from them (`openapi.py`), so the three cannot drift apart. Events are
`model.Event` itself. Names, states and colours come from where they are defined (the
spec's name pattern, `model`, `palette`) and reach the page through `Meta`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct

from ccd import model
from ccd.executors import LinkState
from ccd.model import (
    KINDS,
    RUNNABLE_KINDS,
    SAFE_NAME,
    Event,
    JobState,
    JobStatus,
    RunState,
    Trace,
)
from ccd.palette import LOOKS

Name = Annotated[str, msgspec.Meta(pattern=f"^{SAFE_NAME.pattern}$",
                                   description="letters, digits and . _ - + (at most 128)")]
MAX_COUNT = 2**62  # offsets, limits and event ids: what SQLite's integers hold
Seconds = Annotated[float, msgspec.Meta(description="seconds since the epoch")]
MAX_BY = 120  # characters of who cancels a run


class Error(Struct):
    """A refused request: what and where, in one line."""

    error: str


class InvalidWorkflow(Struct):
    """A workflow that does not validate: every problem as FILE:LINE:COL: message."""

    error: str
    problems: list[str]


class RunBrief(Struct):
    """A run in a list of workflows: enough to link to it."""

    run: str
    state: RunState
    created: Seconds
    t0: Seconds | None


class Workflow(Struct):
    """A stored workflow: its main YAML file, how many jobs, and (in lists) its runs."""

    name: Name
    jobs: int
    created: Seconds
    path: str
    yaml: str | None = None  # only when one workflow is asked for
    runs: int | None = None  # only in lists
    last_run: RunBrief | None = None


class Job(Struct):
    """One job of a run: what it is and where it stands."""

    name: str
    state: JobState
    progress: Annotated[int, msgspec.Meta(ge=0, le=100)]
    host: str
    kind: str
    label: str | None
    pid: int | None
    exit_code: int | None
    tstart: Seconds | None
    tend: Seconds | None
    modified: Seconds | None
    attempt: Annotated[int, msgspec.Meta(ge=0, description="1 from its first start")]
    message: str  # why it failed, was skipped or cancelled; while queued, the queue's reason
    outputs: list[str]  # its `outputs:` globs
    batch_id: str | None = None  # its job id in a batch system (Slurm, LSF)
    trace: Trace | None = None  # what its last attempt used, once it ended

    @classmethod
    def of(cls, s: JobStatus, run: model.Run) -> Job:
        job = run.spec.jobs[s.name]
        return cls(s.name, s.state, s.progress, s.host, job.kind, job.label, s.pid, s.exit_code,
                   s.tstart, s.tend, s.modified, s.attempt, s.message, list(job.outputs),
                   s.batch_id, s.trace)


class Run(Struct):
    """A run: its state, times and reason, its jobs (unless listed among many)."""

    run: str
    workflow: str
    state: RunState
    created: Seconds
    t0: Seconds | None
    t1: Seconds | None
    message: str  # why it failed or was cancelled
    run_dir: str  # its directory on the daemon's machine (working copy in work/)
    counts: dict[str, int]  # jobs per state
    colors: dict[str, str] | None = None  # the workflow's own state colours (`colors:`)
    jobs: list[Job] | None = None
    driven_here: bool | None = None  # in lists: does this daemon drive it?
    resumed: bool | None = None  # `ccctl run`: was an unfinished run resumed?

    @classmethod
    def of(cls, run: model.Run, jobs: bool = True, resumed: bool | None = None) -> Run:
        counts: dict[str, int] = {}
        for s in run.jobs.values():
            counts[s.state.value] = counts.get(s.state.value, 0) + 1
        return cls(run.id, run.spec.name, run.state, run.created, run.t0, run.t1, run.message,
                   str(run.run_dir), counts, run.spec.colors,
                   [Job.of(s, run) for s in run.jobs.values()] if jobs else None,
                   resumed=resumed)


class Result(Struct):
    """One output file of a job, in the run's working copy."""

    job: str
    path: str
    size: int


class CancelRun(Struct, forbid_unknown_fields=True):
    """Who cancels, in a few words, for the messages only (`cancelled by <by>`): ccctl sends
    `ccctl (user@host)`, the page `the page`. Without it: `cancelled through the API`."""

    by: Annotated[str, msgspec.Meta(
        min_length=1, max_length=MAX_BY, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$",
        description="who cancels, shown as `cancelled by <by>`; no control characters")
    ] | None = None


class StartRun(Struct, forbid_unknown_fields=True):
    """Which stored workflow to run; with `resume`, carry on from an ended run of it: its
    done jobs that did not change are kept, the others run (each job's message says why)."""

    workflow: Name
    resume: Annotated[str, msgspec.Meta(
        pattern=f"^({SAFE_NAME.pattern})?$",
        description="an ended run of the workflow; empty: its newest ended run")] | None = None


class JobFields(Struct, forbid_unknown_fields=True):
    """A job's fields as in the YAML (RESTWorkflow.add_job)."""

    script: str | None = None
    exec: str | None = None
    kind: str | None = None
    host: str | None = None
    user: str | None = None
    label: str | None = None
    venv: str | None = None
    shape: str | None = None
    style: str | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    retries: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    outputs: list[str] | None = None


class Segment(Struct):
    """One stretch of a job on the timeline: an attempt waiting in a batch queue (`queued`)
    or running (`running`), from `start` to `end` (None while it lasts); `state` is how it
    ended (a retried attempt: failed, or done before a `repeat`), or `queued`/`running`."""

    job: str
    attempt: int
    phase: Literal["queued", "running"]
    start: Seconds
    end: Seconds | None
    state: JobState


class Timeline(Struct):
    """A run's segments, oldest first, folded from its journal up to `last_event` (the page
    folds the events after it as they come, the same way: web/timeline.js)."""

    last_event: int
    segments: list[Segment]


class LoginLink(Struct):
    """Open http://HOST:PORT + path once in a browser."""

    path: str


class Health(Struct):
    """Liveness and the daemon's own counters, to diagnose a slow or stuck run."""

    status: str
    pid: int
    url: str | None
    uptime: float
    state_dir: str
    active_runs: int
    event_subscribers: int
    events_published: int
    last_event_id: int
    hosts: dict[str, Any]  # jobs per host, executors and their counters
    problems: list[str]  # what keeps runs from going on now (a full disk), in words


HostState = Literal["connected", "connecting", "unreachable"]


class Host(Struct):
    """How the daemon reaches one remote host now (`executors.LinkState`), with its state in
    one word: `connected`; `unreachable` when the last attempt failed or the connection was
    lost (`error` says why; it is tried again with backoff); `connecting` before the first
    attempt has ended."""

    kind: str
    host: str  # as the workflows name it
    address: str  # where it connects: user@hostname:port
    state: HostState
    connected: bool
    since: Seconds  # when it last connected or was lost
    error: str  # why it is not connected ("" when it is)
    rtt: Annotated[float | None, msgspec.Meta(description="seconds a command takes, smoothed")]
    channels: int  # in use now
    channel_limit: int
    jobs: int  # watched now
    connections: int  # opened by this daemon
    commands: int  # run by this daemon
    rpcs: int  # calls to a batch system's controller: queries, lookups, submissions, cancels

    @classmethod
    def of(cls, link: LinkState) -> Host:
        state: HostState = ("connected" if link.connected
                             else "unreachable" if link.error else "connecting")
        return cls(link.kind, link.host, link.address, state, link.connected, link.since,
                   link.error, link.rtt, link.channels, link.channel_limit, link.jobs,
                   link.connections, link.commands, link.rpcs)


class StateLook(Struct):
    """A state and how it looks (ccd/palette.py)."""

    name: JobState
    final: bool
    fill: str
    line: str
    ink: str
    bar: str


class Meta(Struct):
    """What the page needs to know once: the states and their colours, the kinds, the name
    rule."""

    states: list[StateLook]
    run_states: list[RunState]
    kinds: list[str]
    runnable_kinds: list[str]
    name_pattern: str


def meta() -> Meta:
    """The one Meta: it never changes while the daemon runs."""
    return Meta([StateLook(s, s.final, look.fill, look.line, look.ink, look.bar)
                 for s, look in LOOKS.items()], list(RunState), list(KINDS),
                list(RUNNABLE_KINDS), SAFE_NAME.pattern)


# Every shape the OpenAPI document declares; it names each after its class.
SCHEMAS: tuple[type, ...] = (Error, InvalidWorkflow, Workflow, Run, Job, Event, Result,
                             StartRun, CancelRun, JobFields, Segment, Timeline, LoginLink,
                             Health, Host, Meta)
