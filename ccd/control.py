"""What the Python API does to one job of a run, wherever the run is (`Job.kill`,
`Job.watch`, `Job.sync`), and to all runs of a workflow (`Workflow.remove_workflow`).

cloudmesh-cc's Job starts one job, then watches, kills or syncs it by reading files it
copies back. In ccd a process drives a whole run (`runs.execute`), so a call finds the job's
run in one of three situations, told apart by the run's lock (`runs.lock`):

- driven by this process (`Workflow.run_parallel` in another thread): its scheduler is
  asked (`Scheduler.kill`), and the answer is the run's own state, which that thread
  changes as its events come;
- driven by another process (the daemon, a `ccctl run`): it holds the lock, so `kill` and
  `remove_runs` refuse (cancel it there) and `watch` follows what it journals, every
  `period` seconds;
- driven by nobody (its driver was interrupted; its jobs run on, detached): the caller takes
  the lock and asks the job's executor, which reads the job's status file on its host
  (`attach`: a pid is signalled only while it is still that job's wrapper, never one read
  from a stale file) and is told the moment the job ends. `kill` signals the job's process
  group through the executor's `cancel` and records the job cancelled; `watch` and `sync`
  record nothing (whoever resumes the run adopts the job's end from its status file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ccd import runs, workdir
from ccd.errors import RunError
from ccd.executors.protocol import Observation, launch_for
from ccd.hosts import Hosts
from ccd.model import Event, JobState, JobStatus, Run, apply, job_event
from ccd.scheduler import Scheduler
from ccd.store import Reader, Store

KILLED = "killed by Job.kill()"
GRACE = 5.0  # seconds from SIGTERM to SIGKILL, as the scheduler's


@dataclasses.dataclass(eq=False)
class Driven:
    """A run this process drives, as its other threads see it."""

    run: Run
    changed: threading.Condition = dataclasses.field(default_factory=threading.Condition)
    loop: asyncio.AbstractEventLoop | None = None
    scheduler: Scheduler | None = None
    over: bool = False  # no longer driven (ended, or interrupted)

    def started(self, scheduler: Scheduler) -> None:
        """`runs.execute` made the run's scheduler (on the driving thread's loop)."""
        with self.changed:
            self.loop, self.scheduler = asyncio.get_running_loop(), scheduler
            self.changed.notify_all()

    def event(self, _: Event) -> None:
        """The run changed (already applied to `run`)."""
        with self.changed:
            self.changed.notify_all()

    def wait(self, name: str, deadline: float | None) -> bool:
        """Until job `name` is final or the run is no longer driven here; False at the
        deadline (`time.monotonic()`)."""
        status = self.run.jobs[name]
        with self.changed:
            return self.changed.wait_for(
                lambda: status.state.final or self.over,
                None if deadline is None else max(0.0, deadline - time.monotonic()))


_DRIVEN: dict[str, Driven] = {}  # run id -> the run, while a thread of this process drives it


@contextlib.contextmanager
def driving(run: Run) -> Iterator[Driven]:
    """Make a run that this thread is about to drive known to the process's other threads."""
    driven = _DRIVEN[run.id] = Driven(run)
    try:
        yield driven
    finally:
        del _DRIVEN[run.id]
        with driven.changed:
            driven.over = True
            driven.changed.notify_all()


def newest_run(state_dir: Path, source: Path) -> Run | None:
    """The newest run of the workflow file `source` in `state_dir`, if any."""
    if not (state_dir / "ccd.db").exists():
        return None
    store = Store(state_dir / "ccd.db")
    try:
        rows = store.runs(source=str(source), limit=1)
        return runs.resume(store, state_dir, rows[0].id).run if rows else None
    finally:
        store.close()


