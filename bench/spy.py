"""py-spy on the daemon during a run, and what its samples say: what the event loop ran."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PY_SPY = str(BIN / "py-spy") if (BIN / "py-spy").exists() else shutil.which("py-spy")
RATE = 100  # samples per second


class Recording:
    """`py-spy record` of one process into `out` (raw format, one line per thread stack)."""

    def __init__(self, pid: int, out: Path) -> None:
        if PY_SPY is None:
            raise FileNotFoundError("py-spy is not installed")
        self.out = out
        self.proc = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
             "--threads", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started = time.monotonic()
        self.seconds = float("nan")

    def stop(self) -> None:
        """End the recording; py-spy writes its file on SIGINT."""
        if self.proc.poll() is None:
            self.seconds = time.monotonic() - self.started
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Profile:
    """py-spy's samples of the daemon's event-loop thread (MainThread): the thread whose
    time every API request and every SSE client waits for."""

    seconds: float  # how long py-spy recorded
    samples: int = 0  # of the event loop (idle waits are not sampled)
    tasks: list[tuple[str, float]] = field(default_factory=list)  # what it ran, % of samples
    functions: list[tuple[str, float]] = field(default_factory=list)  # leaf frames, %

    @property
    def busy(self) -> float:
        """The event loop's busy share of the recording."""
        return self.samples / (RATE * self.seconds) if self.seconds > 0 else float("nan")


def read_profile(raw: Path, seconds: float, n: int = 6) -> Profile:
    """Read py-spy's raw output (`thread;frame;...;frame count` a line). A sample's task is
    the first frame under asyncio's Handle._run that is not anyio's plumbing."""
    tasks: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if not count.isdigit() or "MainThread" not in frames[0]:
            continue
        runs = [i for i, f in enumerate(frames) if f.startswith("Handle._run (")]
        task = next((f for f in frames[runs[-1] + 1:] if "anyio/" not in f),
                    "(other)") if runs else "(stack not resolved)"
        tasks[task] += int(count)
        leaves[frames[-1]] += int(count)
    out = Profile(seconds, sum(tasks.values()))
    total = out.samples or 1
    out.tasks = [(t, 100 * k / total) for t, k in tasks.most_common(n)]
    out.functions = [(f, 100 * k / total) for f, k in leaves.most_common(n)]
    return out
