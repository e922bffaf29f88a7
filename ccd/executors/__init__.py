"""Executors run jobs on a host by the job protocol (`protocol.py`), behind one interface.

Batch-shaped, like an httpx transport: an executor serves one (kind, host) for every run
the process drives (`ccd.hosts`), watches all their jobs at its own pace, and pushes what
it sees through `deliver`; so a remote executor pays one round trip per host per tick,
not one per job or per run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ccd.errors import UnsupportedKind
from ccd.executors.protocol import Launch, Observation
from ccd.model import RUNNABLE_KINDS

Deliver = Callable[[Observation], None]
Changed = Callable[[], None]  # an executor's links changed (connected, lost, ...)


@dataclass(frozen=True, slots=True)
class LinkState:
    """How an executor reaches its host now: `GET /api/v1/hosts`, `ccctl hosts`, the page."""

    kind: str
    host: str  # as the workflows name it
    address: str  # where it connects: user@hostname:port
    connected: bool
    since: float  # when it last connected or was lost
    error: str  # why it is not connected
    rtt: float | None  # seconds a command takes, smoothed
    channels: int  # in use now
    channel_limit: int
    jobs: int  # watched now
    connections: int  # opened by this process
    commands: int  # run by this process
    rpcs: int = 0  # calls to a batch system's controller (queries, submissions, cancels)


class Executor(Protocol):
    """Starts, watches and cancels jobs on one host; owns where their files live."""

    queues: bool  # a started job waits in a batch system's queue before it runs

    async def prepare(self, launch: Launch) -> None:
        """Get ready for a job that will probably start soon (its directory, its files), so
        that work is off the critical path; the job's own start repeats it if needed."""

    async def start(self, launch: Launch) -> int | None:
        """Start a job that has never started (the wrapper refuses a second start) and
        watch it; its wrapper's pid if known at once."""

    async def attach(self, launch: Launch) -> Observation:
        """After a restart: find out whether a job started, runs or ended, and watch it
        while it runs; never starts anything."""

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        """Ask a running job to stop (SIGTERM to its process group; SIGKILL if force)."""

    async def attempts(self, launch: Launch) -> int:
        """How many ended attempts of the job were set aside (for `retries`)."""

    async def archive(self, launch: Launch) -> None:
        """Set the job's ended attempt aside (log, status) so it can start again."""

    async def read_log(self, launch: Launch, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to `limit` bytes of the job's log from `offset`, and the log's size now."""

    def counters(self) -> dict[str, int]:
        """What it is doing, for the daemon's health report."""

    def links(self) -> list[LinkState]:
        """Its connections to its host (none for this machine)."""

    async def aclose(self) -> None:
        """Stop watching; running jobs keep running (they are detached)."""


MakeExecutor = Callable[[str, str, Deliver, Changed], "Executor"]  # (kind, host, ...)


def executor_for(kind: str, host: str, deliver: Deliver, changed: Changed) -> Executor:
    """The executor for jobs of `kind` on `host`; `deliver` receives what it observes,
    `changed` is called when its links change."""
    if kind == "local":
        from ccd.executors.local import LocalExecutor

        return LocalExecutor(deliver)
    if kind == "ssh":
        from ccd.executors.ssh import SshExecutor

        return SshExecutor(host, deliver, changed)
    if kind == "slurm":
        from ccd.executors.batch import BatchExecutor
        from ccd.executors.slurm import Slurm

        return BatchExecutor(host, Slurm(), deliver, changed)
    if kind == "wsl":
        from ccd.executors.wsl import WslExecutor

        return WslExecutor(host, deliver, changed)
    if kind == "lsf":
        from ccd.executors.batch import BatchExecutor
        from ccd.executors.lsf import Lsf

        return BatchExecutor(host, Lsf(), deliver, changed)
    raise UnsupportedKind(f"kind {kind!r} cannot run in this version of ccd "
                          f"(it runs: {', '.join(RUNNABLE_KINDS)})")
