"""What a run's jobs used, for people and for files: the short forms `ccctl status` shows,
and the rows `ccctl trace` writes (after Nextflow's trace file: one row per job).

Units are in the column names; times are ISO 8601 in UTC; a figure the job's host did not
offer, or a job that did not run, is empty in CSV and null in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

from ccd.model import JobStatus, Trace

FORMATS = ("csv", "json")
# The columns, with what each holds (`ccctl trace --help`, README's Trace section).
FIELDS = {
    "task_id": "the job's position in the workflow, from 1",
    "name": "the job's name",
    "status": "its state: done, failed, cancelled, skipped, ...",
    "exit": "its exit code",
    "attempt": "which attempt the figures are of (retries start again)",
    "host": "where it ran",
    "kind": "local, ssh, slurm, lsf, wsl",
    "start": "when it started (a batch job: when it left the queue), UTC",
    "complete": "when it ended, UTC",
    "realtime_s": "seconds from start to complete",
    "cpu_user_s": "CPU seconds in user mode, its processes together",
    "cpu_system_s": "CPU seconds in the kernel on their behalf",
    "cpu_percent": "(user + system) / realtime x 100: 200 is two cores busy",
    "peak_rss_bytes": "the resident-memory high-water mark of its largest process",
    "peak_rss_sampled": "true when that is the most seen by sampling every second (a lower "
                        "bound), false when the kernel's own figure",
    "bytes_read": "bytes its processes read by system calls (rchar)",
    "bytes_written": "bytes its processes wrote by system calls (wchar)",
}


def rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per job of the API's run JSON, in the workflow's order."""
    out = []
    for i, job in enumerate(jobs, 1):
        t: dict[str, Any] = job.get("trace") or {}
        start, end = job["tstart"], job["tend"]
        real = end - start if start is not None and end is not None else None
        user, system = t.get("cpu_user"), t.get("cpu_system")
        percent = None
        if real and user is not None and system is not None:
            percent = round((user + system) / real * 100, 1)
        out.append({
            "task_id": i, "name": job["name"], "status": job["state"],
            "exit": job["exit_code"], "attempt": job["attempt"], "host": job["host"],
            "kind": job["kind"], "start": _iso(start), "complete": _iso(end),
            "realtime_s": _round(real), "cpu_user_s": _round(user),
            "cpu_system_s": _round(system), "cpu_percent": percent,
            "peak_rss_bytes": t.get("peak_rss"),
            "peak_rss_sampled": t.get("rss_sampled") if t.get("peak_rss") else None,
            "bytes_read": t.get("bytes_read"), "bytes_written": t.get("bytes_written"),
        })
    return out


def render(jobs: list[dict[str, Any]], form: str) -> str:
    """The rows as CSV (a header, then one line per job) or a JSON array."""
    found = rows(jobs)
    if form == "json":
        return json.dumps(found, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv(v) for k, v in row.items()} for row in found)
    return buffer.getvalue()


def cpu_text(status: JobStatus) -> str:
    """CPU seconds (user + system) for a table: `1.02 s`, `3:05` past a minute."""
    t = status.trace
    if t is None or t.cpu_user is None or t.cpu_system is None:
        return ""
    seconds = t.cpu_user + t.cpu_system
    if seconds < 60:
        return f"{seconds:.2f} s"
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02}:{s % 60:02}" if h else f"{m}:{s % 60:02}"


def memory_text(status: JobStatus) -> str:
    """Peak RSS for a table: `112 MB`; `≥112 MB` when sampled (a lower bound)."""
    t: Trace | None = status.trace
    if t is None or t.peak_rss is None:
        return ""
    return ("≥" if t.rss_sampled else "") + size_text(t.peak_rss)


def size_text(n: int) -> str:
    """Bytes in decimal units, three digits at most: 980 kB, 1.2 GB."""
    value, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 999.5 or unit == "TB":
            break
        value /= 1000
    return f"{value:.0f} {unit}" if value >= 10 or unit == "B" else f"{value:.1f} {unit}"


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03}Z"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _csv(value: Any) -> Any:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else value
