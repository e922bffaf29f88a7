"""Slurm benchmark (issue 12): controller calls and completion-detection latency of JOBS
trivial `kind: slurm` jobs through ccd, against a per-job poller measured the same way.

A real single-node Slurm cluster (tests/slurm.py: munged, slurmctld and slurmd on 127.0.0.1,
one node with the machine's CPUs; needs root and Slurm installed, else this part says why
and is skipped) runs both sides, one after the other, after one warm-up job (the first job
after the controller starts waits about 2 s longer). Both sides run their client commands
through the cluster's shim (logging wrappers first on PATH), so a controller call is a line
of its log: squeue, scontrol, sbatch and scancel are counted apart.

The jobs: JOBS independent `sleep D; date +%s.%N > SIDE/NAME`, job i sleeping D = the
fractional part of i x 0.618 s; each job's last action writes its end time. The sleeps
spread the ends over the second: Slurm starts jobs on a tick of about a second, so jobs
without them all end at one phase of that tick, and with a poller's tick of a second too,
every latency is about the same phase difference, a different one each run (measured: all
of one run's baseline samples within 60 ms, at 0.2, 0.6 or 0.9 s from run to run). With
i/JOBS s instead, consecutive ends drift slowly and still covered only half the second.

1. ccd. One daemon (from this tree: PYTHONPATH) runs a workflow of the jobs (kind: slurm,
   host: localhost). A client on /api/v1/events keeps the receipt time of each event
   (bench/daemon.py's machinery); detection latency = receipt of the job's `done` event -
   the time the job wrote, one clock. The run lasts from POST /api/v1/runs to the receipt
   of the run's end. Polls: the executor's `polls` counter (GET /api/v1/health) over the
   run; squeue calls per poll is exact (both read while no poll is under way). Its run
   includes the first polls of a new run (they ask the queue about jobs not yet
   submitted, as after a restart): the time to the first `queued` event is reported.
2. Baseline (bench/slurm_baseline.py): what per-job polling tools do. It submits the same
   jobs with sbatch, then every TICK s (start to start) calls `squeue -h -j ID` once
   per job not yet seen ended, one after the other, and keeps the time it saw each end. Its
   run lasts from before its first sbatch to its last detection. Latency as for ccd.

Calls per minute = calls / the side's run time x 60. One run a side: with JOBS jobs on a
2-CPU node Slurm starts about two jobs a second, so a run lasts 25-30 s and gives JOBS
latency samples; the part takes about a minute.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from harness import (
    BenchError,
    Daemon,
    Latency,
    Listener,
    start_run,
    subscribers_reach,
    upload,
    wait_for,
)
from measure import num, timed
from workloads import Workload

ROOT = Path(__file__).resolve().parent.parent
SLURM_BASELINE = str(Path(__file__).resolve().parent / "slurm_baseline.py")
JOBS = 50
TICK = 1.0  # s, the baseline's sweep
COMMANDS = ("squeue", "scontrol", "sbatch", "scancel")
EXECUTOR = "slurm:localhost"  # the executor's key in GET /api/v1/health

# Targets.
SQUEUE_RATIO_MIN = 10.0  # baseline squeue calls per minute / ccd's
LATENCY_MAX = 2.0  # s, p95 job end -> ccd's event (the adaptive interval starts at 1 s)
SQUEUE_PER_POLL_MAX = 1.0


def _test_cluster() -> Any:
    """tests/slurm.py, loaded as `slurm_cluster`: this module is `slurm` too."""
    spec = importlib.util.spec_from_file_location("slurm_cluster", ROOT / "tests" / "slurm.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cluster = _test_cluster()
running_cluster, unavailable = _cluster.running_cluster, _cluster.unavailable


class Shim(Protocol):
    """tests/slurm.py's Shim, as this module uses it: the client calls logged so far."""

    def counts(self) -> Counter[str]: ...


