"""The job protocol: what ccd leaves on the host that runs a job, and how it reads it back.

Every job runs under `job.sh`, in the run's working copy, with a job directory on the host
that runs it holding `log` (stdout and stderr) and `status`. The status file is the truth:
created exclusively when the job starts (`pid=N`), completed by one `exit=N` line when it
ends, after a `trace=` record of what it used (`trace.py`). This differs from DESIGN.md's
temp-file-and-rename on purpose: a rename is a fork of `mv` per job, measured at ~0.6 ms,
most of a job's whole budget; an exclusive create plus a one-line append, read only as
complete lines, gives readers the same guarantee.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ccd import notebooks
from ccd.executors import trace
from ccd.model import HostSpec, JobSpec, Run, Trace

# Beside this file (ccd is installed as files, never run from a zip): importlib.resources
# would cost every ccctl run ~3 ms of imports (its readers and zipfile).
WRAPPER = str(Path(__file__).with_name("job.sh"))
CLAIMED_ELSEWHERE = 75  # job.sh's exit code when another wrapper already started the job
NO_ROOM = 73  # job.sh's exit code when there was no room to record the job's start


@dataclass(frozen=True, slots=True)
class Launch:
    """One job of one run, as executors see it. Where its files live on the host that runs
    it is the executor's business (local: `run_dir/jobs/<job>/`)."""

    run_id: str
    job: JobSpec
    run_dir: Path  # the run's directory on this machine
    work: Path  # the run's working copy on this machine: scripts and relative paths
    venv: str = ""  # a virtualenv to activate first, absolute (local jobs)
    host: HostSpec | None = None  # the job's host in the workflow's `hosts:`, if there
    inputs: tuple[str, ...] = ()  # remote: `files:`, ancestors' `outputs:` (globs in work)
    batch_id: str | None = None  # as recorded: its id in a batch system, for `attach`

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.job.name

    @property
    def here(self) -> Path:
        """The job's directory on this machine, `run_dir/jobs/<job>/`: a local job's own (log
        and status), a remote job's copy of its log. Every executor's `read_log` reads `log`
        there, and so can a reader without executors (`ccctl` with no daemon)."""
        return Path(self.here_text)

    @property
    def here_text(self) -> str:
        """`here` as text, made without Path joins: the local executor's hot path (each
        job's start and end, every poll of its log) uses it."""
        return f"{self.run_dir}/jobs/{self.job.name}"

    @property
    def cwd(self) -> str:
        """Where the job runs: its `cwd:` in the working copy, or the copy itself."""
        return self.cwd_in(str(self.work))

    def cwd_in(self, work: str) -> str:
        """Where the job runs when the working copy is at `work` (on another host)."""
        cwd = self.job.cwd
        return work if not cwd else cwd if cwd.startswith("/") else f"{work}/{cwd}"

    def command(self, work: str | None = None) -> str:
        """The shell command line job.sh runs with eval, with the working copy at `work`
        (default: this machine's): a script runs by its shebang (default sh) even without
        its exec bit, a notebook through papermill (`ccd.notebooks`); `exec` is a command
        line of its own."""
        job = self.job
        if job.script is None:
            return job.exec or "true"
        script = self.work / job.script  # its first line is read here, wherever it runs
        path = str(script) if work is None or Path(job.script).is_absolute() \
            else f"{work}/{job.script}"
        if script.suffix == ".ipynb":
            output = f"{self.work if work is None else work}/{job.notebook_output}"
            here = job.kind == "local" and job.venv is None and notebooks.installed_here()
            return notebooks.command(job, path, output, here)
        return " ".join([*_interpreter(script, job), shlex.quote(path)])


@dataclass(slots=True)
class Observation:
    """What an executor saw of one job, pushed to the scheduler of its run."""

    run_id: str
    name: str
    started: bool = False
    pid: int | None = None
    ended: bool = False
    exit_code: int | None = None  # None when it ended without one (lost, killed)
    tstart: float | None = None
    tend: float | None = None
    progress: int | None = None
    message: str = ""  # why it failed when it did not exit by itself (lost, signal)
    nostart: str = ""  # why it did not start after all (no room): start it again later
    queued: str | None = None  # waiting in a batch system's queue, and its reason
    batch_id: str | None = None  # its id in that batch system
    trace: Trace | None = None  # what it used, when it ended (`trace.py`)


@dataclass(frozen=True, slots=True)
class Status:
    """A parsed status file."""

    pid: int | None
    exit_code: int | None
    trace: Trace | None = None


def parse_status(text: str) -> Status:
    """Read a status file; an incomplete last line is ignored (it is still being written)."""
    pid = exit_code = used = None
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if not line.endswith("\n"):
            break
        key, _, value = line.strip().partition("=")
        if key == "pid" and value.isdigit():
            pid = int(value)
        elif key == "exit" and value.lstrip("-").isdigit():
            exit_code = int(value)
        elif key == "trace" and i + 1 < len(lines):  # its second line is `times`'s second
            used = trace.parse(f"{value} {lines[i + 1]}")
    return Status(pid, exit_code, used if exit_code is not None else None)


def launch_for(run: Run, name: str, inputs: tuple[str, ...] = (), work: Path | None = None
               ) -> Launch:
    """How an executor sees job `name` of `run` (no I/O). `work`: `run.work`, from a caller
    that makes many (the scheduler): one Path for all, so it is joined and made text once.
    """
    job = run.spec.jobs[name]
    venv = ""
    if job.venv and job.kind == "local":
        venv = str(run.spec.base_dir / Path(job.venv).expanduser())
    return Launch(run.id, job, run.run_dir, work or run.work, venv,
                  run.spec.hosts.get(job.host), inputs, run.jobs[name].batch_id)


def read_log(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of a log on this machine from `offset`, and its size."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            return f.read(limit), size
    except FileNotFoundError:
        return b"", 0


def _interpreter(script: Path, job: JobSpec) -> list[str]:
    try:
        with open(script, "rb") as f:
            first = f.readline(256)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        return [shlex.quote(w) for w in first[2:].decode("utf-8", "replace").split()]
    if script.suffix == ".py":
        # Locally and without a venv, the Python that runs ccd: `ccd.progress` imports there.
        local = job.kind == "local" and job.venv is None
        return [shlex.quote(sys.executable)] if local else ["python"]
    return ["sh"]
