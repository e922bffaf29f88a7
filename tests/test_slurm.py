"""`kind: slurm` against a real single-node Slurm (tests/slurm.py), login node this machine:
jobs with dependencies and progress mixed with local ones, directives, a script's own
#SBATCH lines, queued with Slurm's reason, a failing batch job, a submission error, cancel
(queued and running), kill -9 of the daemon while jobs are queued and running, and one
squeue per poll for 50 queued jobs of two runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Ccctl, Daemon, jobs_of, log_of, running_daemon, wait_for, write
from slurm import Cluster, Shim
from sshd import Sshd, SshHosts


@pytest.fixture
def slurm_env(env: dict[str, str], slurm_cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    """ccd's environment with the cluster's SLURM_CONF and a shim counting client calls."""
    shim = slurm_cluster.shim(tmp_path / "shim")
    env.update(slurm_cluster.env)
    env.update(shim.env)
    env["CCD_TEST_SHIM"] = str(shim.log)
    return env


def shim_of(env: dict[str, str]) -> Shim:
    log = Path(env["CCD_TEST_SHIM"])
    return Shim(log.parent, log)




def test_slurm_jobs_with_dependencies_progress_and_directives_mixed_with_local_ones(
        tmp_path: Path, slurm_env: dict[str, str], slurm_cluster: Cluster) -> None:
    write(tmp_path / "own.sh", """\
        #!/bin/sh
        #SBATCH --cpus-per-task=2
        echo "own cpus $SLURM_CPUS_PER_TASK in $SLURM_JOB_PARTITION"
        """)
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            first:
              kind: slurm
              exec: 'echo "# progress=50"; echo "job $SLURM_JOB_ID" > first.txt;
                echo "# progress=100"'
              partition: debug
              time: "5"
              outputs: [first.txt]
            here: {exec: 'cat first.txt'}
            own: {kind: slurm, script: own.sh}
            fails: {kind: slurm, exec: 'exit 3'}
            never: {kind: slurm, exec: 'echo never', partition: nope}
          dependencies: ['first,here,own']
        """)
    proc = Ccctl(slurm_env)("run", wf, "--json", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert [jobs[n]["state"] for n in ("first", "here", "own", "fails", "never")] == [
        "done", "done", "done", "failed", "failed"]
    batch_id = jobs["first"]["batch_id"]
    assert isinstance(batch_id, str) and batch_id.isdigit()
    assert log_of(jobs, "here") == f"job {batch_id}\n"  # ran in Slurm, output read here
    assert slurm_cluster.job(int(batch_id))["JobState"] == "COMPLETED"
    assert jobs["first"]["progress"] == 100
    assert log_of(jobs, "own") == "own cpus 2 in debug\n"  # its #SBATCH line applied
    assert jobs["fails"]["exit_code"] == 3
    assert "invalid partition specified: nope" in str(jobs["never"]["message"])
    assert jobs["never"]["batch_id"] is None


# -- through the daemon ---------------------------------------------------------------------


@pytest.fixture
def slurm_daemon(slurm_env: dict[str, str], state_dir: Path) -> Iterator[Daemon]:
    with running_daemon(slurm_env, state_dir) as d:
        yield d





def test_a_held_job_is_queued_with_slurms_reason_and_cancel_takes_it_out_of_the_queue(
        tmp_path: Path, slurm_cluster: Cluster, slurm_daemon: Daemon) -> None:
    release = tmp_path / "release"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            held: {{kind: slurm, exec: 'echo never', sbatch: [--hold]}}
            runs: {{kind: slurm,
                    exec: 'echo started; while [ ! -f {release} ]; do sleep 0.1; done'}}
        """)
    run_id = slurm_daemon.submit(wf)
    wait_for(lambda: slurm_daemon.jobs(run_id)["held"]["message"] == "JobHeldUser",
             what="the held job queued with its reason")
    wait_for(lambda: slurm_daemon.jobs(run_id)["runs"]["state"] == "running",
             what="the other job running")
    held = slurm_daemon.jobs(run_id)["held"]
    assert held["state"] == "queued"
    assert Ccctl(slurm_daemon.env)("cancel", run_id).returncode == 0
    jobs = slurm_daemon.ended(run_id)
    assert jobs["held"]["state"] == jobs["runs"]["state"] == "cancelled"
    for name in ("held", "runs"):
        assert slurm_cluster.job(int(str(jobs[name]["batch_id"])))["JobState"] == "CANCELLED"


def test_kill_9_of_the_daemon_reattaches_to_queued_and_running_slurm_jobs_by_id(
        tmp_path: Path, slurm_cluster: Cluster, slurm_env: dict[str, str],
        state_dir: Path) -> None:
    release, count = tmp_path / "release", tmp_path / "count"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            held: {{kind: slurm, exec: 'echo held >> {count}', sbatch: [--hold]}}
            runs: {{kind: slurm, exec: 'echo runs >> {count};
                    while [ ! -f {release} ]; do sleep 0.1; done; exit 4'}}
        """)
    with running_daemon(slurm_env, state_dir) as d:
        run_id = d.submit(wf)
        wait_for(lambda: d.jobs(run_id)["held"]["message"] == "JobHeldUser"
                 and d.jobs(run_id)["runs"]["state"] == "running", what="queued and running")
        before = d.jobs(run_id)
        d.kill()
        release.touch()  # it ends while ccd is away
        slurm_cluster.wait_state(int(str(before["runs"]["batch_id"])), "FAILED")
        d.start()
        wait_for(lambda: d.jobs(run_id)["runs"]["state"] == "failed", what="its end adopted")
        after = d.jobs(run_id)
        assert after["held"]["state"] == "queued"
        assert after["held"]["batch_id"] == before["held"]["batch_id"]
        slurm_cluster.run("scontrol", "release", str(before["held"]["batch_id"]))
        jobs = d.ended(run_id)
    assert jobs["held"]["state"] == "done"
    assert jobs["runs"]["exit_code"] == 4
    assert sorted(count.read_text().split()) == ["held", "runs"]  # each ran once
    assert shim_of(slurm_env).counts()["sbatch"] == 2  # nothing submitted again


