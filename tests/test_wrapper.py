"""The job wrapper (ccd/executors/job.sh) run for real: a job runs in the wrapper's own
shell unless it could undo how its end is recorded, and however it ends, its status file
says how."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Ccctl, jobs_of, log_of, wait_for, write

from ccd.executors.protocol import WRAPPER, parse_status


def test_exit_n_and_exec_in_a_command_record_n(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "exits.yaml", """\
        workflow:
          nodes:
            exits: {exec: 'echo before; cd / && exit 3; echo after'}
            execs: {exec: 'echo before; exec sh -c "echo replaced; exit 4"; echo after'}
            ends: {exec: 'for d in x y; do echo $d; done; exit 0'}
          dependencies: []
        """)
    proc = ccctl("run", wf, "--json")
    jobs = {job["name"]: job for job in json.loads(proc.stdout)["jobs"]}
    jobs[""] = json.loads(proc.stdout)
    assert (jobs["exits"]["state"], jobs["exits"]["exit_code"]) == ("failed", 3)
    assert log_of(jobs, "exits") == "before\n"
    assert (jobs["execs"]["state"], jobs["execs"]["exit_code"]) == ("failed", 4)
    assert log_of(jobs, "execs") == "before\nreplaced\n"
    # A job's own variable named like the wrapper's (`d`) changes nothing of its record.
    assert (jobs["ends"]["state"], jobs["ends"]["exit_code"]) == ("done", 0)


@pytest.mark.parametrize("command", [
    "echo started; while :; do :; done",  # builtins only: the wrapper's shell itself loops
    # A child that says it started once it runs (a signal between a fork and its exec is
    # the child's to lose); what comes after it does not run.
    "sh -c 'echo started; sleep 60'; echo after",
], ids=["builtins-only", "command-then-more"])
def test_sigterm_ends_a_job_run_in_the_wrappers_shell_and_records_143(
        tmp_path: Path, command: str) -> None:
    job = tmp_path / "job"
    job.mkdir()
    wrapper = subprocess.Popen(["sh", WRAPPER, str(job), str(tmp_path), "",
                                command], start_new_session=True)
    try:
        wait_for(lambda: (job / "log").is_file() and "started" in (job / "log").read_text(),
                 what="the job to start")
        os.killpg(wrapper.pid, signal.SIGTERM)  # what a cancel does
        assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        with contextlib.suppress(ProcessLookupError):  # nothing is left when it passes
            os.killpg(wrapper.pid, signal.SIGKILL)
    status = parse_status((job / "status").read_text())
    assert (status.pid, status.exit_code) == (wrapper.pid, 128 + signal.SIGTERM)
    assert "after" not in (job / "log").read_text()


def test_a_pipeline_whose_reader_stops_early_ends_quietly_as_in_a_terminal(
        tmp_path: Path, ccctl: Ccctl) -> None:
    # ccd (Python) ignores SIGPIPE and SIGXFSZ; its jobs must not inherit that: `yes` would
    # write "Broken pipe" into the log, a Python job would raise BrokenPipeError. `second`
    # starts from a parked wrapper (it waits for `first`), `first` from a fresh one.
    wf = write(tmp_path / "pipes.yaml", """\
        workflow:
          nodes:
            first: {exec: 'yes | head -n 1'}
            second: {exec: 'yes | head -n 1'}
          dependencies: ['first,second']
        """)
    jobs = jobs_of(ccctl("run", wf, "--json"))
    assert [log_of(jobs, name) for name in ("first", "second")] == ["y\n", "y\n"]
