"""Executors run jobs on a host by the job protocol (`protocol.py`), behind one interface.

Batch-shaped, like an httpx transport: `poll` takes every job of a host at once, so a
remote executor pays one round trip per host per tick, not one per job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ccd.errors import UnsupportedKind
from ccd.executors.protocol import Launch, Observation


class Executor(Protocol):
    """Starts, watches and cancels jobs on one kind of host."""

    async def start(self, launch: Launch) -> None:
        """Start a job that has never started (the wrapper refuses a second start)."""

    async def prepare(self, launch: Launch) -> None:
        """Get ready for a job that will probably start soon (its directory, its script), so
        that work is off the critical path; the job's own start repeats it if needed."""

    async def attempts(self, launch: Launch) -> int:
        """How many failed attempts of the job were set aside (for `retries`)."""

    async def archive(self, launch: Launch) -> None:
        """Set the job's ended attempt aside (directory, log, status) so it can start again."""

    async def attach(self, launch: Launch) -> Observation:
        """After a restart: find out whether a job started, runs or ended, and watch it."""

    async def poll(self, launches: Sequence[Launch]) -> list[Observation]:
        """The current state of the given jobs, all at once."""

    async def cancel(self, launch: Launch, force: bool = False) -> None:
        """Ask a running job to stop (SIGTERM to its process group; SIGKILL if force)."""

    async def read_log(self, launch: Launch, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of the job's log from `offset`."""

    async def aclose(self) -> None:
        """Stop watching; running jobs keep running (they are detached)."""


def executor_for(kind: str, notify: Callable[[], None]) -> Executor:
    """The executor for a kind of job; `notify` wakes the scheduler when a job ends."""
    if kind == "local":
        from ccd.executors.local import LocalExecutor

        return LocalExecutor(notify)
    raise UnsupportedKind(f"kind {kind!r} cannot run yet: this version of ccd runs local jobs only")
