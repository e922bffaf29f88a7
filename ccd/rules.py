"""What a run's state implies for its waiting jobs: which may start now and which will never
run. Pure: the scheduler applies these decisions.

A job's `trigger` says which ends of its parents let it run:

- all_success (the default): it starts when every parent is done, and is skipped as soon
  as one parent ends any other way (failed, skipped, cancelled), with the reason that
  names the job where it began (`skipped: a failed`);
- all_done: it starts once every parent is final, however each ended (clean-up);
- any_failed: once every parent is final, it starts if one of them failed, else it is
  skipped, `skipped: no parent failed` (notification). Only a parent that failed counts,
  not one skipped because of a failure further up: depend on the jobs to watch;
- one_success: it starts as soon as one parent is done, and is skipped, `skipped: no
  parent done`, once every parent is final and none is.

A job with a `when:` condition whose trigger lets it start is not started but handed back
to be checked (`Decision.check`): the scheduler gathers what the condition reads (the
values its upstream jobs published are in their logs) and `condition` says start, skip
(`when: <condition> is false`) or fail (the condition cannot be evaluated: a value never
published, a type mismatch; failing says so where skipping would hide it).

Whatever made a job run, its own end decides for its children by their triggers, as for
any job; a skipped job's all_success children are skipped with its reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ccd import conditions, dag
from ccd.model import JobState, JobStatus, Trigger, WorkflowSpec


@dataclass(frozen=True, slots=True)
class Graph:
    """Each job's parents and children, and the triggers that are not all_success, computed
    once per run."""

    parents: Mapping[str, list[str]]
    children: Mapping[str, list[str]]
    triggers: Mapping[str, Trigger]
    conditions: Mapping[str, tuple[str, conditions.Expr]]  # `when:` as written, and parsed

    @classmethod
    def of(cls, spec: WorkflowSpec) -> Graph:
        return cls(dag.parents_of(spec.jobs, spec.edges), dag.children_of(spec.jobs, spec.edges),
                   {n: j.trigger for n, j in spec.jobs.items()
                    if j.trigger is not Trigger.ALL_SUCCESS},
                   {n: (j.when, conditions.parse(j.when)) for n, j in spec.jobs.items()
                    if j.when is not None})

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
    """Jobs to start, in the order they were found, jobs to skip with why, and jobs whose
    `when:` is to be checked before they start."""

    start: list[str]
    skip: dict[str, str]
    check: list[str] = field(default_factory=list)


def decide(graph: Graph, jobs: Mapping[str, JobStatus], changed: Iterable[str]) -> Decision:
    """What follows from the jobs in `changed` having their current state (the job that just
    ended, or every job after a restart): for each of them and their children that wait,
    start, skip (with everything waiting below) or keep waiting.

    Cost: parents are read newest first and the first unfinished one ends the look (an
    all_success child reached from a parent that did not end done is skipped at once), so
    a fan-in whose parents end in file order costs O(1) per parent's end, whatever the
    trigger.
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
        trigger = graph.triggers.get(name, Trigger.ALL_SUCCESS)
        if trigger is Trigger.ALL_SUCCESS:
            why = _why_not(via, jobs, skip) if via is not None else None
            verdict = why or _all_success(graph.parents[name], jobs, skip)
        else:
            verdict = _verdict(trigger, graph.parents[name], via, jobs, skip)
        if verdict is _START:
            start[name] = None
        elif verdict is not None:
            skip[name] = verdict
            todo.extend((child, name) for child in graph.children[name])
    ready = [n for n in start if n not in skip]
    return Decision([n for n in ready if n not in graph.conditions], skip,
                    [n for n in ready if n in graph.conditions])


def condition(graph: Graph, name: str, facts: conditions.Facts) -> tuple[JobState, str] | None:
    """A job's `when:` with what it reads: None to start it, else its end and why."""
    text, expr = graph.conditions[name]
    try:
        if conditions.evaluate(expr, facts):
            return None
    except conditions.EvaluationError as e:
        return JobState.FAILED, f"when: {text}: {e}"
    return JobState.SKIPPED, f"when: {text} is false"


_START = "start"


def _state(name: str, jobs: Mapping[str, JobStatus], skip: dict[str, str]) -> JobState:
    """A job's state, counting those this decision skips."""
    return JobState.SKIPPED if name in skip else jobs[name].state


def _why_not(parent: str, jobs: Mapping[str, JobStatus], skip: dict[str, str]) -> str | None:
    """Why a parent's end means its all_success children never run; None if it does not."""
    if parent in skip:
        return skip[parent]
    state = jobs[parent].state
    return f"skipped: {parent} {state.value}" if state.final and state is not JobState.DONE \
        else None


def _all_success(parents: list[str], jobs: Mapping[str, JobStatus], skip: dict[str, str]
                 ) -> str | None:
    """_START, a reason to skip, or None to wait."""
    for parent in reversed(parents):
        why = _why_not(parent, jobs, skip)
        if why is not None:
            return why
        if jobs[parent].state is not JobState.DONE:
            return None
    return _START


def _verdict(trigger: Trigger, parents: list[str], via: str | None,
             jobs: Mapping[str, JobStatus], skip: dict[str, str]) -> str | None:
    """_START, a reason to skip, or None to wait, for the other triggers. `via`: the parent
    whose end brought us here (None: look at every parent)."""
    one = trigger is Trigger.ONE_SUCCESS
    if one and via is not None and _state(via, jobs, skip) is JobState.DONE:
        return _START
    failed = waiting = False
    for parent in reversed(parents):
        state = _state(parent, jobs, skip)
        if one and state is JobState.DONE:
            return _START
        if not state.final:
            if not one or via is not None:  # a done parent would have started it by now
                return None
            waiting = True
        failed = failed or state is JobState.FAILED
    if waiting:
        return None
    if trigger is Trigger.ALL_DONE or (trigger is Trigger.ANY_FAILED and failed):
        return _START
    return "skipped: no parent failed" if trigger is Trigger.ANY_FAILED \
        else "skipped: no parent done"
