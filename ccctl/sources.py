"""Where `ccctl` reads runs: the daemon (`Daemon`) or, with no daemon, the state directory
itself (`StateDir`). Both answer with the API's JSON (the shapes of `ccd.shapes`), so every
command shows the same thing whichever answered.

`StateDir` reads through the engine's own code (`ccd.runs`: the list, a run, a job's log,
its results) on a read-only connection (`ccd.store.Reader`): nothing is written, and a
daemon or a `ccctl run` writing meanwhile is not held up. Its ccd modules are imported
when it is used: the daemon's path stays as light as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ccd.errors import ClientError

if TYPE_CHECKING:
    from ccctl.client import Client
    from ccd.model import Run, RunState

CHUNK = 1 << 20  # bytes of a log read at once (the API's LOG_LIMIT)
POLL = 0.2  # seconds between looks at a log or a journal followed without the daemon
PATIENCE = 60  # seconds a watch waits for a daemon that is away (restarting)


class Source(Protocol):
    """What the reading commands ask, wherever the answer comes from."""

    where: str  # for messages: "on the daemon", "in <state dir>"

    def resolve(self, ref: str) -> str:
        """The run id a RUN argument names (`runref`)."""

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first, without jobs (`shapes.Run`)."""

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with its jobs (`shapes.Run`)."""

    def log(self, run_id: str, job: str) -> Iterator[bytes]:
        """A job's whole log as it is now."""

    def follow_log(self, run_id: str, job: str) -> Iterator[bytes]:
        """A job's log, then what it appends, until the job ends."""

    def watch(self, run_id: str, json_out: bool) -> RunState:
        """Draw a run as it goes until it ends (`live.Board`); its final state."""

    def results(self, run_id: str, job: str | None) -> list[dict[str, Any]]:
        """The run's (or job's) output files (`shapes.Result`)."""

    def fetch_result(self, run_id: str, path: str, target: Path) -> None:
        """Copy one output file to `target`."""

    def close(self) -> None:
        """Let go of what it holds."""


