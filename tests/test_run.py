"""`ccctl run` end to end with real processes: order, parallelism, failures, signals,
cancel, and resuming after kill -9 without running any job twice."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest
from conftest import ROOT, Ccctl, wait_for, write


def result(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    """Jobs by name from `ccctl run --json` output."""
    data = json.loads(proc.stdout)
    return {job["name"]: job for job in data["jobs"]} | {"": data}


def test_paper_example_runs_from_a_fresh_copy(tmp_path: Path, ccctl: Ccctl) -> None:
    example = shutil.copytree(ROOT / "examples" / "workflow-example", tmp_path / "example")
    for script in example.glob("*.sh"):
        script.chmod(0o644)  # copied without the exec bit: still runs by its shebang
    proc = ccctl("run", example / "workflow-example.yaml", "--json")
    assert proc.returncode == 0, proc.stderr
    jobs = result(proc)
    names = ["start", "fetch-data", "compute", "analyze", "end"]
    assert [jobs[n]["state"] for n in names] == ["done"] * 5
    assert all(jobs[n]["progress"] == 100 for n in names)
    starts = [jobs[n]["tstart"] for n in names]
    assert starts == sorted(starts)
    log = (Path(jobs[""]["run_dir"]) / "jobs") / "analyze" / "log"  # type: ignore[arg-type]
    assert "the total is 55" in log.read_text()


def test_parallel_branches_really_overlap(tmp_path: Path, ccctl: Ccctl) -> None:
    # Each branch waits for the other to have started: only overlapping jobs both succeed.
    barrier = ("touch {me}.started; i=0; while [ ! -f {other}.started ]; do "
               "i=$((i+1)); [ $i -gt 400 ] && exit 1; sleep 0.05; done")
    wf = write(tmp_path / "par.yaml", f"""\
        workflow:
          nodes:
            start:
            a: {{exec: '{barrier.format(me="a", other="b")}'}}
            b: {{exec: '{barrier.format(me="b", other="a")}'}}
            end:
          dependencies: ['start,a,end', 'start,b,end']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = result(proc)
    assert jobs["a"]["state"] == jobs["b"]["state"] == jobs["end"]["state"] == "done"


