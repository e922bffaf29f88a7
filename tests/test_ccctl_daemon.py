"""ccctl against a running daemon, as a user types it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Ccctl, Daemon, wait_for, write

EXAMPLE = ROOT / "examples" / "workflow-example"
NOBODY = 65534  # another user, for tests that run as root


def test_daemon_not_running_says_how_to_start_it(ccctl: Ccctl) -> None:
    proc = ccctl("ping")  # (the reading commands read the state directory instead)
    assert proc.returncode == 3
    assert proc.stderr.startswith("ccctl: ccd is not running")
    assert "start it with `ccd`" in proc.stderr and "Traceback" not in proc.stderr


def test_submit_watch_a_file_then_list_status_logs_graph(daemon: Daemon, ccctl: Ccctl,
                                                         tmp_path: Path) -> None:
    example = shutil.copytree(EXAMPLE, tmp_path / "example")
    proc = ccctl("submit", example / "workflow-example.yaml", "--watch", "--json")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["state"] == "done" and len(run["jobs"]) == 5
    listed = json.loads(ccctl("list", "--json").stdout)
    assert [r["run"] for r in listed] == [run["run"]]
    status = json.loads(ccctl("status", run["run"], "--json").stdout)
    assert {j["name"]: j["state"] for j in status["jobs"]}["analyze"] == "done"
    assert "the total is 55" in ccctl("logs", run["run"], "analyze").stdout
    assert ccctl("graph", run["run"]).stdout.startswith("digraph")
    assert "ccd is running at unix:" in ccctl("ping").stdout


def test_submit_a_directory_and_a_tar(daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    example = shutil.copytree(EXAMPLE, tmp_path / "example")
    assert ccctl("submit", example, "--watch").returncode == 0
    archive = tmp_path / "wf.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(example, arcname="workflow-example")
    run_id = ccctl("submit", archive).stdout.strip()
    assert run_id.startswith("workflow-example-")
    assert ccctl("status", run_id, "--watch").returncode == 0


def test_failed_run_exits_1_and_rerun_runs_only_what_failed(daemon: Daemon, ccctl: Ccctl,
                                                            tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    wf = write(tmp_path / "flaky.yaml", f"""\
        workflow:
          nodes:
            one: {{exec: 'echo one >> {tmp_path}/ran'}}
            two: {{exec: 'echo two >> {tmp_path}/ran; test -f {flag}'}}
          dependencies: ['one,two']
        """)
    proc = ccctl("submit", wf, "--watch", "--json")
    assert proc.returncode == 1
    flag.touch()
    rerun = ccctl("rerun", json.loads(proc.stdout)["run"], "--watch")
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "ran").read_text().split() == ["one", "two", "two"]


def test_logs_follow_and_cancel(daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    wait = f"while [ ! -f {tmp_path}/go ]; do sleep 0.02; done"
    wf = write(tmp_path / "slow.yaml", f"""\
        workflow:
          nodes:
            talk: {{exec: 'echo first; {wait}; echo last'}}
            idle: {{exec: 'sleep 60'}}
          dependencies: []
        """)
    run_id = ccctl("submit", wf).stdout.strip()
    follower = ccctl.start("logs", run_id, "talk", "-f")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "first\n"
        (tmp_path / "go").touch()
        out, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert out == "last\n" and follower.returncode == 0
    assert ccctl("cancel", run_id).returncode == 0
    wait_for(lambda: json.loads(ccctl("status", run_id, "--json").stdout)["state"]
             == "cancelled", what="the cancel")
    assert ccctl("cancel", run_id).returncode == 2  # already over: one clear line
    assert ccctl("cancel", run_id).stderr.startswith(f"ccctl: run {run_id} is cancelled")


def test_invalid_file_is_reported_before_upload(daemon: Daemon, ccctl: Ccctl,
                                                tmp_path: Path) -> None:
    wf = write(tmp_path / "bad.yaml", "workflow:\n  nodes: {a: {exec: [x]}}\n")
    proc = ccctl("submit", wf)
    assert proc.returncode == 2
    assert proc.stderr == f"{wf}:2:21: exec must be a string, not a list\n"


def test_open_prints_a_one_time_login_link(daemon: Daemon, ccctl: Ccctl) -> None:
    link = ccctl("open", "--print").stdout.strip()
    assert link.startswith(f"{daemon.url}/login?code=")


def test_a_run_in_a_terminal_shows_up_in_the_daemons_events(daemon: Daemon, ccctl: Ccctl,
                                                            tmp_path: Path) -> None:
    from test_daemon import events

    got: list[dict[str, object]] = []

    def listen() -> None:
        with daemon.http() as http:
            events(http, "/api/v1/events", out=got)

    listener = threading.Thread(target=listen)
    listener.start()
    with daemon.http() as http:
        wait_for(lambda: http.get("/api/v1/health").json()["event_subscribers"] == 1,
                 what="the listener")
    wf = write(tmp_path / "here.yaml", "workflow:\n  nodes: {a: {exec: 'true'}}\n")
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0
    listener.join(timeout=30)
    run_id = json.loads(proc.stdout)["run"]
    assert [(e["job"], e["state"]) for e in got if e["run"] == run_id] == [
        (None, "running"), ("a", "running"), ("a", "done"), (None, "done")]


def test_over_tcp_with_ccd_url_and_token(daemon: Daemon, env: dict[str, str],
                                         tmp_path: Path) -> None:
    tcp = Ccctl({**env, "CCD_SOCKET": str(tmp_path / "none.sock"), "CCD_URL": daemon.url,
                 "CCD_TOKEN": daemon.token})
    assert tcp("ping").stdout.startswith(f"ccd is running at {daemon.url}")
    wrong = Ccctl({**tcp.env, "CCD_TOKEN": "wrong"})
    proc = wrong("list")
    assert proc.returncode == 2 and "needs the ccd token" in proc.stderr


@pytest.mark.parametrize("trap", ["directory owner", "directory mode", "socket owner"])
def test_a_socket_another_user_could_have_planted_is_refused(ccctl: Ccctl, env: dict[str, str],
                                                             trap: str) -> None:
    directory = Path(env["XDG_RUNTIME_DIR"]) / "ccd"  # as /tmp/ccd-UID without XDG_RUNTIME_DIR
    directory.mkdir(mode=0o700)
    path = directory / "ccd.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.setblocking(False)
    if trap == "directory owner":
        os.chown(directory, NOBODY, NOBODY)
    elif trap == "directory mode":
        directory.chmod(0o777)
    else:
        os.chown(path, NOBODY, NOBODY)
    try:
        proc = ccctl("submit", EXAMPLE / "workflow-example.yaml")
        with contextlib.suppress(BlockingIOError):
            listener.accept()[0].close()
            pytest.fail("ccctl connected to a socket another user could have planted")
    finally:
        listener.close()
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"ccctl: refusing to talk to {path}: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    owner = ("uid 65534" if trap != "directory mode" else "writable by others")
    assert owner in proc.stderr


def test_token_rotate_through_the_daemon_logs_out_every_client_at_once(
        daemon: Daemon, ccctl: Ccctl) -> None:
    from test_daemon import session

    cookie, old = session(daemon), {"Authorization": f"Bearer {daemon.token}"}
    proc = ccctl("token", "rotate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"rotated the token through ccd at unix:{daemon.socket}")
    for stale in (cookie, old):
        assert httpx.get(f"{daemon.url}/api/v1/runs", headers=stale).status_code == 401
    new = {"Authorization": f"Bearer {daemon.token}"}
    assert new != old and httpx.get(f"{daemon.url}/api/v1/runs", headers=new).status_code == 200


def test_token_rotate_without_a_daemon_rewrites_the_file(daemon: Daemon, ccctl: Ccctl) -> None:
    from test_daemon import session

    cookie, old = session(daemon), daemon.token
    daemon.stop()
    proc = ccctl("token", "rotate")
    assert proc.returncode == 0, proc.stderr
    token_file = Path(daemon.env["XDG_CONFIG_HOME"]) / "ccd" / "token"
    assert proc.stdout.startswith(f"rotated the token in {token_file}")
    assert daemon.token != old
    daemon.start()
    assert httpx.get(f"{daemon.url}/api/v1/runs", headers=cookie).status_code == 401


def test_a_run_is_named_by_any_unique_start_of_its_id_or_by_at_last(
        daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    alpha = daemon.submit(write(tmp_path / "alpha.yaml", "workflow:\n  nodes: {a: {exec: echo A}}"))
    also = daemon.submit(write(tmp_path / "also.yaml", "workflow:\n  nodes: {a: {exec: echo B}}"))
    daemon.ended(alpha), daemon.ended(also)
    assert json.loads(ccctl("status", "alp", "--json").stdout)["run"] == alpha
    assert json.loads(ccctl("status", "@last", "--json").stdout)["run"] == also
    assert ccctl("logs", "also-", "a").stdout == "B\n"
    assert ccctl("graph", "alpha").stdout.startswith("digraph")
    ambiguous = ccctl("status", "al")
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == (f"ccctl: 'al' is the start of more than one run on the daemon: "
                                f"{also}, {alpha}; give more of the id\n")
    missing = ccctl("cancel", "beta")
    assert missing.returncode == 2
    assert missing.stderr == "ccctl: no run 'beta' on the daemon (`ccctl list` shows them)\n"


def test_list_shows_whole_run_ids_in_a_narrow_terminal(daemon: Daemon, env: dict[str, str],
                                                       tmp_path: Path) -> None:
    name = "a-workflow-with-a-rather-long-name-indeed"
    run_id = daemon.submit(write(tmp_path / f"{name}.yaml", "workflow:\n  nodes: {a: {exec: x}}"))
    daemon.ended(run_id)
    # rich's own switches: draw for an 80-column terminal, without colours
    terminal = Ccctl({**env, "COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"})
    proc = terminal("list")
    assert proc.returncode == 0, proc.stderr
    lines = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout).splitlines()  # bold headers
    assert any(run_id in line for line in lines) and max(map(len, lines)) <= 80


def test_submit_watch_of_a_failing_run_ends_with_the_failed_jobs_log(
        daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    wf = write(tmp_path / "fails.yaml", "workflow:\n  nodes: {bad: {exec: 'echo why; exit 1'}}")
    proc = ccctl("submit", wf, "--watch")
    assert proc.returncode == 1
    run_id = json.loads(ccctl("list", "--json").stdout)[0]["run"]
    assert proc.stderr.endswith("\nbad failed; the last line of its log:\n  why\n"
                                f"the whole log: ccctl logs {run_id} bad\n")
    assert ccctl("logs", run_id, "bad").stdout == "why\n"


def test_logs_without_a_job_lists_the_jobs_and_a_skipped_job_says_why(
        daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            bad: {exec: 'echo broken; exit 2'}
            after: {exec: 'echo never'}
          dependencies: ['bad,after']
        """)
    proc = ccctl("submit", wf, "--watch")
    assert proc.returncode == 1, proc.stderr
    run_id = proc.stderr.split()[1]
    listed = ccctl("logs", run_id)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "bad  failed  exit code 2\nafter  skipped  skipped: bad failed\n"
    assert listed.stderr == f"a job's log: ccctl logs {run_id} JOB\n"
    skipped = ccctl("logs", run_id, "after")
    assert (skipped.returncode, skipped.stdout) == (0, "")
    assert skipped.stderr == "after did not run: skipped: bad failed\n"
    assert ccctl("logs", run_id, "bad").stdout == "broken\n"
