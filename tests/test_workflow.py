"""cloudmesh-cc's job control from Python, run for real: `Job.kill`, `Job.watch`, `Job.sync`
and `Workflow.remove_workflow`, on a run driven by this process, by another process, or left
running by an interrupted one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Ccctl, kill_jobs, wait_for, write
from sshd import SshHosts
from test_ssh import explicit

from ccd import Workflow
from ccd.errors import RunError
from ccd.executors.protocol import parse_status
from ccd.model import RunState


class Driver(threading.Thread):
    """`w.run_parallel()` in a thread of this process, as a user would start it."""

    def __init__(self, w: Workflow) -> None:
        super().__init__(daemon=True)
        self.w = w
        self.state: RunState | None = None

    def run(self) -> None:
        self.state = self.w.run_parallel()


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def wrapper_pid(state_dir: Path, job: str) -> int:
    """The job's wrapper pid (its process group) from its status file."""
    (status,) = state_dir.glob(f"runs/*/jobs/{job}/status")
    pid = parse_status(status.read_text()).pid
    assert pid is not None
    return pid


def sleepy(tmp_path: Path, then: str = "sleep 600") -> Path:
    """sleepy (says it started, then `then`) -> after; and an independent `other`."""
    return write(tmp_path / "sleepy.yaml", f"""\
        workflow:
          nodes:
            sleepy:
              exec: 'echo "# cloudmesh progress=40"; touch {tmp_path}/started; {then}'
            after: {{exec: 'touch {tmp_path}/after.ran'}}
            other: {{exec: 'echo other'}}
          dependencies: ['sleepy,after']
        """)


@contextlib.contextmanager
def interrupted_run(ccctl: Ccctl, wf: Path, tmp_path: Path, state_dir: Path
                    ) -> Iterator[subprocess.Popen[str]]:
    """`ccctl run wf` until sleepy has started; yields it still driving. Its jobs are
    killed at the end, whatever the test did."""
    proc = ccctl.start("run", wf)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), what="sleepy to start")
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        kill_jobs(state_dir)


def test_kill_ends_a_running_job_of_a_run_this_process_drives(tmp_path: Path,
                                                               state_dir: Path) -> None:
    w = Workflow(filename=sleepy(tmp_path), state_dir=state_dir)
    driver = Driver(w)
    driver.start()
    try:
        wait_for(lambda: w.run_id is not None and w.job("sleepy").get_status() == "running",
                 what="sleepy to run")
        pgid = wrapper_pid(state_dir, "sleepy")
        status = w.job("sleepy").kill()
        driver.join(timeout=60)
    finally:
        kill_jobs(state_dir)
    assert status.state == "cancelled" and status.message == "killed by Job.kill()"
    wait_for(lambda: group_gone(pgid), what="the job's process group to end")
    assert driver.state is RunState.FAILED
    assert w.job("after").get_status() == "skipped" and w.job("other").get_status() == "done"
    assert not (tmp_path / "after.ran").exists()


def test_kill_of_a_job_another_process_drives_is_refused_and_of_an_interrupted_run_ends_it(
        tmp_path: Path, ccctl: Ccctl, state_dir: Path) -> None:
    wf = sleepy(tmp_path)
    with interrupted_run(ccctl, wf, tmp_path, state_dir) as proc:
        w = Workflow(filename=wf, state_dir=state_dir)
        with pytest.raises(RunError, match=r"driven by another process.*ccctl cancel"):
            w.job("sleepy").kill()
        proc.send_signal(signal.SIGKILL)  # the run is left running, its job too
        proc.wait(timeout=30)
        pgid = wrapper_pid(state_dir, "sleepy")
        assert not group_gone(pgid)
        status = w.job("sleepy").kill(period=2)
        assert status.state == "cancelled" and status.message == "killed by Job.kill()"
        wait_for(lambda: group_gone(pgid), what="the job's process group to end")
        assert status.progress == 40
        (status_file,) = state_dir.glob("runs/*/jobs/sleepy/status")
        assert parse_status(status_file.read_text()).exit_code is not None
    # Recorded: resuming the run does not start it again, and skips what needed it.
    resumed = ccctl("run", wf, "--json")
    jobs = {j["name"]: j for j in json.loads(resumed.stdout)["jobs"]}
    assert jobs["sleepy"]["state"] == "cancelled", resumed.stderr
    assert jobs["after"]["state"] == "skipped" and jobs["other"]["state"] == "done"
    assert not (tmp_path / "after.ran").exists()


