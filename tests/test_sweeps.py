"""Sweeps: a node's matrix expands in the spec into plain jobs; chains select instances."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Ccctl, jobs_of, log_of, write

from ccd import export, sweeps
from ccd.errors import SpecError
from ccd.spec import load_spec


def errors_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as e:
        load_spec(path)
    return [str(p) for p in e.value.problems]


def sweep(tmp_path: Path, nodes: str, dependencies: str = "[]") -> Path:
    """A workflow file with these nodes (YAML, indented by 4) and dependencies."""
    return write(tmp_path / "wf.yaml",
                 f"workflow:\n  nodes:\n{nodes}  dependencies: {dependencies}\n")


def test_a_matrix_expands_into_instances_named_by_their_values_in_order(tmp_path: Path) -> None:
    spec, warnings = load_spec(sweep(tmp_path, """\
    train:
      exec: python train.py
      matrix: {gpu: [a100, v100], run: [1, 2, 3]}
    end:
"""))
    assert list(spec.jobs) == [
        "train.gpu-a100.run-1", "train.gpu-a100.run-2", "train.gpu-a100.run-3",
        "train.gpu-v100.run-1", "train.gpu-v100.run-2", "train.gpu-v100.run-3", "end"]
    assert spec.sweeps == {"train": 6} and warnings == []
    first = spec.jobs["train.gpu-a100.run-1"]
    assert first.label == "train[gpu=a100,run=1]"  # the readable form, shown on the graph
    assert first.exec == "python train.py"


def test_numbers_are_values_as_written(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, """\
    fit: {exec: 'true', matrix: {lr: [1e-3, 0.5, -2], seed: ['7']}}
"""))
    assert list(spec.jobs) == ["fit.lr-1e-3.seed-7", "fit.lr-0.5.seed-7", "fit.lr--2.seed-7"]


def test_exclude_drops_every_instance_matching_a_partial_assignment(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, """\
    train:
      exec: 'true'
      matrix: {gpu: [a100, v100], run: [1, 2, 3], epochs: [10, 30]}
      exclude:
        - {gpu: v100, run: 3}
        - {epochs: 30, run: 1}
"""))
    assert list(spec.jobs) == [
        "train.gpu-a100.run-1.epochs-10",
        "train.gpu-a100.run-2.epochs-10", "train.gpu-a100.run-2.epochs-30",
        "train.gpu-a100.run-3.epochs-10", "train.gpu-a100.run-3.epochs-30",
        "train.gpu-v100.run-1.epochs-10",
        "train.gpu-v100.run-2.epochs-10", "train.gpu-v100.run-2.epochs-30"]
    assert spec.sweeps == {"train": 8}


def test_parameters_fill_every_text_field(tmp_path: Path) -> None:
    for gpu in ("a100", "v100"):
        write(tmp_path / f"train-{gpu}.sh", "echo hi\n")
    spec, _ = load_spec(sweep(tmp_path, """\
    train:
      kind: slurm
      script: 'train-{gpu}.sh'
      exec: 'ignored {gpu}'
      host: 'login-{site}'
      user: 'u{site}'
      cwd: 'runs/{gpu}'
      venv: '~/envs/{gpu}'
      shape: '{shape}'
      env: {MODEL: 'm-{gpu}-{site}', PLAIN: x}
      outputs: ['out/{gpu}/*.csv']
      partition: 'gpu-{gpu}'
      cpus: 8
      gres: 'gpu:{gpu}:1'
      sbatch: ['--comment={site}']
      label: '{name} on {gpu}, {progress}%'
      timeout: 60
      retries: 2
      matrix: {gpu: [a100, v100], site: [x], shape: [box]}
"""))
    job = spec.jobs["train.gpu-v100.site-x.shape-box"]
    assert (job.script, job.exec, job.host, job.user, job.cwd, job.venv, job.shape) == (
        "train-v100.sh", "ignored v100", "login-x", "ux", "runs/v100", "~/envs/v100", "box")
    assert job.env == (("CCD_PARAM_GPU", "v100"), ("CCD_PARAM_SITE", "x"),
                       ("CCD_PARAM_SHAPE", "box"), ("MODEL", "m-v100-x"), ("PLAIN", "x"))
    assert job.outputs == ("out/v100/*.csv",)
    assert job.batch == (("partition", "gpu-v100"), ("cpus", "8"), ("gres", "gpu:v100:1"))
    assert job.batch_options == ("--comment=x",)
    assert job.label == "{name} on v100, {progress}%"  # the label's own fields stay live
    assert (job.kind, job.timeout, job.retries) == ("slurm", 60, 2)


def test_doubled_braces_are_literal_and_the_shells_own_variables_are_left_alone(
        tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, """\
    a:
      exec: "awk '{print $1}' {{gpu}} ${HOME} ${gpu} {gpu}"
      label: '{{gpu}} {gpu}'
      matrix: {gpu: [a100]}