def kill(run: Run, name: str, timeout: float | None = 60.0) -> JobStatus:
    """End job `name` of `run`, cancelled, and return its status then. A running job's
    process group gets SIGTERM, then SIGKILL after GRACE s; a job not started yet never
    starts; a job that already ended is left as it is. Raises RunError when another process
    drives the run, TimeoutError if it has not ended after `timeout` s."""
    deadline = None if timeout is None else time.monotonic() + timeout
    driven = _DRIVEN.get(run.id)
    if driven is not None:
        with driven.changed:
            driven.changed.wait_for(lambda: driven.scheduler is not None or driven.over)
        if driven.loop is not None and driven.scheduler is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed: the run has ended
                driven.loop.call_soon_threadsafe(driven.scheduler.kill, name, KILLED)
            if not driven.wait(name, deadline):
                raise TimeoutError(f"job {name!r} of run {run.id} did not end within "
                                   f"{timeout:g} s of Job.kill()")
            if driven.run.jobs[name].state.final:
                return dataclasses.replace(driven.run.jobs[name])
    opened = _take(run)
    try:
        status = opened.run.jobs[name]
        if status.state.final:
            return dataclasses.replace(status)
        job = opened.run.spec.jobs[name]
        if job.is_join:
            obs = Observation(run.id, name)
        else:
            try:
                obs = asyncio.run(_follow(opened.run, name, kill=True, timeout=timeout))
            except TimeoutError:
                raise TimeoutError(f"job {name!r} of run {run.id} did not end within "
                                   f"{timeout:g} s of Job.kill()") from None
        if obs.ended and not obs.message.startswith(KILLED):
            return _ended(status, obs)  # it ended by itself while nobody watched
        _record(opened, name, JobState.CANCELLED, obs, obs.message or KILLED)
        return dataclasses.replace(status)
    finally:
        _give_back(opened)


def watch(run: Run, name: str, period: float = 10.0, timeout: float | None = None
          ) -> JobStatus:
    """Wait until job `name` of `run` ends; its status then. Raises TimeoutError after
    `timeout` s, RunError if nothing can end it (it has not started and nobody drives
    the run)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        driven = _DRIVEN.get(run.id)
        if driven is not None:
            if not driven.wait(name, deadline):
                break
            status = driven.run.jobs[name]
            if status.state.final:
                return dataclasses.replace(status)
            continue  # interrupted: who drives it now?
        opened = _try_take(run)
        if opened is None:  # another process drives it: follow what it journals
            status = _stored(run, name)
            if status.state.final:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(period if deadline is None
                       else min(period, max(0.0, deadline - time.monotonic())))
            continue
        try:
            status = opened.run.jobs[name]
            if status.state.final:
                return dataclasses.replace(status)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                obs = asyncio.run(_follow(opened.run, name, timeout=left))
            except TimeoutError:
                break
            if not obs.started:
                raise RunError(f"job {name!r} of run {run.id} has not started and no process "
                               "drives the run, so it will not end: resume the run "
                               "(ccctl run FILE) or run the workflow again")
            return _ended(status, obs)
        finally:
            _give_back(opened)
    raise TimeoutError(f"job {name!r} of run {run.id} is still running after {timeout:g} s")


def sync(run: Run, name: str, directory: Path | None = None) -> list[Path]:
    """Job `name`'s declared outputs (`outputs:`): where they are in the run's working copy,
    or copied into `directory` (same relative paths). A remote job's outputs come back into
    the working copy when it ends; one that ended while nobody drove the run is collected
    now. A local job's are in the working copy already: nothing to fetch."""
    job = run.spec.jobs[name]
    if job.kind != "local" and not job.is_join and run.id not in _DRIVEN:
        opened = _try_take(run)
        if opened is not None:
            try:
                if not opened.run.jobs[name].state.final:
                    asyncio.run(_follow(opened.run, name, wait=False))
            finally:
                _give_back(opened)
    found = [run.work / r.path for r in workdir.results(run.spec, run.work, name)]
    if directory is None:
        return found
    copied = []
    for path in found:
        target = directory / path.relative_to(run.work)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(target)
    return copied


def remove_runs(state_dir: Path, source: Path) -> list[str]:
    """Remove every run of the workflow file `source`: its rows, events and files in the
    state directory; the ids removed. All or nothing: refused (RunError) while one is
    driven, or one nobody drives still has a job running on its host."""
    if not (state_dir / "ccd.db").exists():
        return []
    store = Store(state_dir / "ccd.db")
    held: list[int] = []
    try:
        rows = store.runs(source=str(source))
        for row in rows:
            fd = runs.lock(state_dir, row.id)
            if fd is None:
                raise RunError(f"run {row.id} of {source.name} is being driven (by this "
                               "process, the daemon or a ccctl run): cancel it or let it end "
                               "first; nothing was removed")
            held.append(fd)
        for row in rows:
            if not row.state.final:
                running = asyncio.run(_running(runs.resume(store, state_dir, row.id).run))
                if running:
                    raise RunError(f"run {row.id} of {source.name} was interrupted and its "
                                   f"job(s) {', '.join(running)} still run: end them "
                                   "(Job.kill) first; nothing was removed")
        for row in rows:
            store.delete_run(row.id)
            shutil.rmtree(runs.run_dir(state_dir, row.id), ignore_errors=True)
        return [row.id for row in rows]
    finally:
        for fd in held:
            os.close(fd)
        store.close()


