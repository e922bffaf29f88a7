"""Wrappers started ahead of their jobs (ccd/executors/parking.py), for real: a parked
wrapper runs its job only when told to, and ends without a trace when it will not be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Ccctl, Daemon, jobs_of, kill_jobs, log_of, wait_for, write

from ccd.executors.parking import MAX_PARKED
from ccd.executors.protocol import WRAPPER, parse_status


def parked(state_dir: Path) -> dict[int, str]:
    """The parked wrappers of jobs under `state_dir`: pid -> job name."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue  # not a process, or gone
        if len(argv) == 7 and argv[1] == WRAPPER.encode() and argv[-1] == b"parked" \
                and argv[2].startswith(str(state_dir).encode()):
            found[int(proc.name)] = Path(argv[2].decode()).name
    return found


def run_released(ccctl: Ccctl, state_dir: Path, wf: Path, release: Path,
                 parked_as_meant: Callable[[], bool], check: Callable[[], bool] = lambda: True
                 ) -> dict[str, dict[str, Any]]:
    """`ccctl run wf` in the background; once `parked_as_meant()` (and `check()` then),
    `release` is made, on which the workflow's parent goes on: the run's jobs at its end."""
    with ccctl.start("run", wf, "--json") as proc:
        try:
            wait_for(parked_as_meant, what="the jobs parked as meant")
            assert check()
            release.touch()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            kill_jobs(state_dir)
    return jobs_of(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def test_a_parked_wrapper_runs_its_job_on_go_and_nothing_otherwise(tmp_path: Path) -> None:
    for n, (word, runs) in enumerate(((b"go\n", True), (b"", False), (b"no\n", False))):
        job, ran = tmp_path / f"job{n}", tmp_path / f"ran{n}"
        job.mkdir()
        wrapper = subprocess.Popen(["sh", WRAPPER, str(job), str(tmp_path), "",
                                    f"touch {ran}", "parked"], stdin=subprocess.PIPE)
        wrapper.communicate(word, timeout=30)
        assert (wrapper.returncode, ran.exists()) == (0, runs)
        if runs:
            status = parse_status((job / "status").read_text())
            assert (status.pid, status.exit_code) == (wrapper.pid, 0)
        else:
            assert list(job.iterdir()) == []  # nothing claimed, nothing made


def test_kill_9_while_a_job_is_parked_runs_it_once_after_the_restart(
        env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    counter, release = tmp_path / "counter", tmp_path / "release"
    wf = write(tmp_path / "gated.yaml", f"""\
        workflow:
          nodes:
            gate: {{exec: 'while [ ! -f {release} ]; do sleep 0.02; done'}}
            next: {{exec: 'echo next >> {counter}'}}
          dependencies: ['gate,next']
        """)
    d = Daemon(env, state_dir).start()
    try:
        run_id = d.submit(wf)
        wait_for(lambda: list(parked(state_dir).values()) == ["next"], what="next parked")
        d.kill()
        # Its pipe ended with ccd: it goes without having claimed or run anything.
        wait_for(lambda: not parked(state_dir), what="the parked wrapper to end")
        assert not counter.exists()
        assert not any(state_dir.glob("runs/*/jobs/next/status"))
        release.touch()
        d.start()
        jobs = d.ended(run_id)
        assert (jobs[""]["state"], jobs["next"]["attempt"]) == ("done", 1)
        assert counter.read_text() == "next\n"
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        kill_jobs(state_dir)


def test_a_parked_job_that_will_not_start_leaves_no_process(
        ccctl: Ccctl, state_dir: Path, tmp_path: Path) -> None:
    counter, release = tmp_path / "counter", tmp_path / "release"
    children = MAX_PARKED + 4
    nodes = "\n".join(f"    c{i}: {{exec: 'echo c{i} >> {counter}'}}" for i in range(children))
    deps = "\n".join(f"    - gate,c{i}" for i in range(children))
    wf = write(tmp_path / "fails.yaml", f"""\
workflow:
  nodes:
    gate: {{exec: 'while [ ! -f {release} ]; do sleep 0.02; done; exit 1'}}
{nodes}
  dependencies:
{deps}
""")
    # A parent of many: only so many are started ahead, and as many directories made.
    jobs = run_released(ccctl, state_dir, wf, release,
                        lambda: len(parked(state_dir)) == MAX_PARKED,
                        lambda: len(list(state_dir.glob("runs/*/jobs/c*"))) == MAX_PARKED)
    assert {jobs[f"c{i}"]["state"] for i in range(children)} == {"skipped"}
    wait_for(lambda: not parked(state_dir), what="the parked wrappers to end")
    assert not counter.exists()
    assert [p.parent.name for p in state_dir.glob("runs/*/jobs/*/status")] == ["gate"]


def test_a_parked_wrapper_that_ended_first_is_replaced_when_its_job_starts(
        daemon: Daemon, state_dir: Path, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    release = [tmp_path / "release-a", tmp_path / "release-b"]
    wf = write(tmp_path / "gated.yaml", f"""\
        workflow:
          nodes:
            a: {{exec: 'while [ ! -f {release[0]} ]; do sleep 0.02; done'}}
            b: {{exec: 'echo b >> {counter}; while [ ! -f {release[1]} ]; do sleep 0.02; done'}}
            c: {{exec: 'echo c >> {counter}'}}
          dependencies: ['a,b,c']
        """)
    run_id = daemon.submit(wf)
    # b's parked wrapper is killed (by a user, or the OOM killer); c's is dropped when its
    # parent runs longer than it may wait. Each job still runs, once.
    wait_for(lambda: list(parked(state_dir).values()) == ["b"], what="b parked")
    os.kill(next(iter(parked(state_dir))), signal.SIGKILL)
    wait_for(lambda: not parked(state_dir), what="b's parked wrapper to go")
    release[0].touch()
    wait_for(lambda: list(parked(state_dir).values()) == ["c"], what="c parked")
    wait_for(lambda: not parked(state_dir), what="c's parked wrapper to be dropped")
    release[1].touch()
    jobs = daemon.ended(run_id)
    assert {jobs[n]["state"] for n in "abc"} == {"done"}
    assert counter.read_text() == "b\nc\n"


def test_a_parked_job_runs_its_script_as_its_parent_left_it(
        ccctl: Ccctl, state_dir: Path, tmp_path: Path) -> None:
    # The script's first line decides how it runs (here: sh, then python); a wrapper
    # started ahead must not run it as it was when its parent began.
    release = tmp_path / "release"
    write(tmp_path / "step.sh", "#!/bin/sh\necho 'from sh'\n")
    python = write(tmp_path / "python", f"#!{sys.executable}\nprint('from python')\n")
    wf = write(tmp_path / "rewrite.yaml", f"""\
        workflow:
          nodes:
            rewrite: {{exec: 'while [ ! -f {release} ]; do sleep 0.02; done; cp {python} step.sh'}}
            step: {{script: step.sh}}
          dependencies: ['rewrite,step']
        """)
    jobs = run_released(ccctl, state_dir, wf, release,
                        lambda: list(parked(state_dir).values()) == ["step"])
    assert jobs["step"]["state"] == "done"
    assert log_of(jobs, "step") == "from python\n"