"""))
    job = spec.jobs["a.gpu-a100"]
    assert job.exec == "awk '{print $1}' {gpu} ${HOME} ${gpu} a100"
    assert job.label == "{{gpu}} a100"  # render turns {{ into {


def test_env_written_by_the_node_wins_over_the_parameters_own(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, """\
    a: {exec: 'true', env: {CCD_PARAM_GPU: mine}, matrix: {gpu: [a100]}}
"""))
    assert spec.jobs["a.gpu-a100"].env == (("CCD_PARAM_GPU", "mine"),)


def test_a_node_without_a_matrix_keeps_its_braces_as_written(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, """\
    a: {exec: 'echo {gpu} {{x}}'}
"""))
    assert spec.jobs["a"].exec == "echo {gpu} {{x}}" and spec.sweeps == {}


TWO_BY_TWO = """\
    start:
    train: {exec: 'true', matrix: {gpu: [a, b], run: [1, 2]}}
    report: {exec: 'true', matrix: {gpu: [a, b]}}
    end:
"""


def test_a_sweeps_name_in_a_chain_is_all_its_instances(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO, "['start,train,end']"))
    trains = [n for n in spec.jobs if n.startswith("train.")]
    assert spec.edges == (*(("start", t) for t in trains), *((t, "end") for t in trains))


def test_star_at_both_ends_links_instances_with_the_same_values(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO,
                              "['start, train[gpu=*], report[gpu=*], end']"))
    assert [e for e in spec.edges if e[1].startswith("report")] == [
        ("train.gpu-a.run-1", "report.gpu-a"), ("train.gpu-a.run-2", "report.gpu-a"),
        ("train.gpu-b.run-1", "report.gpu-b"), ("train.gpu-b.run-2", "report.gpu-b")]
    assert ("start", "train.gpu-b.run-2") in spec.edges  # a star at one end selects all
    assert ("report.gpu-b", "end") in spec.edges and len(spec.edges) == 4 + 4 + 2


def test_a_link_between_two_sweeps_without_stars_is_every_pair(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO, "['train,report']"))
    assert len(spec.edges) == 4 * 2


def test_a_selector_with_values_selects_a_subset(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO,
                              "['train[gpu=a, run=2],report[gpu=b]', 'train[run=1],end']"))
    assert spec.edges == (("train.gpu-a.run-2", "report.gpu-b"),
                          ("train.gpu-a.run-1", "end"), ("train.gpu-b.run-1", "end"))


def test_instances_of_one_node_can_follow_each_other(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO,
                              "['train[run=1,gpu=*],train[run=2,gpu=*]']"))
    assert spec.edges == (("train.gpu-a.run-1", "train.gpu-a.run-2"),
                          ("train.gpu-b.run-1", "train.gpu-b.run-2"))


def test_an_instance_can_be_named_in_a_chain_by_its_job_name(tmp_path: Path) -> None:
    spec, _ = load_spec(sweep(tmp_path, TWO_BY_TWO, "['train.gpu-a.run-1,end']"))
    assert spec.edges == (("train.gpu-a.run-1", "end"),)


def test_a_cycle_through_a_sweep_is_reported_once(tmp_path: Path) -> None:
    path = sweep(tmp_path, TWO_BY_TWO, "['train,train']")
    assert errors_of(path) == [
        f"{path}:7:18: dependency cycle: train.gpu-a.run-1 -> train.gpu-a.run-1"]


@pytest.mark.parametrize(("nodes", "message"), [
    ("    a: {exec: 'true', matrix: [gpu]}\n",
     "3:31: matrix must be a mapping of parameters to lists of values like "
     "`{gpu: [a100, v100], run: [1, 2]}`, not a list"),
    ("    a: {exec: 'true', matrix: {}}\n",
     "3:31: matrix must be a mapping of parameters to lists of values like "
     "`{gpu: [a100, v100], run: [1, 2]}`, not a mapping"),
    ("    a: {exec: 'true', matrix: {gpu: a100}}\n",
     "3:37: matrix parameter 'gpu' needs a list of values like `[a, b]`, "
     "not the string 'a100'"),
    ("    a: {exec: 'true', matrix: {gpu: []}}\n",
     "3:37: matrix parameter 'gpu' needs a list of values like `[a, b]`, not a list"),
    ("    a: {exec: 'true', matrix: {2gpu: [a]}}\n",
     "3:32: matrix parameter '2gpu' must be a name of letters, digits and _, "
     "not starting with a digit"),
    ("    a: {exec: 'true', matrix: {progress: [a]}}\n",
     "3:32: matrix parameter 'progress' is a field of labels: name it otherwise"),
    ("    a: {exec: 'true', matrix: {gpu: [a], GPU: [b]}}\n",
     "3:42: matrix parameters 'gpu' and 'GPU' would both be CCD_PARAM_GPU in the environment"),
    ("    a: {exec: 'true', matrix: {gpu: [a, true, null, [x]]}}\n",
     "3:41: a value of 'gpu' must be a string or a number, not the boolean true"),
    ("    a: {exec: 'true', matrix: {gpu: ['a b']}}\n",
     "3:38: value 'a b' of 'gpu' is not safe in a job name: use letters, digits and . _ - + "
     "(at most 128, not starting with . or -)"),
    ("    a: {exec: 'true', matrix: {gpu: [a, b, a]}}\n",
     "3:44: duplicate value 'a' of 'gpu' (first at line 3)"),
    ("    a: {exec: 'true', matrix: {x: [1, 2], y: [1, 2]}, exclude: [{z: 1}]}\n",
     "3:66: exclude: unknown parameter 'z'; the matrix has: x, y"),
    ("    a: {exec: 'true', matrix: {x: [1, 2]}, exclude: [{x: 3}]}\n",
     "3:58: exclude: x=3 is not in the matrix (values of x: 1, 2)"),
    ("    a: {exec: 'true', matrix: {x: [1, 2]}, exclude: [{x: 1}, {x: 2}]}\n",
     "3:53: exclude: leaves no instance of the matrix"),
    ("    a: {exec: 'true', matrix: {x: [1, 2]}, exclude: {x: 1}}\n",
     "3:53: exclude must be a list of partial assignments like `- {x: 1}`, not a mapping"),
    ("    a: {exec: 'true', matrix: {x: [1, 2]}, exclude: [{}]}\n",
     "3:54: an entry of exclude must be a mapping of parameters to values, not a mapping"),
    ("    a: {exec: 'true', exclude: [{x: 1}]}\n",
     "3:32: exclude: without a matrix: in the same node"),
    ("    a: {exec: 'echo {gpu} {gpus}', matrix: {gpu: [a]}}\n",
     "3:27: exec: unknown parameter '{gpus}'; the parameters are: gpu (did you mean 'gpu'?)"),
    ("    a:\n      exec: 'true'\n      env: {X: '{run}'}\n      matrix: {gpu: [a]}\n",
     "5:17: env: unknown parameter '{run}'; the parameters are: gpu"),
    ("    a: {exec: 'true', label: '{gpus}', matrix: {gpu: [a]}}\n",
     "3:31: label: unknown field 'gpus'; parameters are: gpu; fields are: name, progress"),
])
def test_a_bad_matrix_is_an_error_at_its_place(tmp_path: Path, nodes: str, message: str) -> None:
    path = sweep(tmp_path, nodes)
    problems = errors_of(path)
    assert problems[0].startswith(f"{path}:{message}"), problems


def test_every_bad_value_of_a_matrix_is_reported(tmp_path: Path) -> None:
    path = sweep(tmp_path, "    a: {exec: 'true', matrix: {gpu: [a, true, null, [x]]}}\n")
    assert errors_of(path) == [
        f"{path}:3:41: a value of 'gpu' must be a string or a number, not the boolean true",
        f"{path}:3:47: a value of 'gpu' must be a string or a number, not nothing (null)",
        f"{path}:3:53: a value of 'gpu' must be a string or a number, not a list",
    ]


@pytest.mark.parametrize(("chain", "col", "message"), [
    ("train[gpu=c]", 25, "gpu=c is not in the matrix of node 'train' (values of gpu: a, b)"),
    ("train[gpus=*]", 25, "node 'train' has no parameter 'gpus'; its parameters are: gpu, run"),
    ("train[gpu]", 25, "a selector is written train[param=value,...] or train[param=*], "
                       "not 'gpu'"),
    ("train[gpu=a, gpu=*]", 32, "parameter 'gpu' is selected twice"),
    ("train[gpu=a", 24, "'[' is not closed: write train[param=value,...]"),
    ("start[x=1]", 19, "node 'start' has no matrix to select instances from"),
    ("trian[gpu=a]", 19, "unknown node 'trian' in dependency (did you mean 'train'?)"),
    ("start,train[run=1,gpu=b]", 31, "train[run=1,gpu=b] selects no instance: "
                                     "exclude: removed them all"),
    ("train[gpu=*],report[gpu=*]", 32, "no instances at the two ends of this link have the "
                                       "same values of gpu"),
])
def test_a_bad_selector_is_an_error_at_its_place(tmp_path: Path, chain: str, col: int,
                                                 message: str) -> None:
    path = sweep(tmp_path, """\
    start:
    train: {exec: 'true', matrix: {gpu: [a, b], run: [1, 2]}, exclude: [{gpu: b, run: 1}]}
    report: {exec: 'true', matrix: {gpu: [c]}}
