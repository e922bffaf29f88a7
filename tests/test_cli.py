"""`ccctl validate` and `ccctl graph` as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Ccctl, require, write

EXAMPLE = ROOT / "examples" / "workflow-example" / "workflow-example.yaml"


def require_dot() -> None:
    """Graphviz is a real component: missing it skips locally and fails under CI=true."""
    if shutil.which("dot") is None:
        require("graphviz `dot` is not installed (make test installs it as root)")


def test_validate_says_ok_with_counts(ccctl: Ccctl) -> None:
    proc = ccctl("validate", EXAMPLE)
    assert proc.returncode == 0
    assert proc.stdout == f"{EXAMPLE}: ok, 5 jobs, 4 dependencies\n"


def test_validate_json_lists_errors(tmp_path: Path, ccctl: Ccctl) -> None:
    wf = write(tmp_path / "w.yaml", "workflow:\n  nodes: {a: {exec: [x]}}\n")
    proc = ccctl("validate", wf, "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout) == {
        "valid": False, "errors": [f"{wf}:2:21: exec must be a string, not a list"]}


def test_missing_file_is_a_clear_error(tmp_path: Path, ccctl: Ccctl) -> None:
    proc = ccctl("run", tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert proc.stderr == f"{tmp_path / 'nope.yaml'}:1:1: cannot read: No such file or directory\n"


def test_graph_of_a_file_is_dot_with_labels_and_shapes(ccctl: Ccctl) -> None:
    proc = ccctl("graph", EXAMPLE)
    assert proc.returncode == 0
    assert proc.stdout.startswith("digraph")
    assert "invhouse" in proc.stdout and '"fetch-data" -> "compute"' in proc.stdout


def test_graph_of_a_finished_run_is_coloured_by_state(tmp_path: Path, ccctl: Ccctl) -> None:
    require_dot()
    wf = write(tmp_path / "g.yaml", """\
        workflow:
          nodes: {ok: {exec: 'true'}, bad: {exec: 'false'}}
          dependencies: []
        colors: {status: {failed: '#FF0000'}}
        """)
    run_id = json.loads(ccctl("run", wf, "--json").stdout)["run"]
    svg = ccctl("graph", run_id, "--format", "svg")
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout and 'fill="#ff0000"' in svg.stdout.lower()
    png = tmp_path / "g.png"
    assert ccctl("graph", run_id, "-f", "png", "-o", png).returncode == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_graph_of_an_unknown_run_says_so(ccctl: Ccctl) -> None:
    proc = ccctl("graph", "no-such-run")
    assert proc.returncode == 2 and "no-such-run" in proc.stderr


@pytest.mark.parametrize(("files", "said"), [
    ([], "holds 0 YAML files; name the one to submit"),
    (["a.yaml", "b.yaml"], "holds 2 YAML files; name the one to submit"),
])
def test_submit_of_a_directory_without_one_workflow_is_one_line_before_any_daemon(
        tmp_path: Path, ccctl: Ccctl, files: list[str], said: str) -> None:
    folder = tmp_path / "wf"
    folder.mkdir()
    for name in files:
        (folder / name).write_text("workflow: {nodes: {a: {exec: 'true'}}}\n")
    proc = ccctl("submit", folder)  # no daemon runs: the target is checked first
    assert proc.returncode == 2
    assert proc.stderr == f"ccctl: {folder} {said}\n"
    missing = ccctl("submit", tmp_path / "nowhere.yaml")
    assert (missing.returncode, missing.stderr) == (
        2, f"{tmp_path / 'nowhere.yaml'}:1:1: cannot read: No such file or directory\n")


def test_graph_of_a_local_run_by_a_start_of_its_id_or_at_last(tmp_path: Path,
                                                              ccctl: Ccctl) -> None:
    first = json.loads(ccctl("run", write(tmp_path / "one.yaml", ONE), "--json").stdout)["run"]
    last = json.loads(ccctl("run", write(tmp_path / "onf.yaml", ONE), "--json").stdout)["run"]
    assert '"a"' in ccctl("graph", first[:5]).stdout
    assert ccctl("graph", "@last").stdout == ccctl("graph", last).stdout
    proc = ccctl("graph", "on")
    assert proc.returncode == 2
    assert proc.stderr.startswith("ccctl: 'on' is the start of more than one run in ")
    assert f": {last}, {first}; give more of the id\n" in proc.stderr


ONE = "workflow:\n  nodes: {a: {exec: 'true'}}\n"


@pytest.mark.parametrize("columns", [None, "40"])
def test_output_to_a_pipe_never_wraps_a_long_path(tmp_path: Path, env: dict[str, str],
                                                  columns: str | None) -> None:
    state = tmp_path / ("a-state-directory-with-a-long-name" * 4) / "state"
    narrow = Ccctl({**{k: v for k, v in env.items() if k != "COLUMNS"},
                    **({"COLUMNS": columns} if columns else {})})
    proc = narrow("run", write(tmp_path / "w.yaml", ONE), "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((state / "runs").iterdir())
    assert f"\nits files: {run_dir}\n" in proc.stderr


def test_a_failed_run_ends_with_the_last_lines_of_each_failed_jobs_log(tmp_path: Path,
                                                                       ccctl: Ccctl) -> None:
    wf = write(tmp_path / "fails.yaml", """\
        workflow:
          nodes:
            ok: {exec: 'echo fine'}
            bad: {exec: 'seq 1 25; echo oops >&2; exit 3'}
        """)
    proc = ccctl("run", wf)
    assert proc.returncode == 1
    run_id = next((Path(ccctl.env["CCD_STATE_DIR"]) / "runs").iterdir()).name
    lines = "".join(f"  {n}\n" for n in range(17, 26))
    assert proc.stderr.endswith(f"\nbad failed; the last 10 lines of its log:\n{lines}  oops\n"
                                f"the whole log: ccctl logs {run_id} bad\n")
    assert "ok failed" not in proc.stderr


def test_ccctl_and_ccd_print_the_package_version(ccctl: Ccctl) -> None:
    from importlib.metadata import version

    assert ccctl("--version").stdout == f"ccctl {version('ccd')}\n"
    ccd = subprocess.run([sys.executable, "-m", "ccd", "--version"], env=ccctl.env,
                         capture_output=True, text=True, timeout=60)
    assert ccd.returncode == 0 and ccd.stdout == f"ccd {version('ccd')}\n"


def test_help_shows_the_max_jobs_default(ccctl: Ccctl) -> None:
    here = f"CPUs x 4, {(os.cpu_count() or 1) * 4} here"
    assert here in ccctl("run", "--help").stdout
    ccd = subprocess.run([sys.executable, "-m", "ccd", "--help"], env=ccctl.env,
                         capture_output=True, text=True, timeout=60)
    assert here in " ".join(ccd.stdout.split())
