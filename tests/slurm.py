"""A real single-node Slurm cluster in a temporary directory, for the Slurm executor's tests.

For issue 12. `Cluster` writes a munge key and a slurm.conf into its directory and starts, as
our children in the foreground, munged (own key, socket, pid, seed and log files), slurmctld
(`-D -i`, state saved nowhere that outlives the directory) and slurmd (`-D -N` the short
hostname). Clients (sbatch, squeue, scancel, scontrol) find it through SLURM_CONF alone:
`cluster.env` holds it, and slurm.conf's `AuthInfo=socket=...` sends them, like the daemons, to
our munged. Everything talks over 127.0.0.1 on free ports (SlurmctldHost=name(127.0.0.1),
NodeAddr=127.0.0.1). `stop()` cancels every job, stops the daemons and kills whatever job
process is left (the processes whose environment has our SLURM_CONF: slurmstepd daemonizes,
so jobs are not our children). All of it needs root (munged and slurmd run as root), as CI has.

`Shim` puts logging wrappers named like the client commands first on PATH, so a test can
count the controller calls an executor makes.

Configuration, and what it costs. Slurm 22.05 (Debian 12); the cluster has one node with the
machine's CPUs (nproc) and two partitions: `debug` (default, up) and `down` (state DOWN).
ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed);
SchedulerParameters=batch_sched_delay=0, or a short job waits seconds before it starts; no
accounting, so `sacct` does not work: a finished job stays in the controller, visible to
`scontrol show job` and `squeue -t all`, for MinJobAge=300 s. The daemons listen on all
addresses (Slurm has no setting for that) but every connection goes to 127.0.0.1.

Measured on a 2-CPU VM: start-up to an idle node 1.1 s, stop 0.2 s. The controller starts
pending jobs on a tick of about one second, so a trivial job takes 0.3-1 s from sbatch to
COMPLETED, the first one after start-up 2 s, and 20 trivial jobs at once 8-10 s (nproc
jobs per tick). The whole of tests/test_slurm_cluster.py runs in about 22 s.

Verified here (slurm-wlm 22.05.8), for the executor to rely on:

- `sbatch --parsable -J NAME -o FILE --wrap CMD` prints the id alone ("42"; "42;cluster"
  only with -M). An unknown partition fails at once, exit 1, stderr
  "sbatch: error: invalid partition specified: NAME" then "...Batch job submission failed:
  Invalid partition name specified".
- `squeue -h -o '%i|%j|%T|%r'` gives "id|name|STATE|reason", one job a line; filters `-n
  NAME[,NAME]`, `-j ID[,ID]`, `-t STATES`. Without `-t` only pending and running jobs are
  listed; `-t all` adds finished ones still in the controller. An id the controller no
  longer knows: exit 1, stderr "slurm_load_jobs error: Invalid job id specified"; an unknown
  name: exit 0, no output. `%j` may hold spaces, hence the separator.
- `squeue --json` (openapi/v0.0.38) gives {"meta", "errors", "jobs"}; each job has `job_id`
  (int), `name`, `job_state` ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"...),
  `state_reason` ("None", "JobHeldUser", ...), `exit_code` (the raw wait status: 768 for
  `exit 3`, 15 for SIGTERM), `standard_output`, `start_time`/`end_time` (epoch s, 0 when
  not yet). In 22.05 it IGNORES `-n`, `-j` and `-t`: it always lists every job the
  controller holds, finished ones included; filter on our side.
- `scontrol -o show job ID` is one line of Key=Value: `JobState=COMPLETED`,
  `Reason=None`, `ExitCode=3:0` (status:signal). A cancelled job has `ExitCode=0:15` or, sometimes,
  `143:0` (its shell exited after SIGTERM killed the shell's child): tell it by JobState.
- States seen: PENDING, RUNNING, COMPLETED, FAILED (reason NonZeroExitCode), CANCELLED,
  TIMEOUT. Pending reasons a test can produce: `sbatch --hold` gives JobHeldUser (release
  with `scontrol release ID`); `-p down` gives PartitionDown; more CPUs than the node has
  (`-c 64`) is accepted and gives PartitionConfig; a job waiting for busy CPUs gives
  Resources.
- A time limit is whole minutes (`--time=1` is the least): the job ended TIMEOUT 63 s after
  it started (reason TimeLimit, `ExitCode=143:0`: the batch shell's exit on SIGTERM; in
  --json `exit_code` 36608), and its output file got "slurmstepd-NODE: error: *** JOB ID ON
  NODE CANCELLED AT ... DUE TO TIME LIMIT ***". Too slow for the suite, so not tested here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MUNGED = Path("/usr/sbin/munged")
SLURMCTLD = Path("/usr/sbin/slurmctld")
SLURMD = Path("/usr/sbin/slurmd")
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sacct")
PARTITION = "debug"
DOWN_PARTITION = "down"


def unavailable() -> str | None:
    """Why a test cluster cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a test Slurm cluster needs root (CI runs as root)"
    for program, package in ((MUNGED, "munge"), (SLURMCTLD, "slurmctld"), (SLURMD, "slurmd")):
        if not program.exists():
            return f"{program} is missing: apt-get install {package} (make test does, as root)"
    if shutil.which("sbatch") is None:
        return "sbatch is missing: apt-get install slurm-client (make test does, as root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Shim:
    """Wrappers named like the Slurm client commands in `bin`, each appending its command
    line to `log` (one line per call: the command's name, then its arguments) before it
    execs the real command. Put `bin` first on PATH (`env`) to count controller calls."""

    bin: Path
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """PATH with `bin` first; merge it into a process's environment."""
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}

    def calls(self) -> list[str]:
        """Every call so far, oldest first."""
        return self.log.read_text().splitlines() if self.log.exists() else []

    def counts(self) -> Counter[str]:
        """How many times each command was called so far."""
        return Counter(line.split(" ", 1)[0] for line in self.calls())


