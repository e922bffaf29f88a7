"""kill -9 of the daemon while runs are active, then a restart: every run continues, no job
starts twice, no event is lost, and a client following the run picks up where it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Daemon, kill_jobs, wait_for
from test_daemon import events

FAN = 12


def counted(tmp_path: Path) -> str:
    """start -> gate (waits for a file) and FAN quick jobs -> end; each job counts itself."""
    counter, release = tmp_path / "counter", tmp_path / "release"
    nodes = "\n".join(f"    j{i}: {{exec: 'echo j{i} >> {counter}; sleep 0.05'}}"
                      for i in range(FAN))
    deps = "\n".join(f"    - start,j{i},end" for i in range(FAN))
    return f"""\
workflow:
  nodes:
    start: {{exec: 'echo start >> {counter}'}}
    gate: {{exec: 'echo gate >> {counter}; while [ ! -f {release} ]; do sleep 0.02; done'}}
{nodes}
    end: {{exec: 'echo end >> {counter}'}}
  dependencies:
    - start,gate,end
{deps}
"""


@pytest.mark.parametrize("kill_after", [0, 1, 4, 10])
def test_kill_9_of_the_daemon_loses_no_job_and_no_event(
        env: dict[str, str], state_dir: Path, tmp_path: Path, kill_after: int) -> None:
    counter = tmp_path / "counter"
    d = Daemon(env, state_dir, "--max-jobs", "2").start()
    watcher: subprocess.Popen[str] | None = None
    try:
        with d.http() as http:
            http.post("/api/v1/workflows", content=counted(tmp_path).encode(),
                      params={"name": "counted"})
            run_id = http.post("/api/v1/runs", json={"workflow": "counted"}).json()["run"]
        watcher = subprocess.Popen(
            [sys.executable, "-m", "ccctl", "status", run_id, "--watch", "--json"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: kill_after == 0 or (
            counter.exists() and len(counter.read_text().split()) >= kill_after),
            what=f"{kill_after} jobs to have run")
        d.kill()
        (tmp_path / "release").touch()
        d.start()
        out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, err
        assert json.loads(out)["state"] == "done"
        expected = ["start", "gate", "end", *(f"j{i}" for i in range(FAN))]
        assert sorted(counter.read_text().split()) == sorted(expected)
        with d.http() as http:
            run = http.get(f"/api/v1/runs/{run_id}").json()
            assert run["state"] == "done" and run["counts"] == {"done": FAN + 3}
            journal = events(http, f"/api/v1/runs/{run_id}/events")
        ids = [e["id"] for e in journal]
        assert ids == sorted(set(ids))
        finals = sorted(e["job"] for e in journal if e["job"] and e["state"] == "done")
        assert finals == sorted(expected)  # every job's end was journalled exactly once
        assert journal[-1]["job"] is None and journal[-1]["state"] == "done"
    finally:
        if watcher is not None:
            watcher.kill()
            watcher.communicate()
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        kill_jobs(state_dir)


def test_graceful_stop_leaves_jobs_running_and_a_restart_adopts_them(
        env: dict[str, str], state_dir: Path, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    d = Daemon(env, state_dir).start()
    try:
        with d.http() as http:
            http.post("/api/v1/workflows", content=counted(tmp_path).encode(),
                      params={"name": "counted"})
            run_id = http.post("/api/v1/runs", json={"workflow": "counted"}).json()["run"]
        wait_for(lambda: counter.exists() and "gate" in counter.read_text(), what="gate")
        assert d.stop() == 0  # SIGTERM: a clean exit
        assert not d.socket.exists()
        (tmp_path / "release").touch()
        d.start()
        with d.http() as http:
            wait_for(lambda: http.get(f"/api/v1/runs/{run_id}").json()["state"] == "done",
                     what="the run to finish after the restart")
        assert counter.read_text().split().count("gate") == 1
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        kill_jobs(state_dir)
