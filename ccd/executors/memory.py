"""An executor whose jobs run until someone ends them: for testing the scheduler and the
hosts layer without processes, as httpx ships MockTransport. Not for production: nothing
runs and nothing survives the process.

One instance can serve every (kind, host) of a `Hosts` (see `MemoryExecutor.factory`), so
a test sees every job of every run in one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from ccd.executors import Changed, Deliver, Executor, LinkState, MakeExecutor
from ccd.executors.protocol import Launch, Observation

Key = tuple[str, str]  # (run id, job name)


class MemoryExecutor:
    """Jobs 'run' from `start` until `finish`; `already_started` jobs are found by `attach`
    as a previous process would have left them."""

    queues = False

    def __init__(self, deliver: Deliver, already_started: Collection[Key] = (),
                 changed: Changed = lambda: None) -> None:
        self.deliver = deliver
        self.changed = changed
        self.link_states: dict[tuple[str, str], LinkState] = {}  # (kind, host) -> link
        self.already_started = already_started
        self.started: list[Key] = []
        self.running: dict[Key, str] = {}  # job -> its host
        self.most_at_once = 0
        self.most_on_host: Counter[str] = Counter()
        self.cancelled: list[Key] = []
        self.prepared: list[Key] = []
        self.set_aside: Counter[Key] = Counter()
        self.closed = False

    @classmethod
    def factory(cls, already_started: Collection[Key] = ()
                ) -> tuple[list[MemoryExecutor], MakeExecutor]:
        """A `make_executor` for Hosts that makes one shared executor, and a list that holds
        it once made."""
        made: list[MemoryExecutor] = []

        def make(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
            if not made:
                made.append(cls(deliver, already_started, changed))
            return made[0]

        return made, make

    async def prepare(self, launch: Launch) -> None:
        self.prepared.append(launch.key)

    async def start(self, launch: Launch) -> int:
        self.started.append(launch.key)
        self._run(launch)
        return 1000 + len(self.started)

    async def attach(self, launch: Launch) -> Observation:
        if launch.key in self.already_started:
            self._run(launch)
            return Observation(*launch.key, started=True, pid=1)
        return Observation(*launch.key)

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        self.cancelled.append(launch.key)
        if launch.key in self.running:
            self.finish(*launch.key, exit_code=143)

    async def attempts(self, launch: Launch) -> int:
        return self.set_aside[launch.key]

    async def archive(self, launch: Launch) -> None:
        self.set_aside[launch.key] += 1

    async def read_log(self, launch: Launch, offset: int, limit: int) -> tuple[bytes, int]:
        return b"", 0

    def counters(self) -> dict[str, int]:
        return {"jobs": len(self.running)}

    def links(self) -> list[LinkState]:
        return list(self.link_states.values())

    async def aclose(self) -> None:
        self.closed = True

    # -- for tests ------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the running jobs (of every run)."""
        return [name for _, name in self.running]

    def progress(self, run_id: str, name: str, percent: int) -> None:
        """The job reports progress."""
        self.deliver(Observation(run_id, name, started=True, progress=percent))

    def link(self, state: LinkState) -> None:
        """Its link to `state.host` is now as `state` says (and Hosts is told)."""
        self.link_states[state.kind, state.host] = state
        self.changed()

    def finish(self, run_id: str, name: str, exit_code: int = 0) -> None:
        """The job ends with `exit_code`."""
        self.running.pop((run_id, name), None)
        self.deliver(Observation(run_id, name, started=True, ended=True, exit_code=exit_code))

    def _run(self, launch: Launch) -> None:
        host = launch.job.host
        self.running[launch.key] = host
        self.most_at_once = max(self.most_at_once, len(self.running))
        on_host = sum(h == host for h in self.running.values())
        self.most_on_host[host] = max(self.most_on_host[host], on_host)
