"""The baseline ccd's Slurm jobs are measured against: what per-job polling tools do, one
`squeue -j ID` per job still not seen ended, every tick.

usage: python bench/slurm_baseline.py JOBS_JSON TICK OUT_JSON
Submits the jobs of JOBS_JSON ({name: command}) in order, `sbatch --parsable -J bench.NAME
-o /dev/null --wrap COMMAND` each, then starts a sweep every TICK seconds (start to start;
at once if a sweep took longer) that calls `squeue -h -j ID -o %T` once per job not yet
seen ended, one call after the other. A job is seen ended when squeue prints nothing
(without `-t`, squeue lists only pending, running and completing jobs) or a final state;
COMPLETING is not final. Writes the ids, the time.time() each end was seen, the start, the
first job's submission, the end and the sweeps to OUT_JSON.
Deliberately imports nothing but the standard library (no ccd).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

NOT_ENDED = frozenset(("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                       "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT"))


def submit(name: str, command: str) -> str:
    """sbatch one job; its id."""
    out = subprocess.run(["sbatch", "--parsable", "-J", name, "-o", "/dev/null",
                          "--wrap", command], capture_output=True, text=True, check=True)
    return out.stdout.strip().split(";")[0]


def ended(batch_id: str) -> bool:
    """One squeue: has the job left the queue? (An error is "not yet".)"""
    out = subprocess.run(["squeue", "-h", "-j", batch_id, "-o", "%T"], capture_output=True,
                         text=True, check=False)
    return out.returncode == 0 and out.stdout.strip() not in NOT_ENDED


def main() -> None:
    """Submit, poll until every job was seen ended, write the JSON."""
    with open(sys.argv[1], encoding="utf-8") as f:
        jobs: dict[str, str] = json.load(f)
    tick, out = float(sys.argv[2]), sys.argv[3]
    start = time.time()
    ids: dict[str, str] = {}
    first = 0.0
    for name, command in jobs.items():
        ids[name] = submit(f"bench.{name}", command)
        first = first or time.time()
    seen: dict[str, float] = {}
    sweeps = 0
    while len(seen) < len(jobs):
        t0 = time.monotonic()
        for name, batch_id in ids.items():
            if name not in seen and ended(batch_id):
                seen[name] = time.time()
        sweeps += 1
        if len(seen) < len(jobs):
            time.sleep(max(0.0, t0 + tick - time.monotonic()))
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"ids": ids, "seen": seen, "start": start, "first": first,
                   "end": time.time(), "sweeps": sweeps}, f)


if __name__ == "__main__":
    main()
