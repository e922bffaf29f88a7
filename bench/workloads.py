"""Benchmark workloads: each a small DAG written both as a ccd workflow YAML and as the
JSON the asyncio baseline (bench/baseline.py) reads."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

JOB_CMD = 'echo "# progress=100" > log'


@dataclass
class Workload:
    """A DAG: job name -> shell command (None for a join node), edges, and how they are
    written as dependencies in the YAML (chains "a,b,c"); for remote jobs, the YAML's
    `hosts:` inventory and the fields every job gets (`kind: ssh`, `host: ...`)."""

    name: str
    jobs: dict[str, str | None] = field(default_factory=dict)
    chains: list[list[str]] = field(default_factory=list)
    inventory: str = ""  # YAML text ahead of `workflow:`
    where: dict[str, str] = field(default_factory=dict)  # node field -> value, jobs only

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every parent -> child edge of the chains, in order, without duplicates."""
        return list(dict.fromkeys(e for c in self.chains for e in itertools.pairwise(c)))

    @property
    def n_exec(self) -> int:
        """Jobs that run a command (join nodes excluded)."""
        return sum(cmd is not None for cmd in self.jobs.values())

    def yaml(self) -> str:
        """The workflow in ccd's (cloudmesh-cc's) YAML format."""
        out = [f"# bench workload {self.name}: {self.n_exec} jobs"]
        out += [self.inventory.rstrip("\n")] if self.inventory else []
        out += ["workflow:", "  nodes:"]
        for name, cmd in self.jobs.items():
            out.append(f"    {name}:")
            out.append(f"      name: {name}")
            if cmd is not None:
                out.append(f"      exec: {_quote(cmd)}")
                out += [f"      {k}: {_quote(v)}" for k, v in self.where.items()]
        out.append("  dependencies:" if self.chains else "  dependencies: []")
        out.extend(f"    - {_quote(','.join(c))}" for c in self.chains)
        return "\n".join(out) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write <name>.yaml and <name>.json into `directory` (created); returns both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        yaml_path = directory / f"{self.name}.yaml"
        json_path = directory / f"{self.name}.json"
        yaml_path.write_text(self.yaml())
        json_path.write_text(json.dumps({
            # ccd runs jobs in the run's copy of the workflow's files, the baseline here:
            # each writes one `log` per job either way.
            "cwd": str(directory.absolute()),
            "jobs": self.jobs,
            "edges": self.edges,
        }))
        return yaml_path, json_path


def _quote(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"


def chain(n: int, cmd: str = JOB_CMD) -> Workload:
    """n jobs, each depending on the previous one."""
    names = [f"c{i:03d}" for i in range(n)]
    return Workload(f"chain{n}", dict.fromkeys(names, cmd), [names])


def fan(n: int, cmd: str = JOB_CMD) -> Workload:
    """start -> n parallel jobs -> end; start and end are joins (no exec)."""
    names = [f"f{i:03d}" for i in range(n)]
    jobs: dict[str, str | None] = {"start": None, **dict.fromkeys(names, cmd), "end": None}
    chains = [["start", x] for x in names] + [[x, "end"] for x in names]
    return Workload(f"fan{n}", jobs, chains)


def diamond(layers: int, width: int) -> Workload:
    """`layers` layers of `width` jobs; each job depends on every job of the layer above."""
    grid = [[f"d{layer}_{i}" for i in range(width)] for layer in range(layers)]
    jobs: dict[str, str | None] = {name: JOB_CMD for row in grid for name in row}
    chains = [[a, b] for upper, lower in itertools.pairwise(grid)
              for b in lower for a in upper]
    return Workload("diamond", jobs, chains)


def one() -> Workload:
    """A single job: the fixed cost of a run."""
    return Workload("one", {"j": JOB_CMD}, [])


def standard() -> list[Workload]:
    """The workloads the bench runs, `one` first (the others' per-job cost subtracts it)."""
    return [one(), chain(100), fan(500), diamond(10, 10)]


def big_yaml(n: int = 10_000, chain_len: int = 50) -> str:
    """A workflow of n fully described nodes chained in order, for load/validate timing.

    The chain is written as overlapping pieces of `chain_len` names (a,b,...,z then z,...).
    """
    names = [f"node{i:05d}" for i in range(n)]
    out = [f"# bench: {n} nodes in a chain", "workflow:", "  nodes:"]
    for name in names:
        out += [
            f"    {name}:",
            f"      name: {name}",
            "      user: bench",
            "      host: localhost",
            "      kind: local",
            "      status: ready",
            "      label: '{name}\\nprogress={progress}'",
            f"      exec: {_quote(JOB_CMD)}",
            "      shape: box",
        ]
    out.append("  dependencies:")
    step = chain_len - 1
    for start in range(0, n - 1, step):
        out.append(f"    - {_quote(','.join(names[start:start + chain_len]))}")
    return "\n".join(out) + "\n"