def test_kill_before_a_run_says_the_job_has_not_run(tmp_path: Path, state_dir: Path) -> None:
    w = Workflow(filename=sleepy(tmp_path), state_dir=state_dir)
    with pytest.raises(RunError, match="job 'sleepy' has not run"):
        w.job("sleepy").kill()


def test_watch_returns_when_the_job_ends_without_saying_progress_100(
        tmp_path: Path, state_dir: Path) -> None:
    wait = f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done"
    w = Workflow(filename=sleepy(tmp_path, then=wait), state_dir=state_dir)
    driver = Driver(w)
    driver.start()
    try:
        wait_for(lambda: w.run_id is not None and w.job("sleepy").get_status() == "running",
                 what="sleepy to run")
        job = w.job("sleepy")
        with pytest.raises(TimeoutError, match="still running"):
            job.watch(period=0.5, timeout=0.2)
        (tmp_path / "release").touch()
        status = job.watch(period=0.5, timeout=60)
        driver.join(timeout=60)
    finally:
        kill_jobs(state_dir)
    assert (status.state, status.progress, status.exit_code) == ("done", 100, 0)
    assert job.get_status() == "done" and job.get_progress() == 100


def test_watch_follows_a_run_another_process_drives(tmp_path: Path, ccctl: Ccctl,
                                                    state_dir: Path) -> None:
    wait = f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done; exit 3"
    wf = sleepy(tmp_path, then=wait)
    with interrupted_run(ccctl, wf, tmp_path, state_dir) as proc:
        job = Workflow(filename=wf, state_dir=state_dir).job("sleepy")
        with pytest.raises(TimeoutError):
            job.watch(period=0.1, timeout=0.3)
        (tmp_path / "release").touch()
        status = job.watch(period=0.1, timeout=60)
        proc.wait(timeout=60)
    assert (status.state, status.exit_code, status.message) == ("failed", 3, "exit code 3")


def test_watch_of_an_interrupted_run_reads_the_end_from_the_status_file(
        tmp_path: Path, ccctl: Ccctl, state_dir: Path) -> None:
    wait = f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done; exit 3"
    wf = sleepy(tmp_path, then=wait)
    with interrupted_run(ccctl, wf, tmp_path, state_dir) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        w = Workflow(filename=wf, state_dir=state_dir)
        with pytest.raises(TimeoutError):
            w.job("sleepy").watch(timeout=0.3)
        (tmp_path / "release").touch()
        status = w.job("sleepy").watch(timeout=60)
        assert (status.state, status.exit_code, status.progress) == ("failed", 3, 40)
        with pytest.raises(RunError, match="has not started and no process drives the run"):
            w.job("after").watch(timeout=60)
        killed = w.job("after").kill()  # not started: it never will
        assert (killed.state, killed.message) == ("cancelled", "killed by Job.kill()")
        assert w.job("after").watch().state == "cancelled"
    assert not (tmp_path / "after.ran").exists()


def test_sync_gives_a_local_jobs_outputs_and_copies_them_into_a_directory(
        tmp_path: Path, state_dir: Path) -> None:
    wf = write(tmp_path / "out.yaml", """\
        workflow:
          nodes:
            make:
              exec: 'mkdir -p results && echo 42 > results/answer.txt && echo x > scratch.txt'
              outputs: [results/]
          dependencies: []
        """)
    w = Workflow(filename=wf, state_dir=state_dir)
    assert w.run_parallel() is RunState.DONE
    job = w.job("make")
    (here,) = job.sync()  # local: nothing to fetch; where its outputs are
    assert here.read_text() == "42\n" and here.is_relative_to(state_dir)
    (copied,) = job.sync(tmp_path / "got")
    assert copied == tmp_path / "got" / "results" / "answer.txt"
    assert copied.read_text() == "42\n"
    assert not (tmp_path / "got" / "scratch.txt").exists()  # not declared


