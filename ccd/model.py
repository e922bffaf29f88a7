"""The data of ccd: job and run states, the parsed workflow, job status, events.

Everything here is plain frozen data; no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class JobState(enum.StrEnum):
    """Where a job is in its life. The first four are the paper's."""

    READY = "ready"  # waiting for its dependencies or a free slot
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # an ancestor failed or was cancelled
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self is not JobState.READY and self is not JobState.RUNNING


class RunState(enum.StrEnum):
    """Where a run is: running until every job is final."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self is not RunState.RUNNING


KINDS = ("local", "ssh", "slurm", "lsf", "wsl")
RUNNABLE_KINDS = ("local",)  # the kinds with an executor; SSH and Slurm will add themselves


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
    outputs: tuple[str, ...] = ()  # glob patterns of the files it makes, in the run's working copy

    @property
    def is_join(self) -> bool:
        """A node without script or exec (start/end) only joins its dependencies."""
        return self.script is None and self.exec is None


@dataclass(frozen=True, slots=True)
class HostSpec:
    """An entry of the optional `hosts:` inventory."""

    name: str
    max_jobs: int | None = None


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A validated workflow: jobs in file order and the edges between them."""

    name: str
    source: Path  # the workflow file, absolute
    jobs: dict[str, JobSpec]
    edges: tuple[tuple[str, str], ...]
    colors: dict[str, str] = field(default_factory=dict)  # state -> colour
    hosts: dict[str, HostSpec] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # paths or globs beside the workflow file that go with it

    @property
    def base_dir(self) -> Path:
        """Scripts and relative paths are resolved against the workflow file's directory."""
        return self.source.parent


@dataclass(slots=True)
class JobStatus:
    """What is known about one job of a run right now (mutable; owned by the scheduler)."""

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


@dataclass(frozen=True, slots=True)
class Event:
    """One change of a job or of a run; `job` is None for the run itself."""

    run_id: str
    job: str | None
    state: str
    progress: int
    time: float
    exit_code: int | None = None
    pid: int | None = None
    message: str = ""


@dataclass(slots=True)
class Run:
    """One execution of a workflow: its spec, every job's status and the run's own times."""

    id: str
    spec: WorkflowSpec
    jobs: dict[str, JobStatus]
    job_root: Path  # <state dir>/runs/<id>: one directory per job below it
    created: float
    state: RunState = RunState.RUNNING
    t0: float | None = None
    t1: float | None = None
    message: str = ""
