"""What a run's state implies for its waiting jobs: which may start now and which will never
run. Pure: the scheduler applies these decisions, and this is where trigger rules and
conditions will go.

A waiting job starts when every parent is done; it is skipped as soon as one parent ends
any other way (failed, skipped, cancelled), and so is every waiting job below it, each
with the reason that names the job where it began.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ccd import dag
from ccd.model import JobState, JobStatus, WorkflowSpec


@dataclass(frozen=True, slots=True)
class Graph:
    """Each job's parents and children, computed once per run."""

    parents: Mapping[str, list[str]]
    children: Mapping[str, list[str]]

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Graph:
        return cls(dag.parents_of(spec.jobs, spec.edges), dag.children_of(spec.jobs, spec.edges))

    def ancestors(self, name: str) -> list[str]:
        """Every job `name` depends on, directly or not, nearest first."""
        seen: dict[str, None] = {}
        todo = deque(self.parents[name])
        while todo:
            parent = todo.popleft()
            if parent not in seen:
                seen[parent] = None
                todo.extend(self.parents[parent])
        return list(seen)


@dataclass(frozen=True, slots=True)
class Decision:
    """Jobs to start, in the order they were found, and jobs to skip with why."""

    start: list[str]
    skip: dict[str, str]


def decide(graph: Graph, jobs: Mapping[str, JobStatus], changed: Iterable[str]) -> Decision:
    """What follows from the jobs in `changed` having their current state (the job that just
    ended, or every job after a restart): for each of them and their children that wait,
    start, skip (with everything waiting below) or keep waiting.

    Cost: a child reached from a parent that did not end done is skipped at once; otherwise
    its parents are read newest first and the first unfinished one ends the look, so a
    fan-in whose parents end in file order costs O(1) per parent's end.
    """
    start: dict[str, None] = {}
    skip: dict[str, str] = {}
    todo: deque[tuple[str, str | None]] = deque()
    for name in dict.fromkeys(changed):
        todo.append((name, None))
        todo.extend((child, name) for child in graph.children[name])
    while todo:
        name, via = todo.popleft()
        if name in skip or jobs[name].state is not JobState.READY:
            continue
        why = _why_not(via, jobs, skip) if via is not None else None
        verdict = why or _verdict(graph.parents[name], jobs, skip)
        if verdict is _START:
            start[name] = None
        elif verdict is not None:
            skip[name] = verdict
            todo.extend((child, name) for child in graph.children[name])
    return Decision([n for n in start if n not in skip], skip)


_START = "start"


def _why_not(parent: str, jobs: Mapping[str, JobStatus], skip: dict[str, str]) -> str | None:
    """Why a parent's end means its children never run; None if it does not."""
    if parent in skip:
        return skip[parent]
    state = jobs[parent].state
    return f"skipped: {parent} {state.value}" if state.final and state is not JobState.DONE \
        else None


def _verdict(parents: list[str], jobs: Mapping[str, JobStatus], skip: dict[str, str]
             ) -> str | None:
    """_START, a reason to skip, or None to wait."""
    for parent in reversed(parents):
        why = _why_not(parent, jobs, skip)
        if why is not None:
            return why
        if jobs[parent].state is not JobState.DONE:
            return None
    return _START
