"""Setting ccd up and finding one's way: the wheel and what it carries, the shipped examples
(`ccctl example`), the advice when Graphviz is missing, and the help texts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from conftest import ROOT, Ccctl, Daemon, require
from typer.testing import CliRunner

from ccctl.cli import app

EXAMPLES = ("gpu-sweep", "mnist-benchmark", "workflow-example")


# -- the wheel ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The wheel built from a copy of the sources (the build writes build/ and *.egg-info
    next to them), and everything the build printed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("ccd", "ccctl", "web", "systemd", "examples"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    yield next((tmp / "dist").glob("ccd-*.whl")), build.stdout + build.stderr


def test_the_wheel_builds_without_a_warning(wheel: tuple[Path, str]) -> None:
    _, printed = wheel
    # pip's own notes about its configured package indexes are not the build's.
    said = [line for line in printed.splitlines() if "warning" in line.lower()
            and not line.startswith("WARNING: Location")]
    assert said == []


def test_an_editable_install_builds_without_a_warning_and_uses_the_checkout(
        wheel: tuple[Path, str]) -> None:
    """`pip install -e .`: what the build backend says, and what the installed .pth names."""
    src = wheel[0].parent.parent / "src"
    build = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         "import hatchling.build as b, sys; sys.stdout.write(b.build_editable('editable'))"],
        cwd=src, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0 and build.stderr == "", build.stderr
    with zipfile.ZipFile(src / "editable" / build.stdout) as editable:
        (pth,) = [n for n in editable.namelist() if n.endswith(".pth")]
        assert editable.read(pth).decode().split() == [str(src)]
        assert not [n for n in editable.namelist() if n.startswith("ccd/")]  # no stale copies


def test_the_wheel_holds_what_ccd_runs_with(wheel: tuple[Path, str]) -> None:
    names = set(zipfile.ZipFile(wheel[0]).namelist())
    needed = {"ccd/executors/job.sh", "ccd/executors/remote.sh", "ccd/systemd/ccd.service",
              "ccd/web/index.html", "ccd/web/main.js", "ccd/web/style.css",
              "ccd/web/docs/index.html", "ccd/web/docs/docs.js",
              "ccd/web/vendor/viz/viz.js", "ccd/web/vendor/viz/LICENSE",
              "ccd/web/vendor/swagger-ui/swagger-ui-bundle.js",
              "ccd/web/vendor/swagger-ui/swagger-ui.css", "ccd/web/vendor/swagger-ui/LICENSE"}
    needed |= {f"ccd/examples/{p.relative_to(ROOT / 'examples')}"
               for p in (ROOT / "examples").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert needed - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_an_installed_wheel_lists_and_copies_its_own_examples(
        wheel: tuple[Path, str], tmp_path: Path, env: dict[str, str]) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel[0]).extractall(site)
    installed = {**env, "PYTHONPATH": str(site)}

    def ccctl(*args: str | Path) -> subprocess.CompletedProcess[str]:
        # From tmp_path, so the checkout is not on sys.path: `python -m` adds the directory.
        return subprocess.run([sys.executable, "-m", "ccctl", *map(str, args)], cwd=tmp_path,
                              env=installed, capture_output=True, text=True, timeout=60)

    where = subprocess.run([sys.executable, "-c", "import ccctl.examples as e; "
                            "print(e.asset_dir('examples'))"], cwd=tmp_path, env=installed,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(site / "ccd" / "examples"), where.stderr
    listed = ccctl("example")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(EXAMPLES)
    assert ccctl("example", "workflow-example", tmp_path / "wf").returncode == 0
    proc = ccctl("validate", tmp_path / "wf" / "workflow-example.yaml")
    assert proc.returncode == 0 and "ok, 5 jobs" in proc.stdout, proc.stderr


# -- ccctl example -----------------------------------------------------------------------

def test_example_lists_each_shipped_example_with_what_it_is(ccctl: Ccctl) -> None:
    proc = ccctl("example")
    assert proc.returncode == 0
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert list(lines) == list(EXAMPLES)
    assert lines["workflow-example"] == "The paper's example workflow (Figure 2)"
    assert all(lines.values())
    assert proc.stderr == "copy one: ccctl example NAME [DIR]\n"


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_copies_out_and_validates(name: str, ccctl: Ccctl, tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    proc = ccctl("example", name, target)
    assert proc.returncode == 0, proc.stderr
    workflow = target / f"{name}.yaml"
    assert proc.stdout == (f"copied the example {name} to {target}; run it here: ccctl run "
                           f"{workflow}, or on the daemon: ccctl submit {workflow}\n")
    shipped = sorted(p.relative_to(ROOT / "examples" / name)
                     for p in (ROOT / "examples" / name).rglob("*") if p.is_file())
    assert sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file()) == shipped
    for yaml in target.glob("*.yaml"):
        assert ccctl("validate", yaml).returncode == 0, yaml


def test_example_never_overwrites_a_file(ccctl: Ccctl, tmp_path: Path) -> None:
    assert ccctl("example", "workflow-example", tmp_path).returncode == 0
    mine = tmp_path / "compute.py"
    mine.write_text("my edits\n")
    (tmp_path / "analyze.sh").unlink()
    proc = ccctl("example", "workflow-example", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (f"ccctl: {tmp_path / 'compute.py'} exists; not overwriting it "
                           "(copy into a new directory)\n")
    assert mine.read_text() == "my edits\n"
    assert not (tmp_path / "analyze.sh").exists()  # nothing is copied when one file is refused


def test_example_without_a_directory_copies_into_one_of_its_name(ccctl: Ccctl,
                                                                 tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ccctl", "example", "workflow-example"],
                          cwd=tmp_path, env={**ccctl.env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "workflow-example" / "workflow-example.yaml").is_file()


def test_an_unknown_example_lists_the_known_ones(ccctl: Ccctl, tmp_path: Path) -> None:
    proc = ccctl("example", "mnist", tmp_path / "x")
    assert proc.returncode == 2
    first, *rest = proc.stderr.splitlines()
    assert first == "ccctl: no example 'mnist'; these come with ccd:"
    assert [line.split()[0] for line in rest] == list(EXAMPLES)
    assert not (tmp_path / "x").exists()


# -- Graphviz ----------------------------------------------------------------------------

ADVICE = "sudo apt-get install -y graphviz"


def test_graph_as_svg_without_graphviz_says_what_to_do(ccctl: Ccctl, tmp_path: Path) -> None:
    no_dot = tmp_path / "bin"  # a PATH where `dot` is not
    no_dot.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ccctl", "graph", "-f", "svg",
         ROOT / "examples" / "workflow-example" / "workflow-example.yaml"],
        env={**ccctl.env, "PATH": str(no_dot)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert ADVICE in proc.stderr and "-f dot" in proc.stderr and "the page" in proc.stderr


def test_make_run_says_when_graphviz_is_missing(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        require("`make` is not installed")
        return
    dry = subprocess.run([make, "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert "command -v dot" in dry.stdout  # `make run` checks
    no_dot = tmp_path / "bin"
    no_dot.mkdir()
    proc = subprocess.run([make, "-s", "graphviz"], cwd=ROOT, env={"PATH": str(no_dot)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1 and ADVICE in proc.stdout


# -- help --------------------------------------------------------------------------------

def _commands() -> list[list[str]]:
    """Every ccctl command and subcommand, as the words that name it."""
    found: list[list[str]] = [[]]
    stack: list[tuple[list[str], object]] = [([], typer.main.get_command(app))]
    while stack:
        words, group = stack.pop()
        for name, command in getattr(group, "commands", {}).items():
            found.append([*words, name])
            stack.append(([*words, name], command))
    return found


def _help(*words: str) -> str:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("words", _commands(), ids=lambda w: " ".join(w) or "ccctl")
def test_usage_lines_name_arguments_without_braces(words: list[str]) -> None:
    usage = next(line for line in _help(*words).splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    arguments = usage.split("[OPTIONS]", 1)[1].split()
    assert all(a.strip("[].") == a.strip("[].").upper() for a in arguments), usage


def test_ccd_help_shows_every_default() -> None:
    proc = subprocess.run([sys.executable, "-m", "ccd", "--help"], capture_output=True,
                          text=True, timeout=60)
    text = " ".join(proc.stdout.split())
    assert "{" not in text.split("options:")[0]
    assert "--port PORT TCP port; 0 picks a free one [default: 8000]" in text
    assert "--max-jobs MAX_JOBS jobs at once, across all runs [default: CPUs x 4," in text


def _columns_promised(*words: str) -> list[str]:
    """The columns a command's help names, in its first parenthesis."""
    said = " ".join(_help(*words).split())
    found = re.search(r"\(([^)]*)\)", said)
    assert found is not None, said
    return [c.strip() for c in found.group(1).split(";")[0].split(",")]


def test_status_and_list_show_the_columns_their_help_names(daemon: Daemon, ccctl: Ccctl,
                                                           tmp_path: Path) -> None:
    assert ccctl("example", "workflow-example", tmp_path).returncode == 0
    run_id = daemon.submit(tmp_path / "workflow-example.yaml")
    daemon.ended(run_id)
    status = ccctl("status", run_id)
    assert status.returncode == 0, status.stderr
    assert status.stdout.split("\n", 1)[0].split() == _columns_promised("status")
    listed = ccctl("list")
    assert listed.stdout.split("\n", 1)[0].split() == _columns_promised("list")