def test_fifty_queued_jobs_of_two_runs_cost_one_squeue_per_poll(
        tmp_path: Path, slurm_daemon: Daemon) -> None:
    nodes = "\n".join(f"    j{i}: {{kind: slurm, exec: 'true', sbatch: [--hold]}}"
                      for i in range(25))
    wf = write(tmp_path / "wf.yaml", f"workflow:\n  nodes:\n{nodes}\n")
    runs = [slurm_daemon.submit(wf), slurm_daemon.submit(wf)]
    wait_for(lambda: all(j["message"] == "JobHeldUser" for r in runs
                         for n, j in slurm_daemon.jobs(r).items() if n),
             what="50 jobs queued")
    shim = shim_of(slurm_daemon.env)

    def polls() -> int:
        with slurm_daemon.http() as http:
            health = http.get("/api/v1/health").json()
        return int(health["hosts"]["executors"]["slurm:localhost"]["polls"])

    first, squeues = polls(), shim.counts()["squeue"]
    wait_for(lambda: polls() >= first + 3, what="three more polls")
    more_polls, more_squeues = polls() - first, shim.counts()["squeue"] - squeues
    assert more_squeues in (more_polls, more_polls + 1)  # one per poll (one may be under way)
    assert shim.counts()["sbatch"] == 50
    assert shim.counts()["scontrol"] == 0
    for run_id in runs:
        assert Ccctl(slurm_daemon.env)("cancel", run_id).returncode == 0
        assert slurm_daemon.ended(run_id)[""]["state"] == "cancelled"



def cluster_of(d: Daemon) -> dict[str, object]:
    return next(h for h in d.hosts() if h["kind"] == "slurm")