""", f"['{chain}']")
    assert errors_of(path) == [f"{path}:6:{col}: {message}"]


def test_instance_names_past_128_characters_are_an_error_at_the_node(tmp_path: Path) -> None:
    path = sweep(tmp_path, f"    {'n' * 100}: {{exec: 'true', matrix: {{p: [{'v' * 30}]}}}}\n")
    assert errors_of(path)[0].startswith(
        f"{path}:3:5: the instances of node '{'n' * 100}' have names too long to be file names")


def test_an_instance_named_like_another_job_is_an_error(tmp_path: Path) -> None:
    path = sweep(tmp_path, """\
    a.x-1: {exec: 'true'}
    a: {exec: 'true', matrix: {x: [1]}}
    b: {exec: 'true', matrix: {x: [1]}}
    b.x-1: {exec: 'true'}
""")
    assert errors_of(path) == [
        f"{path}:4:5: instance 'a.x-1' of node 'a' has the name of another job",
        f"{path}:6:5: node 'b.x-1' has the name of an instance of a sweep"]


def test_a_matrix_past_the_instance_limit_is_refused_before_it_is_built(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(100))
    path = sweep(tmp_path, f"    a: {{exec: 'true', matrix: {{x: [{values}], y: [{values}], "
                           f"z: [{values}]}}}}\n")  # a million
    t = time.process_time()
    assert errors_of(path) == [f"{path}:3:31: matrix makes more than 10,000 instances"]
    assert time.process_time() - t < 5


def test_the_instances_of_all_sweeps_are_limited_not_plain_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeps, "MAX_SWEEP_JOBS", 5)
    path = sweep(tmp_path, """\
    a: {exec: 'true', matrix: {x: [1, 2, 3]}}
    p: {exec: 'true'}
    q: {exec: 'true'}
    b: {exec: 'true', matrix: {x: [1, 2, 3]}}
