"""The single-node Slurm cluster of tests/slurm.py does what the Slurm executor's tests rely
on: jobs run, the client commands report them in the formats its docstring records, held and
cancelled jobs show so, and a shim counts the calls."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import require, wait_for
from slurm import DOWN_PARTITION, Cluster, running_cluster, unavailable

FIELDS = "%i|%j|%T|%r"  # id|name|state|reason


def unique(prefix: str) -> str:
    """A job name no other test of the session uses (the cluster is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def squeue(cluster: Cluster, *args: str) -> list[list[str]]:
    """`squeue -h -o 'id|name|state|reason' ARGS`, split."""
    out = cluster.run("squeue", "-h", "-o", FIELDS, *args).stdout
    return [line.split("|") for line in out.splitlines()]


def squeue_json(cluster: Cluster) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = json.loads(cluster.run("squeue", "--json").stdout)["jobs"]
    return jobs


def test_a_wrapped_command_runs_to_completed_and_writes_its_output(
        slurm_cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    start = time.perf_counter()
    job = slurm_cluster.submit("-J", unique("hello"), "-o", out, "--wrap", "echo hello")
    assert slurm_cluster.wait_state(job, "COMPLETED", "FAILED") == "COMPLETED"
    print(f"one trivial job end to end: {time.perf_counter() - start:.2f} s")
    assert out.read_text() == "hello\n"
    fields = slurm_cluster.job(job)
    assert (fields["JobState"], fields["Reason"], fields["ExitCode"]) == (
        "COMPLETED", "None", "0:0")


def test_parsable_sbatch_prints_the_id_alone(slurm_cluster: Cluster) -> None:
    done = slurm_cluster.run("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true")
    assert done.stdout.strip().isdigit(), done.stdout
    assert done.stderr == ""


def test_squeue_lists_jobs_by_name_with_state_and_reason(slurm_cluster: Cluster) -> None:
    name, other = unique("listed"), unique("other")
    held = slurm_cluster.submit("--hold", "-J", name, "--wrap", "true")
    running = slurm_cluster.submit("-J", name, "-o", "/dev/null", "--wrap", "sleep 60")
    slurm_cluster.submit("--hold", "-J", other, "--wrap", "true")
    slurm_cluster.wait_state(running, "RUNNING")
    assert sorted(squeue(slurm_cluster, "-n", name)) == sorted([
        [str(held), name, "PENDING", "JobHeldUser"], [str(running), name, "RUNNING", "None"]])
    assert len(squeue(slurm_cluster, "--name", f"{name},{other}")) == 3
    assert squeue(slurm_cluster, "-n", unique("nobody")) == []
    by_id = {job["job_id"]: job for job in squeue_json(slurm_cluster)}
    assert (by_id[held]["name"], by_id[held]["job_state"], by_id[held]["state_reason"]) == (
        name, "PENDING", "JobHeldUser")
    assert (by_id[running]["job_state"], by_id[running]["state_reason"]) == ("RUNNING", "None")


def test_squeue_json_ignores_the_name_filter_in_this_slurm(slurm_cluster: Cluster) -> None:
    # Slurm 22.05: --json lists every job the controller holds, whatever -n, -j or -t say.
    a = slurm_cluster.submit("--hold", "-J", unique("a"), "--wrap", "true")
    b = slurm_cluster.submit("--hold", "-J", unique("b"), "--wrap", "true")
    listed = json.loads(slurm_cluster.run("squeue", "--json", "-n", "no-such-name", "-j",
                                          str(a)).stdout)["jobs"]
    assert {a, b} <= {job["job_id"] for job in listed}


def test_a_held_job_stays_pending_until_released(slurm_cluster: Cluster) -> None:
    job = slurm_cluster.submit("--hold", "-o", "/dev/null", "--wrap", "true")
    time.sleep(1)  # a scheduling pass or so
    fields = slurm_cluster.job(job)
    assert (fields["JobState"], fields["Reason"]) == ("PENDING", "JobHeldUser")
    slurm_cluster.run("scontrol", "release", str(job))
    assert slurm_cluster.wait_state(job, "COMPLETED", "FAILED") == "COMPLETED"


@pytest.mark.parametrize(("options", "reason"), [
    (["-p", DOWN_PARTITION], "PartitionDown"),
    (["-c", "4096"], "PartitionConfig"),
])
def test_jobs_that_cannot_start_pend_with_a_reason(
        slurm_cluster: Cluster, options: list[str], reason: str) -> None:
    job = slurm_cluster.submit(*options, "--wrap", "true")
    wait_for(lambda: slurm_cluster.job(job)["Reason"] == reason, timeout=10, what=reason)
    assert squeue(slurm_cluster, "-j", str(job)) == [[str(job), "wrap", "PENDING", reason]]


def test_a_job_behind_busy_cpus_pends_for_resources(slurm_cluster: Cluster) -> None:
    busy = [slurm_cluster.submit("-o", "/dev/null", "--wrap", "sleep 60")
            for _ in range(slurm_cluster.cpus)]
    for job in busy:
        slurm_cluster.wait_state(job, "RUNNING")
    waiting = slurm_cluster.submit("-o", "/dev/null", "--wrap", "true")
    wait_for(lambda: slurm_cluster.job(waiting)["Reason"] == "Resources", timeout=10,
             what="reason Resources")


def test_scancel_ends_a_running_job_cancelled(slurm_cluster: Cluster) -> None:
    job = slurm_cluster.submit("-o", "/dev/null", "--wrap", "sleep 60")
    slurm_cluster.wait_state(job, "RUNNING")
    slurm_cluster.run("scancel", str(job))
    assert slurm_cluster.wait_state(job, "CANCELLED", "COMPLETED", "FAILED") == "CANCELLED"
    # SIGTERM reaches the batch shell and its sleep together: the shell dies of it or
    # exits 143 after its child did. Only JobState tells a cancelled job.
    assert slurm_cluster.job(job)["ExitCode"] in {"0:15", "143:0"}


def test_a_failed_job_shows_its_exit_code(slurm_cluster: Cluster) -> None:
    job = slurm_cluster.submit("-o", "/dev/null", "--wrap", "exit 3")
    assert slurm_cluster.wait_state(job, "COMPLETED", "FAILED") == "FAILED"
    fields = slurm_cluster.job(job)
    assert (fields["Reason"], fields["ExitCode"]) == ("NonZeroExitCode", "3:0")
    assert slurm_cluster.run("scontrol", "show", "job", str(job)).stdout.count(
        "JobState=FAILED") == 1  # the multi-line form has the same fields
    [listed] = [j for j in squeue_json(slurm_cluster) if j["job_id"] == job]
    assert (listed["job_state"], listed["exit_code"]) == ("FAILED", 3 << 8)  # a wait status
    assert squeue(slurm_cluster, "-t", "all", "-j", str(job)) == [
        [str(job), "wrap", "FAILED", "NonZeroExitCode"]]
    assert squeue(slurm_cluster, "-j", str(job)) == []  # not pending nor running


def test_an_unknown_partition_fails_sbatch_naming_it(slurm_cluster: Cluster) -> None:
    done = slurm_cluster.run("sbatch", "-p", "no-such-partition", "--wrap", "true", check=False)
    assert done.returncode == 1
    assert "invalid partition specified: no-such-partition" in done.stderr


def test_twenty_trivial_jobs_complete(slurm_cluster: Cluster) -> None:
    name = unique("twenty")
    start = time.perf_counter()
    jobs = [slurm_cluster.submit("-J", name, "-o", "/dev/null", "--wrap", "true")
            for _ in range(20)]
    wait_for(lambda: squeue(slurm_cluster, "-n", name) == [], timeout=60, what="20 jobs done")
    print(f"20 trivial jobs on {slurm_cluster.cpus} CPUs: {time.perf_counter() - start:.1f} s")
    states = {job: state for job, _, state, _ in squeue(slurm_cluster, "-t", "all", "-n", name)}
    assert states == {str(job): "COMPLETED" for job in jobs}


def test_the_shim_counts_each_command_and_runs_the_real_one(
        slurm_cluster: Cluster, tmp_path: Path) -> None:
    shim = slurm_cluster.shim(tmp_path / "shim")
    env = {**os.environ, **slurm_cluster.env, **shim.env}

    def run(*command: str) -> str:
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                              timeout=30).stdout

    job = run("sbatch", "--parsable", "--hold", "-J", "shimmed job", "--wrap", "true").strip()
    for _ in range(3):
        assert job in run("squeue", "-h", "-o", "%i")
    run("scontrol", "-o", "show", "job", job)
    run("scancel", job)
    assert shim.counts() == {"sbatch": 1, "squeue": 3, "scontrol": 1, "scancel": 1}
    assert shim.calls()[0] == "sbatch --parsable --hold -J shimmed job --wrap true"


def test_stopping_ends_the_daemons_and_the_jobs_and_removes_the_files() -> None:
    require(unavailable())
    with running_cluster() as cluster:
        pid_file = cluster.directory / "job.pid"
        job = cluster.submit("-o", "/dev/null", "--wrap", f"echo $$ > {pid_file}; exec sleep 300")
        cluster.wait_state(job, "RUNNING")
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="job's pid")
        job_process = Path(f"/proc/{pid_file.read_text().strip()}")
        daemons = list(cluster.daemons)
        cluster.stop()
        assert [daemon.poll() is None for daemon in daemons] == [False] * 3
        wait_for(lambda: not job_process.exists(), timeout=5, what="the job's process gone")
    assert not cluster.directory.exists()
