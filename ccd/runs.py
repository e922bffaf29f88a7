"""Runs of a workflow file in this state directory: create, find and resume, execute, and
read what they left (as listed, their logs, their results).

This is the engine that `ccctl run`, the Python API and the daemon share: validate first
(nothing is written for an invalid file), make the run's working copy (`workdir`), record
the run, then let the scheduler drive it while the store journals every event.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ccd import export, reuse, shapes, workdir
from ccd.errors import NotFound, Problem, RunError, SpecError, StateFull
from ccd.executors import protocol
from ccd.executors.protocol import launch_for
from ccd.hosts import Hosts
from ccd.model import Event, JobStatus, Run, RunState, WorkflowSpec
from ccd.scheduler import Scheduler
from ccd.spec import load_spec
from ccd.store import Reader, Store

if TYPE_CHECKING:  # importing it costs every ccctl run ~3 ms; only a notifier needs it
    from ccd.notify import Notifier

log = logging.getLogger("ccd.runs")


@dataclass(slots=True)
class Opened:
    """A run ready to execute, and how it came to be."""

    run: Run
    store: Store
    resumed: bool
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock: int | None = None  # fd holding the run's lock while this process drives it

    def release(self) -> None:
        """Let another process drive the run (the OS also releases it when we die)."""
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def lock(state_dir: Path, run_id: str) -> int | None:
    """Take the exclusive right to drive a run: an flock the kernel drops when the holder
    dies, even by kill -9. None if another live process holds it."""
    path = run_dir(state_dir, run_id) / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def new_run_id(name: str, now: float) -> str:
    """Readable, sortable and unique: `<workflow>-<YYYYmmdd-HHMMSS>-<4 hex>`."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def run_dir(state_dir: Path, run_id: str) -> Path:
    """`<state>/runs/<id>/`: spec.yaml (as submitted), workflow.yaml (with state), work/ (its
    working copy), jobs/ (its local jobs' logs and status files)."""
    return state_dir / "runs" / run_id


