"""Wrappers started ahead of their jobs, parked until ccd says go: a chain's link without a
process start on its critical path.

A job whose only unfinished parent is running will most likely start the moment that parent
ends. Starting its wrapper then puts a process start on the path from one job's end to the
next one's beginning: posix_spawn on ccd's thread (~0.17 ms), then in the child the exec,
the dynamic loader and the shell's own start-up (~0.3 ms), for every link of a chain. So
the local executor's `prepare` starts the wrapper at once, parked (job.sh's `parked`
argument): it blocks reading a pipe from ccd, and `start` only writes `go` into it.
Measured with `make bench --ab`: chain100 -0.25 ms a job (9 pairs of 10); fan500, whose
jobs hang from a join and are never parked, unchanged.

Safe by construction: a parked wrapper claims nothing and writes nothing until it reads
`go`; the pipe's end without `go` makes it exit. The write end is ccd's alone (close-on-exec,
so no job inherits it), so it ends when ccd drops the wrapper or closes, and when ccd is
killed. No job starts that ccd did not decide to start, and the claim is still the status
file's exclusive create after `go`: exactly once, as before.

Bounded: at most MAX_PARKED at once (each a sleeping sh, ~1 MB mostly shared, and two
descriptors here), and one not started within PARKED_FOR seconds is dropped: a parent that
runs that long gains nothing worth a waiting process, its child starts as any other. Only
for local jobs: a remote start is a command on a pooled channel, not a process here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_PARKED = 8
PARKED_FOR = 2.0  # seconds

Key = tuple[str, str]  # (run id, job name)


@dataclass(slots=True, eq=False)
class _Parked:
    pid: int
    argv: list[str]  # the wrapper's, as started but for `parked`: the job's command then
    pidfd: int  # registered with the loop while it is ours to reap
    go: int  # the pipe's write end; -1 once closed
    expiry: asyncio.TimerHandle | None = None


class Parking:
    """The parked wrappers of one executor, by job."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parked: dict[Key, _Parked] = {}
        self._leaving: set[_Parked] = set()  # dropped, not yet reaped

    def __contains__(self, key: Key) -> bool:
        return key in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    @property
    def full(self) -> bool:
        return len(self._parked) >= MAX_PARKED

    def park(self, key: Key, path: str, argv: list[str], env: dict[bytes, bytes],
             quiet: Sequence[tuple[object, ...]], sigdef: Iterable[int]) -> None:
        """Start the wrapper `argv`, given `parked` (job.sh's word for it), in its own
        session, reading a pipe of ours as its stdin, with `quiet`'s stdout and stderr and
        the signals `sigdef` at their defaults. Does nothing if it cannot: the job's start
        spawns it then, and says why if that fails too."""
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(path, [*argv, "parked"], env, setsid=True, setsigdef=sigdef,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), *quiet])
        except OSError:
            os.close(w)
            return
        finally:
            os.close(r)
        parked = _Parked(pid, argv, os.pidfd_open(pid), w)  # our child, not reaped: exists
        parked.expiry = self._loop.call_later(PARKED_FOR, self.drop, key)
        self._loop.add_reader(parked.pidfd, self._reap, key, parked)
        self._parked[key] = parked

    def take(self, key: Key, argv: list[str]) -> tuple[int, int] | None:
        """Tell the parked wrapper of `key` to go, if it was started with `argv` as it is
        now (a script's first line, which says how it runs, may have changed meanwhile: its
        parent may write it): its pid and pidfd, the caller's to watch and reap from now
        on; None if there is none, it has gone or it is dropped (it is reaped here)."""
        parked = self._parked.get(key)
        if parked is None or parked.argv != argv:
            self.drop(key)
            return None
        del self._parked[key]
        self._cancel(parked)
        try:
            os.write(parked.go, b"go\n")
        except OSError:  # it has ended (killed?): its exit is reaped as a dropped one's
            self._leaving.add(parked)
            return None
        finally:
            self._close_pipe(parked)
        self._loop.remove_reader(parked.pidfd)
        return parked.pid, parked.pidfd

    def drop(self, key: Key) -> None:
        """The job of `key` will not start now: its parked wrapper, if any, ends (it reads
        the pipe's end) and is reaped."""
        parked = self._parked.pop(key, None)
        if parked is not None:
            self._cancel(parked)
            self._close_pipe(parked)
            self._leaving.add(parked)

    def close(self) -> None:
        """Drop them all, and stop reaping: what has not ended yet is init's to reap once
        this process exits."""
        for key in list(self._parked):
            self.drop(key)
        for parked in self._leaving:
            self._loop.remove_reader(parked.pidfd)
            os.close(parked.pidfd)
        self._leaving.clear()

    def _reap(self, key: Key, parked: _Parked) -> None:
        """A parked wrapper ended, dropped or not (a parked one ending by itself was killed:
        its job starts as any other)."""
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(parked.pid, os.WNOHANG)[0] == 0:
                return  # not quite gone yet: the pidfd stays readable, so we are called again
        self._loop.remove_reader(parked.pidfd)
        os.close(parked.pidfd)
        self._leaving.discard(parked)
        if self._parked.get(key) is parked:
            del self._parked[key]
            self._cancel(parked)
            self._close_pipe(parked)

    @staticmethod
    def _cancel(parked: _Parked) -> None:
        if parked.expiry is not None:
            parked.expiry.cancel()
            parked.expiry = None

    @staticmethod
    def _close_pipe(parked: _Parked) -> None:
        if parked.go >= 0:
            os.close(parked.go)
            parked.go = -1
