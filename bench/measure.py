"""Time one command end to end and read that child's own peak RSS (os.wait4); repeated
samples of one command (Series)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One timed run of a command."""

    wall: float  # seconds, from just before the spawn to the reaping of the child
    maxrss_mb: float  # the child's peak RSS (its largest waited-for descendant included)
    rc: int  # exit code; negative: killed by that signal
    cpu: float = 0.0  # user+system seconds of the child and its waited-for descendants
    # The kernel starts a child's mark at its parent's RSS (the spawn shares or copies this
    # process's memory until exec) and keeps it across exec: a figure not above this
    # process's own peak says only that the command stayed at most that large.
    at_most: bool = False


@dataclass
class Series:
    """Repeated samples of one command."""

    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def wall(self) -> float:
        """Median wall time in seconds (NaN when there is no good sample)."""
        good = [s.wall for s in self.samples if s.rc == 0]
        return statistics.median(good) if good else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        """(min, max) wall time of the good samples."""
        good = [s.wall for s in self.samples if s.rc == 0]
        return (min(good), max(good)) if good else (float("nan"), float("nan"))

    @property
    def rss(self) -> float:
        """Largest peak RSS over the samples, MB."""
        return max((s.maxrss_mb for s in self.samples), default=float("nan"))

    @property
    def rss_at_most(self) -> bool:
        """Is `rss` only an upper bound (see Sample.at_most)?"""
        return all(s.at_most for s in self.samples)

    def rss_text(self, width: int) -> str:
        """`rss` for the table: `<=N` when it is only a bound."""
        return f"{'<=' if self.rss_at_most else ''}{self.rss:.1f}".rjust(width)

    def add(self, sample: Sample, what: str) -> None:
        """Keep a sample; a non-zero exit is recorded as a failure (its time is not used)."""
        self.samples.append(sample)
        if sample.rc != 0:
            self.failures.append(f"{what}: exit {sample.rc}")

    def to_json(self) -> dict[str, object]:
        """Summary and raw samples."""
        return {"median_wall_s": num(self.wall), "min_max_wall_s": [num(x) for x in self.spread],
                "peak_rss_mb": num(self.rss), "peak_rss_at_most": self.rss_at_most,
                "failures": self.failures,
                "samples": [asdict(s) for s in self.samples]}


def num(x: float) -> float | None:
    """Rounded for JSON; NaN (no good sample) as None, null in JSON."""
    return None if x != x else round(x, 6)


PYCACHE = Path(__file__).resolve().parent.parent / ".bench" / "pycache"


def bench_env(**extra: str) -> dict[str, str]:
    """This process's environment for a timed command, with Python's bytecode cached (under
    .bench/pycache) even where PYTHONDONTWRITEBYTECODE is set, as on the shared development
    machines: an installed ccd has its bytecode, and compiling ~60 modules on every start
    (~0.1 s) would be measured as ccd's start-up."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(PYCACHE), **extra}


def timed(cmd: list[str], *, cwd: Path | None = None, stdout: Path | None = None,
          timeout: float = 120.0, env: dict[str, str] | None = None) -> Sample:
    """Run `cmd` with stdin/stdout/stderr on /dev/null (stdout to a file if given), in
    `env` if given (else `bench_env()`).

    The child leads its own process group; on a timeout or an interrupt the whole group is
    killed before this returns or raises, so nothing it started directly is left running.
    """
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=bench_env() if env is None else env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            _kill_group(proc.pid)
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    _kill_group(proc.pid)  # anything left in its group (there should be nothing)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Sample(wall, usage.ru_maxrss / 1024, proc.returncode,
                  usage.ru_utime + usage.ru_stime, at_most=usage.ru_maxrss <= own)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_strays(marker: str) -> int:
    """SIGKILL processes of ours whose command line mentions `marker` (a bench temp dir);
    ccd starts each job in its own session, so its process group does not hold them.
    Returns how many were found."""
    found = 0
    me = os.getuid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != me:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            os.kill(int(entry.name), signal.SIGKILL)
            found += 1
        except (OSError, ValueError):
            continue
    return found


def fs_probe(directory: Path, n: int = 100) -> dict[str, float]:
    """Mean ms per mkdir, per new-file creation and per `sh -c true` spawn+wait in
    `directory`: the raw costs every job pays, which vary a lot on this machine. Its files
    stay (in `directory`, removed with the bench's tree): deleting them would slow the
    creates that follow (see `settle`)."""
    probe = directory / f"fs-probe-{time.monotonic_ns()}"
    probe.mkdir(parents=True)
    t0 = time.perf_counter()
    for i in range(n):
        os.mkdir(probe / f"d{i}")
    t1 = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / f"d{i}" / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    t2 = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "true"], os.environ)
        os.waitpid(pid, 0)
    t3 = time.perf_counter()
    return {"mkdir_ms": (t1 - t0) * 1e3 / n, "create_ms": (t2 - t1) * 1e3 / n,
            "sh_spawn_wait_ms": (t3 - t2) * 1e3 / n}


def bench_tree(parent: Path, prefix: str) -> Path:
    """A new directory for one bench's files under `parent`, placed away from files deleted
    in the last minutes (the previous bench's, above all): on this machine's ext4 (no
    journal) a new inode skips every free one deleted in the last 60-360 s of its block
    group, so a file create there costs 0.1-0.6 ms instead of 0.02 ms, and ccd makes three
    files a job where the floor makes none. `parent` is marked `T` (chattr +T): its
    subdirectories are spread over the block groups like top-level ones, from a hash of
    their name; a place where a create is slow is given up for another name (at most
    PLACES), and `settle` waits if none is quiet. Elsewhere (another file system, no
    chattr) this is one directory, as before."""
    parent.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        subprocess.run(["chattr", "+T", str(parent)], capture_output=True, timeout=10)
    for _ in range(PLACES):
        tree = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        os.sync()
        if fs_probe(tree, 50)["create_ms"] <= SETTLED_MS:
            break
        shutil.rmtree(tree)
    return tree


PLACES = 8
SETTLED_MS = 0.06  # a file create at most this: the disk is not in a slow phase
SETTLE_FOR = 120.0  # seconds to wait at most


def settle(directory: Path, say: Callable[[str], None]) -> dict[str, float]:
    """Wait (at most SETTLE_FOR) until a file create in `directory` is cheap again; the last
    probe. On an ext4 without a journal (this machine's) a new inode skips every free one
    deleted in the last 60 s (300 s while its block is unwritten): after a big delete (the
    previous bench's files) each create costs 0.1-0.6 ms instead of 0.02 ms, for a minute.
    ccd makes three files a job and the floor none, so a bench started then measures the
    disk's aftermath, not ccd. Synced between probes so the deleted inodes' blocks are
    written and only the 60 s apply."""
    waited = 0.0
    while True:
        os.sync()
        costs = fs_probe(directory)
        if costs["create_ms"] <= SETTLED_MS or waited >= SETTLE_FOR:
            costs["settle_wait_s"] = waited
            return costs
        if waited == 0:
            say(f"  the disk is slow after recent deletes (a file create "
                f"{costs['create_ms']:.2f} ms): waiting up to {SETTLE_FOR:.0f} s for it")
        time.sleep(10)
        waited += 10
