"""SSH benchmarks (issue 11): `kind: ssh` jobs through ccd's one pooled connection per host,
against real OpenSSH servers on loopback (tests/sshd.py: sshd on 127.0.0.1, a test user;
needs root and /usr/sbin/sshd, else this part says why and is skipped). Every job runs on
one host, ccd-a, reached with every field explicit in the workflow's `hosts:` inventory; ccd
runs with an empty HOME (no ~/.ssh/config of the machine's) and from this tree (PYTHONPATH).

1. Per-job overhead. `ccctl run` of start -> 200 x `echo "# progress=100"` -> end against
   bench/ssh_baseline.py, what cloudmesh-cc does: one OpenSSH `ssh` client process, so one
   connection, key exchange and login, per job (cloudmesh-cc starts more than one per job:
   it also copies the script and reads the log with their own processes; the baseline
   counts the least it pays). Fair concurrency: both sides have at most 8 remote commands
   in flight. ccd admits all 200 jobs (--max-jobs and the host's max_jobs) and its link
   opens at most 8 channels at once (one below OpenSSH's MaxSessions of 10, less its SFTP
   session); the baseline runs 8 `ssh` at once, just below sshd's MaxStartups (10
   unauthenticated connections, beyond which sshd drops new ones at random). On this
   2-CPU machine the baseline is CPU-bound (a login costs both processes ~100 ms of CPU),
   so fewer at once would not make it faster. Per-job cost on each side: (wall(200 jobs) -
   wall(1 job)) / 200, medians over --reps repetitions run A B A B so noise hits both.
2. Remote commands per poll tick. A daemon runs 200 jobs that all block reading a FIFO the
   bench holds open (all running at once for as long as needed, using no CPU), then 1 such
   job. Over a window of WINDOW s: commands = `Starting session: command` lines in sshd's
   log (LogLevel VERBOSE; starting a job, polling, cancelling each is one), ticks = the
   executor's `polls` counter in GET /api/v1/health. The two counts are read one after the
   other, so a poll in flight at either end of the window can count on one side only: the
   ratio is exact to +-1 command over the window.
3. Connections. Logins in sshd's log after each run of that daemon (1 job, 200 jobs, the
   progress job): every run after the first must use the first one's connection.
4. Progress -> SSE latency. On the same daemon, a remote job prints `# progress=N` every
   PAUSE s, each just after appending N and `date +%s.%N` to a side file; a client on
   /api/v1/events keeps the receipt time of each event (bench/daemon.py's machinery);
   latency = receipt - written, one clock (loopback). Steps that share a poll with the next
   one have no event of their own and are not counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from daemon import CCCTL, EventBench, progress_latency
from harness import (
    BenchError,
    Daemon,
    ms,
    start_run,
    upload,
    wait_for,
)
from measure import Sample, Series, num, timed
from sse_clients import FINAL
from workloads import Workload, fan

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))
from sshd import USER, Sshd, SshHosts, ssh_hosts, unavailable  # type: ignore[import-not-found]  # noqa: E402

SSH_BASELINE = str(Path(__file__).resolve().parent / "ssh_baseline.py")
HOST = "ccd-a"
JOBS = 200
PARALLEL = 8  # remote commands in flight, both sides (see the docstring)
JOB = 'echo "# progress=100"'
WINDOW = 5.0  # s, counting commands and ticks
STEPS, PAUSE = 30, 0.2  # the progress job
COMMAND = "Starting session: command "  # sshd, LogLevel VERBOSE: one line per exec request
LOGIN = "Accepted publickey for "  # one line per login (as Sshd.accepted counts)

# Targets.
OVERHEAD_RATIO_MIN = 10.0  # baseline per-job cost / ccd's
COMMANDS_PER_TICK_MAX = 1.1  # with 200 jobs running (1, counted +-1 over the window)
NEW_CONNECTIONS_MAX = 0  # after the first run
EVENT_MAX = 0.3  # s, p95 progress line -> SSE event


# -- 1. per-job overhead -----------------------------------------------------------------

@dataclass
class Overhead:
    """`ccctl run` and the one-`ssh`-per-job baseline, 1 and JOBS jobs each."""

    jobs: int
    parallel: int
    ccd: dict[int, Series] = field(default_factory=dict)  # jobs -> `ccctl run`
    base: dict[int, Series] = field(default_factory=dict)  # jobs -> ssh_baseline.py
    commands: dict[int, list[int]] = field(default_factory=dict)  # jobs -> per `ccctl run`
    logins: dict[int, list[int]] = field(default_factory=dict)  # jobs -> per `ccctl run`

    def per_job(self, side: dict[int, Series]) -> float:
        """Seconds per job beyond the fixed cost of a 1-job run."""
        return (side[self.jobs].wall - side[1].wall) / self.jobs

    @property
    def ratio(self) -> float:
        """How many times less overhead per job ccd has than the baseline."""
        ccd = self.per_job(self.ccd)
        return self.per_job(self.base) / ccd if ccd > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        """Both sides with their samples, the per-job costs and the ratio."""
        return {"jobs": self.jobs, "parallel": self.parallel,
                "ccd": {str(n): s.to_json() for n, s in self.ccd.items()},
                "baseline": {str(n): s.to_json() for n, s in self.base.items()},
                "ccd_ms_per_job": num(self.per_job(self.ccd) * 1e3),
                "baseline_ms_per_job": num(self.per_job(self.base) * 1e3),
                "ratio": num(self.ratio), "ccd_commands_per_run": self.commands,
                "ccd_logins_per_run": self.logins}


def overhead(hosts: SshHosts, root: Path, env: dict[str, str], reps: int,
             timeout: float) -> Overhead:
    """Each side on 1 and JOBS jobs, `reps` times, interleaved."""
    out = Overhead(JOBS, PARALLEL)
    root.mkdir(parents=True, exist_ok=True)
    yamls: dict[int, Path] = {}
    for n, w in ((1, Workload("one", {"j": JOB})), (JOBS, fan(JOBS, JOB))):
        yamls[n] = root / f"{w.name}.yaml"
        yamls[n].write_text(_remote(w, hosts, max_jobs=JOBS).yaml())
    server = hosts.servers[0]
    runs = 0

    def ccd(n: int) -> Sample:
        """`ccctl run`; the commands and logins sshd saw during it."""
        nonlocal runs
        runs += 1
        log0 = server.log_text()
        sample = timed([CCCTL, "run", str(yamls[n]), "--state-dir", str(root / f"state-{runs}"),
                        "--max-jobs", str(JOBS)], env=env, timeout=timeout)
        log1 = server.log_text()
        out.commands.setdefault(n, []).append(log1.count(COMMAND) - log0.count(COMMAND))
        out.logins.setdefault(n, []).append(log1.count(LOGIN) - log0.count(LOGIN))
        return sample

    def base(n: int) -> Sample:
        return timed([sys.executable, SSH_BASELINE, str(hosts.ssh_config), HOST, str(n),
                      str(PARALLEL), JOB], env=env, timeout=timeout)

    ccd(1), base(1)  # warm the page cache and imports; not counted
    out.commands.clear()
    out.logins.clear()
    for rep in range(reps):
        for n in (1, JOBS):
            out.ccd.setdefault(n, Series()).add(ccd(n), f"ccd {n} jobs rep {rep}")
            out.base.setdefault(n, Series()).add(base(n), f"baseline {n} jobs rep {rep}")
        _progress(f"rep {rep}: ccd {out.ccd[1].samples[-1].wall:.2f} s / "
                  f"{out.ccd[JOBS].samples[-1].wall:.2f} s, baseline "
                  f"{out.base[1].samples[-1].wall:.2f} s / {out.base[JOBS].samples[-1].wall:.2f} s"
                  f" (1 / {JOBS} jobs)")
    return out


# -- 2-4. one daemon: commands per tick, connections, progress -> SSE --------------------

@dataclass
class Ticks:
    """Commands sshd started and poll ticks the executor counted over one window."""

    jobs: int  # running during the window
    seconds: float = float("nan")
    commands: int = 0
    polls: int = 0

    @property
    def per_tick(self) -> float:
        """Remote commands per poll tick."""
        return self.commands / self.polls if self.polls else float("nan")

    @property
    def tick(self) -> float:
        """Seconds from one poll to the next (the executor's tick plus the poll itself)."""
        return self.seconds / self.polls if self.polls else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "seconds": num(self.seconds), "commands": self.commands,
                "polls": self.polls, "commands_per_tick": num(self.per_tick),
                "tick_ms": ms(self.tick)}


