"""Shared fixtures: workflow files in a temporary directory and `ccctl` as a real process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import slurm
import sshd
from slurm import Cluster
from sshd import Relay, SshHosts, ssh_hosts

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str, mode: int | None = None) -> Path:
    """Write dedented text; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A private state directory for one test."""
    return tmp_path / "state"


@pytest.fixture
def env(state_dir: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment ccd and ccctl run with in tests: private state, config and runtime
    directories (the runtime one short: a Unix socket path has at most 107 bytes)."""
    runtime = tempfile.mkdtemp(prefix="ccd-rt-")
    base = {k: v for k, v in os.environ.items() if not k.startswith("CCD_")}
    yield {**base, "CCD_STATE_DIR": str(state_dir), "COLUMNS": "200",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": runtime}
    shutil.rmtree(runtime, ignore_errors=True)


class Ccctl:
    """Runs `ccctl` as a real process, the way a user does."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ccctl", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "ccctl", *map(str, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def ccctl(env: dict[str, str]) -> Iterator[Ccctl]:
    yield Ccctl(env)


class Daemon:
    """A real `ccd` process on a Unix socket and a free loopback port."""

    def __init__(self, env: dict[str, str], state_dir: Path, *extra: str) -> None:
        self.env = env
        self.state_dir = state_dir
        self.extra = extra
        self.socket = Path(env["XDG_RUNTIME_DIR"]) / "ccd" / "ccd.sock"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.login = ""
        self.port = 0
        self.log: list[str] = []  # what it wrote on stderr, over all its starts

    def start(self) -> Daemon:
        port = ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccd", "--state-dir", str(self.state_dir), *port,
             "--print-login", *self.extra],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith("ccd http://"):
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"ccd did not start: {first}{err}")
        self.url = first.split()[1].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])  # a restart keeps the port
        self.login = self.proc.stdout.readline().split()[1]
        return self

    @property
    def token(self) -> str:
        return (Path(self.env["XDG_CONFIG_HOME"]) / "ccd" / "token").read_text().strip()

    def http(self) -> httpx.Client:
        """A client over the Unix socket (no token needed)."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)),
                            base_url="http://localhost", timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=30)
        finally:
            self.proc.kill()
        self.log += err.splitlines()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def submit(self, workflow: Path) -> str:
        """`ccctl submit`: the new run's id."""
        proc = Ccctl(self.env)("submit", workflow)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout.strip()

    def jobs(self, run_id: str) -> dict[str, dict[str, Any]]:
        """A run's jobs by name, and the run itself under ''."""
        with self.http() as http:
            run = http.get(f"/api/v1/runs/{run_id}").json()
        return {job["name"]: job for job in run["jobs"]} | {"": run}

    def ended(self, run_id: str, timeout: float = 60) -> dict[str, dict[str, Any]]:
        """`jobs` once the run has ended."""
        wait_for(lambda: self.jobs(run_id)[""]["state"] != "running", timeout=timeout,
                 what=f"run {run_id} to end")
        return self.jobs(run_id)

    def hosts(self) -> list[dict[str, Any]]:
        with self.http() as http:
            found: list[dict[str, Any]] = http.get("/api/v1/hosts").json()
            return found


@contextlib.contextmanager
def running_daemon(env: dict[str, str], state_dir: Path, *extra: str) -> Iterator[Daemon]:
    """A daemon on `state_dir`, stopped (and its jobs' process groups with it) at the end."""
    d = Daemon(env, state_dir, *extra).start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        kill_jobs(state_dir)
    # Its log is JSON lines, whatever happened (a traceback is inside one line).
    for line in d.log:
        assert isinstance(json.loads(line), dict), line


@pytest.fixture
def daemon(env: dict[str, str], state_dir: Path) -> Iterator[Daemon]:
    """A running daemon for one test."""
    with running_daemon(env, state_dir) as d:
        yield d


def jobs_of(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """Jobs by name from `ccctl run --json`, and the run itself under ''."""
    data = json.loads(proc.stdout)
    return {job["name"]: job for job in data["jobs"]} | {"": data}


def log_of(jobs: dict[str, dict[str, Any]], name: str) -> str:
    """A job's log, from `jobs_of` or `Daemon.jobs`."""
    return (Path(str(jobs[""]["run_dir"])) / "jobs" / name / "log").read_text()


def kill_jobs(state_dir: Path) -> None:
    """End every job a test left running (they live in their own sessions)."""
    from ccd.executors.protocol import parse_status

    for status in state_dir.glob("runs/*/jobs/*/status"):
        pid = parse_status(status.read_text()).pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def wait_for(condition: Callable[[], object], timeout: float = 30,
             what: str = "condition") -> None:
    """Poll a condition (not a timing assertion: the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mount small tmpfs file systems below tmp_path (`mount(name, size, readonly)`), for
    read-only and full disks; unmounted after the test. Needs root, as CI has."""
    if os.geteuid() != 0:
        require("these tests mount tmpfs and need root (CI runs as root)")
    mounted: list[Path] = []

    def mount(name: str, size: str = "4m", readonly: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir(exist_ok=True)
        options = f"size={size}" + (",ro" if readonly else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    """Fill a file system to the last byte; returns the file to delete to make room."""
    filler = where / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


def require(reason: str | None) -> None:
    """Skip the test when a real component it needs cannot run here (`reason`); under
    CI=true fail instead, so CI cannot pass by skipping."""
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def sshd_hosts() -> Iterator[SshHosts]:
    """Three real sshd on 127.0.0.1, .2 and .3 (aliases ccd-a, ccd-b, ccd-c) and a client's
    key, known_hosts and ssh_config for them (tests/sshd.py). Needs root, as CI has."""
    require(sshd.unavailable())
    with ssh_hosts() as hosts:
        yield hosts


DEAD = "127.0.0.9"  # an address where nothing listens: connections are refused


def ssh_workflow(hosts: SshHosts, dead_port: int, gone: str = "gone", seconds: float = 60) -> str:
    """A workflow whose job `j` runs `sleep` on ccd-b (host `b`) and whose job `k` is for
    host `gone`, where the connection is refused."""
    b = hosts.servers[1]
    reach = f"user: {hosts.user}, identity: {hosts.key}, known_hosts: {hosts.known_hosts}"
    return f"""\
hosts:
  b: {{hostname: {b.address}, port: {b.port}, {reach}}}
  '{gone}': {{hostname: {DEAD}, port: {dead_port}, {reach}}}
workflow:
  nodes:
    j: {{kind: ssh, host: b, exec: "sleep {seconds}"}}
    k: {{kind: ssh, host: '{gone}', exec: "true"}}
"""


@pytest.fixture
def relay(sshd_hosts: SshHosts) -> Relay:
    """A relay in front of ccd-b that can cut the link (freeze/thaw); alias ccd-b-relay."""
    return sshd_hosts.relay(sshd_hosts.servers[1])


@pytest.fixture(scope="session")
def slurm_session() -> Iterator[Cluster]:
    """One Slurm cluster for the whole session (use `slurm_cluster`)."""
    require(slurm.unavailable())
    with slurm.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def slurm_cluster(slurm_session: Cluster) -> Iterator[Cluster]:
    """A real single-node Slurm cluster (tests/slurm.py): clients reach it with
    `slurm_cluster.env` (SLURM_CONF). Shared by the session, started once (about 1 s);
    every job is cancelled after each test, but finished jobs stay listed, so a test tells
    its jobs by id or by a name of its own. Needs root, as CI has."""
    yield slurm_session
    slurm_session.cancel_all()
