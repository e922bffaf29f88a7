"""Hard faults of the machine, for real: a read-only or full state directory (small tmpfs
mounts, so these need root, as CI has). ccd says what is wrong in one line and loses
nothing; when there is room again it carries on by itself."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import Ccctl, Mount, fill, running_daemon, wait_for, write

QUICK = "workflow:\n  nodes: {a: {exec: 'true'}}\n"


@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_an_unusable_state_directory_is_one_line_and_exit_2(
        tmpfs: Mount, tmp_path: Path, ccctl: Ccctl, env: dict[str, str], trouble: str) -> None:
    disk = tmpfs("disk", readonly=trouble == "read-only")
    if trouble == "full":
        fill(disk)
    wf = write(tmp_path / "quick.yaml", QUICK)
    for command in (["-m", "ccctl", "run", str(wf), "--state-dir", str(disk / "state")],
                    ["-m", "ccd", "--no-tcp", "--state-dir", str(disk / "state"),
                     "--socket", str(tmp_path / "ccd.sock")]):
        proc = subprocess.run([sys.executable, *command], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.endswith(f"cannot use the state directory {disk / 'state'}: " +
                             ("Read-only file system" if trouble == "read-only"
                              else "database or disk is full")), line


def test_the_wrapper_with_no_room_runs_nothing_and_leaves_no_claim(tmpfs: Mount) -> None:
    from ccd.executors.protocol import CLAIMED_ELSEWHERE, NO_ROOM, WRAPPER

    disk = tmpfs("disk", size="1m")
    job = disk / "job"
    job.mkdir()
    fill(disk)
    ran = disk.parent / "ran"  # outside the full disk
    proc = subprocess.run(["sh", WRAPPER, str(job), "/", "", f"touch {ran}"], timeout=30)
    assert proc.returncode == NO_ROOM and not ran.exists()
    assert not (job / "status").exists()  # no claim left behind: it can start later
    (job / "status").write_text("")  # (tmpfs makes empty files when full) another holds it
    proc = subprocess.run(["sh", WRAPPER, str(job), "/", "", f"touch {ran}"], timeout=30)
    assert proc.returncode == CLAIMED_ELSEWHERE and not ran.exists()


def test_a_full_state_directory_holds_starts_and_loses_nothing(
        tmpfs: Mount, env: dict[str, str], tmp_path: Path, ccctl: Ccctl) -> None:
    state = tmpfs("state", size="16m")
    release = tmp_path / "release"
    text = f"""\
workflow:
  nodes:
    gate: {{exec: 'while [ ! -f {release} ]; do sleep 0.02; done'}}
    a: {{exec: 'echo a'}}
    b: {{exec: 'echo b'}}
  dependencies: ['gate,a', 'gate,b']
"""
    with contextlib.ExitStack() as stack, running_daemon(env, state) as d, d.http() as http:
        assert http.post("/api/v1/workflows", content=text.encode(),
                         params={"filename": "gated.yaml"}).status_code == 201
        run = http.post("/api/v1/runs", json={"workflow": "gated"}).json()["run"]
        wait_for(lambda: job_states(http, run)["gate"] == "running", what="gate to run")
        filler = fill(state)
        stack.callback(filler.unlink, missing_ok=True)  # whatever happens, room at the end
        release.touch()
        paused = f"all starts paused: the state directory {state} is full: cannot save"
        wait_for(lambda: any(p.startswith(paused)
                             for p in http.get("/api/v1/health").json()["problems"]),
                 what="the daemon to say the state directory is full")
        pinged = ccctl("ping")
        assert pinged.returncode == 0 and "problem: all starts paused" in pinged.stdout
        assert {job_states(http, run)[n] for n in ("a", "b")} == {"ready"}  # held, not failed
        filler.unlink()  # room again: everything goes on by itself
        wait_for(lambda: http.get(f"/api/v1/runs/{run}").json()["state"] != "running",
                 what="the run to end")
        final = http.get(f"/api/v1/runs/{run}").json()
        assert final["state"] == "done", final
        assert all(j["state"] == "done" and j["attempt"] == 1 for j in final["jobs"])
        assert http.get("/api/v1/health").json()["problems"] == []
        # The run's stream ends once its last event is saved: every change is there.
        events = [json.loads(line[6:]) for line in
                  http.get(f"/api/v1/runs/{run}/events").text.splitlines()
                  if line.startswith("data: ")]
        assert [(e["job"], e["state"]) for e in events if e["job"] == "a"] in (
            [("a", "running"), ("a", "done")],  # started after the pause
            [("a", "running"), ("a", "ready"), ("a", "running"), ("a", "done")])  # no room
        assert events[-1]["job"] is None and events[-1]["state"] == "done"
        fill(state)  # a new run needs room for its working copy: 507, nothing made
        refused = http.post("/api/v1/runs", json={"workflow": "gated"})
        assert refused.status_code == 507 and "is full" in refused.json()["error"]
        assert len(list((state / "runs").iterdir())) == 1


def job_states(http: httpx.Client, run: str) -> dict[str, str]:
    return {j["name"]: j["state"] for j in http.get(f"/api/v1/runs/{run}").json()["jobs"]}
