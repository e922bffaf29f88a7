"""The paper's Python API (Figures 8-10), run for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, write

from ccd import Job, Workflow
from ccd.errors import SpecError
from ccd.model import RunState


def test_figure_10_builds_and_runs_a_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              state_dir: Path) -> None:
    monkeypatch.chdir(tmp_path)
    w = Workflow(name="workflow-analyze", state_dir=state_dir)
    job = w.add_job(name="fetch-data", exec="echo fetched > fetched.txt",
                    host="localhost", label="{name}\nprogress={progress}", kind="local",
                    status="ready", progress=0)
    assert isinstance(job, Job) and job.get_status() == "ready"
    w.add_job(name="compute", command="cat fetched.txt")
    w.add_job(name="analyze", exec="echo analyzed")
    w.add_dependencies(dependency="start,fetch-data,compute,analyze")
    assert w.sequential_order() == ["start", "fetch-data", "compute", "analyze"]
    assert w.run_topo(dryrun=True) == ["start", "fetch-data", "compute", "analyze"]
    assert w.run_topo() is RunState.DONE
    assert [w.job(n)["status"] for n in ["start", "fetch-data", "compute", "analyze"]] == \
        ["done"] * 4
    assert w.job("compute").get_log() == "fetched\n"
    assert "compute" in w.table and "done" in w.table


def test_run_parallel_on_the_loaded_example_and_save_with_state(tmp_path: Path,
                                                                state_dir: Path) -> None:
    example = shutil.copytree(ROOT / "examples" / "workflow-example", tmp_path / "example")
    w = Workflow(state_dir=state_dir)
    w.load(example / "workflow-example.yaml")
    assert w.run_parallel() is RunState.DONE
    text = w.save_with_state(example / "with-state.yaml", stdout=True)
    assert text is not None and text.count('status: "done"') == 5
    again = Workflow(state_dir=state_dir, filename=example / "with-state.yaml")
    assert list(again.jobs) == list(w.jobs) and again.edges == w.edges


def test_update_status_update_progress_remove_job_and_dependency(tmp_path: Path) -> None:
    w = Workflow(state_dir=tmp_path / "state")
    w.add_job(name="a", exec="true")
    w.add_job(name="b", exec="true")
    w.add_dependency("a", "b")
    w.update_status("a", "failed")
    assert w.job("a")["status"] == "failed"
    w.remove_job("a")
    assert list(w.jobs) == ["b"] and w.edges == []
    assert w.update_progress("b") == 0
    assert "digraph" in w.display()


def test_invalid_job_is_reported_before_anything_runs(tmp_path: Path, state_dir: Path) -> None:
    w = Workflow(name="bad", state_dir=state_dir)
    w.add_job(name="a", kind="cloud", exec="touch ran")
    with pytest.raises(SpecError, match="unknown kind 'cloud'"):
        w.run_parallel()
    assert not state_dir.exists()
    with pytest.raises(TypeError, match="unknown fields: colour"):
        w.add_job(name="b", colour="red")


def test_load_reports_errors_with_positions(tmp_path: Path) -> None:
    path = write(tmp_path / "w.yaml", "workflow:\n  nodes: {a: {script: nope.sh}}\n")
    with pytest.raises(SpecError, match=r"w\.yaml:2:23: script file not found"):
        Workflow(filename=path)


def test_run_topo_follows_the_given_order_and_shows_and_draws_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    w = Workflow(name="ordered", state_dir=state_dir)
    for name in ("a", "b", "c"):
        w.add_job(name=name, exec=f"echo {name} >> {tmp_path / 'order.txt'}")
    w.add_dependency("a", "c")
    assert w.run_topo(order=["b", "a", "c"], dryrun=True) == ["b", "a", "c"]
    assert w.run_topo(order=["b", "a", "c"], show=True, filename=tmp_path / "g.dot") \
        is RunState.DONE
    assert (tmp_path / "order.txt").read_text() == "b\na\nc\n"
    out = capsys.readouterr().out
    assert out.startswith("b\na\nc\n") and "done" in out
    assert "digraph" in (tmp_path / "g.dot").read_text()


@pytest.mark.parametrize(("order", "message"), [
    (["a", "b"], "missing: \\['c'\\]"),
    (["a", "b", "c", "x"], "unknown: \\['x'\\]"),
    (["c", "a", "b"], "breaks dependencies: a -> c"),
])
def test_run_topo_refuses_an_order_that_is_not_one(order: list[str], message: str,
                                                   tmp_path: Path) -> None:
    w = Workflow(state_dir=tmp_path / "state")
    for name in ("a", "b", "c"):
        w.add_job(name=name, exec="true")
    w.add_dependency("a", "c")
    with pytest.raises(ValueError, match=message):
        w.run_topo(order=order)
