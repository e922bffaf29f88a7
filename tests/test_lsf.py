"""`kind: lsf` against stand-in commands that speak bjobs' documented output (tests/lsf.py),
not a real LSF, login node this machine: jobs with a dependency and progress mixed with
local ones, a script's #BSUB lines, a failing job, refused submissions, queued with the
pending reason, cancel, one bjobs per poll for many jobs, a controller that does not answer;
then the command text alone, hostile values in it, and what is read back."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Ccctl, Daemon, jobs_of, log_of, running_daemon, wait_for, write
from lsf import StandIn, install

from ccd.executors.batch import Queued
from ccd.executors.lsf import Lsf
from ccd.executors.protocol import Launch
from ccd.model import JobSpec


@pytest.fixture
def lsf(tmp_path: Path) -> Iterator[StandIn]:
    """The stand-in commands; every job process they started is killed after."""
    standin = install(tmp_path / "lsf")
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def lsf_env(env: dict[str, str], lsf: StandIn) -> dict[str, str]:
    """ccd's environment with the stand-ins first on PATH."""
    env.update(lsf.shim.env)
    return env




def test_lsf_jobs_with_a_dependency_progress_and_directives_mixed_with_local_ones(
        tmp_path: Path, lsf_env: dict[str, str], lsf: StandIn) -> None:
    write(tmp_path / "own.sh", """\
        #!/bin/sh
        #BSUB -n 2
        echo "own $LSB_DJOB_NUMPROC in $LSB_QUEUE"
        """)
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            first:
              kind: lsf
              exec: 'echo "# progress=50"; echo "job $LSB_JOBID" > first.txt; echo "# progress=100"'
              partition: short
              time: "5"
              mem: 2GB
              outputs: [first.txt]
            here: {exec: 'cat first.txt'}
            own: {kind: lsf, script: own.sh}
            fails: {kind: lsf, exec: 'exit 3'}
            never: {kind: lsf, exec: 'echo never', partition: nope}
            gres: {kind: lsf, exec: 'echo never', gres: 'gpu:1'}
          dependencies: ['first,here,own']
        """)
    proc = Ccctl(lsf_env)("run", wf, "--json", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = jobs_of(proc)
    assert [jobs[n]["state"] for n in ("first", "here", "own", "fails", "never", "gres")] == [
        "done", "done", "done", "failed", "failed", "failed"]
    batch_id = str(jobs["first"]["batch_id"])
    assert log_of(jobs, "here") == f"job {batch_id}\n"  # ran by the stand-in, read here
    first = lsf.job(batch_id)
    assert first["stat"] == "DONE"
    assert first["options"] | {"-o": [], "-cwd": []} == {
        "-J": [f"ccd.{jobs['']['run']}.first"], "-o": [], "-cwd": [], "-q": ["short"],
        "-W": ["5"], "-M": ["2GB"], "-R": ["rusage[mem=2GB]"]}
    assert jobs["first"]["progress"] == 100
    assert log_of(jobs, "own") == "own 2 in normal\n"  # its #BSUB line reached bsub
    assert jobs["fails"]["exit_code"] == 3
    assert lsf.job(str(jobs["fails"]["batch_id"]))["stat"] == "EXIT"
    assert "nope: No such queue. Job not submitted." in str(jobs["never"]["message"])
    assert "gres: LSF has no generic resources" in str(jobs["gres"]["message"])
    assert jobs["never"]["batch_id"] is None and jobs["gres"]["batch_id"] is None
    assert lsf.shim.counts()["bsub"] == 4  # gres was refused before bsub


# -- through the daemon ---------------------------------------------------------------------


@pytest.fixture
def lsf_daemon(lsf_env: dict[str, str], state_dir: Path) -> Iterator[Daemon]:
    with running_daemon(lsf_env, state_dir) as d:
        yield d





HELD = "The job was suspended by the user while pending"


def test_a_held_job_is_queued_with_its_pend_reason_runs_when_released_and_cancel_kills(
        tmp_path: Path, lsf: StandIn, lsf_daemon: Daemon) -> None:
    release = tmp_path / "release"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            held: {{kind: lsf, exec: 'echo released', bsub: [-H]}}
            runs: {{kind: lsf, exec: 'echo started; while [ ! -f {release} ]; do sleep 0.1; done'}}
        """)
    run_id = lsf_daemon.submit(wf)
    wait_for(lambda: lsf_daemon.jobs(run_id)["held"]["message"] == HELD,
             what="the held job queued with its reason")
    wait_for(lambda: lsf_daemon.jobs(run_id)["runs"]["state"] == "running",
             what="the other job running")
    held = lsf_daemon.jobs(run_id)["held"]
    assert held["state"] == "queued"
    lsf.release(str(held["batch_id"]))
    wait_for(lambda: lsf_daemon.jobs(run_id)["held"]["state"] == "done",
             what="the released job done")
    assert Ccctl(lsf_daemon.env)("cancel", run_id).returncode == 0
    jobs = lsf_daemon.ended(run_id)
    assert jobs["runs"]["state"] == "cancelled"
    assert lsf.job(str(jobs["runs"]["batch_id"]))["stat"] == "EXIT"  # bkill'd
    assert lsf.shim.counts()["bkill"] >= 1


