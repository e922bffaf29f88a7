"""Daemon benchmarks: `ccctl status` latency, progress line -> SSE event latency, and 50
SSE clients while 1,000 short jobs run.

Each part starts its own `ccd` in a private environment (bench/harness.py) under the bench
tree; every client talks to it over its Unix socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import (
    BIN,
    BenchError,
    Daemon,
    Latency,
    Listener,
    Probe,
    ms,
    start_run,
    subscribers_reach,
    upload,
    wait_for,
)
from measure import timed
from spy import Profile, Recording, read_profile
from sse_clients import FINAL, Client
from workloads import Workload, chain, fan

CCCTL = str(BIN / "ccctl") if (BIN / "ccctl").exists() else "ccctl"
SSE_CLIENTS = str(Path(__file__).resolve().parent / "sse_clients.py")

# Targets, seconds.
STATUS_MAX = 0.1  # p95 of the whole `ccctl status RUN --json` command
EVENT_MAX = 0.1  # p95, progress line written -> SSE event received
API_P99_MAX = 0.1  # p99 of GET /api/v1/runs/{id} while 50 clients follow 1,000 jobs

PROGRESS_JOB = """\
import sys, time
times, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(times, "w") as f:
    for n in range(1, steps + 1):
        f.write(f"{n} {time.time()!r}\\n")
        f.flush()
        print(f"# progress={n}", flush=True)
        time.sleep(pause)
"""


# -- 1. ccctl status ---------------------------------------------------------------------

@dataclass
class StatusBench:
    """`ccctl status RUN --json` as a whole process, its parts, and the bare request."""

    calls: int
    command: Latency = field(default_factory=Latency)  # the whole `ccctl status` process
    python: Latency = field(default_factory=Latency)  # `python -c pass`
    imports: Latency = field(default_factory=Latency)  # python importing what status needs
    api: Latency = field(default_factory=Latency)  # GET /api/v1/runs/{id}, warm client
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Every latency, with its samples."""
        return {"calls": self.calls, "ccctl_status": self.command.to_json(),
                "python_start": self.python.to_json(), "python_imports": self.imports.to_json(),
                "api_get_run": self.api.to_json(), "failures": self.failures}


def status_latency(root: Path, calls: int = 30, requests: int = 200,
                   timeout: float = 60) -> StatusBench:
    """Time `ccctl status RUN --json` against a daemon holding one finished 5-job run."""
    out = StatusBench(calls)
    with Daemon(root) as d, d.http() as http:
        path = chain(5, "true").write(root)[0]
        submitted = subprocess.run([CCCTL, "submit", str(path)], env=d.env, timeout=timeout,
                                   capture_output=True, text=True)
        if submitted.returncode != 0:
            raise BenchError(f"ccctl submit failed: {submitted.stderr[-2000:]}")
        run_id = submitted.stdout.strip()
        wait_for(lambda: http.get(f"/api/v1/runs/{run_id}").json()["state"] in FINAL,
                 timeout, f"run {run_id} to end")
        command = [CCCTL, "status", run_id, "--json"]
        imports = [sys.executable, "-c", "import ccctl.cli, ccctl.client, ccctl.live, "
                   "ccctl.remote"]
        timed(command, env=d.env, timeout=timeout)  # warm the page cache; not counted
        for i in range(calls):
            for series, cmd in ((out.command, command), (out.python, [sys.executable, "-c",
                                "pass"]), (out.imports, imports)):
                s = timed(cmd, env=d.env, timeout=timeout)
                if s.rc == 0:
                    series.samples.append(s.wall)
                else:
                    out.failures.append(f"{cmd[1]} call {i}: exit {s.rc}")
        for i in range(requests + 10):
            t0 = time.perf_counter()
            http.get(f"/api/v1/runs/{run_id}").raise_for_status()
            if i >= 10:  # the first ones warm the connection and the daemon's caches
                out.api.samples.append(time.perf_counter() - t0)
    return out


# -- 2. progress line -> SSE event -------------------------------------------------------

