"""The job protocol: what ccd leaves on the host that runs a job, and how it reads it back.

Every job runs under `job.sh` in its job directory `<root>/<run-id>/<job>/`, which holds a
copy of the script, `log` (stdout and stderr) and `status`. The status file is the truth:
created exclusively when the job starts (`pid=N`), completed by one `exit=N` line when it
ends. This differs from DESIGN.md's temp-file-and-rename on purpose: a rename is a fork of
`mv` per job, measured at ~0.6 ms, most of a job's whole budget; an exclusive create plus a
one-line append, read only as complete lines, gives readers the same guarantee.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ccd.model import JobSpec

WRAPPER = str(resources.files("ccd.executors").joinpath("job.sh"))
CLAIMED_ELSEWHERE = 75  # job.sh's exit code when another wrapper already started the job


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything an executor needs to start, watch or cancel one job."""

    run_id: str
    job: JobSpec
    job_dir: Path  # on the host that runs the job
    cwd: str
    command: str  # a shell command line, run by job.sh with eval
    env: tuple[tuple[str, str], ...] = ()
    venv: str = ""  # a virtualenv to activate first, absolute
    script: Path | None = None  # copied into job_dir before the job starts


@dataclass(slots=True)
class Observation:
    """What an executor saw of one job in one poll."""

    name: str
    started: bool = False
    pid: int | None = None
    ended: bool = False
    exit_code: int | None = None  # None when it ended without one (lost, killed)
    tstart: float | None = None
    tend: float | None = None
    progress: int | None = None
    message: str = ""  # why it failed when it did not exit by itself (lost, signal)


@dataclass(frozen=True, slots=True)
class Status:
    """A parsed status file."""

    pid: int | None
    exit_code: int | None


def parse_status(text: str) -> Status:
    """Read a status file; an incomplete last line is ignored (it is still being written)."""
    pid = exit_code = None
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        key, _, value = line.strip().partition("=")
        if key == "pid" and value.isdigit():
            pid = int(value)
        elif key == "exit" and value.lstrip("-").isdigit():
            exit_code = int(value)
    return Status(pid, exit_code)


def launch_for(run_id: str, job: JobSpec, base_dir: Path, job_dir: Path) -> Launch:
    """How to run `job`: a script runs by its shebang (default sh) from the workflow's
    directory even without its exec bit; `exec` is a shell command line."""
    cwd = str(base_dir / job.cwd) if job.cwd else str(base_dir)
    venv = str(base_dir / Path(job.venv).expanduser()) if job.venv else ""
    if job.script is not None:
        source = base_dir / job.script
        copy = job_dir / source.name
        command = " ".join([*_interpreter(source, job), shlex.quote(str(copy))])
        if source.suffix == ".ipynb" and command.startswith("papermill "):
            command += " " + shlex.quote(str(job_dir / f"{source.stem}-output.ipynb"))
        return Launch(run_id, job, job_dir, cwd, command, job.env, venv, source)
    return Launch(run_id, job, job_dir, cwd, job.exec or "true", job.env, venv)


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
    if script.suffix == ".ipynb":
        return ["papermill"]  # as cloudmesh-cc runs notebooks
    return ["sh"]
