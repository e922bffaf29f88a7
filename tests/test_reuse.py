"""Fix a job and carry on: a new run of an edited workflow keeps the done jobs that did not
change (ccd.reuse), through `ccctl run`, the daemon and the paper's save_with_state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import Ccctl, Daemon, write

from ccd import Workflow
from ccd.model import JobSpec, JobState, WorkflowSpec
from ccd.reuse import Before, fingerprints, plan

# a -> b -> c and a -> d -> e. a writes a result b reads; b fails until `ok` exists; every
# job counts its runs in `ran`, outside the run's working copy.
SCRIPTS = {
    "a.sh": "echo a >> {tmp}/ran; echo data > a.out\n",
    "b.sh": "echo b >> {tmp}/ran; cat a.out >> {tmp}/seen; test -f {tmp}/ok\n",
    "c.sh": "echo c >> {tmp}/ran\n",
    "d.sh": "echo d >> {tmp}/ran\n",
    "e.sh": "echo e >> {tmp}/ran\n",
}
WORKFLOW = """\
workflow:
  nodes:
    a: {script: a.sh, outputs: [a.out]}
    b: {script: b.sh}
    c: {script: c.sh}
    d: {script: d.sh}
    e: {script: e.sh}
  dependencies: ["a,b,c", "a,d,e"]
