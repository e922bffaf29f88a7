"""Each run works in its own copy of the workflow's files: runs never see each other's
files, the stored upload stays as uploaded, and a job's declared outputs are its results,
listed and fetched path-safely."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, Ccctl, Daemon, kill_jobs, wait_for, write

from ccctl import RESTWorkflow
from ccctl.client import Client
from ccd import workdir
from ccd.errors import NotFound, RunError, UploadError
from ccd.spec import load_spec
from ccd.uploads import pack

EXAMPLE = ROOT / "examples" / "workflow-example"


def spec_with_outputs(tmp_path: Path, outputs: str) -> Path:
    return write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            a: {{exec: 'true', outputs: {outputs}}}
          dependencies: []
        """)


def test_results_are_the_declared_outputs_that_exist(tmp_path: Path) -> None:
    spec, _ = load_spec(spec_with_outputs(tmp_path, "['out/*.csv', 'report/']"))
    work = tmp_path / "work"
    write(work / "out" / "a.csv", "1\n")
    write(work / "out" / "b.txt", "not declared\n")
    write(work / "report" / "deep" / "r.md", "# r\n")
    found = workdir.results(spec, work)
    assert [(r.job, r.path, r.size) for r in found] == [
        ("a", "out/a.csv", 2), ("a", "report/deep/r.md", 4)]
    assert workdir.result_file(spec, work, "report/deep/r.md") == work / "report/deep/r.md"
    with pytest.raises(NotFound):
        workdir.result_file(spec, work, "out/b.txt")  # exists, but nobody declared it


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "out/../../secret", ""])
def test_a_result_path_cannot_leave_the_working_copy(tmp_path: Path, path: str) -> None:
    spec, _ = load_spec(spec_with_outputs(tmp_path, "['*', 'out/**']"))
    (tmp_path / "secret").write_text("no")
    with pytest.raises(UploadError):
        workdir.result_file(spec, tmp_path / "work", path)


def test_a_symlink_a_job_made_to_outside_is_not_a_result(tmp_path: Path) -> None:
    spec, _ = load_spec(spec_with_outputs(tmp_path, "['*']"))
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", work / "link")
    assert workdir.results(spec, work) == []
    with pytest.raises(NotFound):
        workdir.result_file(spec, work, "link")