def open_run(path: str | Path, state_dir: Path, *, new: bool = False,
             store: Store | None = None) -> Opened:
    """Validate `path`, then resume its unfinished run in `state_dir`, or carry on from its
    newest run (kept: what ended done and did not change), or create a new one.

    Raises SpecError (nothing written) or RunError. Opens the store unless given one.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SpecError([Problem(str(path), 1, 1, f"cannot read: {e.strerror}")]) from None
    spec, warnings = load_spec(path, data)
    store = store or Store(state_dir / "ccd.db")
    try:
        opened = _open(store, state_dir, spec, data, path, new)
    except RunError:
        store.close()
        raise
    opened.warnings = warnings
    return opened


def _open(store: Store, state_dir: Path, spec: WorkflowSpec, data: bytes, path: str | Path,
          new: bool) -> Opened:
    newest = [] if new else store.runs(source=str(spec.source), limit=1)
    if not newest:
        return create(store, state_dir, spec, data, workdir.files_of(spec))
    run_id = newest[0].id
    if not newest[0].state.final:
        held = lock(state_dir, run_id)
        if held is None:
            raise RunError(f"run {run_id} of {path} is being driven by another process; "
                           "wait for it, or use --new to start another run")
        opened = resume(store, state_dir, run_id)
        opened.lock = held
        if opened.run.spec != spec:
            opened.notes.append(
                f"{path} changed since run {run_id} started; resuming it as it was submitted "
                "(let it end, then run again to carry on with the changes; --new starts "
                "afresh)")
        return opened
    old = resume(store, state_dir, run_id)
    files = workdir.files_of(spec)
    prints, why = reuse.compare(spec, files, old.run.jobs, old.run.prints)
    if old.run.state is RunState.DONE and not any(why.values()):
        old.notes.append(f"run {run_id} of {path} is done and nothing changed since: nothing "
                         "to do (--new runs it again)")
        return old
    opened = record(store, state_dir, carry_on(state_dir, old.run, spec, data, files, prints,
                                               why), data)
    opened.notes.append(f"carrying on from run {run_id} ({old.run.state.value}); --new "
                        "runs every job")
    opened.notes += reuse.summary(why)
    return opened


def create(store: Store, state_dir: Path, spec: WorkflowSpec, data: bytes,
           files: dict[str, Path], given: dict[str, JobStatus] | None = None,
           prints: dict[str, str] | None = None) -> Opened:
    """Make and record a new run (see `prepare`); raises RunError, leaving nothing behind."""
    return record(store, state_dir, prepare(state_dir, spec, data, files, given, prints), data)


def carry_on(state_dir: Path, old: Run, spec: WorkflowSpec, data: bytes,
             files: dict[str, Path], prints: dict[str, str], why: dict[str, str]) -> Run:
    """A new run of `spec` that carries on from the ended run `old`, given the jobs'
    fingerprints and why each runs again (`reuse.compare`): the jobs it keeps start done,
    with their results, in a working copy made of `old`'s, less the results of the jobs
    that run again, with `files` over it. Only files: safe in a worker thread."""
    results = workdir.results(old.spec, old.work)
    kept_results = {r.path for r in results if why.get(r.job) == ""}
    stale = {r.path for r in results} - kept_results
    tree = {rel: p for rel, p in workdir.tree(old.work).items() if rel not in stale}
    merged = {**tree, **files, **{rel: tree[rel] for rel in kept_results if rel in tree}}
    given = reuse.given(spec, old.jobs, why, f"run {old.id}")
    return prepare(state_dir, spec, data, merged, given, prints)


def prepare(state_dir: Path, spec: WorkflowSpec, data: bytes, files: dict[str, Path],
            given: dict[str, JobStatus] | None = None,
            prints: dict[str, str] | None = None) -> Run:
    """A new run of a validated spec (`data` is its YAML as submitted) with its directory
    and its working copy holding `files` (relative path -> where to copy it from); jobs in
    `given` start out as given (carrying on keeps what succeeded); `prints` are the jobs'
    fingerprints if known. Only files: safe in a worker thread. Raises RunError, leaving
    nothing behind."""
    now = time.time()
    run_id = new_run_id(spec.name, now)
    statuses = {name: JobStatus(name, host=job.host) for name, job in spec.jobs.items()}
    statuses.update(given or {})
    run = Run(run_id, spec, statuses, run_dir(state_dir, run_id), created=now,
              prints=prints if prints is not None else reuse.fingerprints(spec, files))
    try:
        workdir.make(run.work, files)
        (run.run_dir / "jobs").mkdir()
        (run.run_dir / "spec.yaml").write_bytes(data)
    except OSError as e:
        shutil.rmtree(run.run_dir, ignore_errors=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StateFull(f"the state directory {state_dir} is full: no room for the "
                            f"working copy of a new run") from None
        raise RunError(f"cannot make the working copy of run {run_id}: {e}") from None
    return run


def record(store: Store, state_dir: Path, run: Run, data: bytes) -> Opened:
    """Record a prepared run in the store, locked by this process, ready to execute."""
    held = lock(state_dir, run.id)
    store.create_run(run, data)
    return Opened(run, store, resumed=False, lock=held)


def resume(store: Store, state_dir: Path, run_id: str, spec: WorkflowSpec | None = None
           ) -> Opened:
    """Rebuild a run from the store, ready to drive it again."""
    return Opened(load(store, state_dir, run_id, spec), store, resumed=True)


def load(store: Reader, state_dir: Path, run_id: str, spec: WorkflowSpec | None = None) -> Run:
    """A run as the store has it, with the spec it was submitted with (parsed from the
    stored text unless the caller already has it)."""
    spec = spec or stored_spec(store, run_id)
    return store.load_run(run_id, spec, run_dir(state_dir, run_id))


def listed(store: Reader, state_dir: Path, workflow: str | None = None, limit: int = -1,
           prefix: str | None = None) -> list[shapes.Run]:
    """Runs as the API lists them, newest first (at most `limit`, only ids starting with
    `prefix`), with job counts and without their jobs; none driven by a daemon (the daemon
    puts those it drives in their place)."""
    rows = store.runs(workflow=workflow, limit=limit, prefix=prefix)
    counts = store.counts([row.id for row in rows])
    return [shapes.Run(row.id, row.workflow, row.state, row.created, row.t0, row.t1,
                       row.message, str(run_dir(state_dir, row.id)), counts.get(row.id, {}),
                       driven_here=False) for row in rows]


def read_log(run: Run, job: str, offset: int, limit: int) -> tuple[bytes, int, bool]:
    """Up to `limit` bytes of a job's log from `offset` as this machine has it (every
    executor keeps it, or its copy, in the job's directory here: `Launch.here`), the log's
    size, and whether the job has ended (nothing more will come)."""
    ended = _job(run, job).state.final
    if run.spec.jobs[job].is_join:
        return b"", 0, ended
    data, size = protocol.read_log(launch_for(run, job).here / "log", offset, limit)
    return data, size, ended


def results(run: Run, job: str | None = None) -> list[workdir.Result]:
    """The outputs of a run's jobs (or of one job) in its working copy (reads the disk: a
    copy may hold many files)."""
    if job is not None:
        _job(run, job)
    return workdir.results(run.spec, run.work, job)


def _job(run: Run, job: str) -> JobStatus:
    status = run.jobs.get(job)
    if status is None:
        raise NotFound(f"run {run.id} has no job {job!r}")
    return status


def stored_spec(store: Reader, run_id: str) -> WorkflowSpec:
    """The spec a run was submitted with."""
    stored = store.spec_text(run_id)
    if stored is None:
        raise NotFound(f"no run {run_id!r} in {store.path}")
    return parse_stored(run_id, *stored)


def parse_stored(run_id: str, source: str, data: bytes) -> WorkflowSpec:
    """A run's stored workflow text as a spec (CPU only: fine in a worker thread)."""
    try:
        return load_spec(source, data, stored=True)[0]
    except SpecError as e:
        raise RunError(f"the stored spec of run {run_id} no longer validates:\n{e}") from None


