"""The scheduler's decisions as one pure function: what a run's state implies for the jobs
that wait. No executor, no event loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccd.model import JobSpec, JobState, JobStatus, Trigger, WorkflowSpec
from ccd.rules import Decision, Graph, decide

DONE, FAILED, RUNNING, SKIPPED = JobState.DONE, JobState.FAILED, JobState.RUNNING, \
    JobState.SKIPPED


def state(edges: list[tuple[str, str]], triggers: dict[str, Trigger] | None = None,
          **states: JobState) -> tuple[Graph, dict[str, JobStatus]]:
    names = list(dict.fromkeys([n for e in edges for n in e] + list(states)))
    triggers = triggers or {}
    spec = WorkflowSpec("t", Path("/t.yaml"),
                        {n: JobSpec(n, exec="x", trigger=triggers.get(n, Trigger.ALL_SUCCESS))
                         for n in names}, tuple(edges))
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


def test_all_done_runs_once_every_parent_ended_however() -> None:
    graph, jobs = state([("a", "clean"), ("b", "clean")], {"clean": Trigger.ALL_DONE},
                        a=FAILED, b=RUNNING)
    assert decide(graph, jobs, ["a"]) == Decision([], {})
    jobs["b"].state = DONE
    assert decide(graph, jobs, ["b"]).start == ["clean"]


def test_all_done_runs_below_a_skipped_parent() -> None:
    graph, jobs = state([("a", "b"), ("b", "clean"), ("clean", "after")],
                        {"clean": Trigger.ALL_DONE}, a=FAILED)
    d = decide(graph, jobs, ["a"])
    assert d.skip == {"b": "skipped: a failed"} and d.start == ["clean"]


def test_any_failed_runs_when_a_parent_failed_once_all_ended() -> None:
    graph, jobs = state([("a", "notify"), ("b", "notify")], {"notify": Trigger.ANY_FAILED},
                        a=FAILED, b=RUNNING)
    assert decide(graph, jobs, ["a"]).start == []
    jobs["b"].state = DONE
    assert decide(graph, jobs, ["b"]).start == ["notify"]


def test_any_failed_is_skipped_when_no_parent_failed_and_so_is_what_follows() -> None:
    graph, jobs = state([("a", "notify"), ("b", "notify"), ("notify", "after")],
                        {"notify": Trigger.ANY_FAILED}, a=DONE, b=SKIPPED)
    d = decide(graph, jobs, ["b"])
    assert d.start == []
    assert d.skip == {"notify": "skipped: no parent failed",
                      "after": "skipped: no parent failed"}


def test_one_success_starts_at_the_first_done_parent() -> None:
    graph, jobs = state([("a", "c"), ("b", "c")], {"c": Trigger.ONE_SUCCESS},
                        a=DONE, b=RUNNING)
    assert decide(graph, jobs, ["a"]).start == ["c"]
    assert decide(graph, jobs, jobs).start == ["c"]  # after a restart too


def test_one_success_is_skipped_once_no_parent_can_be_done() -> None:
    graph, jobs = state([("a", "c"), ("b", "c")], {"c": Trigger.ONE_SUCCESS},
                        a=FAILED, b=RUNNING)
    assert decide(graph, jobs, ["a"]).skip == {}
    jobs["b"].state = JobState.CANCELLED
    assert decide(graph, jobs, ["b"]).skip == {"c": "skipped: no parent done"}


def test_a_skip_below_a_trigger_names_the_trigger() -> None:
    graph, jobs = state([("a", "b"), ("b", "c")], {"b": Trigger.ANY_FAILED}, a=DONE)
    assert decide(graph, jobs, ["a"]).skip == {"b": "skipped: no parent failed",
                                               "c": "skipped: no parent failed"}


@pytest.mark.parametrize("trigger", list(Trigger))
def test_a_wide_fan_in_costs_little_per_parent_whatever_the_trigger(trigger: Trigger) -> None:
    n = 100_000
    edges = [(f"p{i}", "end") for i in range(n)]
    graph, jobs = state(edges, {"end": trigger}, **{f"p{i}": RUNNING for i in range(n)})
    for i in range(n):  # the last parent fails, the others are done
        jobs[f"p{i}"].state = FAILED if i == n - 1 else DONE
        d = decide(graph, jobs, [f"p{i}"])
        if trigger is Trigger.ONE_SUCCESS:
            assert d.start == ["end"]
            return
    assert d.start == ([] if trigger is Trigger.ALL_SUCCESS else ["end"])
