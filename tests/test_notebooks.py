"""Notebook jobs through real papermill and a real kernel: parameters injected, the executed
notebook kept among the run's results, progress printed in a cell reaching the job, and a
clear failure where papermill is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Ccctl, jobs_of, log_of, write

from ccd import export, workdir
from ccd.errors import SpecError
from ccd.executors.protocol import Launch
from ccd.model import JobSpec
from ccd.spec import load_spec


def notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a `parameters`-tagged cell, then `cells`."""
    def cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": None, "outputs": [],
                "metadata": {"tags": tags or []}, "source": source}
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "cells": [cell(parameters, ["parameters"]), *map(cell, cells)]}
    path.write_text(json.dumps(nb))
    return path


def outputs_of(nb: Path) -> str:
    """Everything the executed notebook's cells printed."""
    cells = json.loads(nb.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_a_notebook_with_a_parameter_runs_and_its_output_notebook_is_kept(
        tmp_path: Path, ccctl: Ccctl) -> None:
    notebook(tmp_path / "analyze.ipynb", "alpha = 1\nlabel = 'default'",
             "print(f'alpha={alpha!r} label={label!r}')")
    notebook(tmp_path / "partial.ipynb", "",
             "print('# progress=50', flush=True)", "raise ValueError('stop here')")
    wf = write(tmp_path / "nb.yaml", """\
        workflow:
          nodes:
            analyze: {script: analyze.ipynb, parameters: {alpha: 2.5, label: '7'}}
            partial: {script: partial.ipynb}
        """)
    proc = ccctl("run", wf, "--json")
    jobs = jobs_of(proc)
    assert jobs["analyze"]["state"] == "done", log_of(jobs, "analyze")
    work = Path(str(jobs[""]["run_dir"])) / "work"
    executed = work / "analyze-output.ipynb"
    assert "alpha=2.5 label='7'" in outputs_of(executed)  # typed as the YAML wrote them
    assert "alpha=2.5 label='7'" in log_of(jobs, "analyze")  # cell output reaches the log
    spec, _ = load_spec(work / "nb.yaml")
    assert [(r.job, r.path) for r in workdir.results(spec, work)] == [
        ("analyze", "analyze-output.ipynb"), ("partial", "partial-output.ipynb")]
    assert workdir.result_file(spec, work, "analyze-output.ipynb") == executed
    # A progress line printed in a cell is the job's progress; it failed later, at 50.
    assert jobs["partial"]["state"] == "failed"
    assert jobs["partial"]["progress"] == 50
    assert "stop here" in log_of(jobs, "partial")


def test_a_sweep_passes_its_parameters_to_each_instances_notebook(
        tmp_path: Path, ccctl: Ccctl) -> None:
    notebook(tmp_path / "train.ipynb", "lr = 0.0\nrun = 0\nopt = ''",
             "print(f'lr={lr!r} run={run!r} opt={opt!r}')")
    wf = write(tmp_path / "sweep.yaml", """\
        workflow:
          nodes:
            train:
              script: train.ipynb
              matrix: {run: [1, 2]}
              parameters: {lr: 0.5, opt: adam}
        """)
    proc = ccctl("run", wf, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    work = Path(str(jobs_of(proc)[""]["run_dir"])) / "work"
    for run in (1, 2):
        printed = outputs_of(work / f"train.run-{run}-output.ipynb")
        assert f"lr=0.5 run={run} opt='adam'" in printed


def test_without_papermill_the_job_fails_saying_how_to_install_it(
        tmp_path: Path, ccctl: Ccctl) -> None:
    notebook(tmp_path / "analyze.ipynb", "")
    # A virtualenv whose PATH has no papermill: as a host where it is not installed.
    write(tmp_path / "bare" / "bin" / "activate", "PATH=/usr/bin:/bin\n")
    wf = write(tmp_path / "nb.yaml", """\
        workflow:
          nodes:
            analyze: {script: analyze.ipynb, venv: bare}
        """)
    proc = ccctl("run", wf, "--json")
    jobs = jobs_of(proc)
    assert jobs["analyze"]["state"] == "failed"
    assert jobs["analyze"]["exit_code"] == 127
    assert log_of(jobs, "analyze") == \
        "ccd: papermill is not installed: pip install 'ccd[notebooks]'\n"


def test_parameter_values_and_names_are_checked_at_their_place(tmp_path: Path) -> None:
    notebook(tmp_path / "a.ipynb", "")
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a:
              script: a.ipynb
              parameters: {ok: 1, 2bad: x, class: y, deep: [1], far: .inf}
        """)
    with pytest.raises(SpecError) as e:
        load_spec(wf)
    assert [str(p).removeprefix(f"{wf}:") for p in e.value.problems] == [
        "5:27: parameter name '2bad' is not a Python name (papermill assigns it in the "
        "notebook)",
        "5:36: parameter name 'class' is not a Python name (papermill assigns it in the "
        "notebook)",
        "5:52: parameters.deep must be text, a number, true/false or null, not a list",
        "5:62: parameters.far must be a finite number, not .inf",
    ]


def test_parameters_keep_their_yaml_types_and_survive_a_saved_file(tmp_path: Path) -> None:
    notebook(tmp_path / "a.ipynb", "")
    write(tmp_path / "s.sh", "true\n")
    wf = write(tmp_path / "wf.yaml", """\
        workflow:
          nodes:
            a:
              script: a.ipynb
              parameters: {n: 3, x: 1.5, t: 'yes', q: '3', on: true, none: null}
            s: {script: s.sh, parameters: {n: 1}}
        """)
    spec, warnings = load_spec(wf)
    expected = (("n", 3), ("x", 1.5), ("t", "yes"), ("q", "3"), ("on", True), ("none", None))
    assert spec.jobs["a"].parameters == expected
    assert [w.message for w in warnings] == [
        "warning: parameters are for notebooks (a .ipynb script); node 's' has none: ignored"]
    saved = write(tmp_path / "saved.yaml", export.with_state(spec))
    assert load_spec(saved)[0].jobs["a"].parameters == expected


def test_the_command_passes_parameters_as_json_and_checks_for_papermill(
        tmp_path: Path) -> None:
    job = JobSpec("a b", script="nb/it's.ipynb", kind="ssh", parameters=(("s", "x'y $z"),))
    command = Launch("r1", job, tmp_path, tmp_path).command("/remote/work")
    assert command == (
        "command -v papermill >/dev/null 2>&1 || { printf '%s\\n' 'ccd: papermill is not "
        "installed: pip install '\"'\"'ccd[notebooks]'\"'\"'' >&2; exit 127; }; papermill "
        "--log-output --no-progress-bar '/remote/work/nb/it'\"'\"'s.ipynb' "
        "'/remote/work/a b-output.ipynb' -y '{\"s\": \"x'\"'\"'y $z\"}'")
