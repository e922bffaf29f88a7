"""Paired A/B comparison of two builds (or two settings) of ccd on the engine workloads.

usage: .venv/bin/python bench/run.py --ab A B [--pairs N] [--workloads one,chain100,fan500]
                                     [--env-a K=V ...] [--env-b K=V ...]

A and B are each a git ref (exported with `git archive` under .bench/) or a directory
holding a ccd source tree (`.` is the working tree, uncommitted changes included); the
same source with different `--env-a`/`--env-b` compares two settings. Each side runs as
`ccctl run` with PYTHONPATH on its tree.

Timings on a shared 2-core machine swing by +-150 ms per fan500 run, more than most changes
are worth, so comparing medians of separate runs says little. Here every pair runs A and
B back to back (A first in even pairs, B first in odd ones), then the asyncio spawn floor
(bench/baseline.py) so the floor is in the same run; noise that lasts a few seconds hits
both sides of a pair. Reported per workload: the median of the paired differences B - A
(wall per job, and CPU per job: user+system of `ccctl run` and the jobs it reaped), how
many pairs each side won, and each side's per-job cost against the floor's (net of the
`one` workload's start-up, as in the main table).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError
from measure import Sample, Series, bench_env, num, settle, timed
from workloads import Workload, chain, fan, one

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CCCTL = str(BIN / "ccctl")
BASELINE = str(Path(__file__).resolve().parent / "baseline.py")
WORKLOADS = {"one": one, "chain100": lambda: chain(100), "fan500": lambda: fan(500)}


@dataclass
class Side:
    """One build or setting: its label, source tree and extra environment."""

    label: str
    tree: Path
    env: dict[str, str] = field(default_factory=dict)


def source(spec: str, into: Path) -> Path:
    """A ccd source tree for `spec`: a directory as is, or a git ref exported once."""
    if Path(spec).is_dir():
        tree = Path(spec).resolve()
        if not (tree / "ccd" / "__init__.py").is_file():
            raise BenchError(f"--ab {spec}: no ccd source tree there (no ccd/__init__.py)")
        return tree
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{spec}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise BenchError(f"--ab {spec}: neither a directory nor a git ref")
    sha = found.stdout.strip()
    tree = into / f"src-{sha[:12]}"  # the label says which commit: see Side.label
    if not tree.is_dir():
        tmp = tree.with_name(tree.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True)
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", sha, "ccd", "ccctl"],
                                   stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise BenchError(f"--ab {spec}: git archive failed")
        tmp.rename(tree)
    return tree


def describe(spec: str) -> str:
    """`spec` as given, and the commit it is when it is a git ref."""
    if Path(spec).is_dir():
        return spec
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=10", spec],
                           capture_output=True, text=True)
    return f"{spec} ({found.stdout.strip()})" if found.returncode == 0 else spec


def env_of(pairs: list[str], flag: str) -> dict[str, str]:
    """`K=V` arguments as a dict."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise BenchError(f"{flag} {pair}: expected NAME=VALUE")
        out[key] = value
    return out


@dataclass
class Pairs:
    """The samples of one workload: A, B and the floor, index i from pair i."""

    jobs: int
    a: Series = field(default_factory=Series)
    b: Series = field(default_factory=Series)
    floor: Series = field(default_factory=Series)

    def good(self) -> list[tuple[Sample, Sample]]:
        """The pairs where both sides succeeded."""
        return [(x, y) for x, y in zip(self.a.samples, self.b.samples, strict=True)
                if x.rc == 0 and y.rc == 0]