def test_a_hung_controller_shows_on_the_host_fails_no_job_and_status_files_still_tell_ends(
        tmp_path: Path, slurm_cluster: Cluster, slurm_daemon: Daemon) -> None:
    release = tmp_path / "release"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            waits: {{kind: slurm, exec: 'while [ ! -f {release} ]; do sleep 0.1; done'}}
        """)
    run_id = slurm_daemon.submit(wf)
    wait_for(lambda: slurm_daemon.jobs(run_id)["waits"]["state"] == "running",
             what="the job running")
    host = cluster_of(slurm_daemon)
    assert (host["host"], host["state"]) == ("localhost", "connected")
    assert isinstance(host["rpcs"], int) and host["rpcs"] >= 2  # sbatch, squeue...
    with slurm_cluster.controller_stopped():
        wait_for(lambda: cluster_of(slurm_daemon)["state"] == "unreachable",
                 what="the controller shown down")
        assert "slurm controller:" in str(cluster_of(slurm_daemon)["error"])
        release.touch()  # it ends while nobody can ask the controller: its status file says
        jobs = slurm_daemon.ended(run_id)
        assert jobs["waits"]["state"] == "done"
        assert cluster_of(slurm_daemon)["state"] == "unreachable"


@pytest.fixture
def login_node(sshd_hosts: SshHosts, slurm_cluster: Cluster) -> Iterator[Sshd]:
    """An sshd on 127.0.0.5 whose sessions see the cluster (SetEnv SLURM_CONF): a login node."""
    directory = sshd_hosts.directory / "login"
    server = Sshd(directory, "ccd-login", "127.0.0.5", sshd_hosts.directory / "authorized_keys")
    server.config.write_text(server.config.read_text()
                             + f"SetEnv SLURM_CONF={slurm_cluster.env['SLURM_CONF']}\n")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_slurm_jobs_submitted_on_a_login_node_reached_over_ssh(
        tmp_path: Path, sshd_hosts: SshHosts, login_node: Sshd, env: dict[str, str]) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[{login_node.address}]:{login_node.port} {login_node.public_key}\n")
    write(tmp_path / "data.txt", "data\n")
    wf = write(tmp_path / "wf.yaml", f"""\
        hosts:
          login:
            hostname: {login_node.address}
            port: {login_node.port}
            user: {sshd_hosts.user}
            identity: {sshd_hosts.key}
            known_hosts: {known}
            workdir: {login_node.workdir}
        files: [data.txt]
        workflow:
          nodes:
            there:
              kind: slurm
              host: login
              exec: 'echo "# progress=100";
                (cat data.txt; echo "$SLURM_JOB_ID $(id -un)") > out.txt'
              outputs: [out.txt]
            here: {{exec: 'cat out.txt'}}
          dependencies: ['there,here']
        """)
    proc = Ccctl(env)("run", wf, "--json", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert log_of(jobs, "here") == f"data\n{jobs['there']['batch_id']} {sshd_hosts.user}\n"
    assert jobs["there"]["progress"] == 100
    assert login_node.accepted() == 1


def test_a_sweeps_instances_go_as_one_job_array_and_each_runs_its_own_instance(
        tmp_path: Path, slurm_env: dict[str, str], slurm_cluster: Cluster) -> None:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            sq:
              kind: slurm
              matrix: {n: [1, 2, 3, 4, 5, 6]}
              exec: 'echo "# progress=100";
                echo "$SLURM_ARRAY_TASK_ID $((CCD_PARAM_N * CCD_PARAM_N))"'
            alone: {kind: slurm, exec: 'echo alone'}
            sum: {exec: 'cat /dev/null'}
          dependencies: ['sq,sum']
        """)
    proc = Ccctl(slurm_env)("run", wf, "--json", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    instances = [f"sq.n-{n}" for n in range(1, 7)]
    ids = [str(jobs[name]["batch_id"]) for name in instances]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(6)]  # one array, a task per instance
    assert [log_of(jobs, name) for name in instances] == [
        f"# progress=100\n{i} {n * n}\n" for i, n in enumerate(range(1, 7))]
    assert shim_of(slurm_env).counts()["sbatch"] == 2  # the array, and the lone job
    assert slurm_cluster.job(int(str(jobs["alone"]["batch_id"])))["JobState"] == "COMPLETED"


def test_kill_9_with_a_held_job_array_reattaches_to_its_tasks_by_id(
        tmp_path: Path, slurm_cluster: Cluster, slurm_env: dict[str, str],
        state_dir: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            t: {kind: slurm, matrix: {i: [a, b, c]}, exec: 'echo $CCD_PARAM_I', sbatch: [--hold]}
        """)
    with running_daemon(slurm_env, state_dir) as d:
        run_id = d.submit(wf)
        wait_for(lambda: all(j["message"] == "JobHeldUser"
                             for n, j in d.jobs(run_id).items() if n), what="3 tasks held")
        ids = [str(d.jobs(run_id)[f"t.i-{i}"]["batch_id"]) for i in "abc"]
        d.kill()
        d.start()
        wait_for(lambda: all(j.get("state") == "queued"
                             for n, j in d.jobs(run_id).items() if n), what="re-attached")
        slurm_cluster.run("scontrol", "release", ids[0].split("_")[0])
        jobs = d.ended(run_id)
    assert [jobs[f"t.i-{i}"]["state"] for i in "abc"] == ["done"] * 3
    assert [str(jobs[f"t.i-{i}"]["batch_id"]) for i in "abc"] == ids
    assert [log_of(jobs, f"t.i-{i}") for i in "abc"] == ["a\n", "b\n", "c\n"]
    assert shim_of(slurm_env).counts()["sbatch"] == 1
