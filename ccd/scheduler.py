"""The asyncio scheduler: starts every ready job at once within the limits, follows them,
skips the descendants of failures, cancels, and re-attaches after a restart.

It decides; executors do the I/O; `record` receives every change as an Event (the store
and the live views subscribe there). Nothing here touches a file or a process directly.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Callable

from ccd import dag
from ccd.errors import ExecutorError
from ccd.executors import Executor, executor_for
from ccd.executors.protocol import Launch, Observation, launch_for
from ccd.model import Event, JobState, JobStatus, Run, RunState

MakeExecutor = Callable[[str, Callable[[], None]], Executor]


def default_max_jobs() -> int:
    """Processes at once when the user sets no limit: CPU count x 4."""
    return (os.cpu_count() or 1) * 4


class Scheduler:
    """Runs one Run to its end. Create, then `await run()`; `cancel()` stops it."""

    def __init__(
        self,
        run: Run,
        record: Callable[[Event], None],
        *,
        max_jobs: int | None = None,
        make_executor: MakeExecutor = executor_for,
        tick: float = 0.05,
        grace: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.run = run
        self._record = record
        self._max_jobs = max_jobs or default_max_jobs()
        self._make_executor = make_executor
        self._tick = tick
        self._grace = grace
        self._clock = clock
        spec = run.spec
        self._children = dag.children_of(spec.jobs, spec.edges)
        self._parents = dag.parents_of(spec.jobs, spec.edges)
        self._waiting: dict[str, int] = {}  # READY job -> parents not yet done
        self._ready: deque[str] = deque()
        self._running: dict[str, Launch] = {}
        self._per_host: Counter[str] = Counter()
        self._stopping: dict[str, tuple[str, float]] = {}  # job -> (reason, SIGKILL deadline)
        self._executors: dict[str, Executor] = {}
        self._wake = asyncio.Event()
        self._cancel_reason: str | None = None
        self._unfinished = sum(not s.state.final for s in run.jobs.values())
        self._failed_attempts: list[tuple[str, str, int]] = []  # jobs that may try again

    def notify(self) -> None:
        """Wake the loop now (a job ended, or cancel was asked)."""
        self._wake.set()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop the run: no new job starts; running jobs get SIGTERM, then SIGKILL."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._wake.set()

    async def run_to_end(self) -> RunState:
        """Drive the run until every job is final; returns the run's state."""
        run = self.run
        kinds = {job.kind for job in run.spec.jobs.values() if not job.is_join}
        self._executors = {kind: self._make_executor(kind, self.notify) for kind in sorted(kinds)}
        try:
            if run.t0 is None:
                run.t0 = self._clock()
                self._emit_run()
            await self._recover()
            await self._retry_or_fail()
            await self._launch()
            while not self._all_final():
                timeout = self._tick if self._running else None
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                if self._cancel_reason is not None:
                    await self._cancel_all()
                await self._poll()
                await self._retry_or_fail()
                await self._enforce_deadlines()
                await self._launch()
        finally:
            for executor in self._executors.values():
                await executor.aclose()
        states = {s.state for s in run.jobs.values()}
        run.state = (RunState.CANCELLED if self._cancel_reason is not None
                     else RunState.FAILED if states - {JobState.DONE} else RunState.DONE)
        run.message = self._cancel_reason or ""
        run.t1 = self._clock()
        self._emit_run()
        return run.state

    # -- starting -------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Find out which unfinished jobs a previous process already started; never restart."""
        for name, status in self.run.jobs.items():
            job = self.run.spec.jobs[name]
            if status.state.final or job.is_join:
                continue
            launch = self._launch_of(name)
            obs = await self._executors[job.kind].attach(launch)
            if obs.started:
                self._running[name] = launch
                self._per_host[job.host] += 1
                if status.state is not JobState.RUNNING:
                    status.tstart = obs.tstart
                    self._set(status, JobState.RUNNING, pid=obs.pid)
                self._observe(status, obs)
            elif status.state is JobState.RUNNING:
                # Recorded as started, but its wrapper never claimed it (the process died
                # in between): start it. Should that wrapper still claim it first, the new
                # one stands down and the executor follows the old one.
                self._set(status, JobState.READY, message="starting again: it never began")
        for name, status in self.run.jobs.items():
            if status.state is JobState.READY:
                parents = [self.run.jobs[p].state for p in self._parents[name]]
                if any(s.final and s is not JobState.DONE for s in parents):
                    self._skip_descendants_of(name, include_self=True)
                else:
                    self._waiting[name] = sum(s is not JobState.DONE for s in parents)
                    if self._waiting[name] == 0:
                        self._ready.append(name)

    async def _launch(self) -> None:
        """Start every ready job the limits allow; joins complete at once."""
        blocked: deque[str] = deque()
        while self._ready:
            name = self._ready.popleft()
            status = self.run.jobs[name]
            if status.state is not JobState.READY:
                continue
            if self._cancel_reason is not None:
                self._set(status, JobState.CANCELLED, message=self._cancel_reason)
                continue
            job = self.run.spec.jobs[name]
            if job.is_join:
                status.tstart = status.tend = self._clock()
                self._set(status, JobState.DONE, progress=100)
                self._release_children(name)
                continue
            host = self.run.spec.hosts.get(job.host)
            if len(self._running) >= self._max_jobs or (
                host and host.max_jobs and self._per_host[job.host] >= host.max_jobs
            ):
                blocked.append(name)
                continue
            launch = self._launch_of(name)
            status.tstart = self._clock()
            try:
                await self._executors[job.kind].start(launch)
            except ExecutorError as e:
                status.tstart = status.tend = self._clock()
                self._fail(status, str(e))
                continue
            self._running[name] = launch
            self._per_host[job.host] += 1
            self._set(status, JobState.RUNNING)
            await self._prepare_children(name)
        self._ready = blocked

    async def _prepare_children(self, name: str) -> None:
        """While `name` runs, let the executors ready its children that wait only for it."""
        for child in self._children[name]:
            job = self.run.spec.jobs[child]
            if not job.is_join and self._waiting.get(child) == 1:
                await self._executors[job.kind].prepare(self._launch_of(child))

    def _launch_of(self, name: str) -> Launch:
        run = self.run
        return launch_for(run.id, run.spec.jobs[name], run.spec.base_dir, run.job_root / name)

    # -- following ------------------------------------------------------------------------

    async def _poll(self) -> None:
        by_kind: dict[str, list[Launch]] = {}
        for launch in self._running.values():
            by_kind.setdefault(launch.job.kind, []).append(launch)
        for kind, launches in by_kind.items():
            for obs in await self._executors[kind].poll(launches):
                self._observe(self.run.jobs[obs.name], obs)

    def _observe(self, status: JobStatus, obs: Observation) -> None:
        if obs.pid is not None and status.pid != obs.pid:
            status.pid = obs.pid
        if not obs.ended:
            if obs.progress is not None and obs.progress > status.progress:
                self._set(status, status.state, progress=obs.progress)
            return
        name = status.name
        job = self.run.spec.jobs[name]
        self._running.pop(name, None)
        self._per_host[job.host] -= 1
        status.tend = max(obs.tend or self._clock(), status.tstart or 0)
        status.exit_code = obs.exit_code
        progress = max(status.progress, obs.progress or 0)
        stopping = self._stopping.pop(name, None)
        if stopping is not None and self._cancel_reason is not None:
            self._set(status, JobState.CANCELLED, progress=progress, message=stopping[0])
            self._skip_descendants_of(name)
        elif obs.exit_code == 0 and stopping is None:
            self._set(status, JobState.DONE, progress=100)
            self._release_children(name)
        else:
            reason = stopping[0] if stopping else obs.message or f"exit code {obs.exit_code}"
            if job.retries:
                self._failed_attempts.append((name, reason, progress))
            else:
                self._fail(status, reason, progress)

    async def _retry_or_fail(self) -> None:
        """A failed job with `retries` left is set aside and made ready again."""
        while self._failed_attempts:
            name, reason, progress = self._failed_attempts.pop(0)
            status, job = self.run.jobs[name], self.run.spec.jobs[name]
            launch = self._launch_of(name)
            executor = self._executors[job.kind]
            before = await executor.attempts(launch)
            of = f"attempt {before + 1} of {job.retries + 1}"
            if self._cancel_reason is not None or before >= job.retries:
                self._fail(status, f"{reason} ({of})", progress)
                continue
            try:
                await executor.archive(launch)
            except ExecutorError as e:
                self._fail(status, f"{reason}; {e}", progress)
                continue
            status.tstart = status.tend = status.exit_code = status.pid = None
            self._set(status, JobState.READY, progress=0, message=f"{reason} ({of}); trying again")
            self._ready.append(name)

    def _release_children(self, name: str) -> None:
        for child in self._children[name]:
            if child in self._waiting:
                self._waiting[child] -= 1
                if self._waiting[child] == 0 and self.run.jobs[child].state is JobState.READY:
                    self._ready.append(child)

    def _fail(self, status: JobStatus, message: str, progress: int | None = None) -> None:
        self._set(status, JobState.FAILED, progress=progress, message=message)
        self._skip_descendants_of(status.name)

    def _skip_descendants_of(self, name: str, include_self: bool = False) -> None:
        why = f"{name} did not finish" if include_self else f"{name} {self.run.jobs[name].state}"
        targets = ([name] if include_self else []) + dag.descendants(name, self._children)
        for d in targets:
            status = self.run.jobs[d]
            if status.state is JobState.READY:
                self._set(status, JobState.SKIPPED, message=f"skipped: {why}")

    # -- stopping -------------------------------------------------------------------------

    async def _cancel_all(self) -> None:
        assert self._cancel_reason is not None
        for name in list(self._waiting):
            status = self.run.jobs[name]
            if status.state is JobState.READY:
                self._set(status, JobState.CANCELLED, message=self._cancel_reason)
        for name in self._running:
            if name not in self._stopping:
                await self._stop(name, self._cancel_reason)

    async def _enforce_deadlines(self) -> None:
        now = self._clock()
        for name, launch in list(self._running.items()):
            status = self.run.jobs[name]
            limit = launch.job.timeout
            overdue = limit and status.tstart and now - status.tstart > limit
            if name not in self._stopping and overdue:
                await self._stop(name, f"timeout after {limit:g} s")
            elif name in self._stopping and now >= self._stopping[name][1]:
                await self._executors[launch.job.kind].cancel(launch, force=True)

    async def _stop(self, name: str, reason: str) -> None:
        launch = self._running[name]
        self._stopping[name] = (reason, self._clock() + self._grace)
        await self._executors[launch.job.kind].cancel(launch)

    # -- bookkeeping ----------------------------------------------------------------------

    def _all_final(self) -> bool:
        if self._running:
            return False
        if self._cancel_reason is not None and self._unfinished:
            for status in self.run.jobs.values():
                if not status.state.final:
                    self._set(status, JobState.CANCELLED, message=self._cancel_reason)
        return self._unfinished == 0

    def _set(self, status: JobStatus, state: JobState, *, progress: int | None = None,
             pid: int | None = None, message: str | None = None) -> None:
        self._unfinished -= state.final and not status.state.final
        status.state = state
        if progress is not None:
            status.progress = progress
        if pid is not None:
            status.pid = pid
        if message is not None:
            status.message = message
        status.modified = self._clock()
        self._record(Event(self.run.id, status.name, state.value, status.progress,
                           status.modified, status.exit_code, status.pid, status.message))

    def _emit_run(self) -> None:
        run = self.run
        done = sum(s.state is JobState.DONE for s in run.jobs.values())
        progress = done * 100 // max(1, len(run.jobs))
        self._record(Event(run.id, None, run.state.value, progress, self._clock(),
                           message=run.message))