@dataclass
class Side:
    """One side's run of JOBS jobs: its controller calls, run time and detection latency."""

    name: str
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = float("nan")  # the run, as the module says
    polls: int = 0  # ccd: the executor's polls; the baseline: its sweeps
    submitted: float = float("nan")  # s from the run's start to its first job in the queue
    latency: Latency = field(default_factory=Latency)
    recorded: Latency = field(default_factory=Latency)  # ccd: the job's end -> its `tend`

    def per_minute(self, command: str) -> float:
        """Calls of `command` per minute of the run."""
        return self.calls[command] / self.seconds * 60 if self.seconds > 0 else float("nan")

    @property
    def squeue_per_poll(self) -> float:
        return self.calls["squeue"] / self.polls if self.polls else float("nan")

    def to_json(self) -> dict[str, Any]:
        """Counts, rates, polls and the latency with its samples."""
        return {"seconds": num(self.seconds), "first_submitted_s": num(self.submitted),
                "calls": {c: self.calls[c] for c in COMMANDS},
                "per_minute": {c: num(self.per_minute(c)) for c in COMMANDS},
                "polls": self.polls, "squeue_per_poll": num(self.squeue_per_poll),
                "latency": self.latency.to_json(), "recorded": self.recorded.to_json()}


@dataclass
class Results:
    """What the slurm part measured, or why it did not run."""

    skipped: str = ""
    ccd: Side | None = None
    base: Side | None = None


def run_all(tmp: Path, timeout: float) -> Results:
    """ccd, then the baseline, on one cluster; the cluster and the daemon stopped after."""
    why = unavailable()
    if why is not None:
        _progress(f"slurm part skipped: {why}")
        return Results(skipped=why)
    with running_cluster() as cluster:
        shim = cluster.shim(tmp / "slurm-shim")
        env = {"PYTHONPATH": str(ROOT), **cluster.env, **shim.env}
        cluster.wait_state(cluster.submit("-o", "/dev/null", "--wrap", "true"), "COMPLETED",
                           timeout=timeout)
        mine = ccd(tmp / "slurm-ccd", env, shim, timeout)
        _progress(_summary(mine))
        theirs = baseline(tmp / "slurm-baseline", env, shim, timeout)
        _progress(_summary(theirs))
    return Results(ccd=mine, base=theirs)


def _summary(side: Side) -> str:
    return (f"{side.name}: {side.calls['squeue']} squeue / {side.polls} polls in "
            f"{side.seconds:.1f} s; end -> seen {side.latency.text(50, 95)}")


def ccd(root: Path, env: dict[str, str], shim: Shim, timeout: float) -> Side:
    """JOBS jobs in one run of a daemon, their events followed on /api/v1/events."""
    out = Side("ccd")
    side = root / "ends"
    jobs: dict[str, str | None] = dict(_jobs(side))
    workload = Workload(f"slurm{JOBS}", jobs, where={"kind": "slurm", "host": "localhost"})
    with Daemon(root, env=env) as d, d.http() as http:
        name = upload(http, workload)
        listener = Listener(d.socket, "/api/v1/events")
        listener.start()
        listener.connected.wait(timeout)
        wait_for(subscribers_reach(http, 1), timeout, "the event stream")
        calls0, polls0, t0 = shim.counts(), _polls(http), time.time()
        run_id = start_run(http, name)
        listener.join(timeout)
        if listener.error or listener.is_alive():
            raise BenchError(f"event stream of run {run_id}: {listener.error or 'no end'}")
        out.calls, out.polls = shim.counts() - calls0, _polls(http) - polls0
        end = listener.received[-1]
        out.seconds = end[0] - t0
        if end[1].data["state"] != "done":
            raise BenchError(f"slurm run {run_id} {end[1].data['state']}: "
                             + _failures(http, run_id))
    seen: dict[str, float] = {}
    tend: dict[str, float] = {}
    out.submitted = min((received for received, e in listener.received
                         if e.event == "job" and e.data["state"] == "queued"),
                        default=float("nan")) - t0
    for received, e in listener.received:
        if e.event == "job" and e.data["state"] == "done":
            seen.setdefault(e.data["job"], received)
            tend.setdefault(e.data["job"], e.data["tend"])
    out.latency.samples = _latency(side, seen)
    out.recorded.samples = _latency(side, tend)
    return out


def baseline(root: Path, env: dict[str, str], shim: Shim, timeout: float) -> Side:
    """bench/slurm_baseline.py on the same jobs, through the same shim."""
    out = Side(f"baseline (squeue per job, tick {TICK:g} s)")
    side, jobs, result = root / "ends", root / "jobs.json", root / "baseline.json"
    jobs.write_text(json.dumps(_jobs(side)))
    calls0 = shim.counts()
    sample = timed([sys.executable, SLURM_BASELINE, str(jobs), str(TICK), str(result)],
                   env={**os.environ, **env}, timeout=timeout)
    if sample.rc != 0:
        raise BenchError(f"{SLURM_BASELINE} exited {sample.rc}")
    out.calls = shim.counts() - calls0
    said = json.loads(result.read_text())
    out.seconds = said["end"] - said["start"]
    out.polls = said["sweeps"]
    out.submitted = said["first"] - said["start"]
    out.latency.samples = _latency(side, said["seen"])
    return out


