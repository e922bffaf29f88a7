"""JSON views of runs, jobs and events: one shape for the API, `ccctl --json` and SSE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ccd.model import Event, JobStatus, Run

if TYPE_CHECKING:  # the store pulls in sqlite3, which `ccctl status` does not need
    from ccd.store import WorkflowRow


def job_json(status: JobStatus, run: Run) -> dict[str, Any]:
    """One job of a run as the API shows it."""
    job = run.spec.jobs[status.name]
    return {
        "name": status.name, "state": status.state.value, "progress": status.progress,
        "host": status.host, "kind": job.kind, "label": job.label, "pid": status.pid,
        "exit_code": status.exit_code, "tstart": status.tstart, "tend": status.tend,
        "modified": status.modified, "attempt": status.attempt, "message": status.message,
    }


def run_json(run: Run, resumed: bool | None = None, jobs: bool = True) -> dict[str, Any]:
    """A run, with every job unless `jobs` is False."""
    out: dict[str, Any] = {
        "run": run.id, "workflow": run.spec.name, "state": run.state.value,
        "created": run.created, "t0": run.t0, "t1": run.t1, "message": run.message,
        "run_dir": str(run.run_dir),
        "colors": run.spec.colors,
        "counts": counts(run),
    }
    if resumed is not None:
        out["resumed"] = resumed
    if jobs:
        out["jobs"] = [job_json(s, run) for s in run.jobs.values()]
    return out


def counts(run: Run) -> dict[str, int]:
    """How many jobs are in each state."""
    out: dict[str, int] = {}
    for s in run.jobs.values():
        out[s.state.value] = out.get(s.state.value, 0) + 1
    return out


def event_frame(e: Event) -> bytes:
    """One server-sent event, encoded once and sent to every subscriber as it is."""
    kind = b"job" if e.job is not None else b"run"
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (e.id, kind, msgspec.json.encode(e))


def workflow_json(row: WorkflowRow) -> dict[str, Any]:
    """A stored workflow as the API shows it."""
    return {"name": row.name, "jobs": row.jobs, "created": row.created, "path": row.path}
