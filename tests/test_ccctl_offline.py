"""ccctl's reading commands (list, status, logs, results) without a daemon: they read the
state directory `ccctl run` wrote, without writing to it, and show what the daemon shows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

from conftest import Ccctl, kill_jobs, running_daemon, wait_for, write

FIXTURE = Path(__file__).parent / "fixtures" / "state-v1"
FAILING = """\
    workflow:
      nodes:
        make: {exec: 'echo data > out.txt', outputs: [out.txt]}
        bad: {exec: 'echo why; seq 1 20; exit 3'}
        after: {exec: 'echo never'}
      dependencies: ['make,bad,after']
    """


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def holds(proc: subprocess.Popen[str], path: Path) -> bool:
    """Has the process `path` open?"""
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{proc.pid}/fd").iterdir())
    return False


def test_a_failed_ccctl_run_is_read_without_a_daemon_as_the_daemon_shows_it(
        ccctl: Ccctl, env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    ran = ccctl("run", write(tmp_path / "fails.yaml", FAILING))
    assert ran.returncode == 1, ran.stderr
    suggested = ran.stderr.splitlines()[-1]
    assert suggested.startswith("the whole log: ccctl logs ")
    run_id = suggested.split()[-2]
    db = state_dir / "ccd.db"
    before = digest(db)

    # The command it suggests, exactly as printed: the whole log, with no daemon.
    whole = ccctl(*suggested.removeprefix("the whole log: ccctl ").split())
    assert (whole.returncode, whole.stderr) == (0, "")
    assert whole.stdout == "why\n" + "".join(f"{n}\n" for n in range(1, 21))

    listed = ccctl("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == f"(no daemon: reading {state_dir})\n"
    assert run_id in listed.stdout and "1 failed" in listed.stdout

    status = ccctl("status", "@last")
    assert status.returncode == 1  # the run failed, as with the daemon
    assert "1 job failed: bad: exit code 3" in status.stderr
    assert [line.split()[:2] for line in status.stdout.splitlines()[1:]] == [
        ["make", "done"], ["bad", "failed"], ["after", "skipped"]]

    jobs = ccctl("logs", "fails")  # a start of the id
    assert jobs.returncode == 0, jobs.stderr
    assert jobs.stdout.splitlines() == [
        "make  done", "bad  failed  exit code 3", "after  skipped  skipped: bad failed"]
    assert jobs.stderr == f"a job's log: ccctl logs {run_id} JOB\n"
    assert ccctl("logs", run_id, "after").stderr == "after did not run: skipped: bad failed\n"

    results = ccctl("results", run_id)
    assert results.returncode == 0, results.stderr
    assert results.stdout.split() == ["make", "5", "out.txt"]
    assert ccctl("results", run_id, "-o", tmp_path / "got").returncode == 0
    assert (tmp_path / "got" / "out.txt").read_text() == "data\n"

    missing = ccctl("status", "nope")
    assert missing.returncode == 2
    assert missing.stderr == (f"(no daemon: reading {state_dir})\n"
                              f"ccctl: no run 'nope' in {state_dir} (`ccctl list` shows them)\n")
    assert ccctl("logs", run_id, "nojob").stderr == f"ccctl: run {run_id} has no job 'nojob'\n"

    # A watch of a run that has ended tells its story from the start, as the daemon's does.
    watched = ccctl("status", run_id, "--watch")
    assert watched.returncode == 1, watched.stderr
    assert re.search(r"  done +make ", watched.stdout)
    assert re.search(r"  failed +bad .*exit code 3", watched.stdout)

    offline = {args: ccctl(*args, "--json") for args in
               [("list",), ("status", run_id), ("results", run_id)]}
    for proc in offline.values():
        assert proc.stderr == ""  # nothing but the JSON, on stdout
    assert digest(db) == before  # read, never written
    assert not (state_dir / "ccd.db-wal").exists() or \
        (state_dir / "ccd.db-wal").stat().st_size == 0

    with running_daemon(env, state_dir):
        for args, proc in offline.items():
            online = ccctl(*args, "--json")
            assert online.stderr == ""
            assert json.loads(online.stdout) == json.loads(proc.stdout), args
        assert ccctl("list").stderr == ""  # the daemon answered: nothing to say
        assert ccctl("status", run_id, "--watch").stdout == watched.stdout
        named = ccctl("list", "--json", "--state-dir", state_dir)  # read as asked, not asked
        listed_json = json.loads(offline[("list",)].stdout)
        assert (named.stderr, json.loads(named.stdout)) == ("", listed_json)
        assert ccctl("logs", run_id, "bad").stdout == whole.stdout


def test_the_suggested_command_names_a_state_directory_given_to_ccctl_run(
        ccctl: Ccctl, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other state"
    ran = ccctl("run", "--state-dir", elsewhere, write(tmp_path / "fails.yaml", FAILING))
    assert ran.returncode == 1, ran.stderr
    suggested = ran.stderr.splitlines()[-1]
    assert suggested.endswith(f" bad --state-dir '{elsewhere}'")
    whole = ccctl(*shlex.split(suggested.removeprefix("the whole log: ccctl ")))
    assert (whole.returncode, whole.stderr) == (0, "")
    assert whole.stdout.startswith("why\n1\n")


def test_a_run_in_progress_is_followed_from_another_terminal_without_a_daemon(
        ccctl: Ccctl, state_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wf = write(tmp_path / "slow.yaml", f"""\
        workflow:
          nodes:
            talk: {{exec: 'echo first; while [ ! -f {go} ]; do sleep 0.02; done; echo last'}}
            bad: {{exec: 'echo broken; exit 4'}}
          dependencies: ['talk,bad']
        """)
    runner = ccctl.start("run", wf, "--json")
    started: list[subprocess.Popen[str]] = [runner]
    try:
        wait_for(lambda: any(state_dir.glob("runs/*/jobs/talk/log")) and
                 next(state_dir.glob("runs/*/jobs/talk/log")).read_text() == "first\n",
                 what="the job to start")
        shown = ccctl("status", "@last", "--json")
        assert shown.returncode == 0, shown.stderr  # a run in progress: not an exit code
        assert json.loads(shown.stdout)["jobs"][0]["state"] == "running"
        watcher = ccctl.start("status", "@last", "--watch")
        follower = ccctl.start("logs", "@last", "talk", "--follow")
        started += [watcher, follower]
        assert follower.stdout is not None and watcher.stdout is not None
        assert follower.stdout.readline() == "first\n"
        # The watch has the journal open (it reads its end right after): what comes now, it
        # sees come.
        wait_for(lambda: holds(watcher, state_dir / "ccd.db"), what="the watch to read")
        go.touch()
        out, err = follower.communicate(timeout=30)
        assert (follower.returncode, out, err) == (0, "last\n", "")  # ends with the job
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 1, err  # the run failed: as `ccctl run` itself exits
        assert re.search(r"  done +talk ", out) and re.search(r"  failed +bad .*exit code 4", out)
        assert err.endswith("bad failed; the last line of its log:\n  broken\n"
                            f"the whole log: ccctl logs {json.loads(shown.stdout)['run']} bad\n")
        assert runner.communicate(timeout=30)[0] and runner.returncode == 1
    finally:
        for proc in started:
            proc.kill()
            proc.communicate()


def test_watching_a_run_nothing_drives_says_so_instead_of_waiting_forever(
        ccctl: Ccctl, state_dir: Path, tmp_path: Path) -> None:
    wf = write(tmp_path / "left.yaml", "workflow:\n  nodes: {a: {exec: 'echo a; sleep 60'}}")
    runner = ccctl.start("run", wf)
    try:
        wait_for(lambda: any(state_dir.glob("runs/*/jobs/a/log")) and
                 next(state_dir.glob("runs/*/jobs/a/log")).read_text() == "a\n",
                 what="the job to start")
        runner.kill()  # as kill -9: the job goes on, nothing records it
        runner.communicate()
        watched = ccctl("status", "@last", "--watch", "--json")
        assert watched.returncode == 3
        assert json.loads(watched.stdout)["state"] == "running"  # as it was left
        assert "ccctl: nothing drives run left-" in watched.stderr
        assert "start `ccd`, which resumes it" in watched.stderr
    finally:
        runner.kill()
        kill_jobs(state_dir)


def test_a_dead_socket_is_no_daemon_and_ccd_url_is_never_second_guessed(
        ccctl: Ccctl, env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    assert ccctl("run", write(tmp_path / "ok.yaml", "workflow:\n  nodes: {a: {exec: 'true'}}")
                 ).returncode == 0
    sock = Path(env["XDG_RUNTIME_DIR"]) / "ccd" / "ccd.sock"  # as a daemon killed by -9 leaves it
    sock.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    listener.close()
    sock.chmod(0o600)
    listed = ccctl("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["state"] for r in json.loads(listed.stdout)] == ["done"]
    # A daemon named by CCD_URL is the one asked: not reaching it is an error, not a fallback.
    sock.unlink()
    remote = Ccctl({**env, "CCD_URL": "http://127.0.0.1:9", "CCD_TOKEN": "x"})("list")
    assert remote.returncode == 3 and remote.stderr.startswith("ccctl: ccd is not answering")


def test_a_state_directory_of_an_older_ccd_is_left_as_it_is(
        ccctl: Ccctl, state_dir: Path) -> None:
    shutil.copytree(FIXTURE, state_dir)
    before = digest(state_dir / "ccd.db")
    proc = ccctl("list")
    assert proc.returncode == 2
    assert proc.stderr.endswith("is from an older ccd (schema 1): start `ccd` (or `ccctl run`) "
                                "once to bring it up to date, then try again\n")
    assert digest(state_dir / "ccd.db") == before


def test_without_any_state_yet_there_are_no_runs(ccctl: Ccctl, state_dir: Path) -> None:
    listed = ccctl("list", "--json")
    assert (listed.returncode, listed.stdout) == (0, "[]\n")
    last = ccctl("status", "@last")
    assert last.returncode == 2
    assert last.stderr.endswith(f"ccctl: no runs yet in {state_dir}, so no @last\n")
    assert not state_dir.exists()  # nothing made


def test_a_watch_started_while_the_daemon_is_dead_waits_for_it_to_come_back(
        ccctl: Ccctl, env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wf = write(tmp_path / "gated.yaml", f"""\
        workflow:
          nodes:
            wait: {{exec: 'while [ ! -f {go} ]; do sleep 0.02; done'}}
            end: {{exec: 'echo end'}}
          dependencies: ['wait,end']
        """)
    with running_daemon(env, state_dir) as daemon:
        run_id = daemon.submit(wf)
        wait_for(lambda: daemon.jobs(run_id)["wait"]["state"] == "running", what="the job")
        daemon.kill()  # its socket stays behind, nothing listens on it
        assert daemon.socket.exists()
        watcher = ccctl.start("status", "@last", "--watch")
        try:
            assert watcher.stderr is not None
            assert watcher.stderr.readline() == f"(no daemon: reading {state_dir})\n"
            daemon.start()  # it resumes the run; the watch follows the journal it writes
            go.touch()
            out, err = watcher.communicate(timeout=60)
        finally:
            watcher.kill()
        assert watcher.returncode == 0, err
        assert re.search(r"  done +wait ", out) and re.search(r"  done +end ", out)
        assert f"run {run_id} done in " in err