""")
    assert errors_of(path) == [
        f"{path}:6:5: node 'b' brings the instances of sweeps to 6; the limit is 5"]


def test_a_link_making_too_many_dependencies_is_an_error_at_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeps, "MAX_LINKS", 10)
    path = sweep(tmp_path, TWO_BY_TWO, "['start,train', 'train,report', 'train,end']")
    assert errors_of(path) == [
        f"{path}:7:40: this link makes 8 dependencies, past the limit of 10 for links with "
        "sweeps; match instances with [param=*] at both ends"]


def test_a_script_named_by_parameters_must_exist_for_each_instance(tmp_path: Path) -> None:
    write(tmp_path / "train-a.sh", "echo hi\n")
    path = sweep(tmp_path, "    t: {script: 'train-{gpu}.sh', matrix: {gpu: [a, b, c]}}\n")
    assert errors_of(path) == [
        f"{path}:3:17: script file not found: {tmp_path / 'train-b.sh'}",
        f"{path}:3:17: script file not found: {tmp_path / 'train-c.sh'}"]


def test_an_alias_of_a_sweep_makes_its_own_instances_and_its_errors_once(
        tmp_path: Path) -> None:
    path = sweep(tmp_path, """\
    train: &t {exec: 'echo {gpu}', matrix: {gpu: [a, b]}}
    again: *t
""", "['train[gpu=*],again[gpu=*]']")
    spec, _ = load_spec(path)
    assert spec.sweeps == {"train": 2, "again": 2}
    assert spec.edges == (("train.gpu-a", "again.gpu-a"), ("train.gpu-b", "again.gpu-b"))
    path = sweep(tmp_path, """\
    bad: &b {script: 'x-{gpu}.sh', matrix: {gpu: [a]}}
    worse: *b
