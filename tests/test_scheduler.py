"""The scheduler against the in-memory executor (no processes): limits within and across
runs, joins, cancel, retries, re-attaching instead of restarting, and runs that end
whatever goes wrong. The real executor is tested in test_run.py and test_daemon.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from ccd.errors import ExecutorError, HostBusy, UnsupportedKind
from ccd.executors import Changed, Deliver, Executor
from ccd.executors.memory import MemoryExecutor
from ccd.executors.protocol import Launch, Observation
from ccd.hosts import Hosts
from ccd.model import Event, HostSpec, JobSpec, JobState, JobStatus, Run, RunState, WorkflowSpec
from ccd.scheduler import Scheduler


def make_run(jobs: list[JobSpec], edges: list[tuple[str, str]],
             hosts: dict[str, HostSpec] | None = None, run_id: str = "r1") -> Run:
    spec = WorkflowSpec("t", Path("/nowhere/t.yaml"), {j.name: j for j in jobs}, tuple(edges),
                        hosts=hosts or {})
    return Run(run_id, spec, {j.name: JobStatus(j.name, host=j.host) for j in jobs},
               Path("/nowhere/run"), created=0.0)


class Harness:
    """Schedulers of one or more runs sharing one Hosts and one in-memory executor."""

    def __init__(self, *runs: Run, max_jobs: int,
                 already_started: Collection[tuple[str, str]] = (),
                 make: Callable[[str, str, Deliver], Executor] | None = None) -> None:
        self.events: list[Event] = []
        self.made, factory = MemoryExecutor.factory(already_started)
        self.hosts = Hosts(max_jobs, make or factory)
        self.schedulers = [Scheduler(run, self.events.append, self.hosts, grace=0.0)
                           for run in runs]
        self.scheduler = self.schedulers[0]

    @property
    def ex(self) -> MemoryExecutor:
        assert self.made, "no job has started yet"
        return self.made[0]

    def running(self, name: str, run_id: str = "r1") -> bool:
        return bool(self.made) and (run_id, name) in self.ex.running

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.001)

    async def finish(self, name: str, code: int = 0, run_id: str = "r1") -> None:
        """Wait until the job runs, then end it."""
        await self.until(lambda: self.running(name, run_id))
        self.ex.finish(run_id, name, code)


def test_ready_jobs_start_together_up_to_the_global_limit() -> None:
    jobs = [JobSpec("start"), *(JobSpec(f"j{i}", exec="x") for i in range(10)), JobSpec("end")]
    run = make_run(jobs, [("start", f"j{i}") for i in range(10)] +
                   [(f"j{i}", "end") for i in range(10)])
    h = Harness(run, max_jobs=3)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: bool(h.made) and len(h.ex.running) == 3)
        while len(h.ex.started) < 10 or h.ex.running:
            await h.until(lambda: bool(h.ex.running))
            h.ex.finish(*next(iter(h.ex.running)))
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.most_at_once == 3
    assert len(h.ex.started) == 10  # joins start no process


def test_per_host_max_jobs_limits_each_host() -> None:
    jobs = [JobSpec(f"a{i}", exec="x", host="small") for i in range(3)] + \
           [JobSpec(f"b{i}", exec="x", host="big") for i in range(3)]
    run = make_run(jobs, [], hosts={"small": HostSpec("small", max_jobs=1)})
    h = Harness(run, max_jobs=10)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: bool(h.made) and len(h.ex.running) == 4)
        assert sorted(h.ex.running.values()) == ["big", "big", "big", "small"]
        while h.ex.running:
            h.ex.finish(*next(iter(h.ex.running)))
            await h.until(lambda: bool(h.ex.running) or task.done())
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.most_on_host == {"small": 1, "big": 3}


def test_limits_hold_across_runs_that_share_the_hosts() -> None:
    def six(run_id: str) -> Run:
        return make_run([JobSpec(f"j{i}", exec="x", host="box") for i in range(6)], [],
                        hosts={"box": HostSpec("box", max_jobs=2)}, run_id=run_id)

    h = Harness(six("r1"), six("r2"), max_jobs=100)

    async def scenario() -> list[RunState]:
        tasks = [asyncio.create_task(s.run_to_end()) for s in h.schedulers]
        await h.until(lambda: bool(h.made))
        while len(h.ex.started) < 12 or h.ex.running:
            await h.until(lambda: bool(h.ex.running))
            assert len(h.ex.running) <= 2
            h.ex.finish(*next(iter(h.ex.running)))
            await asyncio.sleep(0.001)  # let the other run take the freed slot if it can
        return [await t for t in tasks]

    assert asyncio.run(scenario()) == [RunState.DONE, RunState.DONE]
    assert h.ex.most_on_host["box"] == 2
    assert {run for run, _ in h.ex.started} == {"r1", "r2"}  # both runs got slots


def test_one_executor_serves_every_run_on_a_host() -> None:
    made: list[tuple[str, str]] = []
    shared, factory = MemoryExecutor.factory()

    def make(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
        made.append((kind, host))
        return factory(kind, host, deliver, changed)

    runs = [make_run([JobSpec("a", exec="x")], [], run_id=f"r{i}") for i in range(3)]
    h = Harness(*runs, max_jobs=10, make=make)

    async def scenario() -> None:
        tasks = [asyncio.create_task(s.run_to_end()) for s in h.schedulers]
        for i in range(3):
            await asyncio.wait_for(_finish(shared, f"r{i}", "a"), 10)
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert made == [("local", "localhost")]


async def _finish(made: list[MemoryExecutor], run_id: str, name: str) -> None:
    while not made or (run_id, name) not in made[0].running:
        await asyncio.sleep(0.001)
    made[0].finish(run_id, name)


def test_cancel_stops_running_jobs_and_cancels_waiting_ones() -> None:
    jobs = [JobSpec("a", exec="x"), JobSpec("b", exec="x"), JobSpec("c", exec="x")]
    run = make_run(jobs, [("a", "b")])
    h = Harness(run, max_jobs=10)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: bool(h.made) and len(h.ex.running) == 2)
        h.scheduler.cancel("stop")
        return await task

    assert asyncio.run(scenario()) is RunState.CANCELLED
    assert {n: s.state for n, s in run.jobs.items()} == {
        "a": JobState.CANCELLED, "b": JobState.CANCELLED, "c": JobState.CANCELLED}
    assert sorted(n for _, n in h.ex.cancelled) == ["a", "c"]
    assert ("r1", "b") not in h.ex.started
    assert run.message == "stop"


def test_kill_ends_one_job_cancelled_without_retry_and_the_rest_of_the_run_goes_on() -> None:
    jobs = [JobSpec("a", exec="x", retries=3), JobSpec("b", exec="x"), JobSpec("c", exec="x"),
            JobSpec("w", exec="x"), JobSpec("after-w", exec="x")]
    run = make_run(jobs, [("a", "b"), ("c", "w"), ("w", "after-w")])
    h = Harness(run, max_jobs=10)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.running("a") and h.running("c"))
        h.scheduler.kill("a", "killed")  # running: stopped
        h.scheduler.kill("w", "killed")  # waiting for c: never starts
        await h.until(lambda: run.jobs["w"].state is JobState.CANCELLED)
        await h.finish("c")
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    assert {n: s.state for n, s in run.jobs.items()} == {
        "a": JobState.CANCELLED, "b": JobState.SKIPPED, "c": JobState.DONE,
        "w": JobState.CANCELLED, "after-w": JobState.SKIPPED}
    assert run.jobs["a"].message == "killed" and run.jobs["a"].attempt == 1
    assert h.ex.cancelled == [("r1", "a")]
    assert ("r1", "w") not in h.ex.started


def test_resumed_run_reattaches_started_jobs_instead_of_starting_them() -> None:
    run = make_run([JobSpec("a", exec="x"), JobSpec("b", exec="x")], [("a", "b")])
    run.t0 = 1.0  # it ran before, in a process that started a
    h = Harness(run, max_jobs=10, already_started={("r1", "a")})

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.finish("a")
        await h.finish("b")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.started == [("r1", "b")]


def test_a_new_run_asks_no_executor_about_its_jobs_before_starting_them() -> None:
    # Nothing of a new run can have started, so nothing waits for a host's answer first.
    run = make_run([JobSpec("a", exec="x")], [])
    h = Harness(run, max_jobs=10, already_started={("r1", "a")})  # an answer it must not get

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.finish("a")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.started == [("r1", "a")]


def test_every_change_is_an_event_carrying_the_whole_new_state() -> None:
    run = make_run([JobSpec("a", exec="x")], [])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.running("a"))
        h.ex.progress("r1", "a", 40)
        await h.until(lambda: run.jobs["a"].progress == 40)
        h.ex.finish("r1", "a", 2)
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    assert [(e.job, e.state, e.progress) for e in h.events] == [
        (None, "running", 0), ("a", "running", 0), ("a", "running", 40), ("a", "failed", 40),
        (None, "failed", 0)]
    running, _, failed = h.events[1:4]
    assert running.pid == 1001 and running.attempt == 1 and running.tstart is not None
    assert failed.exit_code == 2 and failed.message == "exit code 2"
    assert failed.tstart == running.tstart and failed.tend is not None and failed.pid == 1001
    assert h.events[-1].message == "1 job failed: a: exit code 2"
    assert h.events[-1].tstart == h.events[0].tstart and h.events[-1].tend is not None


def test_a_job_recorded_as_running_that_never_began_is_started() -> None:
    run = make_run([JobSpec("a", exec="x")], [])
    run.t0 = 1.0
    run.jobs["a"].state = JobState.RUNNING  # the database says so; no wrapper ever claimed it
    run.jobs["a"].attempt = 1
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.finish("a")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.started == [("r1", "a")] and run.jobs["a"].attempt == 1


def test_a_failed_job_with_retries_is_set_aside_and_started_again() -> None:
    run = make_run([JobSpec("flaky", exec="x", retries=2), JobSpec("after", exec="x")],
                   [("flaky", "after")])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        for code in (1, 1, 0):  # fails twice, then succeeds
            await h.finish("flaky", code)
            await h.until(lambda: not h.running("flaky"))
        await h.finish("after")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.ex.set_aside[("r1", "flaky")] == 2
    messages = [e.message for e in h.events if e.job == "flaky" and e.state == "ready"]
    assert messages == ["exit code 1 (attempt 1 of 3); trying again",
                        "exit code 1 (attempt 2 of 3); trying again"]
    flaky = run.jobs["flaky"]
    assert (flaky.state, flaky.attempt, flaky.message, flaky.exit_code) == \
        (JobState.DONE, 3, "", 0)
    starts = [e.tstart for e in h.events if e.job == "flaky" and e.state == "running"]
    assert flaky.tstart == starts[-1] and len(set(starts)) == 3  # the last attempt's start


def test_retries_run_out_and_the_job_fails_with_its_last_reason() -> None:
    run = make_run([JobSpec("flaky", exec="x", retries=1)], [])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        for _ in range(2):
            await h.finish("flaky", 7)
            await h.until(lambda: not h.running("flaky"))
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    flaky = run.jobs["flaky"]
    assert (flaky.message, flaky.exit_code, flaky.attempt) == \
        ("exit code 7 (attempt 2 of 2)", 7, 2)


def test_a_host_without_an_executor_fails_its_jobs_and_the_run_ends() -> None:
    shared, factory = MemoryExecutor.factory()

    def make(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
        if kind == "ssh":
            raise UnsupportedKind("kind 'ssh' cannot run in this version of ccd")
        return factory(kind, host, deliver, changed)

    run = make_run([JobSpec("here", exec="x"), JobSpec("there", exec="x", kind="ssh"),
                    JobSpec("after", exec="x")], [("there", "after")])
    h = Harness(run, max_jobs=10, make=make)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await asyncio.wait_for(_finish(shared, "r1", "here"), 10)
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    states = {n: (s.state, s.message) for n, s in run.jobs.items()}
    assert states == {
        "here": (JobState.DONE, ""),
        "there": (JobState.FAILED, "kind 'ssh' cannot run in this version of ccd"),
        "after": (JobState.SKIPPED, "skipped: there failed")}
    assert run.message == "1 job failed: there: kind 'ssh' cannot run in this version of ccd"


class _Failing(MemoryExecutor):
    """Starting the job named `bug` raises the exception given."""

    error: Exception

    async def start(self, launch: Launch) -> int:
        if launch.job.name == "bug":
            raise self.error
        return await super().start(launch)


@pytest.mark.parametrize(("error", "job_message", "run_message"), [
    (ExecutorError("cannot reach host box: connection refused"),
     "cannot reach host box: connection refused",
     "1 job failed: bug: cannot reach host box: connection refused"),
    (RuntimeError("something ccd did not expect"),
     "ccd stopped driving this run: RuntimeError: something ccd did not expect",
     "ccd stopped driving this run: RuntimeError: something ccd did not expect"),
])
def test_whatever_goes_wrong_the_run_ends_failed_with_the_reason(
        error: Exception, job_message: str, run_message: str) -> None:
    made: list[MemoryExecutor] = []

    def make(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
        if not made:
            made.append(_Failing(deliver))
            made[0].error = error
        return made[0]

    run = make_run([JobSpec("long", exec="x"), JobSpec("gate", exec="x"),
                    JobSpec("bug", exec="x")], [("gate", "bug")])
    h = Harness(run, max_jobs=10, make=make)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await asyncio.wait_for(_finish(made, "r1", "gate"), 10)
        if isinstance(error, ExecutorError):  # only that job failed: the others go on
            await asyncio.wait_for(_finish(made, "r1", "long"), 10)
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(scenario()) is RunState.FAILED
    assert (run.jobs["bug"].state, run.jobs["bug"].message) == (JobState.FAILED, job_message)
    assert run.message == run_message
    if not isinstance(error, ExecutorError):  # a bug: what ran is stopped and failed, so a
        assert ("r1", "long") in made[0].cancelled  # rerun cannot run it twice
        assert (run.jobs["long"].state, run.jobs["long"].message) == \
            (JobState.FAILED, run_message)
    assert all(s.state.final for s in run.jobs.values())
    assert h.events[-1].job is None and h.events[-1].state == "failed"


class _Full(MemoryExecutor):
    """A host whose disk is full for the first `full` starts (HostBusy), or whose wrapper
    finds no room after starting (`nostart`)."""

    full = 0
    nostart = False

    async def start(self, launch: Launch) -> int:
        if self.full:
            self.full -= 1
            raise HostBusy("no room on this machine's disk for the job's files",
                           retry_after=0.01)
        pid = await super().start(launch)
        if self.nostart:
            self.nostart = False
            self.running.pop(launch.key)
            self.deliver(Observation(*launch.key, nostart="no room for its status file"))
        return pid


@pytest.mark.parametrize("how", ["start refused", "wrapper found no room"])
def test_a_host_with_no_room_holds_the_job_which_starts_later_and_never_fails(
        how: str) -> None:
    made: list[MemoryExecutor] = []

    def make(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
        if not made:
            made.append(_Full(deliver))
            if how == "start refused":
                made[0].full = 2  # type: ignore[attr-defined]
            else:
                made[0].nostart = True  # type: ignore[attr-defined]
        return made[0]

    run = make_run([JobSpec("a", exec="x")], [])
    h = Harness(run, max_jobs=10, make=make)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await asyncio.wait_for(_finish(made, "r1", "a"), 10)
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    a = [(e.state.value, e.message) for e in h.events if e.job == "a"]
    assert ("ready", "waiting: no room on this machine's disk for the job's files") in a \
        or ("ready", "waiting: no room for its status file") in a
    assert "failed" not in [state for state, _ in a]
    assert run.jobs["a"].attempt == 1 and run.jobs["a"].message == ""
