"""A state directory made by the previous release opens with this one: its runs are kept,
its run in progress carries on without running a job twice, and the run it could never
drive ends with the reason (tests/fixtures/state-v1/README.md says how it was made)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Ccctl, Daemon, running_daemon, wait_for

from ccd.store import VERSION, Store

FIXTURE = Path(__file__).parent / "fixtures" / "state-v1"


@pytest.fixture
def old_state(state_dir: Path) -> Path:
    shutil.copytree(FIXTURE, state_dir)
    return state_dir


@pytest.fixture
def old_daemon(env: dict[str, str], old_state: Path) -> Iterator[Daemon]:
    with running_daemon(env, old_state) as d:
        yield d


def by_workflow(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {r["workflow"]: r for r in http.get("/api/v1/runs").json()}


def jobs_of(http: httpx.Client, run_id: str) -> dict[str, dict[str, Any]]:
    return {j["name"]: j for j in http.get(f"/api/v1/runs/{run_id}").json()["jobs"]}


def log(http: httpx.Client, run_id: str, job: str) -> str:
    return http.get(f"/api/v1/runs/{run_id}/jobs/{job}/log").text


def test_the_database_is_migrated_in_place_and_keeps_every_run(old_state: Path) -> None:
    store = Store(old_state / "ccd.db")
    try:
        runs = {r.workflow: r.state.value for r in store.runs()}
    finally:
        store.close()
    assert runs == {"done": "done", "failing": "failed", "stuck": "running", "going": "running"}
    db = sqlite3.connect(old_state / "ccd.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    finally:
        db.close()


def test_a_release_made_state_directory_resumes_under_the_new_daemon(
        old_daemon: Daemon, ccctl: Ccctl) -> None:
    with old_daemon.http() as http:
        wait_for(lambda: all(r["state"] != "running" for r in by_workflow(http).values()),
                 what="the old runs in progress to end")
        runs = by_workflow(http)
        assert {w: r["state"] for w, r in runs.items()} == {
            "done": "done", "failing": "failed", "stuck": "failed", "going": "done"}

        # The run in progress: `slow` ended while nothing watched it; it is adopted, not rerun.
        going = runs["going"]["run"]
        assert {n: j["state"] for n, j in jobs_of(http, going).items()} == {
            "slow": "done", "next": "done", "last": "done"}
        assert log(http, going, "slow") == "slow done\n"
        assert log(http, going, "next") == "next ran\n"

        # The finished runs read as they were, with their old attempts.
        failing = jobs_of(http, runs["failing"]["run"])
        assert failing["flaky"]["message"] == "exit code 3 (attempt 2 of 2)"
        assert failing["after"]["state"] == "skipped"
        assert log(http, runs["failing"]["run"], "flaky") == "trying\n"

        # The run 0.1.0 left running forever ends, with the reason, and its local job ran.
        stuck = runs["stuck"]["run"]
        jobs = jobs_of(http, stuck)
        # (nothing listens on 127.0.0.9:22: refused; were an sshd there, its key is unknown)
        reason = jobs["there"]["message"]
        assert jobs["there"]["state"] == "failed" and reason.startswith("host '127.0.0.9': ")
        assert jobs["here"]["state"] == "done" and log(http, stuck, "here") == "here ran\n"
        assert jobs["after"]["state"] == "skipped"
        assert runs["stuck"]["message"] == f"1 job failed: there: {reason}"
        shown = ccctl("status", stuck)
        assert shown.returncode == 1 and reason in shown.stdout + shown.stderr

        # ... and it can be rerun: the job that was done stays done, the rest end the same way.
        again = http.post(f"/api/v1/runs/{stuck}/rerun")
        assert again.status_code == 201, again.text
        rerun = again.json()["run"]
        wait_for(lambda: http.get(f"/api/v1/runs/{rerun}").json()["state"] != "running",
                 what="the rerun to end")
        assert {n: j["state"] for n, j in jobs_of(http, rerun).items()} == {
            "here": "done", "there": "failed", "after": "skipped"}

        # Nothing is resumed twice: a restart finds every run ended.
        old_daemon.stop()
    old_daemon.start()
    with old_daemon.http() as http:
        assert http.get("/api/v1/health").json()["active_runs"] == 0