def test_cancel_takes_a_held_job_out_of_the_queue(tmp_path: Path, lsf: StandIn,
                                                  lsf_daemon: Daemon) -> None:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            held: {kind: lsf, exec: 'echo never', bsub: [-H]}
        """)
    run_id = lsf_daemon.submit(wf)
    wait_for(lambda: lsf_daemon.jobs(run_id)["held"]["message"] == HELD,
             what="the held job queued")
    assert Ccctl(lsf_daemon.env)("cancel", run_id).returncode == 0
    jobs = lsf_daemon.ended(run_id)
    assert jobs["held"]["state"] == "cancelled"
    assert lsf.job(str(jobs["held"]["batch_id"]))["stat"] == "EXIT"
    assert lsf.shim.counts()["bkill"] >= 1


def test_thirty_queued_jobs_of_two_runs_cost_one_bjobs_per_poll(
        tmp_path: Path, lsf: StandIn, lsf_daemon: Daemon) -> None:
    nodes = "\n".join(f"    j{i}: {{kind: lsf, exec: 'true', bsub: [-H]}}" for i in range(15))
    wf = write(tmp_path / "wf.yaml", f"workflow:\n  nodes:\n{nodes}\n")
    runs = [lsf_daemon.submit(wf), lsf_daemon.submit(wf)]
    wait_for(lambda: all(j["message"] == HELD for r in runs
                         for n, j in lsf_daemon.jobs(r).items() if n),
             what="30 jobs queued")
    shim = lsf.shim

    def polls() -> int:
        with lsf_daemon.http() as http:
            health = http.get("/api/v1/health").json()
        return int(health["hosts"]["executors"]["lsf:localhost"]["polls"])

    first, queries = polls(), shim.counts()["bjobs"]
    wait_for(lambda: polls() >= first + 3, what="three more polls")
    more_polls, more_queries = polls() - first, shim.counts()["bjobs"] - queries
    assert more_queries in (more_polls, more_polls + 1)  # one per poll (one may be under way)
    assert shim.counts()["bsub"] == 30
    queries = [call for call in shim.calls() if call.startswith("bjobs ")]
    assert all(" -J ccd." in call for call in queries)
    # By the runs' common prefix; by a job's own name only while it was the only one.
    assert sum(not call.endswith("*") for call in queries) <= 1
    for run_id in runs:
        assert Ccctl(lsf_daemon.env)("cancel", run_id).returncode == 0
        assert lsf_daemon.ended(run_id)[""]["state"] == "cancelled"


def host_of(d: Daemon) -> dict[str, object]:
    return next(h for h in d.hosts() if h["kind"] == "lsf")


def test_a_controller_that_does_not_answer_shows_on_the_host_and_fails_no_job(
        tmp_path: Path, lsf: StandIn, lsf_daemon: Daemon) -> None:
    release = tmp_path / "release"
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            waits: {{kind: lsf, exec: 'while [ ! -f {release} ]; do sleep 0.1; done'}}
        """)
    run_id = lsf_daemon.submit(wf)
    wait_for(lambda: lsf_daemon.jobs(run_id)["waits"]["state"] == "running",
             what="the job running")
    assert host_of(lsf_daemon)["state"] == "connected"
    with lsf.controller_down():
        wait_for(lambda: host_of(lsf_daemon)["state"] == "unreachable",
                 what="the controller shown down")
        assert host_of(lsf_daemon)["error"] == "lsf controller: LSF is down. Please wait ..."
        release.touch()  # it ends while nobody can ask the controller: its status file says
        jobs = lsf_daemon.ended(run_id)
        assert jobs["waits"]["state"] == "done"
        assert host_of(lsf_daemon)["state"] == "unreachable"


# -- the command text -----------------------------------------------------------------------

HOSTILE = "a b'c\"$(touch pwned)`touch pwned`;|*"


def launch(tmp_path: Path, **fields: object) -> Launch:
    return Launch("r1", JobSpec(name="j", kind="lsf", **fields),  # type: ignore[arg-type]
                  tmp_path, tmp_path)


