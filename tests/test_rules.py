"""The scheduler's decisions as one pure function: what a run's state implies for the jobs
that wait. No executor, no event loop."""

from __future__ import annotations

from pathlib import Path

from ccd.model import JobSpec, JobState, JobStatus, WorkflowSpec
from ccd.rules import Graph, decide


def state(edges: list[tuple[str, str]], **states: JobState) -> tuple[Graph, dict[str, JobStatus]]:
    names = list(dict.fromkeys([n for e in edges for n in e] + list(states)))
    spec = WorkflowSpec("t", Path("/t.yaml"), {n: JobSpec(n, exec="x") for n in names},
                        tuple(edges))
    return Graph.of(spec), {n: JobStatus(n, states.get(n, JobState.READY)) for n in names}


def test_at_the_start_only_jobs_without_parents_may_start() -> None:
    graph, jobs = state([("a", "b"), ("b", "c"), ("x", "c")])
    d = decide(graph, jobs, jobs)
    assert d.start == ["a", "x"] and d.skip == {}


def test_a_job_starts_when_its_last_parent_is_done() -> None:
    graph, jobs = state([("a", "c"), ("b", "c")], a=JobState.DONE, b=JobState.RUNNING)
    assert decide(graph, jobs, ["a"]).start == []
    jobs["b"].state = JobState.DONE
    assert decide(graph, jobs, ["b"]).start == ["c"]


def test_a_failed_parent_skips_everything_waiting_below_it_at_once() -> None:
    graph, jobs = state([("a", "b"), ("b", "c"), ("other", "c"), ("c", "d")],
                        a=JobState.FAILED, other=JobState.RUNNING)
    d = decide(graph, jobs, ["a"])
    assert d.start == []
    assert d.skip == {"b": "skipped: a failed", "c": "skipped: a failed",
                      "d": "skipped: a failed"}


def test_cancelled_and_skipped_parents_skip_their_children_too() -> None:
    graph, jobs = state([("a", "b"), ("c", "d")], a=JobState.CANCELLED, c=JobState.SKIPPED)
    assert decide(graph, jobs, ["a", "c"]).skip == {"b": "skipped: a cancelled",
                                                   "d": "skipped: c skipped"}


def test_after_a_restart_every_job_is_decided_from_the_states_alone() -> None:
    graph, jobs = state([("a", "b"), ("c", "d"), ("e", "f")],
                        a=JobState.DONE, c=JobState.FAILED, e=JobState.RUNNING)
    d = decide(graph, jobs, jobs)
    assert d.start == ["b"] and d.skip == {"d": "skipped: c failed"}


def test_jobs_that_do_not_wait_are_left_alone() -> None:
    graph, jobs = state([("a", "b")], a=JobState.FAILED, b=JobState.DONE)
    d = decide(graph, jobs, jobs)
    assert d.start == [] and d.skip == {}


def test_a_wide_fan_in_costs_little_per_parent() -> None:
    # Linear: 100,000 parents decide in well under a second. Reading every parent on each
    # end would be 5e9 reads: the suite's 120 s timeout fails it.
    n = 100_000
    edges = [(f"p{i}", "end") for i in range(n)]
    graph, jobs = state(edges, **{f"p{i}": JobState.RUNNING for i in range(n)})
    for i in range(n):  # the parents end in file order; each end is decided alone
        jobs[f"p{i}"].state = JobState.DONE
        d = decide(graph, jobs, [f"p{i}"])
    assert d.start == ["end"]