def test_remove_workflow_deletes_its_runs_but_not_while_one_is_driven(
        tmp_path: Path, state_dir: Path) -> None:
    wait = f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done"
    wf = sleepy(tmp_path, then=wait)
    w = Workflow(filename=wf, state_dir=state_dir)
    driver = Driver(w)
    driver.start()
    try:
        wait_for(lambda: w.run_id is not None and w.job("sleepy").get_status() == "running",
                 what="sleepy to run")
        with pytest.raises(RunError, match=r"is being driven.*nothing was removed"):
            w.remove_workflow()
        (tmp_path / "release").touch()
        driver.join(timeout=60)
    finally:
        kill_jobs(state_dir)
    first = w.run_id
    assert driver.state is RunState.DONE
    assert w.run_parallel() is RunState.DONE
    second = w.run_id
    assert len(list((state_dir / "runs").iterdir())) == 2
    unrelated = Workflow(name="unrelated", state_dir=state_dir)
    unrelated.add_job("a", exec="true")
    assert unrelated.run_parallel() is RunState.DONE
    held = w.job("sleepy")
    removed = w.remove_workflow()
    assert sorted(removed) == sorted([first, second])
    with pytest.raises(RunError, match=r"no longer in .* \(removed\)"):
        held.watch()
    assert [p.name for p in (state_dir / "runs").iterdir()] == [unrelated.run_id]
    assert w.job("sleepy").get_status() == "ready"
    with pytest.raises(RunError, match="has not run"):
        w.job("sleepy").watch()
    assert w.remove_workflow() == []


def test_remove_workflow_refuses_while_an_interrupted_run_still_has_a_job_running(
        tmp_path: Path, ccctl: Ccctl, state_dir: Path) -> None:
    wf = sleepy(tmp_path)
    with interrupted_run(ccctl, wf, tmp_path, state_dir) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        w = Workflow(filename=wf, state_dir=state_dir)
        with pytest.raises(RunError, match=r"job\(s\) sleepy still run.*Job.kill"):
            w.remove_workflow()
        assert len(list((state_dir / "runs").iterdir())) == 1
        w.job("sleepy").kill()
        (removed,) = w.remove_workflow()
        assert not (state_dir / "runs" / removed).exists()


def test_sync_fetches_the_outputs_of_a_remote_job_that_ended_while_its_run_was_interrupted(
        tmp_path: Path, ccctl: Ccctl, state_dir: Path, sshd_hosts: SshHosts) -> None:
    server = sshd_hosts.servers[0]
    release, started = server.workdir / "release", server.workdir / "started"
    wait = f"touch {started}; while [ ! -f {release} ]; do sleep 0.02; done"
    wf = write(tmp_path / "remote.yaml", f"""\
        hosts:
          there: {{{explicit(sshd_hosts, server)}}}
        workflow:
          nodes:
            r: {{kind: ssh, host: there, outputs: [out/],
                exec: '{wait}; mkdir -p out && echo from there > out/r.txt'}}
          dependencies: []
        """)
    proc = ccctl.start("run", wf)
    try:
        wait_for(started.exists, timeout=60, what="the remote job to start")
        proc.send_signal(signal.SIGKILL)  # nobody drives the run while the job ends there
        proc.wait(timeout=30)
        release.touch()
        wait_for(lambda: any("exit=" in p.read_text()
                             for p in server.workdir.glob("runs/*/jobs/r/status")),
                 what="the remote job to end")
        w = Workflow(filename=wf, state_dir=state_dir)
        (work,) = state_dir.glob("runs/*/work")
        assert not (work / "out" / "r.txt").exists()  # still there only
        assert w.job("r").sync() == [work / "out" / "r.txt"]
        assert (work / "out" / "r.txt").read_text() == "from there\n"
        (copied,) = w.job("r").sync(tmp_path / "got")
        assert copied.read_text() == "from there\n"
    finally:
        release.touch()
        proc.kill()
        proc.communicate(timeout=30)