@dataclass
class EventBench:
    """Latency from a job's progress line to the SSE event, per step seen."""

    steps: int
    pause: float
    latency: Latency = field(default_factory=Latency)
    seen: list[int] = field(default_factory=list)  # the steps that had their own event

    def to_json(self) -> dict[str, Any]:
        """Latency with its samples, and which steps were seen."""
        return {"steps": self.steps, "pause_s": self.pause, "seen": len(self.seen),
                "not_seen": sorted(set(range(1, self.steps + 1)) - set(self.seen)),
                "latency": self.latency.to_json()}


def event_latency(root: Path, steps: int = 50, pause: float = 0.1,
                  timeout: float = 60) -> EventBench:
    """A job writes `# progress=N` lines and their time; a client on /api/v1/events keeps
    its receipt time of each event; latency = receipt - written."""
    out = EventBench(steps, pause)
    root.mkdir(parents=True, exist_ok=True)
    script, times = root / "progress_job.py", root / "progress-times.txt"
    script.write_text(PROGRESS_JOB)
    cmd = " ".join(shlex.quote(str(x)) for x in (sys.executable, script, times, steps, pause))
    with Daemon(root) as d, d.http() as http:
        name = upload(http, Workload("progress", {"p": cmd}))
        return progress_latency(out, d.socket, http, name, times, timeout)


def progress_latency(out: EventBench, socket: Path, http: httpx.Client, workflow: str,
                     times: Path, timeout: float) -> EventBench:
    """Run `workflow`, whose job writes `N TIME` lines to `times` as it prints progress N,
    with a client on /api/v1/events; latency = receipt of each event - its TIME."""
    listener = Listener(socket, "/api/v1/events")
    listener.start()
    listener.connected.wait(timeout)
    wait_for(subscribers_reach(http, 1), timeout, "the event stream")
    run_id = start_run(http, workflow)
    listener.join(timeout + out.steps * out.pause)
    if listener.error or listener.is_alive():
        raise BenchError(f"event stream of run {run_id}: {listener.error or 'no end'}")
    written = {int(n): float(t) for n, t in
               (line.split() for line in times.read_text().splitlines())}
    for received, e in listener.received:
        n = e.data.get("progress")
        if e.event == "job" and e.data["state"] == "running" and n in written:
            out.seen.append(n)
            out.latency.samples.append(received - written[n])
    return out


# -- 3. 50 SSE clients while 1,000 jobs run ----------------------------------------------

@dataclass
class FanBench:
    """50 clients following every event of a 1,000-job run, and the API meanwhile."""

    clients: int
    jobs: int
    probe_pause: float
    journal: int = 0  # events the journal has for the run
    complete: int = 0  # clients that received every one of them
    missing: int = 0  # journal events some client did not receive, summed over clients
    extra: int = 0  # received ids not in the run's journal, summed over clients
    disordered: int = 0  # clients whose ids did not strictly increase
    resyncs: int = 0  # times a client was told to resync
    errors: list[str] = field(default_factory=list)
    delivery: Latency = field(default_factory=Latency)  # event time -> receipt, all clients
    api: Latency = field(default_factory=Latency)
    api_bytes: int = 0
    api_errors: dict[str, int] = field(default_factory=dict)
    wall: float = float("nan")  # the run's t1 - t0, with the clients
    alone: float = float("nan")  # the same run before any client connected
    last_receipt: float = float("nan")  # POST /runs -> the last client's last event
    rss_before: float = float("nan")  # MB, before the measured run
    hwm: float = float("nan")  # MB, VmHWM at the end
    daemon_cpu: float = float("nan")  # s, the daemon during the measured run
    clients_cpu: float = float("nan")  # s, the clients' process
    profile: Profile | None = None

    def to_json(self) -> dict[str, Any]:
        """Everything, latencies summarised (the raw delivery delays are many)."""
        out = {k: v for k, v in vars(self).items() if not isinstance(v, Latency | Profile)}
        out["profile"] = {**vars(self.profile), "busy": round(self.profile.busy, 3)} \
            if self.profile else None
        for k in ("wall", "alone", "last_receipt", "rss_before", "hwm", "daemon_cpu",
                  "clients_cpu"):
            out[k] = None if out[k] != out[k] else round(out[k], 3)
        out["delivery"] = self.delivery.to_json(raw=False)
        out["api"] = self.api.to_json()
        return out