def test_failed_job_skips_its_descendants_and_other_branches_go_on(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "fail.yaml", """\
        workflow:
          nodes:
            start:
            bad: {exec: 'echo oops >&2; exit 3'}
            after-bad: {exec: 'touch after-bad.ran'}
            good: {exec: 'true'}
            after-good: {exec: 'touch after-good.ran'}
            end:
          dependencies:
            - start,bad,after-bad,end
            - start,good,after-good,end
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1
    jobs = result(proc)
    assert jobs["bad"]["state"] == "failed" and jobs["bad"]["exit_code"] == 3
    assert jobs["after-bad"]["state"] == jobs["end"]["state"] == "skipped"
    assert jobs["good"]["state"] == jobs["after-good"]["state"] == "done"
    assert jobs[""]["state"] == "failed"
    work = Path(jobs[""]["run_dir"]) / "work"  # type: ignore[arg-type]
    assert not (work / "after-bad.ran").exists() and (work / "after-good.ran").exists()
    assert not (tmp_path / "after-good.ran").exists()  # jobs write in the run's own copy
    log = (Path(jobs[""]["run_dir"]) / "jobs") / "bad" / "log"  # type: ignore[arg-type]
    assert log.read_text() == "oops\n"


def test_job_without_progress_100_completes(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "p.yaml", """\
        workflow:
          nodes:
            quiet: {exec: 'echo "# cloudmesh status=running progress=10 pid=$$"'}
          dependencies: []
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0
    assert result(proc)["quiet"]["state"] == "done"


def test_job_killed_by_a_signal_fails(tmp_path: Path, ccctl: Ccctl) -> None:
    write(tmp_path / "die.sh", "#!/bin/sh\necho dying\nkill -KILL $$\n")
    wf = write(tmp_path / "k.yaml", """\
        workflow:
          nodes:
            die: {script: die.sh}
            after: {exec: 'true'}
          dependencies: ['die,after']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1
    jobs = result(proc)
    assert jobs["die"]["state"] == "failed" and jobs["die"]["exit_code"] == 128 + 9
    assert jobs["after"]["state"] == "skipped"


def test_progress_is_followed_and_never_goes_backwards(tmp_path: Path, ccctl: Ccctl,
                                                      state_dir: Path) -> None:
    write(tmp_path / "p.py", f"""\
        import os, time
        from ccd.progress import progress
        progress(60)
        while not os.path.exists({str(tmp_path / "release")!r}):
            time.sleep(0.02)
        progress(30)
        """)
    wf = write(tmp_path / "w.yaml", """\
        workflow:
          nodes:
            py: {script: p.py}
          dependencies: []
        """)
    with ccctl.start("run", wf, "--json") as proc:
        try:
            wait_for(lambda: (state_dir / "ccd.db").exists() and 60 in progress_of(state_dir, "py"),
                     what="progress 60 to be recorded")
            (tmp_path / "release").touch()
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    steps = progress_of(state_dir, "py")
    assert steps == sorted(steps) and steps[-1] == 100
    log = ((Path(json.loads(out)["run_dir"]) / "jobs") / "py" / "log").read_text().splitlines()
    assert [line.split()[3] for line in log] == ["progress=60", "progress=30"]


def progress_of(state_dir: Path, job: str) -> list[int]:
    """Every progress the journal recorded for a job, in order."""
    from ccd.store import Store

    store = Store(state_dir / "ccd.db")
    try:
        return [e.progress for _, e in store.events() if e.job == job]
    finally:
        store.close()


def test_timeout_fails_the_job(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "t.yaml", """\
        workflow:
          nodes:
            slow: {exec: 'sleep 30', timeout: 0.5}
          dependencies: []
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1
    slow = result(proc)["slow"]
    assert slow["state"] == "failed" and slow["message"] == "timeout after 0.5 s"


def test_ctrl_c_cancels_and_kills_the_jobs_process_group(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "c.yaml", f"""\
        workflow:
          nodes:
            long: {{exec: 'sh -c "echo \\$\\$ > {tmp_path}/long.pid; exec sleep 60"'}}
            never: {{exec: 'touch {tmp_path}/never.ran'}}
          dependencies: ['long,never']
        """)
    with ccctl.start("run", wf, "--json") as proc:
        try:
            wait_for(lambda: (tmp_path / "long.pid").exists() and
                     (tmp_path / "long.pid").read_text().strip() != "", what="the job to start")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert [j["state"] for j in data["jobs"]] == ["cancelled", "cancelled"]
    assert data["state"] == "cancelled"
    # Who cancelled, in the run's and its jobs' messages.
    assert {data["message"], *(j["message"] for j in data["jobs"])} == {
        "cancelled by Ctrl-C in ccctl run"}
    pid = int((tmp_path / "long.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the job's sleep to end")
    assert not (tmp_path / "never.ran").exists()


def counted_workflow(tmp_path: Path, fan: int) -> Path:
    """start -> gate (waits for a file) and `fan` quick jobs -> end; every job counts itself
    in tmp_path/counter."""
    nodes = "\n".join(f"    j{i}: {{exec: 'echo j{i} >> {tmp_path}/counter'}}" for i in range(fan))
    deps = "\n".join(f"    - start,j{i},end" for i in range(fan))
    wait = f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done"
    return write(tmp_path / "count.yaml", f"""\
workflow:
  nodes:
    start: {{exec: 'echo start >> {tmp_path}/counter'}}
    gate: {{exec: 'echo gate >> {tmp_path}/counter; {wait}'}}
{nodes}
    end: {{exec: 'echo end >> {tmp_path}/counter'}}
  dependencies:
    - start,gate,end
{deps}
""")


@pytest.mark.parametrize("kill_after", [1, 5, 15])
def test_kill_9_then_rerun_runs_no_job_twice(tmp_path: Path, ccctl: Ccctl,
                                             kill_after: int) -> None:
    wf = counted_workflow(tmp_path, fan=20)
    counter = tmp_path / "counter"
    with ccctl.start("run", wf, "--max-jobs", "3") as proc:
        try:
            wait_for(lambda: counter.exists() and len(counter.read_text().split()) >= kill_after,
                     what=f"{kill_after} jobs to have run")
        finally:
            proc.kill()  # SIGKILL: no chance to clean up
    (tmp_path / "release").touch()  # the gate job, still running, may now finish
    again = ccctl("run", wf, "--json")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    ran = counter.read_text().split()
    assert sorted(ran) == sorted(["start", "gate", "end", *(f"j{i}" for i in range(20))])
    jobs = result(again)
    assert all(jobs[name]["state"] == "done" for name in ["start", "gate", "end"])


def test_gate_job_running_across_the_kill_is_reattached_not_restarted(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = counted_workflow(tmp_path, fan=0)
    counter = tmp_path / "counter"
    with ccctl.start("run", wf) as proc:
        try:
            wait_for(lambda: counter.exists() and "gate" in counter.read_text(),
                     what="gate to run")
        finally:
            proc.kill()
    with ccctl.start("run", wf, "--json") as again:
        try:
            assert again.stderr is not None
            assert "resuming" in again.stderr.readline()
            (tmp_path / "release").touch()
            _out, err = again.communicate(timeout=30)
        finally:
            again.kill()
    assert again.returncode == 0, err
    assert counter.read_text().split() == ["start", "gate", "end"]


def test_new_starts_afresh_instead_of_resuming(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "n.yaml", f"""\
        workflow:
          nodes: {{a: {{exec: 'echo a >> {tmp_path}/counter'}}}}
          dependencies: []
        """)
    assert ccctl("run", wf).returncode == 0
    assert ccctl("run", wf, "--new").returncode == 0
    assert (tmp_path / "counter").read_text().split() == ["a", "a"]


def test_the_same_command_after_a_done_run_runs_nothing(tmp_path: Path, ccctl: Ccctl) -> None:
    # As when ccctl was killed just after the run's last commit, then run again.
    wf = write(tmp_path / "n.yaml", f"""\
        workflow:
          nodes: {{a: {{exec: 'echo a >> {tmp_path}/counter'}}}}
          dependencies: []
        """)
    first = ccctl("run", wf, "--json")
    again = ccctl("run", wf, "--json")
    assert again.returncode == 0
    assert "is done and nothing changed since: nothing to do (--new runs it again)" in again.stderr
    assert json.loads(again.stdout)["run"] == json.loads(first.stdout)["run"]
    assert (tmp_path / "counter").read_text().split() == ["a"]
    wf.write_text(wf.read_text().replace("echo a", "echo b"))  # a changed file runs anew
    assert ccctl("run", wf).returncode == 0
    assert (tmp_path / "counter").read_text().split() == ["a", "b"]


def test_after_a_failed_run_the_next_carries_on_and_says_why(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "f.yaml", "workflow:\n  nodes: {a: {exec: 'exit 1'}}\n")
    first = ccctl("run", wf, "--json")
    assert first.returncode == 1
    again = ccctl("run", wf)
    assert again.returncode == 1
    assert f"carrying on from run {json.loads(first.stdout)['run']} (failed)" in again.stderr
    assert "keeps no job\nruns again: a (failed before)\n" in again.stderr


def test_invalid_file_writes_no_state_and_exits_2(tmp_path: Path, ccctl: Ccctl,
                                                  state_dir: Path) -> None:
    wf = write(tmp_path / "bad.yaml", "workflow:\n  nodes: {a: {kind: nope}}\n")
    proc = ccctl("run", wf)
    assert proc.returncode == 2
    assert proc.stderr == (f"{wf}:2:21: unknown kind 'nope'; expected one of local, ssh, slurm, "
                           "lsf, wsl\n")
    assert not state_dir.exists()


def test_dry_run_prints_the_topological_order(tmp_path: Path, ccctl: Ccctl,
                                              state_dir: Path) -> None:
    wf = write(tmp_path / "d.yaml", """\
        workflow:
          nodes: {end: , b: {exec: 'touch b'}, a: {exec: 'touch a'}, start: }
          dependencies: ['start,a,b,end']
        """)
    proc = ccctl("run", wf, "--dry-run", "--json")
    assert json.loads(proc.stdout) == {"order": ["start", "a", "b", "end"]}
    assert not (tmp_path / "a").exists() and not state_dir.exists()


def test_state_survives_as_paper_yaml_with_states(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "s.yaml", """\
        workflow:
          nodes: {a: {exec: 'true', label: '{name}'}, b: {exec: 'false'}}
          dependencies: ['a,b']
        """)
    proc = ccctl("run", wf, "--json")
    snapshot = Path(json.loads(proc.stdout)["run_dir"]) / "workflow.yaml"
    from ccd.spec import load_spec

    spec, _ = load_spec(snapshot)  # loads back as a workflow
    assert spec.edges == (("a", "b"),)
    text = snapshot.read_text()
    assert 'status: "done"' in text and 'status: "failed"' in text


def test_a_run_in_progress_is_not_driven_twice(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = counted_workflow(tmp_path, fan=0)
    counter = tmp_path / "counter"
    with ccctl.start("run", wf) as first:
        try:
            wait_for(lambda: counter.exists() and "gate" in counter.read_text(),
                     what="gate to run")
            second = ccctl("run", wf)
            assert second.returncode == 2
            assert "is being driven by another process" in second.stderr
            (tmp_path / "release").touch()
            first.communicate(timeout=30)
        finally:
            first.kill()
    assert first.returncode == 0
    assert counter.read_text().split() == ["start", "gate", "end"]


def test_venv_env_and_cwd_shape_the_jobs_environment(tmp_path: Path, ccctl: Ccctl) -> None:
    import venv

    venv.create(tmp_path / "env", with_pip=False)
    (tmp_path / "sub").mkdir()
    wf = write(tmp_path / "v.yaml", f"""\
        workflow:
          nodes:
            in-venv:
              exec: 'echo "$VIRTUAL_ENV"; command -v python; echo "$GREETING"; pwd'
              venv: env
              env: {{GREETING: 'hello there'}}
              cwd: {tmp_path / "sub"}
          dependencies: []
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stderr
    log = (Path(json.loads(proc.stdout)["run_dir"]) / "jobs") / "in-venv" / "log"
    assert log.read_text().splitlines() == [
        str(tmp_path / "env"), str(tmp_path / "env" / "bin" / "python"), "hello there",
        str(tmp_path / "sub")]


def test_second_ctrl_c_leaves_jobs_running_and_the_next_run_adopts_them(
        tmp_path: Path, ccctl: Ccctl) -> None:
    counter = tmp_path / "counter"
    stubborn = (f'trap "" TERM; echo gate >> {counter}; '
                f'while [ ! -f {tmp_path}/release ]; do sleep 0.02; done')
    wf = write(tmp_path / "stubborn.yaml", f"""\
        workflow:
          nodes:
            gate: {{exec: '{stubborn}'}}
          dependencies: []
        """)
    with ccctl.start("run", wf) as proc:
        try:
            wait_for(lambda: counter.exists() and "gate" in counter.read_text(),
                     what="gate to run")
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            wait_for(lambda: "cancelling" in proc.stderr.readline(), what="the first Ctrl-C")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130
    assert "left run" in err and "run the same command again to resume it" in err
    (tmp_path / "release").touch()
    again = ccctl("run", wf, "--json")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr
    assert counter.read_text().split() == ["gate"]  # adopted, never restarted


def test_retries_run_a_failing_job_again_and_keep_each_attempt(
        tmp_path: Path, ccctl: Ccctl, state_dir: Path) -> None:
    # Fails on its first two attempts, succeeds on the third.
    wf = write(tmp_path / "r.yaml", """\
        workflow:
          nodes:
            flaky:
              exec: 'echo try >> tries; echo "attempt $(wc -l < tries)"; [ $(wc -l < tries) -ge 3 ]'
              retries: 2
            after: {exec: 'true'}
          dependencies: ['flaky,after']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stdout
    jobs = result(proc)
    assert jobs["flaky"]["state"] == jobs["after"]["state"] == "done"
    root = (Path(jobs[""]["run_dir"]) / "jobs")  # type: ignore[arg-type]
    assert [(root / d / "log").read_text() for d in ("flaky@1", "flaky@2", "flaky")] == [
        "attempt 1\n", "attempt 2\n", "attempt 3\n"]
    flaky = jobs["flaky"]
    assert (flaky["attempt"], flaky["message"], flaky["exit_code"]) == (3, "", 0)
    # The database says exactly what the live run said: the last attempt's times.
    from ccd.model import JobStatus, Trace
    from ccd.runs import stored_spec
    from ccd.store import Store

    store = Store(state_dir / "ccd.db")
    try:
        run = store.load_run(str(jobs[""]["run"]), stored_spec(store, str(jobs[""]["run"])),
                             state_dir)
    finally:
        store.close()
    assert run.jobs["flaky"] == JobStatus(**{k: v for k, v in flaky.items()
                                             if k not in ("kind", "label", "outputs", "trace")},
                                          trace=msgspec.convert(flaky["trace"], Trace))


def test_retries_run_out(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "r.yaml", """\
        workflow:
          nodes:
            broken: {exec: 'echo try >> tries; exit 4', retries: 1}
          dependencies: []
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1
    data = result(proc)
    assert data["broken"]["message"] == "exit code 4 (attempt 2 of 2)"
    assert data["broken"]["attempt"] == 2 and data["broken"]["exit_code"] == 4
    work = Path(data[""]["run_dir"]) / "work"  # type: ignore[arg-type]
    assert (work / "tries").read_text().split() == ["try", "try"]


def test_kill_9_between_attempts_runs_no_attempt_twice(tmp_path: Path, ccctl: Ccctl) -> None:
    # The second attempt waits for a file; ccctl is killed while it waits.
    tries = tmp_path / "tries"
    second_waits = (f"echo try >> {tries}; [ $(wc -l < {tries}) -ge 2 ] || exit 1; "
                    f"while [ ! -f {tmp_path}/release ]; do sleep 0.02; done")
    wf = write(tmp_path / "r.yaml", f"""\
        workflow:
          nodes:
            flaky: {{exec: '{second_waits}', retries: 3}}
          dependencies: []
        """)
    with ccctl.start("run", wf) as proc:
        try:
            wait_for(lambda: tries.exists() and len(tries.read_text().split()) == 2,
                     what="the second attempt")
        finally:
            proc.kill()
    (tmp_path / "release").touch()
    again = ccctl("run", wf, "--json")
    assert again.returncode == 0, again.stderr
    assert tries.read_text().split() == ["try", "try"]  # the second attempt was adopted


def test_the_state_directory_and_database_are_the_users_alone(tmp_path: Path, ccctl: Ccctl,
                                                            state_dir: Path) -> None:
    # The job looks while `ccctl run` has the database open, so -wal and -shm exist.
    wf = write(tmp_path / "modes.yaml", """\
        workflow:
          nodes: {look: {exec: 'stat -c "%n %a" "$CCD_STATE_DIR" "$CCD_STATE_DIR"/ccd.db*'}}
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stderr
    log = Path(str(result(proc)[""]["run_dir"])) / "jobs" / "look" / "log"
    modes = dict(line.rsplit(" ", 1) for line in log.read_text().splitlines())
    db = state_dir / "ccd.db"
    assert modes == {str(state_dir): "700", str(db): "600", f"{db}-wal": "600",
                     f"{db}-shm": "600"}
    db.chmod(0o644)  # as ccd 0.1 left it
    assert ccctl("run", wf, "--new").returncode == 0
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_clean_up_runs_after_a_failure_and_a_notification_only_after_one(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "triggers.yaml", """\
        workflow:
          nodes:
            bad: {exec: 'exit 3'}
            report: {exec: 'touch report.ran'}
            clean: {exec: 'touch clean.ran', trigger: all_done}
            notify: {exec: 'touch notify.ran', trigger: any_failed}
            good: {exec: 'true'}
            cheer: {exec: 'touch cheer.ran', trigger: one_success}
          dependencies: ['bad,report,clean', 'bad,notify', 'bad,cheer', 'good,cheer']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = result(proc)
    assert jobs["report"]["state"] == "skipped"
    assert jobs["clean"]["state"] == jobs["notify"]["state"] == jobs["cheer"]["state"] == "done"
    work = Path(jobs[""]["run_dir"]) / "work"  # type: ignore[arg-type]
    assert {p.name for p in work.glob("*.ran")} == {"clean.ran", "notify.ran", "cheer.ran"}
    assert jobs[""]["message"] == "1 job failed: bad: exit code 3"


def test_a_notification_skipped_because_nothing_failed_leaves_the_run_done(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "quiet.yaml", """\
        workflow:
          nodes:
            work: {exec: 'true'}
            notify: {exec: 'touch notify.ran', trigger: any_failed}
          dependencies: ['work,notify']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = result(proc)
    assert jobs["notify"]["state"] == "skipped"
    assert jobs["notify"]["message"] == "skipped: no parent failed"
    assert jobs[""]["state"] == "done"


def test_when_reads_published_values_and_skips_or_fails_with_the_reason(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "when.yaml", """\
        workflow:
          nodes:
            train: {exec: 'echo "# ccd loss=0.31 best=yes"', matrix: {gpu: [a100, v100]}}
            deploy: {exec: 'true', when: 'job("train.gpu-a100").values.loss < 0.5'}
            retrain: {exec: 'true', when: 'job("train.gpu-a100").values.loss >= 0.5'}
            broken: {exec: 'true', when: 'job("train.gpu-v100").values.acc > 1'}
          dependencies: ['train,deploy', 'train,retrain', 'train,broken']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = result(proc)
    assert jobs["deploy"]["state"] == "done"
    assert jobs["retrain"]["state"] == "skipped"
    assert jobs["retrain"]["message"] == \
        'when: job("train.gpu-a100").values.loss >= 0.5 is false'
    assert jobs["broken"]["state"] == "failed"
    assert jobs["broken"]["message"] == ('when: job("train.gpu-v100").values.acc > 1: '
                                         "train.gpu-v100 published no value 'acc' "
                                         "(a log line `# ccd acc=...`)")


def test_repeat_runs_a_job_again_until_what_it_publishes_says_stop_and_never_past_max(
        tmp_path: Path, ccctl: Ccctl) -> None:
    count = "n=$(( $(cat {f} 2>/dev/null || echo 0) + 1 )); echo $n > {f}; echo \"# ccd n=$n\""
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            converges: {{exec: '{count.format(f="a")}', repeat: {{until: 'n >= 3', max: 5}}}}
            after: {{exec: 'cat a'}}
            never: {{exec: '{count.format(f="b")}', repeat: {{until: 'n >= 10', max: 2}}}}
            unknown: {{exec: 'true', repeat: {{until: 'loss < 0.1', max: 3}}}}
          dependencies: ['converges,after']
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = result(proc)
    assert jobs["converges"]["state"] == "done" and jobs["converges"]["attempt"] == 3
    assert jobs["converges"]["message"] == "repeat: n >= 3 held after 3 run(s)"
    assert jobs["after"]["state"] == "done"
    run_dir = Path(str(jobs[""]["run_dir"]))
    assert (run_dir / "jobs" / "after" / "log").read_text() == "3\n"
    # Each run is an attempt with its own log.
    assert [(run_dir / "jobs" / f"converges@{i}" / "log").read_text() for i in (1, 2)] == [
        "# ccd n=1\n", "# ccd n=2\n"]
    assert jobs["never"]["state"] == "failed"
    assert jobs["never"]["message"] == "repeat: n >= 10 still false after 2 runs (max 2)"
    assert jobs["unknown"]["state"] == "failed"
    assert str(jobs["unknown"]["message"]).startswith("repeat: loss < 0.1: ")


def test_a_jobs_start_is_printed_while_it_runs(tmp_path: Path, ccctl: Ccctl) -> None:
    # Job lines are written at most ten times a second, not held until the run ends.
    release = tmp_path / "release"
    wf = write(tmp_path / "gate.yaml", f"""\
        workflow:
          nodes:
            gate: {{exec: 'while [ ! -f {release} ]; do sleep 0.02; done'}}
          dependencies: []
        """)
    with ccctl.start("run", wf) as proc, ThreadPoolExecutor(1) as pool:
        assert proc.stdout is not None
        first = pool.submit(proc.stdout.readline)
        try:
            assert first.result(timeout=30).split()[1:3] == ["running", "gate"]
            release.touch()
            assert proc.wait(timeout=60) == 0
        finally:
            proc.kill()
