"""The asyncio scheduler of one run: starts every job that may start, within the limits that
`Hosts` keeps across runs; follows what the executors push; retries, times out and
cancels; re-attaches after a restart instead of starting anything twice.

It decides nothing about the DAG itself (`rules.decide` does) and touches no file or
process (executors do). Every change it makes is an Event that it applies to the run with
`model.apply`, the one function the store and `ccctl` also follow, and hands to `record`.
Whatever goes wrong while driving a run (an executor that cannot be made, a host that
cannot be reached, a bug here) ends the run `failed` with the reason; it is never left
running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ccd import conditions, progress, rules
from ccd.errors import ExecutorError, HostBusy
from ccd.executors import Executor
from ccd.executors.protocol import Launch, Observation, launch_for
from ccd.hosts import Hosts
from ccd.model import BATCH_KINDS, Event, JobState, JobStatus, Run, RunState, apply, job_event

log = logging.getLogger("ccd.scheduler")
HOLD_AFTER_NO_ROOM = 5.0  # seconds before a host that had no room is tried again
PUBLISHED_LOG_BYTES = 8 << 20  # of a log read for the values a job published


class Scheduler:
    """Runs one Run to its end. Create, then `await run_to_end()`; `cancel()` stops it."""

    def __init__(self, run: Run, record: Callable[[Event], None], hosts: Hosts, *,
                 grace: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.run = run
        self._record = record
        self._hosts = hosts
        self._grace = grace
        self._clock = clock
        self._graph = rules.Graph.of(run.spec)
        # A job for a batch queue may start while this machine is full: keep looking.
        self._queues = any(j.kind in BATCH_KINDS for j in run.spec.jobs.values())
        self._ready: dict[str, None] = {}  # may start now, in the order found
        self._checks: list[str] = []  # may start if their `when:` holds
        self._repeats: list[tuple[str, dict[str, Any]]] = []  # ended done; `repeat` decides
        self._running: dict[str, Launch] = {}
        self._launches: dict[str, Launch] = {}  # a job's never changes
        self._work = run.work  # one Path for every launch (made text once)
        self._stopping: dict[str, tuple[str, float]] = {}  # job -> (reason, SIGKILL deadline)
        self._timed: set[str] = set()  # running jobs with a `timeout`: the only ones to watch
        self._observed: deque[Observation] = deque()
        self._wake = asyncio.Event()
        self._cancel_reason: str | None = None
        self._kills: dict[str, str] = {}  # job -> why: asked to end it alone (`kill`)
        self._killed: set[str] = set()  # stopped by `kill`: it ends cancelled, not retried
        self._unfinished = sum(not s.state.final for s in run.jobs.values())
        self._failed_attempts: list[tuple[str, str, dict[str, Any]]] = []  # may try again
        self._failure: str | None = None  # why this process stopped driving the run

    # -- what others call -----------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        """An executor saw something of one of this run's jobs (Hosts calls this)."""
        self._observed.append(obs)
        self._wake.set()

    def notify(self) -> None:
        """Wake the loop now (a slot freed, or cancel was asked)."""
        self._wake.set()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop the run: no new job starts; running jobs get SIGTERM, then SIGKILL."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._wake.set()

    def kill(self, name: str, reason: str) -> None:
        """End one job, cancelled: a running one is stopped like a cancelled run's (SIGTERM
        to its process group, SIGKILL after the grace); a waiting one never starts. Its
        descendants are skipped; the rest of the run goes on."""
        self._kills.setdefault(name, reason)
        self._wake.set()

    async def run_to_end(self) -> RunState:
        """Drive the run until every job is final; returns the run's state. Cancelling the
        task detaches from the run (its jobs go on) without ending it."""
        run = self.run
        self._hosts.join(run.id, self)
        try:
            try:
                if run.t0 is None:  # new: nothing of it can have started (t0 is journalled
                    self._emit_run(RunState.RUNNING, t0=self._clock())  # before any start)
                else:
                    await self._recover()
                self._decide(run.jobs)
                await self._check_conditions()
                await self._launch()
                while not self._all_final():
                    await self._wait()
                    if self._cancel_reason is not None:
                        await self._cancel_all()
                    self._take_observations()
                    await self._retry_or_fail()
                    await self._repeat_or_end()
                    await self._enforce_deadlines()
                    await self._check_conditions()
                    await self._kill_asked()
                    await self._launch()
            except Exception as e:  # a run must end, whatever the bug
                log.exception("run %s: stopped driving it", run.id)
                self._failure = f"ccd stopped driving this run: {type(e).__name__}: {e}"
                await self._abort(self._failure)
        finally:
            self._hosts.leave(run.id)
            for launch in self._running.values():  # only when detaching: else none is left
                self._hosts.release(launch.job)
        # A job skipped by its trigger is as meant; one skipped below a failure is not, but
        # that failure is in the list already.
        failed = [n for n, s in run.jobs.items()
                  if s.state is JobState.FAILED or s.state is JobState.CANCELLED]
        if self._failure is not None:
            state, message = RunState.FAILED, self._failure
        elif self._cancel_reason is not None:
            state, message = RunState.CANCELLED, self._cancel_reason
        elif failed:
            state, message = RunState.FAILED, _not_done(run, failed)
        else:
            state, message = RunState.DONE, ""
        self._emit_run(state, t1=self._clock(), message=message)
        return state

    # -- starting -------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Find out which unfinished jobs a previous process already started; never restart.
        Executors are asked about all jobs at once: a remote host answers for all of them
        in one round trip."""
        asks = []
        for name, status in self.run.jobs.items():
            job = self.run.spec.jobs[name]
            if status.state.final or job.is_join:
                continue
            try:
                asks.append(self._attach(name, self._hosts.executor(job.kind, job.host)))
            except ExecutorError as e:
                self._fail(status, str(e))
        await asyncio.gather(*asks)

    async def _attach(self, name: str, executor: Executor) -> None:
        status, job, launch = self.run.jobs[name], self.run.spec.jobs[name], self._launch_of(name)
        try:
            obs = await executor.attach(launch)
        except ExecutorError:
            # Its host cannot be asked now (unreachable); its executor tells when it can.
            # A job recorded as running is followed meanwhile; any other starts as usual:
            # its wrapper refuses to run a job twice.
            obs = Observation(self.run.id, name, started=status.state.started,
                              pid=status.pid, tstart=status.tstart, batch_id=status.batch_id,
                              queued=status.message if status.state is JobState.QUEUED
                              else None)
        if obs.started:
            self._running[name] = launch
            if job.timeout:
                self._timed.add(name)
            self._hosts.occupy(job)
            attempt = status.attempt or 1
            if job.retries:  # the host knows how many ended before (a crash may hide it)
                with contextlib.suppress(ExecutorError):
                    attempt = await executor.attempts(launch) + 1
            state = JobState.RUNNING if obs.queued is None else JobState.QUEUED
            if status.state is not state or status.attempt != attempt:
                self._set(status, state, tstart=obs.tstart, pid=obs.pid, attempt=attempt,
                          batch_id=obs.batch_id or status.batch_id)
            self._observe(status, obs)
        elif status.state.started:
            # Recorded as started, but its wrapper never claimed it (the process died
            # in between): start it. Should that wrapper still claim it first, the new
            # one stands down and the executor follows the old one.
            self._set(status, JobState.READY, message="starting again: it never began",
                      attempt=max(0, status.attempt - 1))

    async def _launch(self) -> None:
        """Start every job that may start and that the limits allow; joins complete at once."""
        blocked: dict[str, None] = {}
        full_hosts: set[tuple[str, str]] = set()  # (kind, host) found full: not asked again
        while self._ready:
            if self._cancel_reason is None and self._hosts.full and not self._queues:
                # Nothing can start until a job ends (Hosts wakes us then): leave the rest
                # unread, or a long queue costs O(queue) on every wake-up.
                self._hosts.wait_for_slot(self.run.id)
                break
            name = next(iter(self._ready))
            del self._ready[name]
            status = self.run.jobs[name]
            if status.state is not JobState.READY:
                continue
            if self._cancel_reason is not None:
                self._set(status, JobState.CANCELLED, message=self._cancel_reason)
                continue
            job = self.run.spec.jobs[name]
            now = self._clock()
            if job.is_join:
                self._set(status, JobState.DONE, progress=100, tstart=now, tend=now)
                self._decide([name])
                continue
            if (job.kind, job.host) in full_hosts:
                blocked[name] = None
                continue
            try:
                executor = self._hosts.executor(job.kind, job.host)
            except ExecutorError as e:
                self._fail(status, str(e), tstart=now, tend=now)
                continue
            host = self.run.spec.hosts.get(job.host)
            if not self._hosts.acquire(self.run.id, job, host.max_jobs if host else None):
                blocked[name] = None
                full_hosts.add((job.kind, job.host))
                continue
            launch = self._launch_of(name)
            try:
                pid = await executor.start(launch)
            except HostBusy as e:  # not the job's failure: it waits until the host can
                self._hosts.release(job)
                self._not_started(status, str(e), e.retry_after)
                blocked[name] = None
                full_hosts.add((job.kind, job.host))
                continue
            except ExecutorError as e:
                self._hosts.release(job)
                self._fail(status, str(e), tstart=now, tend=self._clock())
                continue
            self._running[name] = launch
            if job.timeout:
                self._timed.add(name)
            self._set(status, JobState.QUEUED if executor.queues else JobState.RUNNING,
                      progress=0, tstart=now, tend=None, pid=pid, exit_code=None,
                      attempt=status.attempt + 1, message="", batch_id=None, trace=None)
            await self._prepare_children(name)
        self._ready = {**blocked, **self._ready}

    async def _prepare_children(self, name: str) -> None:
        """While `name` runs, let the executors ready its children that wait only for it."""
        jobs = self.run.jobs
        for child in self._graph.children[name]:
            job = self.run.spec.jobs[child]
            if job.is_join or jobs[child].state is not JobState.READY:
                continue
            if all(p == name or jobs[p].state is JobState.DONE
                   for p in reversed(self._graph.parents[child])):
                try:
                    executor = self._hosts.executor(job.kind, job.host)
                except ExecutorError:
                    continue  # its start will say why
                await executor.prepare(self._launch_of(child))

    def _launch_of(self, name: str) -> Launch:
        launch = self._launches.get(name)
        if launch is None:
            inputs: tuple[str, ...] = ()
            spec = self.run.spec
            if spec.jobs[name].kind != "local":  # its files go to another host: the
                # workflow's `files:` and what the jobs before it produce
                inputs = spec.files + tuple(p for a in self._graph.ancestors(name)
                                            for p in spec.jobs[a].results)
            launch = self._launches[name] = launch_for(self.run, name, inputs, self._work)
        return launch

    def _decide(self, changed: Iterable[str]) -> None:
        """Apply what the jobs in `changed` imply: skip jobs that can no longer run, queue
        those that may start."""
        decision = rules.decide(self._graph, self.run.jobs, changed)
        for name, why in decision.skip.items():
            self._set(self.run.jobs[name], JobState.SKIPPED, message=why)
        for name in decision.start:
            self._ready[name] = None
        if decision.check:
            self._checks.extend(decision.check)
            self._wake.set()

    async def _check_conditions(self) -> None:
        """Start, skip or fail each job whose `when:` is due, reading what it reads."""
        while self._checks:
            name = self._checks.pop(0)
            status = self.run.jobs[name]
            if status.state is not JobState.READY:
                continue
            facts = await self._facts(name, self._graph.conditions[name][1])
            verdict = rules.condition(self._graph, name, facts)
            if verdict is None:
                self._ready[name] = None
                continue
            state, why = verdict
            now = self._clock()
            if state is JobState.FAILED:
                self._fail(status, why, tstart=now, tend=now)
            else:
                self._set(status, state, message=why)
                self._decide([name])

    async def _published(self, name: str) -> dict[str, str]:
        """What a job published in its log (`# ccd key=value`); nothing if it has no log."""
        job = self.run.spec.jobs[name]
        if job.is_join or self.run.jobs[name].tstart is None:
            return {}
        try:
            executor = self._hosts.executor(job.kind, job.host)
            data, _ = await executor.read_log(self._launch_of(name), 0, PUBLISHED_LOG_BYTES)
        except (ExecutorError, OSError):
            return {}
        return progress.published(data)

    # -- following ------------------------------------------------------------------------

    async def _wait(self) -> None:
        """Until something happens, or the next deadline (a timeout, a SIGKILL) is due."""
        deadlines = [kill_at for _, kill_at in self._stopping.values()]
        deadlines += [due for name in self._timed if name not in self._stopping
                      and (due := self._due(name)) is not None]
        if deadlines:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(deadlines) - self._clock())):
                    await self._wake.wait()
        else:  # the common case, once a job: no timer to make and cancel
            await self._wake.wait()
        self._wake.clear()

    def _take_observations(self) -> None:
        while self._observed:
            obs = self._observed.popleft()
            if obs.name in self._running:  # else stale: from before an archive or an abort
                self._observe(self.run.jobs[obs.name], obs)

    def _observe(self, status: JobStatus, obs: Observation) -> None:
        if obs.nostart:  # its wrapper found no room to start it: it waits, it did not fail
            del self._running[status.name]
            self._timed.discard(status.name)
            self._stopping.pop(status.name, None)
            self._hosts.release(self.run.spec.jobs[status.name])
            self._not_started(status, obs.nostart, HOLD_AFTER_NO_ROOM, tstart=None, pid=None,
                              attempt=max(0, status.attempt - 1))
            self._ready[status.name] = None
            return
        if not obs.ended:
            progress = max(status.progress, obs.progress or 0)
            pid = obs.pid if obs.pid is not None else status.pid
            batch_id = obs.batch_id or status.batch_id
            if obs.queued is not None:  # waiting in the batch queue, for this reason
                if (status.state, status.message, batch_id) != (
                        JobState.QUEUED, obs.queued, status.batch_id):
                    self._set(status, JobState.QUEUED, message=obs.queued, batch_id=batch_id)
            elif status.state is JobState.QUEUED:  # it left the queue: it runs from now
                self._set(status, JobState.RUNNING, progress=progress, pid=pid, message="",
                          tstart=obs.tstart or self._clock(), batch_id=batch_id)
            elif progress != status.progress or pid != status.pid or batch_id != status.batch_id:
                self._set(status, status.state, progress=progress, pid=pid, batch_id=batch_id)
            return
        name = status.name
        job = self.run.spec.jobs[name]
        del self._running[name]
        self._timed.discard(name)
        self._hosts.release(job)
        ended = dict(tend=max(obs.tend or self._clock(), status.tstart or 0),
                     exit_code=obs.exit_code, pid=obs.pid if obs.pid is not None else status.pid,
                     trace=obs.trace)
        progress = max(status.progress, obs.progress or 0)
        stopping = self._stopping.pop(name, None)
        killed = name in self._killed
        self._killed.discard(name)
        if stopping is not None and (self._cancel_reason is not None or killed):
            self._set(status, JobState.CANCELLED, progress=progress, message=stopping[0],
                      **ended)
            self._decide([name])
        elif obs.exit_code == 0 and stopping is None and job.repeat_until is not None:
            self._repeats.append((name, {"progress": progress, **ended}))
        elif obs.exit_code == 0 and stopping is None:
            self._set(status, JobState.DONE, progress=100, message="", **ended)
            self._decide([name])
        else:
            reason = stopping[0] if stopping else obs.message or f"exit code {obs.exit_code}"
            if job.retries:
                self._failed_attempts.append((name, reason, {"progress": progress, **ended}))
            else:
                self._fail(status, reason, progress=progress, **ended)

    async def _retry_or_fail(self) -> None:
        """A failed job with `retries` left is set aside and made ready again."""
        while self._failed_attempts:
            name, reason, ended = self._failed_attempts.pop(0)
            status, job = self.run.jobs[name], self.run.spec.jobs[name]
            launch = self._launch_of(name)
            executor = self._hosts.executor(job.kind, job.host)
            try:
                before = await executor.attempts(launch)  # durable on the host: exactly once
                of = f"attempt {before + 1} of {job.retries + 1}"
                if self._cancel_reason is not None or before >= job.retries:
                    self._fail(status, f"{reason} ({of})", **ended)
                    continue
                await executor.archive(launch)
            except ExecutorError as e:
                self._fail(status, f"{reason}; {e}", **ended)
                continue
            # The attempt's end, exit code and trace stay until the next starts (the
            # timeline's, the report's).
            self._set(status, JobState.READY, progress=0, tstart=None, tend=ended["tend"],
                      exit_code=ended["exit_code"], pid=None, trace=ended["trace"],
                      message=f"{reason} ({of}); trying again")
            self._ready[name] = None

    async def _repeat_or_end(self) -> None:
        """A job with `repeat` that ended done: done if its `until` holds (it reads what
        the job published), else set aside and run again, up to `max` runs in all."""
        while self._repeats:
            name, ended = self._repeats.pop(0)
            status, job = self.run.jobs[name], self.run.spec.jobs[name]
            text = job.repeat_until or ""
            launch = self._launch_of(name)
            executor = self._hosts.executor(job.kind, job.host)
            try:
                done = await executor.attempts(launch) + 1  # durable there: exactly once
                expr = conditions.parse(text)
                holds = conditions.evaluate(expr, await self._facts(name, expr, own=True))
                if holds or self._cancel_reason is not None:
                    self._set(status, JobState.DONE, message=f"repeat: {text} held after "
                              f"{done} run(s)" if holds else "", **{**ended, "progress": 100})
                    self._decide([name])
                    continue
                if done >= job.repeat_max:
                    self._fail(status, f"repeat: {text} still false after {done} runs "
                                       f"(max {job.repeat_max})", **ended)
                    continue
                await executor.archive(launch)
            except (conditions.ConditionError, conditions.EvaluationError) as e:
                self._fail(status, f"repeat: {text}: {e}", **ended)
                continue
            except ExecutorError as e:
                self._fail(status, f"repeat: cannot run it again: {e}", **ended)
                continue
            self._set(status, JobState.READY, progress=0, tstart=None, tend=ended["tend"],
                      exit_code=ended["exit_code"], pid=None, trace=ended["trace"],
                      message=f"repeat: {text} is false after run {done} of at most "
                              f"{job.repeat_max}; again")
            self._ready[name] = None

    async def _facts(self, name: str, expr: conditions.Expr, own: bool = False
                     ) -> conditions.Facts:
        """What a condition of job `name` reads: its parameters (and, with `own`, what it
        published itself, under its parameters), the state, exit code and published
        values of the jobs it names."""
        refs = conditions.references(expr)
        jobs = {r.job for r in refs if isinstance(r, conditions.JobRef)}
        values = {r.job: await self._published(r.job) for r in refs
                  if isinstance(r, conditions.JobRef) and r.attribute == "values"}
        params = dict(self.run.spec.jobs[name].params)
        if own:
            params = {**await self._published(name), **params}
        return conditions.Facts(params=params,
                                states={j: self.run.jobs[j].state.value for j in jobs},
                                exit_codes={j: self.run.jobs[j].exit_code for j in jobs},
                                values=values)

    def _not_started(self, status: JobStatus, why: str, retry_after: float,
                     **fields: Any) -> None:
        """The host could not take the job now: hold the host, say why on the job."""
        self._hosts.hold(status.host, why, retry_after)
        self._hosts.wait_for_slot(self.run.id)  # woken when the hold ends
        message = f"waiting: {why}"
        if status.message != message or fields:
            self._set(status, JobState.READY, message=message, **fields)

    def _fail(self, status: JobStatus, message: str, **fields: Any) -> None:
        self._set(status, JobState.FAILED, message=message, **fields)
        self._decide([status.name])

    # -- stopping -------------------------------------------------------------------------

    async def _cancel_all(self) -> None:
        assert self._cancel_reason is not None
        for name, status in self.run.jobs.items():
            if status.state is JobState.READY and name not in self._running:
                self._set(status, JobState.CANCELLED, message=self._cancel_reason)
        for name in list(self._running):
            if name not in self._stopping:
                await self._stop(name, self._cancel_reason)

    async def _kill_asked(self) -> None:
        """Act on `kill`: stop a running job, cancel a waiting one. A job between attempts
        (ended, not yet set to start again) is acted on once it is either."""
        for name, reason in list(self._kills.items()):
            status = self.run.jobs[name]
            if name in self._running:
                if name not in self._stopping:
                    self._killed.add(name)
                    await self._stop(name, reason)
                del self._kills[name]
            elif status.state is JobState.READY:
                self._ready.pop(name, None)
                self._set(status, JobState.CANCELLED, message=reason)
                self._decide([name])
                del self._kills[name]
            elif status.state.final:
                del self._kills[name]

    def _due(self, name: str) -> float | None:
        """When a running job's `timeout` runs out."""
        status, limit = self.run.jobs[name], self.run.spec.jobs[name].timeout
        if status.state is JobState.QUEUED:  # its time starts when it runs
            return None
        return status.tstart + limit if status.tstart is not None and limit else None

    async def _enforce_deadlines(self) -> None:
        now = self._clock()
        for name in list(self._timed):
            due = self._due(name)
            if name not in self._stopping and due is not None and now > due:
                await self._stop(name, f"timeout after {self.run.spec.jobs[name].timeout:g} s")
        for name, (reason, kill_at) in list(self._stopping.items()):
            if now >= kill_at:
                self._stopping[name] = (reason, now + 1.0)  # SIGKILL again if it lingers
                launch = self._running[name]
                job = launch.job
                await self._hosts.executor(job.kind, job.host).cancel(launch, force=True)

    async def _stop(self, name: str, reason: str) -> None:
        launch = self._running[name]
        self._stopping[name] = (reason, self._clock() + self._grace)
        await self._hosts.executor(launch.job.kind, launch.job.host).cancel(launch)

    async def _abort(self, reason: str) -> None:
        """After a bug: stop what runs (so a rerun cannot run it twice), fail what is left."""
        for name, launch in list(self._running.items()):
            with contextlib.suppress(Exception):
                await self._hosts.executor(launch.job.kind, launch.job.host).cancel(launch)
            self._hosts.release(launch.job)
            del self._running[name]
        self._timed.clear()
        now = self._clock()
        for status in self.run.jobs.values():
            if not status.state.final:
                self._set(status, JobState.FAILED, message=reason,
                          tend=now if status.tstart is not None else None)

    # -- bookkeeping ----------------------------------------------------------------------

    def _all_final(self) -> bool:
        if self._running:
            return False
        if self._cancel_reason is not None and self._unfinished:
            for status in self.run.jobs.values():
                if not status.state.final:
                    self._set(status, JobState.CANCELLED, message=self._cancel_reason)
        return self._unfinished == 0

    def _set(self, status: JobStatus, state: JobState, **fields: Any) -> None:
        """Change a job by recording and applying the event that says so."""
        self._unfinished -= state.final and not status.state.final
        event = msgspec.structs.replace(job_event(self.run.id, status), state=state,
                                        time=self._clock(), **fields)
        apply(self.run, event)
        self._record(event)

    def _emit_run(self, state: RunState, *, t0: float | None = None, t1: float | None = None,
                  message: str | None = None) -> None:
        run = self.run
        done = sum(s.state is JobState.DONE for s in run.jobs.values())
        event = Event(run_id=run.id, job=None, state=JobState(state.value),
                      progress=done * 100 // max(1, len(run.jobs)), time=self._clock(),
                      tstart=t0 if t0 is not None else run.t0, tend=t1,
                      message=run.message if message is None else message)
        apply(run, event)
        self._record(event)


def _not_done(run: Run, names: list[str]) -> str:
    """Why a run failed, in one line: its first few jobs that did not end done."""
    failed = [n for n in names if run.jobs[n].state is JobState.FAILED]
    which = failed or names
    shown = ", ".join(which[:3]) + (f" and {len(which) - 3} more" if len(which) > 3 else "")
    first = run.jobs[which[0]]
    why = f": {first.message}" if len(which) == 1 and first.message else ""
    verb = "failed" if failed else "did not run"
    return f"{len(which)} job{'s' if len(which) > 1 else ''} {verb}: {shown}{why}"
