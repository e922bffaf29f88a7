"""Where a run's time went: its jobs' attempts as segments (waiting in a batch queue, then
running), folded from the run's events in journal order. Pure.

A job's status keeps only its latest attempt; its events keep every one: an attempt is
queued or running from the event that says so (its `tstart`) until the event that ends it
(its `tend`: a final state, or `ready` again for a retry or a `repeat`, which carries the
ended attempt's end and exit code). The page folds the live events the same way
(web/timeline.js; the browser suite checks that the two agree), and the run report draws
the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from ccd.model import Event, JobState, JobStatus
from ccd.shapes import Segment

Phase = Literal["queued", "running"]

class Fold:
    """Segments so far, and each job's open one; `add` folds the next event of the run."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self._open: dict[str, Segment] = {}

    def add(self, e: Event) -> None:
        """Fold one event (a run's own events change nothing)."""
        if e.job is None:
            return
        state = JobState(e.state)
        current = self._open.get(e.job)
        if state is JobState.QUEUED or state is JobState.RUNNING:
            phase: Phase = "queued" if state is JobState.QUEUED else "running"
            if current is not None and (current.attempt, current.phase) == (e.attempt, phase):
                return  # progress or a new queue reason: the same stretch
            start = e.tstart if e.tstart is not None else e.time
            if current is not None:  # it left the queue (or a restart found it running)
                current.end = max(current.start, start)
            self._begin(Segment(e.job, e.attempt, phase, start, None, state))
            return
        end = e.tend if e.tend is not None else e.time
        if current is None:
            if state.final and e.tstart is not None:  # ended as it began (a join, a refusal)
                self.segments.append(Segment(e.job, e.attempt, "running", e.tstart,
                                             max(e.tstart, end), state))
            return
        del self._open[e.job]
        if state is JobState.READY and e.attempt < current.attempt:  # it never began
            self.segments = [s for s in self.segments if s is not current]
            return
        outcome = state if state.final else (
            JobState.DONE if e.exit_code == 0 else JobState.FAILED)
        if current.phase == "queued" and e.tstart is not None and e.tstart > current.start:
            current.end = e.tstart  # it ran between two looks at the queue
            self.segments.append(Segment(e.job, current.attempt, "running", e.tstart,
                                         max(e.tstart, end), outcome))
            return
        current.end = max(current.start, end)
        if current.phase == "running":
            current.state = outcome

    def _begin(self, segment: Segment) -> None:
        self._open[segment.job] = segment
        self.segments.append(segment)


def segments(events: Iterable[Event], jobs: Mapping[str, JobStatus] | None = None,
             created: float = 0.0) -> list[Segment]:
    """The segments of a run's events, oldest first; a job of `jobs` that started before the
    run was `created` (a rerun's done job, kept from the run before: it has no event) gets
    one from its status. Not one that started since: its events are in `events` or still
    to come, and a live run's `jobs` are newer than a journal just read (the page folds
    the events after it; drawn from the status too, the job's bar came twice)."""
    fold = Fold()
    for e in events:
        fold.add(e)
    seen = {s.job for s in fold.segments}
    for s in (jobs or {}).values():
        if s.name not in seen and s.tstart is not None and s.tstart < created \
                and s.state.final:
            fold.segments.append(Segment(s.name, s.attempt, "running", s.tstart,
                                         max(s.tstart, s.tend or s.tstart), s.state))
    return fold.segments
