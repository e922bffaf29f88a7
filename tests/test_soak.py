"""A soak: the daemon is killed with SIGKILL at random moments and started again, while
runs go on, event-stream clients follow everything, and a client sends hostile requests.
Afterwards: every job ran exactly once, every run ended done, every client saw every
event exactly once and in order, and nothing answered 5xx.

Short by default (a few kills); CCD_SOAK_SECONDS=600 for a long one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import Daemon, kill_jobs, wait_for

from ccctl.client import Client
from ccd.errors import ClientError

SECONDS = float(os.environ.get("CCD_SOAK_SECONDS", "12"))
JOBS = 6


def workflow(counter: Path) -> str:
    # Each job appends its own directory (run id and job name) to the counter when it runs.
    nodes = "\n".join(f"    j{i}: {{exec: 'echo \"$CCD_JOB_DIR\" >> {counter}; sleep 0.{i}'}}"
                      for i in range(JOBS))
    chains = "\n".join(f"    - start,j{i},end" for i in range(JOBS))
    return f"workflow:\n  nodes:\n    start:\n{nodes}\n    end:\n  dependencies:\n{chains}\n"


def hostile_requests() -> list[tuple[str, str, dict[str, object]]]:
    slip = io.BytesIO()
    with tarfile.open(fileobj=slip, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape.yaml")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"x: 1\n"))
    return [
        ("POST", "/api/v1/workflows", {"content": b"workflow: [unclosed"}),
        ("POST", "/api/v1/workflows", {"content": slip.getvalue(),
                                       "params": {"filename": "x.tar.gz"}}),
        ("POST", "/api/v1/workflows", {"content": b"\x00\xff" * 1000}),
        ("PUT", "/api/v1/workflows/soak/jobs/b", {"content": b'{"timeout": "abc"}'}),
        ("PUT", "/api/v1/workflows/soak/jobs/b", {"content": b'{"env": [1]}'}),
        ("GET", "/api/v1/runs?limit=99999999999999999999", {}),
        ("GET", "/api/v1/events", {"headers": {"Last-Event-ID": "9" * 30}}),
        ("GET", "/api/v1/runs/nope/jobs/x/log?offset=-1", {}),
        ("POST", "/api/v1/runs", {"content": b'{"workflow": 42}'}),
    ]


class Follower(threading.Thread):
    """An event-stream client (ccctl's own) that reconnects with Last-Event-ID and keeps
    every id it is given."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stop = stop
        self.ids: list[int] = []
        self.after = 0

    def run(self) -> None:
        client = Client()
        while not self.stop.is_set():
            try:
                stream = client.events("/api/v1/events", after=self.after)
                with contextlib.closing(stream):
                    for event_id, kind, _ in stream:
                        if kind in ("job", "run"):
                            self.ids.append(event_id)
                            self.after = event_id
                        if self.stop.is_set():
                            return
            except ClientError:
                time.sleep(0.05)  # the daemon is down: come back


def test_kill_9_at_random_while_clients_follow_and_attack(
        env: dict[str, str], state_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(int(os.environ.get("CCD_SOAK_SEED", "7")))
    counter = tmp_path / "counter"
    d = Daemon(env, state_dir).start()
    monkeypatch.setenv("CCD_SOCKET", str(d.socket))
    stop = threading.Event()
    followers = [Follower(stop) for _ in range(3)]
    answers: list[int] = []
    try:
        with d.http() as http:
            assert http.post("/api/v1/workflows", content=workflow(counter).encode(),
                             params={"filename": "soak.yaml"}).status_code == 201
        for f in followers:
            f.start()
        runs: list[str] = []
        kills = 0
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            with d.http() as http:
                for method, path, options in rng.sample(hostile_requests(), 3):
                    answers.append(http.request(method, path, **options).status_code)  # type: ignore[arg-type]
                runs.append(http.post("/api/v1/runs", json={"workflow": "soak"}).json()["run"])
            time.sleep(rng.uniform(0.05, 0.6))
            d.kill()
            kills += 1
            d.start()
        with d.http() as http:
            wait_for(lambda: all(http.get(f"/api/v1/runs/{r}").json()["state"] != "running"
                                 for r in runs), timeout=120, what="every run to end")
            states = {r: http.get(f"/api/v1/runs/{r}").json()["state"] for r in runs}
            last = http.get("/api/v1/health").json()["last_event_id"]
        wait_for(lambda: all(f.after >= last for f in followers), what="the clients to catch up")
    finally:
        stop.set()
        d.stop()
        kill_jobs(state_dir)
    assert kills >= 3
    assert set(states.values()) == {"done"}, states
    ran = counter.read_text().split()
    assert len(ran) == len(set(ran)) == len(runs) * JOBS  # every job of every run, once
    assert answers and all(400 <= a < 500 for a in answers), answers
    for f in followers:  # every journalled event, once, in order (ids start at 1, no gaps)
        assert f.ids == list(range(f.ids[0], last + 1)), (f.ids[:5], len(f.ids), last)
        assert f.ids[0] == 1
    for line in d.log:
        assert isinstance(json.loads(line), dict), line
