"""Executors belong to hosts, not to runs: one executor per (kind, host), shared by every run
the process drives, and the limits that hold across all of those runs.

The process that drives runs (the daemon's service, `ccctl run`, the Python API) opens one
`Hosts` and closes it when it stops; each run's scheduler joins it for its life. An
executor watches the jobs of every run on its host at its own pace and pushes what it sees
here; `Hosts` hands each observation to the scheduler of its run. So N runs on one host
cost one poll per tick, not N, and an SSH host will have one connection.

Limits: at most `max_jobs` jobs at once in this process, and at most a host's own
`max_jobs` (the workflow's `hosts:`) on that host, counted over all runs. A scheduler
whose job found no free slot is woken when one frees. Limits hold within one process:
a `ccctl run` in a terminal and the daemon count separately.

Holds: a host that cannot take a job now (its disk is full) is held for a while, and all
starts are paused while the state database cannot be written; what waits is woken when
the hold ends. These are the daemon's `problems`, in its health report.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from ccd.executors import Executor, LinkState, MakeExecutor, executor_for
from ccd.executors.protocol import Observation
from ccd.model import BATCH_KINDS, JobSpec
from ccd.settings import default_max_jobs


class Member(Protocol):
    """What Hosts needs of a run's scheduler."""

    def observe(self, obs: Observation) -> None:
        """An executor saw something of one of the run's jobs."""

    def notify(self) -> None:
        """A slot freed: try to start what waits."""


class Hosts:
    """The executors of this process and the limits across its runs."""

    def __init__(self, max_jobs: int | None = None,
                 make_executor: MakeExecutor = executor_for) -> None:
        self.max_jobs = max_jobs or default_max_jobs()
        self._make = make_executor
        self._executors: dict[tuple[str, str], Executor] = {}
        self._members: dict[str, Member] = {}
        self._running: Counter[tuple[str, str]] = Counter()  # (kind, host) -> jobs started
        self.running = 0  # jobs running, all hosts, but those in a batch queue
        self._blocked: set[str] = set()  # runs waiting for a slot
        self._held: dict[str, tuple[str, float]] = {}  # host -> (why, until when)
        self._paused: str | None = None  # why no job may start anywhere
        self.on_change: Callable[[], None] | None = None  # an executor's links changed

    async def __aenter__(self) -> Hosts:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def executor(self, kind: str, host: str) -> Executor:
        """The one executor for jobs of `kind` on `host`, made on first use. Raises
        ExecutorError if it cannot be made (asked again next time: a fixed configuration
        then works without a restart)."""
        key = (kind, host)
        executor = self._executors.get(key)
        if executor is None:
            executor = self._executors[key] = self._make(kind, host, self._deliver,
                                                         self._links_changed)
        return executor

    # -- runs -----------------------------------------------------------------------------

    def join(self, run_id: str, member: Member) -> None:
        """A run's scheduler receives its jobs' observations from now on."""
        self._members[run_id] = member

    def leave(self, run_id: str) -> None:
        self._members.pop(run_id, None)
        self._blocked.discard(run_id)

    def _links_changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def links(self) -> list[LinkState]:
        """How every executor reaches its host now."""
        return [link for e in self._executors.values() for link in e.links()]

    def _deliver(self, obs: Observation) -> None:
        member = self._members.get(obs.run_id)
        if member is not None:  # else its run detached; it re-attaches when resumed
            member.observe(obs)

    # -- limits ---------------------------------------------------------------------------

    def acquire(self, run_id: str, job: JobSpec, host_limit: int | None) -> bool:
        """Take a slot for `job` on its host if the limits and holds allow; else remember to
        wake the run when one frees. A batch job waits in its cluster's queue, not here:
        only its host's own `max_jobs` limits it, not this process's."""
        key = (job.kind, job.host)
        if (self.full if job.kind not in BATCH_KINDS else self._paused is not None) \
                or job.host in self._held or (host_limit and self._running[key] >= host_limit):
            self.wait_for_slot(run_id)
            return False
        self.occupy(job)
        return True

    def hold(self, host: str, why: str, seconds: float) -> None:
        """Start nothing on `host` for `seconds` (it could not take a job: no room)."""
        if host not in self._held:
            asyncio.get_running_loop().call_later(seconds, self._unhold, host)
        self._held[host] = (why, time.time() + seconds)

    def _unhold(self, host: str) -> None:
        self._held.pop(host, None)
        self._wake_blocked()

    def pause(self, why: str | None) -> None:
        """Start nothing anywhere while `why` (the state cannot be saved); None resumes."""
        self._paused = why
        if why is None:
            self._wake_blocked()

    def problems(self) -> list[str]:
        """What keeps jobs from starting now, in words."""
        out = [f"all starts paused: {self._paused}"] if self._paused else []
        out += [f"{host}: {why} (trying again)" for host, (why, _) in self._held.items()]
        return out

    def wait_for_slot(self, run_id: str) -> None:
        """Wake the run's scheduler when a job ends anywhere."""
        self._blocked.add(run_id)

    @property
    def full(self) -> bool:
        """No job can start anywhere until one ends (or a pause ends)."""
        return self.running >= self.max_jobs or self._paused is not None

    def occupy(self, job: JobSpec) -> None:
        """Count a job that is already running (re-attached after a restart), limits or not."""
        self._running[job.kind, job.host] += 1
        self.running += job.kind not in BATCH_KINDS

    def release(self, job: JobSpec) -> None:
        """A job ended or its run detached: its slot is free."""
        self._running[job.kind, job.host] -= 1
        self.running -= job.kind not in BATCH_KINDS
        self._wake_blocked()

    def _wake_blocked(self) -> None:
        if self._blocked:
            blocked, self._blocked = self._blocked, set()
            for run_id in blocked:
                member = self._members.get(run_id)
                if member is not None:
                    member.notify()

    def counters(self) -> dict[str, object]:
        """Jobs per host and each executor's own counters, for the health report."""
        return {
            "max_jobs": self.max_jobs, "running": self.running, "problems": self.problems(),
            "runs": len(self._members), "runs_waiting_for_a_slot": len(self._blocked),
            "executors": {f"{kind}:{host}": counters
                          for (kind, host), counters in self.executor_counters().items()},
        }

    def executor_counters(self) -> dict[tuple[str, str], dict[str, int]]:
        """Each executor's own counters (jobs, polls, ...) and its jobs running, by (kind,
        host)."""
        return {(kind, host): {**e.counters(), "running": self._running[kind, host]}
                for (kind, host), e in self._executors.items()}

    async def aclose(self) -> None:
        """Close every executor; running jobs go on."""
        executors, self._executors = self._executors, {}
        for executor in executors.values():
            await executor.aclose()
