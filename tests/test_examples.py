"""The paper's two applications (section 8) as shipped examples, end to end with `ccctl run`
from a fresh copy: the Cloudmask-shaped GPU sweep (45 training instances, then their
summary) and the MNIST benchmark (models x devices, then Table 4)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from conftest import ROOT, Ccctl, jobs_of


def run_example(tmp_path: Path, ccctl: Ccctl, name: str) -> tuple[dict[str, dict], Path]:
    copy = shutil.copytree(ROOT / "examples" / name, tmp_path / name)
    proc = ccctl("run", copy / f"{name}.yaml", "--json", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    jobs = jobs_of(proc)
    return jobs, Path(str(jobs[""]["run_dir"])) / "work"


def test_the_gpu_sweep_trains_45_instances_and_summarises_them(
        tmp_path: Path, ccctl: Ccctl) -> None:
    jobs, work = run_example(tmp_path, ccctl, "gpu-sweep")
    trained = [n for n in jobs if n.startswith("train.")]
    assert len(trained) == 45 and all(jobs[n]["state"] == "done" for n in trained)
    assert all(jobs[n]["progress"] == 100 for n in trained)
    result = json.loads((work / "results" / "rtx2080-3-50.json").read_text())
    assert (result["gpu"], result["run"], result["epochs"]) == ("rtx2080", 3, 50)
    with open(work / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["gpu"], int(r["epochs"])) for r in rows) == sorted(
        (g, e) for g in ("a100", "v100", "p100", "k80", "rtx2080") for e in (10, 30, 50))
    assert all(r["runs"] == "3" and float(r["accuracy_mean"]) > 0.8 for r in rows)


def test_the_mnist_benchmark_makes_table_4_of_every_model_on_every_device(
        tmp_path: Path, ccctl: Ccctl) -> None:
    jobs, work = run_example(tmp_path, ccctl, "mnist-benchmark")
    assert jobs["table"]["state"] == "done"
    with open(work / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert sorted(r["name"] for r in table) == ["a100", "k80", "p100", "rtx2080", "v100"]
    for row in table:  # each device's time is the sum of its models' times
        parts = [float(row[m]) for m in ("cnn", "lstm", "mlp", "rnn")]
        assert abs(float(row["time"]) - sum(parts)) < 0.005 and all(p > 0 for p in parts)
    accuracy = json.loads((work / "times" / "a100-cnn.json").read_text())["accuracy"]
    assert accuracy > 0.8
    assert "Name" in (Path(str(jobs[""]["run_dir"])) / "jobs" / "table" / "log").read_text()