def fan_clients(root: Path, clients: int = 50, jobs: int = 1000, probe_pause: float = 0.02,
                timeout: float = 120, profile: Path | None = None) -> FanBench:
    """Run start -> `jobs` x `true` -> end once alone, then with `clients` SSE clients and
    an API probe; check every client got every journal event of the run."""
    out = FanBench(clients, jobs, probe_pause)
    with Daemon(root) as d, d.http() as http:
        name = upload(http, fan(jobs, "true"))
        alone = start_run(http, name)
        follow = Listener(d.socket, f"/api/v1/runs/{alone}/events")  # ends when the run does
        follow.start()
        follow.join(timeout)
        if follow.error or follow.is_alive():
            raise BenchError(f"run {alone} did not end: {follow.error or 'timeout'}")
        out.alone = _wall(http, alone)

        out.rss_before = d.vm("VmRSS")
        results = root / "sse-clients.json"
        with open(root / "sse-clients.err", "wb") as err:
            proc = subprocess.Popen([sys.executable, SSE_CLIENTS, str(d.socket), str(clients),
                                     str(results), "--timeout", str(timeout)],
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        spy: Recording | None = None
        probe: Probe | None = None
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready or proc.stdout.readline() != b"ready\n":
                raise BenchError(f"the SSE clients did not connect: see {err.name}")
            wait_for(subscribers_reach(http, clients), timeout, f"{clients} subscribers")
            if profile is not None:
                spy = Recording(d.pid, profile)
            cpu0 = d.cpu()
            posted = time.time()
            run_id = start_run(http, name)
            probe = Probe(d.socket, run_id, probe_pause)
            probe.start()
            rc, out.clients_cpu = _reap(proc, timeout)
            probe.join(timeout)
            out.daemon_cpu = d.cpu() - cpu0
        finally:
            if probe is not None:
                probe.stop.set()
            if proc.returncode is None:
                _reap(proc, 0)
            if spy is not None:
                spy.stop()
        out.hwm = d.vm("VmHWM")
        out.wall = _wall(http, run_id)
        out.api, out.api_bytes, out.api_errors = probe.latency, probe.size, dict(probe.errors)
        replay = Listener(d.socket, f"/api/v1/runs/{run_id}/events")
        replay.start()
        replay.join(timeout)
    if rc != 0:
        out.errors.append(f"the SSE clients' process exited {rc}")
    journal = replay.ids()
    if replay.error or not journal:
        raise BenchError(f"replay of run {run_id}: {replay.error or 'no events'}")
    _compare(out, journal, _load_clients(results), posted)
    if spy is not None and spy.out.exists():
        out.profile = read_profile(spy.out, spy.seconds)
    return out


def _wall(http: httpx.Client, run_id: str) -> float:
    run = http.get(f"/api/v1/runs/{run_id}").json()
    return float(run["t1"] - run["t0"]) if run["t1"] else float("nan")


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for `proc` (SIGKILL after `timeout` s); its exit code and CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): its poll() would reap
        time.sleep(0.02)


def _load_clients(path: Path) -> list[Client]:
    try:
        return [Client(**c) for c in json.loads(path.read_text())]
    except (OSError, ValueError) as e:
        raise BenchError(f"no results from the SSE clients: {e}") from None


def _compare(out: FanBench, journal: list[int], clients: list[Client], posted: float) -> None:
    """Every client against the run's journal."""
    out.journal = len(journal)
    want = set(journal)
    for i, c in enumerate(clients):
        got = set(c.ids)
        out.missing += len(want - got)
        out.extra += len(got - want)
        out.complete += not want - got
        out.disordered += any(b <= a for a, b in zip(c.ids, c.ids[1:], strict=False))
        out.resyncs += c.resyncs
        if c.error:
            out.errors.append(f"client {i}: {c.error}")
        out.delivery.samples.extend(c.delays)
    out.last_receipt = max((c.last_receipt for c in clients), default=posted) - posted


# -- the report --------------------------------------------------------------------------

@dataclass
class Results:
    """What the daemon part measured."""

    status: StatusBench
    events: EventBench
    fan: FanBench