# -- a run nobody drives --------------------------------------------------------------------


class _Follower:
    """Hosts' member for one job of a run: keeps its end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ended: asyncio.Future[Observation] = asyncio.get_running_loop().create_future()

    def observe(self, obs: Observation) -> None:
        if obs.name == self.name and obs.ended and not self.ended.done():
            self.ended.set_result(obs)

    def notify(self) -> None:
        pass


async def _follow(run: Run, name: str, *, kill: bool = False, wait: bool = True,
                  timeout: float | None = None) -> Observation:
    """What the job's executor finds of it (its status file); with `kill`, stop it if it
    runs (then, and only then, the end's message starts with KILLED); with `wait` (or
    `kill`), until it ends. TimeoutError after `timeout` s."""
    job = run.spec.jobs[name]
    launch = launch_for(run, name)
    async with Hosts() as hosts:
        executor = hosts.executor(job.kind, job.host)
        follower = _Follower(name)
        hosts.join(run.id, follower)
        async with asyncio.timeout(timeout):
            obs = await executor.attach(launch)
            if not obs.started or obs.ended or not (wait or kill):
                return obs
            if kill:
                await executor.cancel(launch)
                try:
                    async with asyncio.timeout(GRACE):
                        obs = await asyncio.shield(follower.ended)
                except TimeoutError:
                    await executor.cancel(launch, force=True)
                    obs = await follower.ended
                obs.message = KILLED if not obs.message else f"{KILLED} ({obs.message})"
                return obs
            return await follower.ended


async def _running(run: Run) -> list[str]:
    """The jobs of `run` that its executors find running now: any job not final, since one
    may have started just before its driver died, before the store heard of it."""
    names = [n for n, s in run.jobs.items()
             if not s.state.final and not run.spec.jobs[n].is_join]
    found = await asyncio.gather(*(_follow(run, n, wait=False) for n in names))
    return [n for n, obs in zip(names, found, strict=True) if obs.started and not obs.ended]


def _try_take(run: Run) -> runs.Opened | None:
    """The run rebuilt from the store and locked by this process; None if another holds it."""
    state_dir = run.run_dir.parent.parent
    if not run.run_dir.is_dir():
        raise RunError(f"run {run.id} is no longer in {state_dir} (removed)")
    held = runs.lock(state_dir, run.id)
    if held is None:
        return None
    store = Store(state_dir / "ccd.db")
    try:
        opened = runs.resume(store, state_dir, run.id, run.spec)
    except BaseException:
        store.close()
        os.close(held)
        raise
    opened.lock = held
    return opened


def _take(run: Run) -> runs.Opened:
    opened = _try_take(run)
    if opened is None:
        raise RunError(f"run {run.id} is driven by another process (the daemon, or a ccctl "
                       f"run): cancel it there (ccctl cancel {run.id})")
    return opened


def _give_back(opened: runs.Opened) -> None:
    opened.store.close()
    opened.release()


def _stored(run: Run, name: str) -> JobStatus:
    """Job `name` as the store has it now."""
    # Read-only: `watch` asks every `period` s while another process writes; a Store would
    # start a writer thread and two connections each time.
    reader = Reader(run.run_dir.parent.parent / "ccd.db")
    try:
        return reader.load_run(run.id, run.spec, run.run_dir).jobs[name]
    finally:
        reader.close()


def _ended(status: JobStatus, obs: Observation) -> JobStatus:
    """The job as its end says, without recording it (whoever resumes the run does)."""
    done = obs.exit_code == 0
    return dataclasses.replace(
        status, state=JobState.DONE if done else JobState.FAILED,
        progress=100 if done else max(status.progress, obs.progress or 0),
        exit_code=obs.exit_code, pid=obs.pid or status.pid, tend=obs.tend,
        message="" if done else obs.message or f"exit code {obs.exit_code}")


def _record(opened: runs.Opened, name: str, state: JobState, obs: Observation,
            message: str) -> None:
    run, status = opened.run, opened.run.jobs[name]
    now = time.time()
    event = msgspec.structs.replace(
        job_event(run.id, status), state=state, time=now, message=message,
        progress=max(status.progress, obs.progress or 0),
        exit_code=obs.exit_code, pid=obs.pid or status.pid,
        tend=(obs.tend or now) if obs.started else status.tend)
    apply(run, event)
    opened.store.record(event)