async def execute(opened: Opened, hosts: Hosts, *,
                  on_event: Callable[[Event], None] | None = None,
                  started: Callable[[Scheduler], None] | None = None,
                  notifier: Notifier | None = None) -> RunState:
    """Drive the run to its end with the process's executors; every event goes to the
    store, then to `on_event`; once its end is saved, `notifier` tells whom it concerns."""
    if opened.lock is None:
        raise RunError(f"run {opened.run.id} is not locked by this process")
    store = opened.store

    def record(event: Event) -> None:
        store.record(event)
        if on_event is not None:
            on_event(event)

    run = opened.run
    scheduler = Scheduler(run, record, hosts)
    if started is not None:
        started(scheduler)
    try:
        _snapshot(run)
        state = await scheduler.run_to_end()
    finally:
        _snapshot(run)
        # Off the event loop: while the disk is full this waits until there is room again,
        # and the process must go on answering.
        await asyncio.to_thread(store.flush)
        if run.state.final:
            opened.release()
    if notifier is not None:
        notifier.run_ended(run)
    return state


def _snapshot(run: Run) -> None:
    """The paper's save_with_state of the run, beside it: a convenience, never a reason to
    stop (the database has the state)."""
    try:
        export.write_atomically(run.run_dir / "workflow.yaml",
                                export.with_state(run.spec, run.jobs))
    except OSError as e:
        log.warning("cannot write %s: %s", run.run_dir / "workflow.yaml", e)


def prune(store: Store, state_dir: Path, before: float) -> list[str]:
    """Remove the runs that ended before `before` (epoch seconds): their rows, events and
    files. A run not known to have ended is never removed, nor one another process holds."""
    removed = []
    for row in store.runs():
        if not row.state.final or (row.t1 or row.created) >= before:
            continue
        held = lock(state_dir, row.id)
        if held is None:
            continue  # being driven after all (a rerun in progress); leave it
        try:
            store.delete_run(row.id)
            shutil.rmtree(run_dir(state_dir, row.id), ignore_errors=True)
        finally:
            os.close(held)
        removed.append(row.id)
    return removed


