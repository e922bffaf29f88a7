"""Old runs go away on request (`ccctl prune`) or by the daemon's setting (`--prune-after`):
their records, events and files, never those of a run that has not ended."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import Ccctl, kill_jobs, running_daemon, wait_for, write

from ccd.store import Store

FIXTURE = Path(__file__).parent / "fixtures" / "state-v1"


def runs_in(state_dir: Path) -> dict[str, str]:
    store = Store(state_dir / "ccd.db")
    try:
        return {r.workflow: r.state.value for r in store.runs()}
    finally:
        store.close()


def test_prune_removes_ended_runs_and_never_one_that_has_not_ended(
        ccctl: Ccctl, state_dir: Path) -> None:
    shutil.copytree(FIXTURE, state_dir)
    before = {p.name for p in (state_dir / "runs").iterdir()}
    proc = ccctl("prune", "--older-than", "0s", "--json")
    assert proc.returncode == 0, proc.stderr
    removed = json.loads(proc.stdout)["removed"]
    assert sorted(r.split("-")[0] for r in removed) == ["done", "failing"]
    # `stuck` and `going` are recorded as running, though nothing drives them: kept.
    assert runs_in(state_dir) == {"stuck": "running", "going": "running"}
    assert {p.name for p in (state_dir / "runs").iterdir()} == before - set(removed)
    store = Store(state_dir / "ccd.db")
    try:
        assert {e.run_id for _, e in store.events()}.isdisjoint(removed)
    finally:
        store.close()


def test_prune_keeps_runs_younger_than_the_age_given(ccctl: Ccctl, state_dir: Path,
                                                     tmp_path: Path) -> None:
    wf = write(tmp_path / "quick.yaml", "workflow:\n  nodes: {a: {exec: 'true'}}\n")
    assert ccctl("run", wf).returncode == 0
    proc = ccctl("prune", "--older-than", "1h")
    assert proc.returncode == 0 and proc.stdout == ""
    assert "removed 0 runs that ended more than 1h ago" in proc.stderr
    assert runs_in(state_dir) == {"quick": "done"}
    bad = ccctl("prune", "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration like 30d" in bad.stderr


def test_the_daemon_prunes_by_its_setting_and_spares_a_run_in_progress(
        env: dict[str, str], state_dir: Path, tmp_path: Path, ccctl: Ccctl) -> None:
    quick = write(tmp_path / "quick.yaml", "workflow:\n  nodes: {a: {exec: 'true'}}\n")
    assert ccctl("run", quick).returncode == 0
    gate = write(tmp_path / "gate.yaml", f"""\
        workflow:
          nodes: {{g: {{exec: 'while [ ! -f {tmp_path}/release ]; do sleep 0.02; done'}}}}
        """)
    with ccctl.start("run", gate) as driving:
        try:
            wait_for(lambda: runs_in(state_dir).get("gate") == "running", what="gate to run")
            with running_daemon(env, state_dir, "--prune-after", "0s") as d, \
                    d.http() as http:
                wait_for(lambda: [r["workflow"] for r in http.get("/api/v1/runs").json()]
                         == ["gate"], what="the ended run to be pruned")
                (tmp_path / "release").touch()
                assert driving.wait(timeout=30) == 0
        finally:
            driving.kill()
            kill_jobs(state_dir)
    assert runs_in(state_dir) == {"gate": "done"}