def test_the_workflows_files_are_its_yaml_scripts_and_files_list(tmp_path: Path) -> None:
    write(tmp_path / "run.sh", "echo hi\n")
    write(tmp_path / "data" / "in.csv", "1\n")
    write(tmp_path / "lib" / "util.py", "x = 1\n")
    write(tmp_path / "unrelated.txt", "not copied\n")
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes: {a: {script: run.sh}, b: {exec: 'cat data/in.csv'}}
          dependencies: []
        files: [data, 'lib/*.py']
        """)
    spec, _ = load_spec(wf)
    assert sorted(workdir.files_of(spec)) == ["data/in.csv", "lib/util.py", "run.sh", "wf.yaml"]


def test_a_script_outside_the_workflows_directory_is_not_copied(tmp_path: Path) -> None:
    # Validation refuses it; a run stored by ccd 0.1.0 may still name one.
    write(tmp_path / "shared.sh", "echo hi\n")
    wf = write(tmp_path / "wf" / "wf.yaml", """\
        workflow:
          nodes: {a: {script: ../shared.sh}}
          dependencies: []
        """)
    spec, _ = load_spec(wf, stored=True)
    with pytest.raises(RunError, match="outside the workflow's directory"):
        workdir.files_of(spec)


def test_two_runs_of_one_uploaded_workflow_never_see_each_others_files(
        daemon: Daemon, state_dir: Path) -> None:
    with daemon.http() as http:
        data, filename = pack(EXAMPLE)
        assert http.post("/api/v1/workflows", content=data,
                         params={"filename": filename}).status_code == 201
        ids = [http.post("/api/v1/runs", json={"workflow": "workflow-example"}).json()["run"]
               for _ in range(2)]
        wait_for(lambda: all(http.get(f"/api/v1/runs/{i}").json()["state"] != "running"
                             for i in ids), what="both runs to end")
        for run_id in ids:
            assert http.get(f"/api/v1/runs/{run_id}").json()["state"] == "done"
            log = http.get(f"/api/v1/runs/{run_id}/jobs/compute/log").text
            assert "total 55" in log  # alone: two runs in one directory made it 110
            assert "cannot remove" not in http.get(
                f"/api/v1/runs/{run_id}/jobs/analyze/log").text
            found = http.get(f"/api/v1/runs/{run_id}/results").json()
            assert found == [{"job": "analyze", "path": "results/answer.txt", "size": 39}]
            answer = http.get(f"/api/v1/runs/{run_id}/results/results/answer.txt")
            assert answer.text == "the sum of the squares of 1 to 5 is 55\n"
            assert answer.headers["content-type"] == "application/octet-stream"
            assert answer.headers["x-content-type-options"] == "nosniff"
            for bad in ("..%2F..%2Fccd.db", "results/../../spec.yaml", "data/total.txt"):
                assert http.get(f"/api/v1/runs/{run_id}/results/{bad}").status_code in (404,
                                                                                         422)
        assert http.get(f"/api/v1/runs/{ids[0]}/results?job=compute").json() == []
    # The stored workflow is as uploaded: nothing the jobs wrote is in it.
    (version,) = (state_dir / "workflows" / "workflow-example").iterdir()
    assert sorted(p.name for p in version.rglob("*")) == [
        "analyze.sh", "compute.py", "fetch-data.sh", "workflow-example.yaml"]


def test_editing_a_workflow_after_a_run_keeps_only_its_own_files(
        daemon: Daemon, state_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(key, daemon.env[key])
    example = shutil.copytree(EXAMPLE, tmp_path / "example")
    rest = RESTWorkflow(Client())
    rest.upload_workflow(example / "workflow-example.yaml")
    assert rest.run_workflow("workflow-example", wait=True)["state"] == "done"
    rest.add_job("workflow-example", "extra", exec="echo extra")
    newest = sorted((state_dir / "workflows" / "workflow-example").iterdir())[-1]
    assert sorted(p.name for p in newest.rglob("*")) == [
        "analyze.sh", "compute.py", "fetch-data.sh", "workflow-example.yaml"]


def test_ccctl_results_lists_and_downloads_a_runs_outputs(
        daemon: Daemon, ccctl: Ccctl, tmp_path: Path) -> None:
    proc = ccctl("submit", EXAMPLE, "--watch", "--json")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stderr.split()[1]
    listed = ccctl("results", run_id)
    assert listed.returncode == 0 and listed.stdout.split() == ["analyze", "39",
                                                                "results/answer.txt"]
    fetched = ccctl("results", run_id, "analyze", "-o", tmp_path / "got")
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "got" / "results" / "answer.txt").read_text().endswith("is 55\n")
    assert ccctl("results", run_id, "nope").returncode == 2


def test_runs_of_one_file_in_terminals_have_their_own_copies(
        tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "wf.yaml", f"""\
        workflow:
          nodes:
            a: {{exec: 'echo mine >> shared.txt; touch {tmp_path}/started-$$;
                         while [ $(ls {tmp_path} | grep -c started) -lt 2 ]; do sleep 0.02; done;
                         cat shared.txt'}}
          dependencies: []
        """)
    first, second = ccctl.start("run", wf, "--new"), ccctl.start("run", wf, "--new")
    with first, second:
        try:
            # Whichever ends first (one that failed ends at once, and its output says why).
            wait_for(lambda: first.poll() is not None or second.poll() is not None,
                     timeout=60, what="a run to end")
            failed = [p.communicate() for p in (first, second) if p.poll() not in (None, 0)]
            assert not failed, failed
            outs = [p.communicate(timeout=60) for p in (first, second)]
        finally:
            first.kill()
            second.kill()
            kill_jobs(tmp_path / "state")
    assert first.returncode == second.returncode == 0, outs
    assert not (tmp_path / "shared.txt").exists()
