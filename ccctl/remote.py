"""Runs as the daemon reports them: JSON -> the same Run objects the local views draw, and
following a run's events live."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ccctl.client import Client, ClientError
from ccctl.live import Board
from ccd.model import Event, JobSpec, JobState, JobStatus, Run, RunState, WorkflowSpec

T = TypeVar("T")


def run_from_json(data: dict[str, Any]) -> Run:
    """A Run rebuilt from the API's JSON (enough to draw it)."""
    jobs = {j["name"]: JobSpec(j["name"], kind=j.get("kind") or "local", host=j["host"],
                               label=j.get("label")) for j in data["jobs"]}
    spec = WorkflowSpec(data["workflow"], Path(data["workflow"]), jobs, ())
    statuses = {j["name"]: JobStatus(j["name"], JobState(j["state"]), j["progress"], j["host"],
                                     j.get("pid"), j.get("exit_code"), j.get("tstart"),
                                     j.get("tend"), j.get("modified"), j.get("message", ""))
                for j in data["jobs"]}
    return Run(data["run"], spec, statuses, Path(data["job_root"]), data["created"],
               RunState(data["state"]), data.get("t0"), data.get("t1"), data.get("message", ""))


def apply(run: Run, data: dict[str, Any]) -> Event:
    """Update a run from one event; returns the event."""
    event = Event(data["run"], data["job"], data["state"], data["progress"], data["time"],
                  data.get("exit_code"), data.get("pid"), data.get("message", ""))
    if event.job is None:
        run.state = RunState(event.state)
        run.message = event.message
        if event.state == "running":
            run.t0 = run.t0 or event.time
        else:
            run.t1 = event.time
        return event
    status = run.jobs[event.job]
    status.state = JobState(event.state)
    status.progress = event.progress
    status.exit_code, status.message, status.modified = event.exit_code, event.message, event.time
    status.pid = event.pid or status.pid
    if event.state == "running" and status.tstart is None:
        status.tstart = event.time
    if status.state.final:
        status.tend = event.time
    return event


def watch(client: Client, run_id: str, json_out: bool = False, patience: float = 60
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
                board.on_event(apply(run, data))
                if data["job"] is None and run.state.final:
                    break
        return True

    with board.live_view() if board.live else contextlib.nullcontext():
        while not run.state.final:
            away.attempt(follow)
    board.summary()
    return run.state


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
