"""The scheduler's decisions, against an in-memory executor (no processes): limits, joins,
cancel, and re-attaching instead of restarting. The real executor is tested in test_run.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from ccd.executors.protocol import Launch, Observation
from ccd.model import Event, HostSpec, JobSpec, JobState, JobStatus, Run, RunState, WorkflowSpec
from ccd.scheduler import Scheduler


class MemoryExecutor:
    """Jobs 'run' until the test finishes them."""

    def __init__(self, notify: Callable[[], None], already_started: set[str]) -> None:
        self.notify = notify
        self.started: list[str] = []
        self.running: dict[str, str] = {}  # job -> host
        self.exit_codes: dict[str, int] = {}
        self.most_at_once = 0
        self.cancelled: list[str] = []
        self.already_started = already_started
        self.set_aside: list[str] = []

    async def start(self, launch: Launch) -> None:
        self.started.append(launch.job.name)
        self.running[launch.job.name] = launch.job.host
        self.most_at_once = max(self.most_at_once, len(self.running))

    async def prepare(self, launch: Launch) -> None:
        pass

    async def attempts(self, launch: Launch) -> int:
        return self.set_aside.count(launch.job.name)

    async def archive(self, launch: Launch) -> None:
        self.set_aside.append(launch.job.name)
        del self.exit_codes[launch.job.name]

    async def attach(self, launch: Launch) -> Observation:
        name = launch.job.name
        if name in self.already_started:
            self.running[name] = launch.job.host
            return Observation(name, started=True, pid=1)
        return Observation(name)

    async def poll(self, launches: Sequence[Launch]) -> list[Observation]:
        out = []
        for launch in launches:
            name = launch.job.name
            code = self.exit_codes.get(name)
            out.append(Observation(name, started=True, ended=code is not None, exit_code=code))
        return out

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        self.cancelled.append(launch.job.name)
        self.finish(launch.job.name, 143)

    async def read_log(self, launch: Launch, offset: int, limit: int) -> bytes:
        return b""

    async def aclose(self) -> None:
        pass

    def finish(self, name: str, code: int = 0) -> None:
        self.running.pop(name, None)
        self.exit_codes[name] = code
        self.notify()


def make_run(jobs: list[JobSpec], edges: list[tuple[str, str]],
             hosts: dict[str, HostSpec] | None = None) -> Run:
    spec = WorkflowSpec("t", Path("/nowhere/t.yaml"), {j.name: j for j in jobs}, tuple(edges),
                        hosts=hosts or {})
    return Run("r1", spec, {j.name: JobStatus(j.name, host=j.host) for j in jobs},
               Path("/nowhere/jobs"), created=0.0)


class Harness:
    def __init__(self, run: Run, max_jobs: int, already_started: set[str] | None = None) -> None:
        self.events: list[Event] = []
        self.executor: MemoryExecutor | None = None
        started = already_started or set()

        def make(kind: str, notify: Callable[[], None]) -> MemoryExecutor:
            self.executor = MemoryExecutor(notify, started)
            return self.executor

        self.scheduler = Scheduler(run, self.events.append, max_jobs=max_jobs,
                                   make_executor=make, tick=0.001, grace=0.0)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.001)


def test_ready_jobs_start_together_up_to_the_global_limit() -> None:
    jobs = [JobSpec("start"), *(JobSpec(f"j{i}", exec="x") for i in range(10)), JobSpec("end")]
    run = make_run(jobs, [("start", f"j{i}") for i in range(10)] +
                   [(f"j{i}", "end") for i in range(10)])
    h = Harness(run, max_jobs=3)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and len(h.executor.running) == 3)
        ex = h.executor
        assert ex is not None
        while len(ex.exit_codes) < 10:
            await h.until(lambda: bool(ex.running))
            ex.finish(next(iter(ex.running)))
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.executor is not None and h.executor.most_at_once == 3
    assert len(h.executor.started) == 10  # joins start no process


def test_per_host_max_jobs_limits_each_host() -> None:
    jobs = [JobSpec(f"a{i}", exec="x", host="small") for i in range(3)] + \
           [JobSpec(f"b{i}", exec="x", host="big") for i in range(3)]
    run = make_run(jobs, [], hosts={"small": HostSpec("small", max_jobs=1)})
    h = Harness(run, max_jobs=10)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and len(h.executor.running) == 4)
        ex = h.executor
        assert ex is not None
        assert sorted(ex.running.values()) == ["big", "big", "big", "small"]
        while len(ex.exit_codes) < 6:
            await h.until(lambda: bool(ex.running))
            small = [n for n, host in ex.running.items() if host == "small"]
            assert len(small) <= 1
            ex.finish(next(iter(ex.running)))
        return await task

    assert asyncio.run(scenario()) is RunState.DONE


def test_cancel_stops_running_jobs_and_cancels_waiting_ones() -> None:
    jobs = [JobSpec("a", exec="x"), JobSpec("b", exec="x"), JobSpec("c", exec="x")]
    run = make_run(jobs, [("a", "b")])
    h = Harness(run, max_jobs=10)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and len(h.executor.running) == 2)
        h.scheduler.cancel("stop")
        return await task

    assert asyncio.run(scenario()) is RunState.CANCELLED
    assert {n: s.state for n, s in run.jobs.items()} == {
        "a": JobState.CANCELLED, "b": JobState.CANCELLED, "c": JobState.CANCELLED}
    assert h.executor is not None and sorted(h.executor.cancelled) == ["a", "c"]
    assert "b" not in h.executor.started


def test_resumed_run_reattaches_started_jobs_instead_of_starting_them() -> None:
    jobs = [JobSpec("a", exec="x"), JobSpec("b", exec="x")]
    run = make_run(jobs, [("a", "b")])
    h = Harness(run, max_jobs=10, already_started={"a"})

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and "a" in h.executor.running)
        assert h.executor is not None
        h.executor.finish("a")
        await h.until(lambda: h.executor is not None and "b" in h.executor.running)
        h.executor.finish("b")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.executor is not None and h.executor.started == ["b"]


def test_every_change_is_an_event_and_the_run_ends_with_one() -> None:
    run = make_run([JobSpec("a", exec="x")], [])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and "a" in h.executor.running)
        assert h.executor is not None
        h.executor.finish("a", 2)
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    assert [(e.job, e.state) for e in h.events] == [
        (None, "running"), ("a", "running"), ("a", "failed"), (None, "failed")]
    assert h.events[2].exit_code == 2 and h.events[2].message == "exit code 2"


def test_a_job_recorded_as_running_that_never_began_is_started() -> None:
    run = make_run([JobSpec("a", exec="x")], [])
    run.jobs["a"].state = JobState.RUNNING  # the database says so; no wrapper ever claimed it
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        await h.until(lambda: h.executor is not None and "a" in h.executor.running)
        assert h.executor is not None
        h.executor.finish("a")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.executor is not None and h.executor.started == ["a"]


def test_a_failed_job_with_retries_is_set_aside_and_started_again() -> None:
    run = make_run([JobSpec("flaky", exec="x", retries=2), JobSpec("after", exec="x")],
                   [("flaky", "after")])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        for code in (1, 1, 0):  # fails twice, then succeeds
            await h.until(lambda: h.executor is not None and "flaky" in h.executor.running)
            assert h.executor is not None
            h.executor.finish("flaky", code)
        await h.until(lambda: h.executor is not None and "after" in h.executor.running)
        h.executor.finish("after")
        return await task

    assert asyncio.run(scenario()) is RunState.DONE
    assert h.executor is not None and h.executor.set_aside == ["flaky", "flaky"]
    messages = [e.message for e in h.events if e.job == "flaky" and e.state == "ready"]
    assert messages == ["exit code 1 (attempt 1 of 3); trying again",
                        "exit code 1 (attempt 2 of 3); trying again"]


def test_retries_run_out_and_the_job_fails_with_its_last_reason() -> None:
    run = make_run([JobSpec("flaky", exec="x", retries=1)], [])
    h = Harness(run, max_jobs=1)

    async def scenario() -> RunState:
        task = asyncio.create_task(h.scheduler.run_to_end())
        for _ in range(2):
            await h.until(lambda: h.executor is not None and "flaky" in h.executor.running)
            assert h.executor is not None
            h.executor.finish("flaky", 7)
        return await task

    assert asyncio.run(scenario()) is RunState.FAILED
    assert run.jobs["flaky"].message == "exit code 7 (attempt 2 of 2)"