class AB:
    """Runs the pairs; every command to its end."""

    def __init__(self, tmp: Path, a: Side, b: Side, timeout: float) -> None:
        self.tmp, self.a, self.b, self.timeout = tmp, a, b, timeout
        self.runs = 0

    def ccd(self, side: Side, yaml_path: Path) -> Sample:
        """`ccctl run` of `side` in a fresh state directory (kept until the end, and the
        disk synced first: see Bench.ccd)."""
        self.runs += 1
        env = bench_env(PYTHONPATH=str(side.tree), **side.env)
        os.sync()
        return timed([CCCTL, "run", str(yaml_path), "--state-dir",
                      str(self.tmp / f"ab-state-{self.runs}")], timeout=self.timeout, env=env)

    def floor(self, json_path: Path) -> Sample:
        """The asyncio spawn floor on the same DAG."""
        os.sync()
        return timed([sys.executable, BASELINE, str(json_path)], timeout=self.timeout)

    def run(self, names: list[str], n: int) -> dict[str, Pairs]:
        """`n` pairs of every workload, each pair A,B (or B,A) then the floor."""
        loads: list[Workload] = [WORKLOADS[name]() for name in names]
        files = {w.name: w.write(self.tmp / w.name) for w in loads}
        out = {w.name: Pairs(w.n_exec) for w in loads}
        first = files[loads[0].name]
        settle(self.tmp, lambda text: print(text, file=sys.stderr, flush=True))
        self.ccd(self.a, first[0])  # warm the page cache and both trees' bytecode
        self.ccd(self.b, first[0])
        self.floor(first[1])
        for i in range(n):
            for w in loads:
                yaml_path, json_path = files[w.name]
                p = out[w.name]
                order = [(self.a, p.a), (self.b, p.b)]
                for side, series in order if i % 2 == 0 else reversed(order):
                    series.add(self.ccd(side, yaml_path), f"{side.label} {w.name} pair {i}")
                p.floor.add(self.floor(json_path), f"floor {w.name} pair {i}")
            print(f"  pair {i + 1}/{n} done", file=sys.stderr, flush=True)
        return out


def report(a: Side, b: Side, results: dict[str, Pairs]) -> tuple[list[str], dict[str, object]]:
    """The table as lines, and the JSON document."""
    lines = [f"A = {a.label}", f"B = {b.label}",
             f"{'workload':9} {'jobs':>4} {'pairs':>5}  {'B-A ms/job':>10} {'wins A:B':>8}  "
             f"{'B-A cpu ms/job':>14}  {'A s':>6} {'B s':>6} {'floor s':>7}  "
             f"{'A/floor':>7} {'B/floor':>7}"]
    lines.append("-" * len(lines[-1]))
    doc: dict[str, object] = {"a": a.label, "b": b.label, "workloads": {}}
    ones = results.get("one")
    for name, p in results.items():
        good = p.good()
        diff = [(y.wall - x.wall) / p.jobs for x, y in good]
        cpu = [(y.cpu - x.cpu) / p.jobs for x, y in good]
        wins_a = sum(d > 0 for d in diff)
        wins_b = sum(d < 0 for d in diff)
        med = statistics.median(diff) if diff else float("nan")
        med_cpu = statistics.median(cpu) if cpu else float("nan")
        ratio_a = ratio_b = float("nan")
        if ones is not None and name != "one":
            floor = (p.floor.wall - ones.floor.wall) / p.jobs
            ratio_a = (p.a.wall - ones.a.wall) / p.jobs / floor
            ratio_b = (p.b.wall - ones.b.wall) / p.jobs / floor
        lines.append(f"{name:9} {p.jobs:>4} {len(good):>5}  {med * 1e3:+10.3f} "
                     f"{f'{wins_a}:{wins_b}':>8}  {med_cpu * 1e3:+14.3f}  {p.a.wall:6.3f} "
                     f"{p.b.wall:6.3f} {p.floor.wall:7.3f}  {ratio_a:7.2f} {ratio_b:7.2f}")
        failures = p.a.failures + p.b.failures + p.floor.failures
        if failures:
            lines.append("  FAILED RUNS: " + "; ".join(failures))
        doc["workloads"][name] = {  # type: ignore[index]
            "jobs": p.jobs, "pairs": len(good), "median_diff_ms_per_job": num(med * 1e3),
            "median_cpu_diff_ms_per_job": num(med_cpu * 1e3), "wins_a": wins_a,
            "wins_b": wins_b, "ratio_a": num(ratio_a), "ratio_b": num(ratio_b),
            "a": p.a.to_json(), "b": p.b.to_json(), "floor": p.floor.to_json()}
    lines += ["", "B-A < 0: B is faster. ratios: per-job cost net of start-up (`one`) over the "
                  "floor's, from medians."]
    return lines, doc