def sh(tmp_path: Path, script: str, stub: str) -> subprocess.CompletedProcess[str]:
    """Run `script` with commands `stub` (sh text, the command's name in $0) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("bsub", "bjobs", "bkill"):
        (bin_dir / name).write_text(f"#!/bin/sh\n{stub}\n")
        (bin_dir / name).chmod(0o755)
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                          cwd=tmp_path, timeout=10,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})


def test_bsub_gets_each_hostile_value_as_one_argument_and_the_script_verbatim(
        tmp_path: Path) -> None:
    job = launch(tmp_path, batch=(("partition", HOSTILE), ("mem", "4GB"), ("gpus", "2"),
                                  ("account", HOSTILE), ("cpus", "4")),
                 batch_options=("-R", HOSTILE))
    body = f"#!/bin/sh\n#BSUB -W 1\necho {HOSTILE!r}\n"
    text = Lsf().submit(job, f"{tmp_path}/{HOSTILE}", HOSTILE, body)
    proc = sh(tmp_path, text, 'printf "%s\\n" "$@"; echo ---; cat')
    assert proc.returncode == 0, proc.stderr
    args, script = proc.stdout.split("---\n")
    assert args.splitlines() == [
        "-J", "ccd.r1.j", "-o", f"{tmp_path}/{HOSTILE}/batch.out", "-cwd", HOSTILE,
        "-q", HOSTILE, "-n", "4", "-R", "span[hosts=1]", "-M", "4GB", "-R", "rusage[mem=4GB]",
        "-gpu", "num=2", "-P", HOSTILE, "-R", HOSTILE]
    assert script == body
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("batch", "said"), [
    ((("gres", "gpu:1"),), "gres: LSF has no generic resources"),
    ((("qos", "high"),), "qos: LSF has no quality of service"),
    ((("nodes", "2"),), "nodes: LSF counts slots, not hosts"),
    ((("ntasks", "2"), ("cpus", "4")), "ntasks and cpus: LSF's -n counts slots"),
])
def test_a_directive_lsf_has_no_word_for_refuses_the_submission_saying_so(
        tmp_path: Path, batch: tuple[tuple[str, str], ...], said: str) -> None:
    proc = sh(tmp_path, Lsf().submit(launch(tmp_path, batch=batch), "d", "w", "true\n"),
              "touch submitted")
    assert proc.returncode == 1
    assert said in Lsf().error(proc.stderr)
    assert not (tmp_path / "submitted").exists()


def test_one_node_is_one_host_and_ntasks_is_slots(tmp_path: Path) -> None:
    text = Lsf().submit(launch(tmp_path, batch=(("nodes", "1"), ("ntasks", "8"))),
                        "d", "w", "true\n")
    assert text.startswith("bsub -J ccd.r1.j -o d/batch.out -cwd w -n 8 -R 'span[hosts=1]' <<")


def test_the_submitted_job_id_is_read_from_bsubs_sentence() -> None:
    lsf = Lsf()
    assert lsf.submitted(0, "Job <1234> is submitted to queue <normal>.\n", "") == "1234"
    assert lsf.submitted(0, "Job <77> is submitted to default queue <normal>.\n", "") == "77"
    assert lsf.submitted(255, "", "nope: No such queue. Job not submitted.\n") is None
    assert lsf.error("nope: No such queue.\n Job not submitted.\n") == \
        "nope: No such queue. Job not submitted."


def test_one_query_names_the_jobs_common_prefix_and_no_job_found_is_an_answer(
        tmp_path: Path) -> None:
    lsf = Lsf()
    many = lsf.query(["ccd.r1.a", "ccd.r1.b", "ccd.r2.a"])
    assert "-J 'ccd.r*'" in many
    assert " -J ccd.r1.a 2>&1)" in lsf.query(["ccd.r1.a"])
    assert "-J 'ccd.r1.a*'" in lsf.query(["ccd.r1.a", "ccd.r1.ab"])
    for said, status in (("No job found", 0), ("Job <ccd.r*> is not found", 0),
                         ("LSF is down. Please wait ...", 1)):
        proc = sh(tmp_path, many + "\n", f"echo '{said}' >&2; exit 255")
        assert proc.returncode == status, said
        assert said in proc.stdout
    proc = sh(tmp_path, many + "\n", 'printf "%s\\n" "$@"')
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "-a", "-noheader", "-o", "jobid stat job_name pend_reason delimiter='|'",
        "-J", "ccd.r*"]


def test_bjobs_lines_are_read_by_id_and_name_and_the_rest_ignored() -> None:
    by_id, by_name = Lsf().parse(
        "Job <ccd.r1.x> is not found\n"
        "101|PEND|ccd.r1.a|New job is waiting for scheduling: 1 host;\n"
        "102|RUN|ccd.r1.b|-\n"
        "99|EXIT|ccd.r1.a|-\n"
        "103|PSUSP|ccd.r1.c|a | in a reason\n")
    assert by_id == {"101": Queued("PEND", "New job is waiting for scheduling: 1 host;"),
                     "102": Queued("RUN", ""), "99": Queued("EXIT", ""),
                     "103": Queued("PSUSP", "a | in a reason")}
    assert by_name == {"ccd.r1.a": "101", "ccd.r1.b": "102", "ccd.r1.c": "103"}


def test_lookup_and_cancel_quote_the_id() -> None:
    lsf = Lsf()
    assert "-J" not in lsf.lookup("42") and " 42 2>&1" in lsf.lookup("42")
    assert lsf.cancel("42", force=False) == "bkill 42"
    assert lsf.cancel("42", force=True) == "bkill -s KILL 42"
    assert lsf.cancel("4 2", force=False) == "bkill '4 2'"