class Cluster:
    """munged, slurmctld and slurmd with their files in `directory`; see the module."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.node = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count() or 1
        self.conf = directory / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}
        self.logs = directory / "log"
        munge = directory / "munge"
        for sub in ("state", "spool", "log"):
            (directory / sub).mkdir()
        munge.mkdir(mode=0o755)  # munged wants its socket's directory open to all
        self.munge_socket = munge / "socket"
        self.munge_key = munge / "key"
        self.munge_key.write_bytes(secrets.token_bytes(1024))
        self.munge_key.chmod(0o600)
        self.conf.write_text(f"""\
ClusterName=ccdtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={directory / "state"}
SlurmdSpoolDir={directory / "spool"}
SlurmctldPidFile={directory / "slurmctld.pid"}
SlurmdPidFile={directory / "slurmd.pid"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerParameters=batch_sched_delay=0
MinJobAge=300
MessageTimeout=3
ReturnToService=2
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
PartitionName={DOWN_PARTITION} Nodes={self.node} MaxTime=INFINITE State=DOWN
""")
        self.daemons: list[subprocess.Popen[bytes]] = []  # munged, slurmctld, slurmd

    def start(self, timeout: float = 30) -> Cluster:
        """Start the daemons and wait until the node is idle."""
        try:
            self._spawn("munged", MUNGED, "--foreground", f"--key-file={self.munge_key}",
                        f"--socket={self.munge_socket}",
                        f"--pid-file={self.munge_socket.parent / 'pid'}",
                        f"--seed-file={self.munge_socket.parent / 'seed'}",
                        f"--log-file={self.logs / 'munged'}")
            self._wait(self.munge_socket.exists, timeout, "munged's socket")
            self._spawn("slurmctld", SLURMCTLD, "-D", "-i", "-f", self.conf)
            self._spawn("slurmd", SLURMD, "-D", "-N", self.node, "-f", self.conf)
            self._wait(self._idle, timeout, f"node {self.node} idle")
        except BaseException:
            self.stop()
            raise
        return self

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A client command (sbatch, squeue...) against this cluster; text output."""
        return subprocess.run(list(map(str, args)), env={**os.environ, **self.env},
                              capture_output=True, text=True, check=check, timeout=30)

    def submit(self, *args: str | Path) -> int:
        """`sbatch --parsable ARGS`: the new job's id."""
        return int(self.run("sbatch", "--parsable", *args).stdout.strip())

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol -o show job ID` as Key=Value pairs (JobState, Reason, ExitCode...)."""
        line = self.run("scontrol", "-o", "show", "job", str(job_id)).stdout
        return dict(field.split("=", 1) for field in line.split() if "=" in field)

    def wait_state(self, job_id: int, *states: str, timeout: float = 30) -> str:
        """Poll until the job's JobState is one of `states`; returns it."""
        self._wait(lambda: self.job(job_id)["JobState"] in states, timeout,
                   f"job {job_id} in {'/'.join(states)}")
        return self.job(job_id)["JobState"]

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is pending, running or completing."""
        def live() -> list[str]:
            return self.run("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i").stdout.split()
        if ids := live():
            self.run("scancel", *ids, check=False)  # some may end meanwhile
            self._wait(lambda: not live(), timeout, "every job ended")

    def shim(self, directory: Path) -> Shim:
        """Logging wrappers for the client commands in `directory` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / "calls"
        for command in COMMANDS:
            real = shutil.which(command)
            assert real is not None, f"{command} is not on PATH"
            (directory / command).write_text(
                f'#!/bin/sh\nprintf "%s\\n" "{command} $*" >> "{log}"\nexec "{real}" "$@"\n')
            (directory / command).chmod(0o755)
        return Shim(directory, log)

    def stop(self) -> None:
        """Cancel the jobs, stop the daemons, kill any job process left. Idempotent."""
        if not self.daemons:
            return
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            if all(daemon.poll() is None for daemon in self.daemons):
                self.cancel_all(timeout=10)
        for daemon in reversed(self.daemons):  # slurmd, slurmctld, munged
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self.daemons = []
        self._kill_job_processes()

    @contextlib.contextmanager
    def controller_stopped(self) -> Iterator[None]:
        """slurmctld stopped (SIGSTOP) as a hung controller is: clients time out after
        MessageTimeout (3 s here); it goes on (SIGCONT) at the end."""
        controller = self.daemons[1]
        controller.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            controller.send_signal(signal.SIGCONT)

    def log(self, daemon: str) -> str:
        """What a daemon (munged, slurmctld, slurmd) wrote so far."""
        path = self.logs / daemon
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, *command: str | Path) -> None:
        with open(self.logs / name, "ab") as log:
            self.daemons.append(subprocess.Popen(
                list(map(str, command)), env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    def _idle(self) -> bool:
        for daemon, name in zip(self.daemons, ("munged", "slurmctld", "slurmd"), strict=False):
            if daemon.poll() is not None:
                raise RuntimeError(f"{name} exited with {daemon.returncode}:\n{self.log(name)}")
        state = self.run("sinfo", "-h", "-p", PARTITION, "-o", "%T", check=False).stdout
        return state.strip() == "idle"

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; logs in {self.logs}")
            time.sleep(0.02)

    def _kill_job_processes(self) -> None:
        """SIGKILL what slurmd left: each slurmstepd (it daemonizes) and job process whose
        environment has our SLURM_CONF. Not any process with it: a test may give it to a
        ccd it runs."""
        mark = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                environ = (proc / "environ").read_bytes().split(b"\0")
                if mark in environ and (
                        (proc / "cmdline").read_bytes().startswith(b"slurmstepd")
                        or any(v.startswith(b"SLURM_JOB_ID=") for v in environ)):
                    os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A running cluster in a fresh directory; everything stopped and removed after."""
    # Not pytest's tmp_path: munged wants every directory above its socket open to all,
    # and a Unix socket path has at most 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="ccd-slurm-"))
    directory.chmod(0o755)
    try:
        cluster = Cluster(directory).start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(directory)
