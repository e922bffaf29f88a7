"""Runs as the daemon reports them: JSON -> the same Run objects the local views draw, and
following a run's events live."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ccctl.client import Client
from ccctl.live import TAIL_BYTES, Board
from ccctl.sources import PATIENCE
from ccd import shapes
from ccd.errors import ClientError
from ccd.model import (
    Event,
    JobSpec,
    JobStatus,
    Run,
    RunState,
    WorkflowSpec,
    apply,
)

T = TypeVar("T")


def run_from_json(data: dict[str, Any]) -> Run:
    """A Run rebuilt from the API's JSON (enough to draw it); raises ClientError if the
    daemon sent something else."""
    try:
        shape = msgspec.convert(data, shapes.Run)
    except msgspec.ValidationError as e:
        raise ClientError(f"the daemon sent a run this ccctl cannot read: {e}") from None
    jobs = shape.jobs or []
    spec = WorkflowSpec(shape.workflow, Path(shape.workflow),
                        {j.name: JobSpec(j.name, kind=j.kind, host=j.host, label=j.label)
                         for j in jobs}, (), shape.colors or {})
    statuses = {j.name: JobStatus(j.name, j.state, j.progress, j.host, j.pid, j.exit_code,
                                  j.tstart, j.tend, j.modified, j.message, j.attempt,
                                  trace=j.trace)
                for j in jobs}
    return Run(shape.run, spec, statuses, Path(shape.run_dir), shape.created, shape.state,
               shape.t0, shape.t1, shape.message)


def watch(client: Client, run_id: str, json_out: bool = False, patience: float = PATIENCE
          ) -> RunState:
    """Follow a run until it ends, drawing it; returns its final state.

    A dropped stream (the daemon restarting, a `resync`) is picked up again from the last
    event seen; the daemon may be away for up to `patience` seconds.
    """
    away = _Away(patience)
    while (data := away.attempt(lambda: client.json("GET", f"/api/v1/runs/{run_id}"))) is None:
        pass
    run = run_from_json(data)
    board = Board(run, json_out)
    after = 0

    def follow() -> bool:
        nonlocal after
        stream = client.events(f"/api/v1/runs/{run_id}/events", after=after)
        with contextlib.closing(stream):
            for event_id, kind, data in stream:
                away.since = None
                if kind == "resync":
                    break
                after = event_id
                event = msgspec.convert(data, Event)
                apply(run, event)
                board.on_event(event)
                if event.job is None and run.state.final:
                    break
        return True

    with board.live_view() if board.live else contextlib.nullcontext():
        # At least once: a run that has ended still has its story told (the stream replays
        # it from the start, then ends).
        while not (away.attempt(follow) and run.state.final):
            pass
    board.summary()
    board.failures({job: _tail(client, run_id, job) for job in board.failed()})
    return run.state


def _tail(client: Client, run_id: str, job: str) -> bytes:
    """The end of a job's log, as the daemon reads it; empty if it cannot."""
    try:
        return client.request("GET", f"/api/v1/runs/{run_id}/jobs/{job}/log",
                              params={"tail": TAIL_BYTES}).content
    except ClientError:
        return b""


class _Away:
    """Retries a request while the daemon is unreachable, for up to `patience` seconds."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self.since: float | None = None

    def attempt(self, call: Callable[[], T]) -> T | None:
        """The call's result, or None after a pause if the daemon did not answer."""
        try:
            return call()
        except ClientError as e:
            self.since = self.since or time.monotonic()
            if e.status is not None or time.monotonic() - self.since > self.patience:
                raise
            time.sleep(0.5)
            return None
