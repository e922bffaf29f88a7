"""Runs of a workflow file in this state directory: create, find and resume, execute.

This is the engine that `ccctl run`, the Python API and (later) the daemon share:
validate first (nothing is written for an invalid file), then record the run, then let
the scheduler drive it while the store journals every event.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ccd import export
from ccd.errors import Problem, RunError, SpecError
from ccd.model import Event, JobStatus, Run, RunState, WorkflowSpec
from ccd.scheduler import Scheduler
from ccd.spec import load_spec
from ccd.store import Store


@dataclass(slots=True)
class Opened:
    """A run ready to execute, and how it came to be."""

    run: Run
    store: Store
    resumed: bool
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def new_run_id(name: str, now: float) -> str:
    """Readable, sortable and unique: `<workflow>-<YYYYmmdd-HHMMSS>-<4 hex>`."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def run_dir(state_dir: Path, run_id: str) -> Path:
    """`<state>/runs/<id>/`: spec.yaml (as submitted), workflow.yaml (with state), jobs/."""
    return state_dir / "runs" / run_id


def open_run(path: str | Path, state_dir: Path, *, new: bool = False) -> Opened:
    """Validate `path`, then resume its unfinished run in `state_dir` or create a new one.

    Raises SpecError (nothing written) or RunError.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SpecError([Problem(str(path), 1, 1, f"cannot read: {e.strerror}")]) from None
    spec, warnings = load_spec(path, data)
    store = Store(state_dir / "ccd.db")
    if not new:
        unfinished = store.runs(source=str(spec.source), unfinished=True)
        if unfinished:
            opened = resume(store, state_dir, unfinished[0].id)
            if opened.run.spec != spec:
                opened.notes.append(
                    f"{path} changed since run {opened.run.id} started; resuming it as it was"
                    " submitted (use --new to start afresh)")
            opened.warnings = warnings
            return opened
    opened = create(store, state_dir, spec, data)
    opened.warnings = warnings
    return opened


def create(store: Store, state_dir: Path, spec: WorkflowSpec, data: bytes) -> Opened:
    """Record a new run of a validated spec (`data` is its YAML as submitted)."""
    now = time.time()
    run_id = new_run_id(spec.name, now)
    statuses = {name: JobStatus(name, host=job.host) for name, job in spec.jobs.items()}
    run = Run(run_id, spec, statuses, run_dir(state_dir, run_id) / "jobs", created=now)
    run.job_root.mkdir(parents=True, exist_ok=True)
    (run.job_root.parent / "spec.yaml").write_bytes(data)
    store.create_run(run, data)
    return Opened(run, store, resumed=False)


def resume(store: Store, state_dir: Path, run_id: str) -> Opened:
    """Rebuild a run from the store, with the spec it was submitted with."""
    stored = store.spec_text(run_id)
    if stored is None:
        raise RunError(f"no run {run_id!r} in {store.path}")
    source, data = stored
    try:
        spec, _ = load_spec(source, data)
    except SpecError as e:
        raise RunError(f"the stored spec of run {run_id} no longer validates:\n{e}") from None
    run = store.load_run(run_id, spec, run_dir(state_dir, run_id) / "jobs")
    return Opened(run, store, resumed=True)


async def execute(opened: Opened, *, max_jobs: int | None = None,
                  on_event: Callable[[Event], None] | None = None,
                  started: Callable[[Scheduler], None] | None = None) -> RunState:
    """Drive the run to its end; every event goes to the store, then to `on_event`."""
    store = opened.store

    def record(event: Event) -> None:
        store.record(event)
        if on_event is not None:
            on_event(event)

    run = opened.run
    snapshot = run.job_root.parent / "workflow.yaml"
    export.write_atomically(snapshot, export.with_state(run.spec, run.jobs))
    scheduler = Scheduler(run, record, max_jobs=max_jobs)
    if started is not None:
        started(scheduler)
    try:
        state = await scheduler.run_to_end()
    finally:
        export.write_atomically(snapshot, export.with_state(run.spec, run.jobs))
        store.flush()
    return state