""")
    assert errors_of(path) == [f"{path}:3:22: script file not found: {tmp_path / 'x-a.sh'}"]


def test_save_with_state_writes_the_instances_and_loads_back_as_plain_jobs(
        tmp_path: Path) -> None:
    path = sweep(tmp_path, TWO_BY_TWO.replace("exec: 'true'", "exec: 'echo {gpu}'"),
                 "['start,train[gpu=*],report[gpu=*],end']")
    spec, _ = load_spec(path)
    text = export.with_state(spec)
    again, _ = load_spec(path, text.encode())
    # Plain nodes have no parameters (their values are in the instances' env and fields).
    assert again.jobs == {name: replace(job, status="ready", params=())
                          for name, job in spec.jobs.items()}
    assert again.edges == spec.edges and again.sweeps == {}
    assert export.with_state(again) == text
    assert load_spec(path, stored=True)[0] == spec  # a run's stored copy expands the same


def test_a_thousand_instances_validate_in_well_under_a_second(tmp_path: Path) -> None:
    # 10 x 10 x 10 instances, fanned in per gpu and then all: what a sweep costs is linear
    # in its instances and links. CPU time of this process, not the wall clock, so a busy
    # machine does not fail it; a quadratic step over 1,000 instances and 2,000 links
    # would still pass, so the 10,000-instance case below is the one that catches it.
    ten = ", ".join(str(i) for i in range(10))
    path = sweep(tmp_path, f"""\
    train:
      exec: 'python train.py --gpu {{gpu}} --run {{run}} --epochs {{epochs}}'
      label: '{{name}} {{progress}}'
      matrix: {{gpu: [{ten}], run: [{ten}], epochs: [{ten}]}}
    report: {{exec: 'echo {{gpu}}', matrix: {{gpu: [{ten}]}}}}
    end:
""", "['train[gpu=*],report[gpu=*],end']")
    t = time.process_time()
    spec, _ = load_spec(path)
    assert time.process_time() - t < 1
    assert len(spec.jobs) == 1_011 and len(spec.edges) == 1_010
    big = sweep(tmp_path, f"    a: {{exec: 'echo {{x}}', matrix: {{x: [{ten}], y: [{ten}], "
                          f"z: [{ten}], w: [{ten}]}}}}\n    end:\n", "['a,end']")
    t = time.process_time()
    spec, _ = load_spec(big)
    assert len(spec.jobs) == 10_001
    assert time.process_time() - t < 10  # as the 10,000-node file of test_spec


def test_validate_prints_the_expanded_count_and_dry_run_the_instances(
        tmp_path: Path, ccctl: Ccctl) -> None:
    path = sweep(tmp_path, TWO_BY_TWO, "['start,train[gpu=*],report[gpu=*],end']")
    proc = ccctl("validate", path)
    assert proc.stdout == f"{path}: ok, 8 jobs (from 4 nodes; train x 4; report x 2), " \
                          "10 dependencies\n"
    proc = ccctl("run", "--dry-run", path)
    assert [line.split()[1] for line in proc.stdout.splitlines()] == [
        "start", "train.gpu-a.run-1", "train.gpu-a.run-2", "train.gpu-b.run-1",
        "train.gpu-b.run-2", "report.gpu-a", "report.gpu-b", "end"]


def test_a_sweep_runs_each_instance_with_its_values_and_fans_in(
        tmp_path: Path, ccctl: Ccctl) -> None:
    write(tmp_path / "train.sh", """\
        #!/bin/sh
        mkdir -p results
        echo "$CCD_PARAM_GPU run $CCD_PARAM_RUN" > "results/$CCD_PARAM_GPU-$CCD_PARAM_RUN.txt"
        """)
    path = sweep(tmp_path, """\
    train:
      script: train.sh
      matrix: {gpu: [a100, v100], run: [1, 2, 3]}
      exclude: [{gpu: v100, run: 3}]
      outputs: ['results/{gpu}-{run}.txt']
    report:
      exec: 'cat results/{gpu}-*.txt'
      matrix: {gpu: [a100, v100]}
    all:
      exec: 'ls results'
""", "['train[gpu=*],report[gpu=*]', 'train,all']")
    proc = ccctl("run", path, "--json")
    assert proc.returncode == 0, proc.stderr
    jobs = jobs_of(proc)
    assert len(jobs) == 1 + 5 + 2 + 1 and all(
        job["state"] == "done" for name, job in jobs.items() if name)
    assert log_of(jobs, "report.gpu-v100") == "v100 run 1\nv100 run 2\n"
    assert log_of(jobs, "report.gpu-a100") == "a100 run 1\na100 run 2\na100 run 3\n"
    assert log_of(jobs, "all").split() == [
        "a100-1.txt", "a100-2.txt", "a100-3.txt", "v100-1.txt", "v100-2.txt"]