"""


def lab(tmp_path: Path) -> Path:
    for name, text in SCRIPTS.items():
        write(tmp_path / name, text.format(tmp=tmp_path))
    return write(tmp_path / "lab.yaml", WORKFLOW)


def ran(tmp_path: Path) -> list[str]:
    """The jobs that ran since the last call, in order."""
    counter = tmp_path / "ran"
    done = counter.read_text().split() if counter.exists() else []
    counter.unlink(missing_ok=True)
    return sorted(done)


def states(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {j["name"]: j["state"] for j in json.loads(proc.stdout)["jobs"]}


@pytest.fixture
def failed_once(tmp_path: Path, ccctl: Ccctl) -> Path:
    """The lab workflow after a first run in which b failed (c skipped; a, d, e done)."""
    wf = lab(tmp_path)
    first = ccctl("run", wf, "--json")
    assert first.returncode == 1
    assert states(first) == {"a": "done", "b": "failed", "c": "skipped", "d": "done",
                             "e": "done"}
    assert ran(tmp_path) == ["a", "b", "d", "e"]
    return wf


def test_fixing_the_failed_jobs_script_runs_only_it_and_its_descendants(
        failed_once: Path, tmp_path: Path, ccctl: Ccctl) -> None:
    write(tmp_path / "b.sh", f"echo b >> {tmp_path}/ran; cat a.out >> {tmp_path}/seen\n")
    again = ccctl("run", failed_once, "--json")
    assert again.returncode == 0, again.stderr
    assert ran(tmp_path) == ["b", "c"]
    assert set(states(again).values()) == {"done"}
    assert "keeps 3 done job(s), unchanged: a, d, e\n" in again.stderr
    assert "runs again: b (changed: script)\n" in again.stderr
    assert "runs again: c (skipped before)\n" in again.stderr
    # b read the result of the kept job a, carried into the new run's working copy.
    assert (tmp_path / "seen").read_text().split() == ["data", "data"]


def test_editing_a_done_job_runs_it_and_its_descendants_and_keeps_the_rest(
        failed_once: Path, tmp_path: Path, ccctl: Ccctl) -> None:
    (tmp_path / "ok").touch()
    write(tmp_path / "d.sh", f"echo d >> {tmp_path}/ran; echo edited\n")
    again = ccctl("run", failed_once, "--json")
    assert again.returncode == 0, again.stderr
    assert ran(tmp_path) == ["b", "c", "d", "e"]
    assert "keeps 1 done job(s), unchanged: a\n" in again.stderr
    assert "runs again: d (changed: script)\n" in again.stderr
    assert "runs again: e (upstream changed)\n" in again.stderr
    # Then an edit of a job's env only: it and what follows it run, nothing else.
    text = failed_once.read_text().replace("d: {script: d.sh}",
                                           "d: {script: d.sh, env: {X: '1'}}")
    failed_once.write_text(text)
    third = ccctl("run", failed_once, "--json")
    assert third.returncode == 0, third.stderr
    assert ran(tmp_path) == ["d", "e"]
    assert "runs again: d (changed: env)\n" in third.stderr


def test_without_an_edit_only_the_failed_job_and_its_descendants_run(
        failed_once: Path, tmp_path: Path, ccctl: Ccctl) -> None:
    (tmp_path / "ok").touch()  # what b waited for, outside the workflow
    again = ccctl("run", failed_once, "--json")
    assert again.returncode == 0, again.stderr
    assert ran(tmp_path) == ["b", "c"]
    assert "runs again: b (failed before)\n" in again.stderr
    # Done and unchanged: the same command runs nothing; --new runs everything.
    assert ccctl("run", failed_once).returncode == 0
    assert ran(tmp_path) == []
    assert ccctl("run", failed_once, "--new").returncode == 0
    assert ran(tmp_path) == ["a", "b", "c", "d", "e"]


def test_submit_resume_carries_on_through_the_daemon(tmp_path: Path, ccctl: Ccctl,
                                                     daemon: Daemon) -> None:
    wf = lab(tmp_path)
    first = ccctl("submit", wf, "--watch", "--json")
    assert first.returncode == 1
    assert ran(tmp_path) == ["a", "b", "d", "e"]
    write(tmp_path / "b.sh", f"echo b >> {tmp_path}/ran; cat a.out\n")
    again = ccctl("submit", wf, "--resume", "--watch")
    assert again.returncode == 0, again.stderr
    assert ran(tmp_path) == ["b", "c"]
    assert "keeps 3 done job(s), unchanged: a, d, e\n" in again.stderr
    assert "runs again: b (changed: script)\n" in again.stderr
    # Nothing left to do: said, and no run is made.
    with daemon.http() as http:
        runs = len(http.get("/api/v1/runs").json())
        nothing = ccctl("submit", wf, "--resume")
        assert nothing.returncode != 0
        assert "nothing changed since: nothing to run again (no run made)" in nothing.stderr
        assert len(http.get("/api/v1/runs").json()) == runs


def test_resume_names_what_it_cannot_carry_on_from(tmp_path: Path, daemon: Daemon) -> None:
    with daemon.http() as http:
        refused(http, write(tmp_path / "x.yaml", "workflow:\n  nodes: {a: {exec: 'true'}}\n"))


def refused(http: httpx.Client, wf: Path) -> None:
    stored = http.post("/api/v1/workflows", params={"filename": wf.name},
                       content=wf.read_bytes())
    assert stored.status_code == 201, stored.text
    name = stored.json()["name"]
    never = http.post("/api/v1/runs", json={"workflow": name, "resume": ""})
    assert never.status_code == 409
    assert "no ended run to carry on from" in never.json()["error"]
    unknown = http.post("/api/v1/runs", json={"workflow": name, "resume": "nope-1"})
    assert unknown.status_code == 404
    bad = http.post("/api/v1/runs", json={"workflow": name, "resume": "../x"})
    assert bad.status_code == 422


def test_save_with_state_keeps_its_done_jobs_when_loaded_again(tmp_path: Path) -> None:
    lab(tmp_path)
    w = Workflow(filename=tmp_path / "lab.yaml", state_dir=tmp_path / "state")
    assert w.run_parallel() is not None
    assert ran(tmp_path) == ["a", "b", "d", "e"]
    w.save_with_state(tmp_path / "saved.yaml")
    (tmp_path / "ok").touch()
    loaded = Workflow(filename=tmp_path / "saved.yaml", state_dir=tmp_path / "state")
    assert loaded.job("a").get_status() == "done"
    assert loaded.run_parallel().value == "done"
    assert ran(tmp_path) == ["b", "c"]
    # An edited script is not kept, even though the file says done.
    write(tmp_path / "e.sh", f"echo e >> {tmp_path}/ran; echo edited\n")
    loaded.save_with_state(tmp_path / "saved.yaml")
    write(tmp_path / "d.sh", f"echo d >> {tmp_path}/ran; echo edited\n")
    assert Workflow(filename=tmp_path / "saved.yaml",
                    state_dir=tmp_path / "state").run_parallel().value == "done"
    assert ran(tmp_path) == ["d", "e"]


def spec_of(jobs: dict[str, JobSpec], edges: tuple[tuple[str, str], ...]) -> WorkflowSpec:
    return WorkflowSpec("w", Path("/w/w.yaml"), jobs, edges)


def test_plan_reasons_name_what_changed() -> None:
    edges = (("a", "b"), ("b", "c"))
    old = spec_of({n: JobSpec(n, exec=f"echo {n}") for n in "abc"}, edges)
    new = spec_of({"a": JobSpec("a", exec="echo a", label="shown differently",
                                host="elsewhere", timeout=60),
                   "b": JobSpec("b", exec="echo B", env=(("X", "1"),)),
                   "c": JobSpec("c", exec="echo c"), "n": JobSpec("n", exec="echo n")},
                  (*edges, ("a", "n")))
    before = {n: Before(JobState.DONE, p) for n, p in fingerprints(old, {}).items()}
    why = plan(new, fingerprints(new, {}), before)
    assert why == {"a": "", "b": "changed: exec, env", "c": "upstream changed",
                   "n": "new job"}
    cancelled = {**before, "a": Before(JobState.CANCELLED, before["a"].fingerprint)}
    assert plan(old, fingerprints(old, {}), cancelled) == {
        "a": "cancelled before", "b": "upstream runs again", "c": "upstream runs again"}
