"""A run's timeline folded from its events: each attempt's wait in a batch queue and its run
as segments, as the page and the report draw them; and a real Slurm job's wait and run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_slurm
from conftest import Daemon, wait_for, write
from slurm import Cluster

from ccd.model import Event, JobState, JobStatus
from ccd.timeline import segments


def ev(job: str, state: JobState, time: float, **fields: Any) -> Event:
    return Event(run_id="r", job=job, state=state, time=time, **{"progress": 0, **fields})


def spans(events: list[Event]) -> list[tuple[str, int, str, float, float | None, str]]:
    return [(s.job, s.attempt, s.phase, s.start, s.end, s.state.value)
            for s in segments(events)]


def test_a_batch_job_that_fails_once_then_succeeds_shows_both_attempts_and_their_queues() -> None:
    assert spans([
        ev("a", JobState.QUEUED, 10, tstart=10, attempt=1),
        ev("a", JobState.QUEUED, 11, tstart=10, attempt=1, message="Priority"),  # same wait
        ev("a", JobState.RUNNING, 15, tstart=14, attempt=1),
        ev("a", JobState.RUNNING, 16, tstart=14, attempt=1, progress=50),
        ev("a", JobState.READY, 21, tend=20, exit_code=1, attempt=1,
           message="exit code 1 (attempt 1 of 2); trying again"),
        ev("a", JobState.QUEUED, 22, tstart=22, attempt=2),
        ev("a", JobState.RUNNING, 25, tstart=25, attempt=2),
        ev("a", JobState.DONE, 30, tstart=25, tend=30, exit_code=0, attempt=2),
        Event(run_id="r", job=None, state=JobState.DONE, progress=100, time=31),
    ]) == [("a", 1, "queued", 10, 14, "queued"), ("a", 1, "running", 14, 20, "failed"),
           ("a", 2, "queued", 22, 25, "queued"), ("a", 2, "running", 25, 30, "done")]


def test_a_running_job_has_an_open_segment_and_one_that_never_began_has_none() -> None:
    assert spans([
        ev("a", JobState.RUNNING, 1, tstart=1, attempt=1),
        ev("b", JobState.RUNNING, 2, tstart=2, attempt=1),
        ev("b", JobState.READY, 3, attempt=0, message="no room on the host"),
    ]) == [("a", 1, "running", 1, None, "running")]


def test_a_job_that_ran_between_two_looks_at_the_queue_gets_its_run() -> None:
    assert spans([
        ev("a", JobState.QUEUED, 10, tstart=10, attempt=1),
        ev("a", JobState.FAILED, 20, tstart=12, tend=19, exit_code=2, attempt=1),
        ev("j", JobState.DONE, 5, tstart=5, tend=5),  # a join: done as it begins
    ]) == [("a", 1, "queued", 10, 12, "queued"), ("a", 1, "running", 12, 19, "failed"),
           ("j", 0, "running", 5, 5, "done")]


def test_a_reruns_kept_job_without_events_is_drawn_from_its_status() -> None:
    kept = JobStatus("a", JobState.DONE, 100, tstart=3, tend=8, attempt=1)
    assert [(s.job, s.start, s.end, s.state) for s in segments([], {"a": kept}, 10)] == [
        ("a", 3, 8, JobState.DONE)]


def test_a_job_that_ended_after_the_journal_was_read_is_left_to_its_events() -> None:
    # The run (created at 10) is live: b ended after its journal was read. The page folds
    # the events after the journal's last; drawn from b's status too, its bar came twice.
    kept = JobStatus("a", JobState.DONE, 100, tstart=3, tend=8, attempt=1)
    ran = JobStatus("b", JobState.DONE, 100, tstart=12, tend=13, attempt=1)
    assert [s.job for s in segments([], {"a": kept, "b": ran}, 10)] == ["a"]


# -- a real batch queue ------------------------------------------------------------------


slurm_env, slurm_daemon = test_slurm.slurm_env, test_slurm.slurm_daemon  # its fixtures


def test_a_slurm_jobs_wait_in_the_queue_and_its_run_are_two_segments(
        tmp_path: Path, slurm_cluster: Cluster, slurm_daemon: Daemon) -> None:
    gate = tmp_path / "gate"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            held: {{kind: slurm, sbatch: [--hold],
                    exec: 'while [ ! -f {gate} ]; do sleep 0.1; done'}}
        """)
    run_id = slurm_daemon.submit(wf)
    wait_for(lambda: slurm_daemon.jobs(run_id)["held"]["message"] == "JobHeldUser",
             what="the job held in the queue")
    slurm_cluster.run("scontrol", "release", str(slurm_daemon.jobs(run_id)["held"]["batch_id"]))
    wait_for(lambda: slurm_daemon.jobs(run_id)["held"]["state"] == "running",
             what="the job to run")
    gate.touch()
    assert slurm_daemon.ended(run_id)[""]["state"] == "done"
    with slurm_daemon.http() as http:
        timeline = http.get(f"/api/v1/runs/{run_id}/timeline").json()
    queued, ran = timeline["segments"]
    assert (queued["phase"], queued["state"], ran["phase"], ran["state"]) == (
        "queued", "queued", "running", "done")
    assert queued["start"] < queued["end"] == ran["start"] < ran["end"]