class Daemon:
    """The running daemon's answers."""

    where = "on the daemon"

    def __init__(self, client: Client) -> None:
        self.client = client

    def resolve(self, ref: str) -> str:
        from ccctl.runref import on_daemon

        return on_daemon(self.client, ref)

    def runs(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.json("GET", "/api/v1/runs")
        return found

    def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.json("GET", f"/api/v1/runs/{run_id}")
        return found

    def log(self, run_id: str, job: str) -> Iterator[bytes]:
        # The API gives at most 1 MiB per request: ask on from where it stopped.
        offset = 0
        while True:
            answer = self.client.request("GET", f"/api/v1/runs/{run_id}/jobs/{job}/log",
                                         params={"offset": offset})
            if answer.content:
                yield answer.content
            offset = int(answer.headers.get("X-Log-Next", offset + len(answer.content)))
            if not answer.content or offset >= int(answer.headers.get("X-Log-Size", 0)):
                return

    def follow_log(self, run_id: str, job: str) -> Iterator[bytes]:
        yield from self.client.stream(f"/api/v1/runs/{run_id}/jobs/{job}/log",
                                      params={"follow": "1"})

    def watch(self, run_id: str, json_out: bool) -> RunState:
        from ccctl.remote import watch

        return watch(self.client, run_id, json_out)

    def results(self, run_id: str, job: str | None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.json(
            "GET", f"/api/v1/runs/{run_id}/results", params={"job": job} if job else None)
        return found

    def fetch_result(self, run_id: str, path: str, target: Path) -> None:
        from urllib.parse import quote

        with open(target, "wb") as f:
            for chunk in self.client.stream(f"/api/v1/runs/{run_id}/results/{quote(path)}"):
                f.write(chunk)

    def close(self) -> None:
        self.client.close()


class StateDir:
    """A state directory read directly, as the daemon would answer from it. `patience`: how
    long `watch` waits for a process to drive a run that nothing drives (a daemon that died
    and left its socket may be restarting: it resumes its runs)."""

    def __init__(self, path: Path, patience: float = 0) -> None:
        from ccd.store import Reader

        self.path = path
        self.patience = patience
        self.where = f"in {path}"
        db = path / "ccd.db"
        self._reader = Reader(db) if db.exists() else None  # none: no run ever made here
        self._loaded: dict[str, Run] = {}

    def resolve(self, ref: str) -> str:
        from ccctl.runref import choose, in_store

        if self._reader is None:
            return choose(ref, [], self.where)
        return in_store(self._reader, ref, self.where)

    def runs(self) -> list[dict[str, Any]]:
        import msgspec

        from ccd import runs

        if self._reader is None:
            return []
        found: list[dict[str, Any]] = msgspec.to_builtins(runs.listed(self._reader, self.path))
        return found

    def run(self, run_id: str) -> dict[str, Any]:
        import msgspec

        from ccd import shapes

        found: dict[str, Any] = msgspec.to_builtins(shapes.Run.of(self._run(run_id)))
        return found

    def log(self, run_id: str, job: str) -> Iterator[bytes]:
        from ccd import runs

        run, offset = self._run(run_id), 0
        while data := runs.read_log(run, job, offset, CHUNK)[0]:
            offset += len(data)
            yield data

    def follow_log(self, run_id: str, job: str) -> Iterator[bytes]:
        """The log file as it grows, until the store says the job has ended (the process
        that drives the run records that only after the job's last byte is written)."""
        from ccd import runs

        run, offset = self._run(run_id), 0
        while True:
            data, _, ended = runs.read_log(run, job, offset, CHUNK)
            if data:
                offset += len(data)
                yield data
            elif ended:
                return
            else:
                time.sleep(POLL)
                assert self._reader is not None
                run = self._reader.load_run(run_id, run.spec, run.run_dir)

    def watch(self, run_id: str, json_out: bool) -> RunState:
        """The run's journal as the process driving it (a `ccctl run` elsewhere, or a daemon
        started meanwhile) writes it, applied as the daemon's stream is; NobodyDrives if no
        live process holds the run, for longer than `patience`, while it has not ended."""
        import contextlib

        from ccctl.live import TAIL_BYTES, Board
        from ccd import runs
        from ccd.model import apply

        # The run's journal from its start, as the daemon's stream tells it: a watch begun
        # late still shows the whole story. Replayed onto the run as loaded, which is harmless
        # (an event assigns every field; the last one read leaves the run as it is now).
        after = 0
        self._loaded.pop(run_id, None)
        run = self._run(run_id)
        assert self._reader is not None  # (_run found the run)
        board = Board(run, json_out)
        board.state_dir = self.path
        alone = None  # since when nothing drives it
        with board.live_view() if board.live else contextlib.nullcontext():
            while True:
                driven = _driven(run.run_dir)  # before reading: what it wrote is read below
                for event_id, event in list(self._reader.events(run_id, after=after)):
                    after = event_id
                    apply(run, event)
                    board.on_event(event)
                alone = None if driven else alone or time.monotonic()
                if run.state.final or (alone and time.monotonic() - alone >= self.patience):
                    break
                time.sleep(POLL)
        board.summary()
        if not run.state.final:
            raise NobodyDrives(run.id)
        tails = {}
        for job in board.failed():
            size = runs.read_log(run, job, 0, 0)[1]
            tails[job] = runs.read_log(run, job, max(0, size - TAIL_BYTES), TAIL_BYTES)[0]
        board.failures(tails)
        return run.state

    def results(self, run_id: str, job: str | None) -> list[dict[str, Any]]:
        import msgspec

        from ccd import runs, shapes

        return [msgspec.to_builtins(shapes.Result(r.job, r.path, r.size))
                for r in runs.results(self._run(run_id), job)]

    def fetch_result(self, run_id: str, path: str, target: Path) -> None:
        import shutil

        from ccd import workdir

        run = self._run(run_id)
        shutil.copyfile(workdir.result_file(run.spec, run.work, path), target)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def _run(self, run_id: str) -> Run:
        from ccd import runs
        from ccd.errors import NotFound, RunError

        if run_id in self._loaded:
            return self._loaded[run_id]
        try:
            if self._reader is None:
                raise NotFound(run_id)
            run = self._loaded[run_id] = runs.load(self._reader, self.path, run_id)
            return run
        except NotFound:
            raise RunError(f"no run {run_id!r} {self.where} (`ccctl list` shows them)"
                           ) from None


class NobodyDrives(ClientError):
    """A run that has not ended and that no live process drives, watched without a daemon:
    it would wait forever (exit 3, as for no daemon)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"nothing drives run {run_id} now (no daemon, no `ccctl run`): start "
                         "`ccd`, which resumes it, or run its `ccctl run` again")


def _driven(run_dir: Path) -> bool:
    """Is a live process driving the run? It wrote its pid into the run's lock when it took
    it (`runs.lock`). Only read: taking the lock, even shared for an instant, could make a
    daemon starting at that moment leave the run alone."""
    try:
        os.kill(int((run_dir / "lock").read_text().split()[0]), 0)
    except PermissionError:  # alive, someone else's
        return True
    except (OSError, ValueError, IndexError):
        return False
    return True