@dataclass
class Served:
    """What the daemon part measured."""

    ticks: list[Ticks] = field(default_factory=list)
    logins: list[tuple[str, int]] = field(default_factory=list)  # after each run
    connections: int | None = None  # the executor's own count at the end
    events: EventBench = field(default_factory=lambda: EventBench(STEPS, PAUSE))

    @property
    def new_connections(self) -> int:
        """Logins after the first run (-1: not measured)."""
        return self.logins[-1][1] - self.logins[1][1] if len(self.logins) > 2 else -1

    def by_daemon(self) -> list[tuple[str, int]]:
        """Logins since the daemon started, after each of its runs."""
        return [(name, n - self.logins[0][1]) for name, n in self.logins[1:]]

    def to_json(self) -> dict[str, Any]:
        return {"ticks": [t.to_json() for t in self.ticks],
                "logins_after_each_run": dict(self.by_daemon()),
                "new_connections_after_the_first_run": self.new_connections,
                "executor_connections": self.connections, "events": self.events.to_json()}


class Gate:
    """A FIFO that jobs block reading (`read x < FIFO`) while the bench holds it open; closing
    it gives every reader end-of-file at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        path.chmod(0o666)  # the jobs run as the test user
        self._fd: int | None = os.open(path, os.O_RDWR)  # a writer: readers block, not EOF

    @property
    def command(self) -> str:
        return f"read x < {shlex.quote(str(self.path))} || :"

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def served(hosts: SshHosts, root: Path, env: dict[str, str], timeout: float) -> Served:
    """Runs of 1 and JOBS blocked jobs (commands per tick), then the progress job, on one
    daemon; the logins after each."""
    out = Served()
    a = hosts.servers[0]
    shared = hosts.directory / "bench"  # the jobs write here as the test user
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    out.logins.append(("before", a.accepted()))
    with Daemon(root, "--max-jobs", str(JOBS + 10), env=env) as d, d.http() as http:
        for n in (1, JOBS):
            out.ticks.append(_blocked(http, hosts, shared / f"gate-{n}", n, timeout))
            out.logins.append((f"{n} job{'s' if n > 1 else ''}", a.accepted()))
            t = out.ticks[-1]
            _progress(f"{n} running: {t.commands} commands / {t.polls} ticks in {WINDOW:g} s")
        out.events = _event_latency(http, d, shared, hosts, timeout)
        out.logins.append(("progress", a.accepted()))
        executor = _executor(http)
        out.connections = int(executor["connections"]) if "connections" in executor else None
    _progress(f"logins after each run {[n for _, n in out.by_daemon()]}; progress->SSE "
              f"{out.events.latency.text(50, 95)}")
    return out


def _blocked(http: httpx.Client, hosts: SshHosts, fifo: Path, n: int,
             timeout: float) -> Ticks:
    """A run of `n` jobs blocked on a gate: commands and ticks while all run."""
    with Gate(fifo) as gate:
        name = upload(http, _remote(replace(fan(n, gate.command), name=f"blocked{n}"), hosts,
                                    max_jobs=JOBS))
        run_id = start_run(http, name)
        wait_for(lambda: _all_running(http, run_id, n), timeout, f"{n} jobs running")
        ticks = _count(http, hosts.servers[0], n)
    _ended(http, run_id, timeout)
    return ticks


def _count(http: httpx.Client, server: Sshd, jobs: int) -> Ticks:
    """Commands and ticks over WINDOW seconds."""
    out = Ticks(jobs)
    c0, p0, t0 = server.log_text().count(COMMAND), _polls(http), time.monotonic()
    time.sleep(WINDOW)
    c1, p1, t1 = server.log_text().count(COMMAND), _polls(http), time.monotonic()
    out.seconds, out.commands, out.polls = t1 - t0, c1 - c0, p1 - p0
    return out


def _event_latency(http: httpx.Client, d: Daemon, shared: Path, hosts: SshHosts,
                   timeout: float) -> EventBench:
    """A remote job's progress lines, each with its time in a side file, against the receipt
    of their events on /api/v1/events."""
    out = EventBench(STEPS, PAUSE)
    times = shared / "progress-times.txt"
    cmd = (f'i=1; while [ "$i" -le {STEPS} ]; do echo "$i $(date +%s.%N)" >> '
           f'{shlex.quote(str(times))}; '
           f'echo "# progress=$i"; sleep {PAUSE}; i=$((i + 1)); done')
    name = upload(http, _remote(Workload("progress", {"p": cmd}), hosts, max_jobs=JOBS))
    return progress_latency(out, d.socket, http, name, times, timeout)


def _remote(w: Workload, hosts: SshHosts, max_jobs: int) -> Workload:
    """`w` with every job on HOST, all of it said in the inventory."""
    server = hosts.servers[0]
    entry = {"hostname": server.address, "port": server.port, "user": USER,
             "identity": str(hosts.key), "known_hosts": str(hosts.known_hosts),
             "workdir": str(server.workdir), "max_jobs": max_jobs}
    fields = ", ".join(f"{k}: {json.dumps(v)}" for k, v in entry.items())  # JSON is YAML
    return replace(w, inventory=f"hosts:\n  {HOST}: {{{fields}}}\n",
                   where={"kind": "ssh", "host": HOST})


def _executor(http: httpx.Client) -> dict[str, Any]:
    executors = http.get("/api/v1/health").json()["hosts"]["executors"]
    return dict(executors.get(f"ssh:{HOST}", {}))


def _polls(http: httpx.Client) -> int:
    return int(_executor(http)["polls"])


def _all_running(http: httpx.Client, run_id: str, n: int) -> bool:
    jobs = http.get(f"/api/v1/runs/{run_id}").json()["jobs"]
    running = sum(1 for j in jobs
                  if j["kind"] == "ssh" and j["state"] == "running" and j["pid"] is not None)
    return running == n


def _ended(http: httpx.Client, run_id: str, timeout: float) -> None:
    wait_for(lambda: http.get(f"/api/v1/runs/{run_id}").json()["state"] in FINAL, timeout,
             f"run {run_id} to end")
    run = http.get(f"/api/v1/runs/{run_id}").json()
    if run["state"] != "done":
        failed = [f"{j['name']}: {j['message']}" for j in run["jobs"] if j["state"] != "done"]
        raise BenchError(f"run {run_id} {run['state']}: {'; '.join(failed[:3])}")


# -- the part ----------------------------------------------------------------------------

@dataclass
class Results:
    """What the ssh part measured, or why it did not run."""

    skipped: str = ""
    overhead: Overhead | None = None
    served: Served | None = None


def run_all(tmp: Path, reps: int, timeout: float) -> Results:
    """Both halves against one set of servers; every server, daemon and job stopped after."""
    why = unavailable()
    if why is not None:
        _progress(f"ssh part skipped: {why}")
        return Results(skipped=why)
    home = tmp / "ssh-home"  # no ~/.ssh/config: the inventory says everything
    home.mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("CCD_")}
    with ssh_hosts() as hosts:
        try:
            out = Results(overhead=overhead(hosts, tmp / "ssh-overhead", env, reps, timeout))
            out.served = served(hosts, tmp / "ssh-daemon", env, timeout)
        finally:
            with contextlib.suppress(OSError):
                hosts.kill_jobs()  # a job left blocked by a failure above
    return out


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def report(r: Results) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
    """The section's lines, its JSON, and its targets."""
    if r.skipped or r.overhead is None or r.served is None:
        return [f"ssh: skipped ({r.skipped})"], {"skipped": r.skipped}, []
    targets: list[dict[str, Any]] = []

    def target(what: str, value: float | None, ok: bool, want: str) -> str:
        targets.append({"what": what, "value": value, "target": want, "ok": ok,
                        "part": "ssh"})
        return f"{want}: {'ok' if ok else 'MISS <<<'}"

    o, s = r.overhead, r.served
    lines = [f"ssh (real sshd on 127.0.0.1, jobs on {HOST}; ccd and the baseline with at most "
             f"{o.parallel} remote commands at once)",
             f"  per-job overhead, {o.jobs} x {JOB}:   {'1 job s':>8} {'(min-max)':>13}  "
             f"{f'{o.jobs} jobs s':>10} {'(min-max)':>13}  {'ms/job':>7}"]
    for title, side in (("ccctl run (one connection)", o.ccd),
                        ("baseline (one ssh per job)", o.base)):
        one, many = side[1], side[o.jobs]
        lines.append(f"    {title:<30} {one.wall:8.3f} {_mm(one):>13}  {many.wall:10.3f} "
                     f"{_mm(many):>13}  {o.per_job(side) * 1e3:7.2f}")
    ratio = o.ratio
    lines.append(f"    baseline / ccd per-job cost {ratio:6.1f}x  "
                 + target("ssh per-job overhead, baseline / ccd", num(ratio),
                          ratio >= OVERHEAD_RATIO_MIN, f">= {OVERHEAD_RATIO_MIN:g}x"))
    lines += [f"    FAILED RUNS: {'; '.join(x.failures)}"
              for side in (o.ccd, o.base) for x in side.values() if x.failures]
    lines.append("    sshd saw per `ccctl run`: " + ", ".join(
        f"{n} job{'s' if n > 1 else ''}: {_median(o.commands[n])} commands, "
        f"{_median(o.logins[n])} login" for n in sorted(o.commands)) + " (medians)")
    lines.append(f"  remote commands per poll tick (sshd's log / the executor's polls, "
                 f"{WINDOW:g} s):")
    for t in s.ticks:
        line = (f"    {t.jobs:>3} job{'s' if t.jobs > 1 else ' '} running  {t.commands:4} "
                f"commands / {t.polls:3} ticks = {t.per_tick:5.2f} per tick (a tick every "
                f"{t.tick * 1e3:5.1f} ms)")
        if t.jobs == JOBS:
            line += "  " + target(f"remote commands per poll tick, {JOBS} jobs running",
                                  num(t.per_tick), t.per_tick <= COMMANDS_PER_TICK_MAX,
                                  f"<= {COMMANDS_PER_TICK_MAX:g}")
        lines.append(line)
    new = s.new_connections
    lines.append(f"  logins at sshd since one daemon started, after each of its runs: "
                 f"{', '.join(f'{name} {n}' for name, n in s.by_daemon())} (the executor counts "
                 f"{s.connections}); new after the first run {new}  "
                 + target("new SSH connections after the first run", new,
                          0 <= new <= NEW_CONNECTIONS_MAX, f"{NEW_CONNECTIONS_MAX}"))
    e = s.events
    p95 = e.latency.q(95)
    lines.append(f"  progress line -> SSE  {e.latency.text(50, 95)}  {len(e.seen)}/{e.steps} "
                 f"steps seen ({e.pause:g} s apart)  "
                 + target("ssh progress line -> SSE event p95, ms", ms(p95), p95 < EVENT_MAX,
                          f"p95 < {EVENT_MAX * 1e3:g} ms"))
    doc = {"overhead": o.to_json(), **s.to_json()}
    return lines, doc, targets


def _median(values: list[int]) -> float:
    return statistics.median(values) if values else float("nan")


def _mm(s: Series) -> str:
    lo, hi = s.spread
    return f"({lo:.3f}-{hi:.3f})"