def _jobs(side: Path) -> dict[str, str]:
    """The jobs by name, each writing its end time into `side` (created)."""
    side.mkdir(parents=True)
    return {f"s{i:02d}": f"sleep {i * 0.618034 % 1:.2f}; date +%s.%N > "
                         f"{shlex.quote(str(side / f's{i:02d}'))}" for i in range(JOBS)}


def _latency(side: Path, seen: dict[str, float]) -> list[float]:
    """Seen - written, per job; BenchError when a job has no end written or seen."""
    written = {p.name: float(p.read_text()) for p in side.iterdir()}
    if sorted(written) != sorted(seen) or len(seen) != JOBS:
        raise BenchError(f"{len(written)} ends written, {len(seen)} seen, of {JOBS} jobs")
    return [seen[name] - written[name] for name in sorted(seen)]


def _polls(http: httpx.Client) -> int:
    executors = http.get("/api/v1/health").json()["hosts"]["executors"]
    return int(executors.get(EXECUTOR, {}).get("polls", 0))


def _failures(http: httpx.Client, run_id: str) -> str:
    jobs = http.get(f"/api/v1/runs/{run_id}").json()["jobs"]
    return "; ".join(f"{j['name']}: {j['message']}" for j in jobs if j["state"] != "done")[:500]


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def report(r: Results) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
    """The section's lines, its JSON, and its targets."""
    if r.skipped or r.ccd is None or r.base is None:
        return [f"slurm: skipped ({r.skipped})"], {"skipped": r.skipped}, []
    targets: list[dict[str, Any]] = []

    def target(what: str, value: float | None, ok: bool, want: str) -> str:
        targets.append({"what": what, "value": value, "target": want, "ok": ok,
                        "part": "slurm"})
        return f"{want}: {'ok' if ok else 'MISS <<<'}"

    c, b = r.ccd, r.base
    lines = [f"slurm (real single-node Slurm, {JOBS} x `sleep <1 s; date > file` jobs a side; "
             "controller calls through the client shim, per minute of each side's run)",
             f"  {'':38} {'run s':>6}  " + "  ".join(f"{x:>8}" for x in COMMANDS)
             + f"  {'polls':>5}  {'squeue/poll':>11}  {'1st sbatch s':>12}"]
    for side in (c, b):
        lines.append(f"  {side.name:38} {side.seconds:6.1f}  "
                     + "  ".join(f"{side.calls[x]:8d}" for x in COMMANDS)
                     + f"  {side.polls:5d}  {side.squeue_per_poll:11.2f}  "
                     f"{side.submitted:12.2f}")
        lines.append(f"  {'  per minute':38} {'':6}  "
                     + "  ".join(f"{side.per_minute(x):8.1f}" for x in COMMANDS))
    ratio = b.per_minute("squeue") / c.per_minute("squeue") if c.calls["squeue"] else float("nan")
    lines.append(f"  squeue calls per minute, baseline / ccd {ratio:6.1f}x  "
                 + target("slurm squeue calls per minute, baseline / ccd", num(ratio),
                          ratio >= SQUEUE_RATIO_MIN, f">= {SQUEUE_RATIO_MIN:g}x"))
    lines.append(f"  ccd squeue calls per poll {c.squeue_per_poll:.2f}  "
                 + target("slurm squeue calls per ccd poll", num(c.squeue_per_poll),
                          c.squeue_per_poll <= SQUEUE_PER_POLL_MAX,
                          f"<= {SQUEUE_PER_POLL_MAX:g}"))
    lines.append("  completion detection, job's end -> seen:")
    p95 = c.latency.q(95)
    lines.append(f"    {'ccd (SSE event received)':36} {c.latency.text(50, 95)}  "
                 + target("slurm job end -> ccd event p95, s", num(p95), p95 <= LATENCY_MAX,
                          f"p95 <= {LATENCY_MAX:g} s"))
    lines.append(f"    {'  (ccd recorded its end: tend)':36} {c.recorded.text(50, 95)}")
    lines.append(f"    {'baseline (squeue said it ended)':36} {b.latency.text(50, 95)}")
    doc = {"jobs": JOBS, "baseline_tick_s": TICK, "ccd": c.to_json(), "baseline": b.to_json(),
           "squeue_per_minute_ratio": num(ratio)}
    return lines, doc, targets
