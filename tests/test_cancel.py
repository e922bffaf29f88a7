"""A cancel says who cancelled, in the run's and its cancelled jobs' messages: `ccctl cancel`,
any other API client (with or without saying who), the page (tests/test_web.py) and Ctrl-C
in `ccctl run` (tests/test_run.py)."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import Ccctl, Daemon, wait_for, write


def gated_run(daemon: Daemon, tmp_path: Path, name: str) -> str:
    """A run whose first job waits forever and whose second never starts."""
    wf = write(tmp_path / f"{name}.yaml", """\
        workflow:
          nodes:
            wait: {exec: 'sleep 60'}
            later: {exec: 'true'}
          dependencies: ['wait,later']
        """)
    run_id = daemon.submit(wf)
    wait_for(lambda: daemon.jobs(run_id)["wait"]["state"] == "running", what="the job to run")
    return run_id


def messages(daemon: Daemon, run_id: str) -> set[str]:
    """The ended run's message and its jobs' messages."""
    jobs: dict[str, dict[str, Any]] = daemon.ended(run_id)
    assert jobs[""]["state"] == "cancelled"
    return {j["message"] for j in jobs.values()}


def test_ccctl_cancel_names_its_user_and_machine_and_status_shows_it(
        daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    run_id = gated_run(daemon, tmp_path, "bycli")
    assert ccctl("cancel", run_id).returncode == 0
    said = f"cancelled by ccctl ({getpass.getuser()}@{socket.gethostname()})"
    assert messages(daemon, run_id) == {said}
    shown = ccctl("status", run_id)
    assert shown.returncode == 130
    assert f"\n{said}\n" in shown.stderr  # under the run's state line
    assert shown.stdout.count(said) == 2  # each job's message


def test_an_api_client_may_say_who_it_is_and_otherwise_is_the_api(
        daemon: Daemon, tmp_path: Path) -> None:
    quiet, named = gated_run(daemon, tmp_path, "quiet"), gated_run(daemon, tmp_path, "named")
    with daemon.http() as http:
        assert http.post(f"/api/v1/runs/{quiet}/cancel").status_code == 202
        answer = http.post(f"/api/v1/runs/{named}/cancel", json={"by": "the nightly <script>"})
        assert answer.status_code == 202, answer.text
    assert messages(daemon, quiet) == {"cancelled through the API"}
    # Kept as written (the page shows it as text: tests/test_web.py), trusted for nothing else.
    assert messages(daemon, named) == {"cancelled by the nightly <script>"}


@pytest.mark.parametrize(("body", "status", "said"), [
    ({"by": ""}, 422, "the body does not fit: Expected `str` of length >= 1"),
    ({"by": "x" * 121}, 422, "the body does not fit: Expected `str` of length <= 120"),
    ({"by": "two\nlines"}, 422, "the body does not fit: Expected `str` matching regex"),
    ({"by": "\x1b[31mred"}, 422, "the body does not fit: Expected `str` matching regex"),
    ({"who": "me"}, 422, "the body does not fit: Object contains unknown field `who`"),
    ("not json", 400, "the body is not JSON"),
])
def test_who_cancels_is_refused_unless_it_is_a_short_line_of_text(
        daemon: Daemon, tmp_path: Path, body: object, status: int, said: str) -> None:
    run_id = gated_run(daemon, tmp_path, "refused")
    with daemon.http() as http:
        content = (json.dumps(body) if isinstance(body, dict) else str(body)).encode()
        answer = http.post(f"/api/v1/runs/{run_id}/cancel", content=content,
                           headers={"Content-Type": "application/json"})
        assert answer.status_code == status
        assert answer.json()["error"].startswith(said)
        assert daemon.jobs(run_id)[""]["state"] == "running"  # not cancelled
        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 202
