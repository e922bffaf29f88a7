"""Driving a real `ccd` for the benchmarks: the daemon in a private environment, clients
of it over its Unix socket, and latency samples.

The daemon runs the way tests/conftest.py starts it: state and XDG_CONFIG_HOME under the
given directory, XDG_RUNTIME_DIR (the socket's directory; a socket path has at most 107
bytes) a fresh directory under /tmp, no CCD_* variable from outside. Nothing here reads
~/.config or talks to a daemon it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from sse_clients import FINAL, Sse, SseParser
from workloads import Workload

BIN = Path(sys.executable).parent
CCD = [str(BIN / "ccd")] if (BIN / "ccd").exists() else [sys.executable, "-m", "ccd"]


class BenchError(Exception):
    """The daemon or a client did not do what the bench needs (not a missed target)."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Latency:
    """Samples of one latency, in seconds."""

    samples: list[float] = field(default_factory=list)

    def q(self, q: float) -> float:
        """The q-th percentile."""
        return percentile(self.samples, q)

    def text(self, *qs: int) -> str:
        """E.g. `p50 12.3 ms  p95 20.1 ms  max 30.2 ms  (n=30)`."""
        parts = [f"p{q} {self.q(q) * 1e3:6.1f} ms" for q in qs]
        return "  ".join([*parts, f"max {self.q(100) * 1e3:6.1f} ms  (n={len(self.samples)})"])

    def to_json(self, raw: bool = True) -> dict[str, Any]:
        """Percentiles in ms, and the samples too when `raw`."""
        out: dict[str, Any] = {"n": len(self.samples)}
        out.update({f"p{q}_ms": ms(self.q(q)) for q in (50, 95, 99, 100)})
        if raw:
            out["samples_ms"] = [ms(x) for x in self.samples]
        return out


def ms(seconds: float) -> float | None:
    """Seconds as rounded milliseconds; None for NaN (null in JSON)."""
    return None if seconds != seconds else round(seconds * 1e3, 3)


class Daemon:
    """A `ccd` on a private Unix socket and a free loopback port, its state under `root`;
    `env` adds to (or replaces in) its environment, e.g. HOME, where ssh reads ~/.ssh."""

    def __init__(self, root: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.state = root / "state"
        self.extra = extra
        self.runtime = Path(tempfile.mkdtemp(prefix="ccd-bench-", dir="/tmp"))
        self.socket = self.runtime / "ccd" / "ccd.sock"
        outside = {k: v for k, v in os.environ.items() if not k.startswith("CCD_")}
        self.env = {**outside, "CCD_STATE_DIR": str(self.state), "XDG_RUNTIME_DIR":
                    str(self.runtime), "XDG_CONFIG_HOME": str(root / "config"), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        """Start it and wait until it serves both sockets."""
        self.root.mkdir(parents=True, exist_ok=True)
        out, err = self.root / "ccd.out", self.root / "ccd.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            self.proc = subprocess.Popen(
                [*CCD, "--state-dir", str(self.state), "--port", "0", *self.extra],
                env=self.env, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (out.read_text().startswith("ccd http://") and self.socket.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"ccd did not start: {err.read_text()[-2000:]}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def http(self, timeout: float = 30) -> httpx.Client:
        """A client over the Unix socket (no token needed)."""
        return client(self.socket, timeout)

    def vm(self, key: str) -> float:
        """A memory figure of the daemon from /proc/PID/status (VmRSS, VmHWM), MB."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu(self) -> float:
        """CPU seconds the daemon process itself used so far (user + system, no jobs)."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s), then kill the jobs it left, remove the socket dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            for status in self.state.glob("runs/*/jobs/*/status"):
                pid = next((int(line[4:]) for line in status.read_text().splitlines()
                            if line.startswith("pid=") and line[4:].isdigit()), None)
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.runtime, ignore_errors=True)


def client(socket: Path, timeout: float | None = 30) -> httpx.Client:
    """An HTTP client over a Unix socket; `timeout` bounds each read (None: none)."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)),
                        base_url="http://localhost", timeout=httpx.Timeout(30, read=timeout))


class Listener(threading.Thread):
    """Follows an event stream over the Unix socket until a run ends (or the stream does),
    keeping each event with time.time() at its receipt."""

    def __init__(self, socket: Path, path: str) -> None:
        super().__init__(daemon=True)
        self.socket = socket
        self.path = path
        self.received: list[tuple[float, Sse]] = []
        self.connected = threading.Event()
        self.error = ""

    def run(self) -> None:
        try:
            with client(self.socket, timeout=60) as http, http.stream(
                    "GET", self.path, headers={"Accept": "text/event-stream"}) as response:
                response.raise_for_status()
                self.connected.set()
                parser = SseParser()
                for line in response.iter_lines():
                    e = parser.feed(line)
                    if e is None:
                        continue
                    self.received.append((time.time(), e))
                    if e.event == "run" and e.data["state"] in FINAL:
                        return
        except (httpx.HTTPError, ValueError) as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.connected.set()

    def ids(self) -> list[int]:
        """The ids of the events received, in order."""
        return [e.id for _, e in self.received if e.id is not None]


class Probe(threading.Thread):
    """GET /api/v1/runs/{id} in a loop, `pause` seconds apart, until the run ends."""

    def __init__(self, socket: Path, run_id: str, pause: float) -> None:
        super().__init__(daemon=True)
        self.socket = socket
        self.run_id = run_id
        self.pause = pause
        self.latency = Latency()
        self.size = 0
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with client(self.socket) as http:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    response = http.get(f"/api/v1/runs/{self.run_id}")
                except httpx.HTTPError as e:
                    self.errors[type(e).__name__] += 1
                else:
                    dt = time.perf_counter() - t0
                    if response.status_code != 200:
                        self.errors[str(response.status_code)] += 1
                    else:
                        self.latency.samples.append(dt)
                        self.size = len(response.content)
                        if response.json()["state"] in FINAL:
                            return
                self.stop.wait(self.pause)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll until `condition()` is true; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.02)


def upload(http: httpx.Client, workload: Workload) -> str:
    """Store a workload's YAML as a workflow; returns its name."""
    response = http.post("/api/v1/workflows", content=workload.yaml(),
                         params={"filename": f"{workload.name}.yaml", "name": workload.name})
    if response.status_code != 201:
        raise BenchError(f"upload of {workload.name} refused: {response.text[:500]}")
    return workload.name


def start_run(http: httpx.Client, workflow: str) -> str:
    """Start a run of a stored workflow; returns its id."""
    response = http.post("/api/v1/runs", json={"workflow": workflow})
    if response.status_code != 201:
        raise BenchError(f"run of {workflow} refused: {response.text[:500]}")
    return str(response.json()["run"])


def subscribers_reach(http: httpx.Client, n: int) -> Callable[[], bool]:
    """A condition: the daemon has at least n event subscribers."""
    return lambda: int(http.get("/api/v1/health").json()["event_subscribers"]) >= n