def run_all(tmp: Path, timeout: float, profile: Path | None = None) -> Results:
    """The three parts, each with its own daemon under `tmp`."""
    status = status_latency(tmp / "d-status", timeout=timeout)
    _progress(f"ccctl status {status.command.text(50, 95)}")
    events = event_latency(tmp / "d-events", timeout=timeout)
    _progress(f"progress->SSE {events.latency.text(50, 95)}")
    fan_ = fan_clients(tmp / "d-fan", timeout=timeout, profile=profile)
    _progress(f"50 clients x 1000 jobs: wall {fan_.wall:.2f} s, API {fan_.api.text(99)}")
    return Results(status, events, fan_)


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def report(r: Results) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
    """The section's lines, its JSON, and its targets."""
    targets: list[dict[str, Any]] = []

    def target(what: str, value: float | None, ok: bool, want: str) -> str:
        targets.append({"what": what, "value": value, "target": want, "ok": ok,
                        "part": "daemon"})
        return f"{want}: {'ok' if ok else 'MISS <<<'}"

    s, e, f = r.status, r.events, r.fan
    p95 = s.command.q(95)
    lines = [
        "daemon (each part its own ccd; clients on the Unix socket)",
        f"  ccctl status RUN --json   {s.command.text(50, 95)}  "
        + target("ccctl status RUN --json p95, ms", ms(p95), p95 < STATUS_MAX,
                 f"p95 < {STATUS_MAX * 1e3:g} ms"),
        f"    of which python start   {s.python.text(50, 95)}",
        f"    python + ccctl imports  {s.imports.text(50, 95)}",
        f"  GET /api/v1/runs/ID warm  {s.api.text(50, 95)}",
    ]
    lines += [f"  FAILED: {x}" for x in s.failures]
    p95 = e.latency.q(95)
    lines.append(
        f"  progress line -> SSE      {e.latency.text(50, 95)}  {len(e.seen)}/{e.steps} steps "
        f"seen ({e.pause:g} s apart)  "
        + target("progress line -> SSE event p95, ms", ms(p95), p95 < EVENT_MAX,
                 f"p95 < {EVENT_MAX * 1e3:g} ms"))
    p99 = f.api.q(99)
    lost_ok = f.missing == 0 and f.extra == 0 and f.complete == f.clients and not f.errors
    lines += [
        f"  {f.clients} SSE clients, start -> {f.jobs} x true -> end (default --max-jobs):",
        f"    run wall {f.wall:.2f} s (alone, no clients: {f.alone:.2f} s); last event at a "
        f"client {f.last_receipt:.2f} s after POST",
        f"    events: journal {f.journal}, clients complete {f.complete}/{f.clients}, missing "
        f"{f.missing}, extra {f.extra}, out of order {f.disordered}, resyncs {f.resyncs}  "
        + target("SSE events lost (summed over clients)", f.missing, lost_ok, "0 lost"),
        f"    delivery (event time -> client) {f.delivery.text(50, 95, 99)}",
        f"    GET /api/v1/runs/ID ({f.api_bytes / 1e3:.0f} kB, every {f.probe_pause * 1e3:g} ms)"
        f"  {f.api.text(50, 99)}  "
        + target("GET run p99 during 50 clients x 1000 jobs, ms", ms(p99), p99 < API_P99_MAX,
                 f"p99 < {API_P99_MAX * 1e3:g} ms"),
        f"    daemon: RSS {f.rss_before:.1f} MB before, peak (VmHWM) {f.hwm:.1f} MB; CPU "
        f"{f.daemon_cpu:.2f} s during the run; the clients' process {f.clients_cpu:.2f} s",
    ]
    if f.api_errors:
        lines.append(f"    API errors: {f.api_errors}")
    lines += [f"    ERROR: {x}" for x in f.errors[:10]]
    if f.profile:
        pr = f.profile
        lines.append(f"    py-spy: the daemon's event loop was busy {pr.busy:.0%} of "
                     f"{pr.seconds:.1f} s ({pr.samples} samples)")
        for title, rows in (("running (task)", pr.tasks), ("in (function)", pr.functions)):
            lines.append(f"      {title}:")
            lines += [f"        {pct:5.1f}%  {name}" for name, pct in rows]
    doc = {"status": s.to_json(), "events": e.to_json(), "fan": f.to_json()}
    return lines, doc, targets
