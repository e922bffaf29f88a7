"""Slurm's dialect for the batch executor (`batch.py`): sbatch, squeue, scontrol, scancel.

As verified against Slurm 22.05 (tests/slurm.py): `sbatch --parsable` prints `ID` (or
`ID;cluster`); `squeue -h -t all -o '%i|%j|%T|%r' --name=A,B` lists pending, running and
recently ended jobs (MinJobAge) of those names, one `id|name|STATE|reason` a line, nothing
for names it does not know; `scontrol -o show job ID` is one line of Key=Value. The
`--json` forms are not used: in 22.05 `squeue --json` ignores its filters.
"""

from __future__ import annotations

import re
import secrets
import shlex
from types import MappingProxyType

from ccd.executors.batch import Queued
from ccd.executors.protocol import Launch

_OPTIONS = {"partition": "--partition", "time": "--time", "nodes": "--nodes",
            "ntasks": "--ntasks", "cpus": "--cpus-per-task", "mem": "--mem",
            "gpus": "--gpus", "gres": "--gres", "account": "--account", "qos": "--qos"}
_SCONTROL = re.compile(r"JobId=(\d+) (?:ArrayJobId=(\d+) ArrayTaskId=(\d+) )?.*?"
                       r"JobName=(.*?) .*?JobState=(\S+)(?: Reason=(\S+))?")
_ARRAY_ID = re.compile(r"(\d+)_(\d+|\[([0-9,\-]+)(?:%\d+)?\])")


def _sbatch(launch: Launch, naming: list[str], work: str, body: str) -> str:
    """sbatch with `body` on its standard input: how it is named and where Slurm's own
    output goes, then the node's directives and its verbatim `sbatch:` options."""
    options = [*naming, f"--chdir={work}", "--parsable"]
    options += [f"{_OPTIONS[field]}={value}" for field, value in launch.job.batch]
    options += launch.job.batch_options
    end = f"CCD_BATCH_{secrets.token_hex(8)}"  # no line of the script can be it
    return f"sbatch {' '.join(map(shlex.quote, options))} <<'{end}'\n{body}{end}\n"


def _tasks(batch_id: str) -> list[str]:
    """A job id as squeue writes it, as the ids of its tasks: an array's pending tasks are
    one line, `12_[3-5,8%2]` -> 12_3, 12_4, 12_5, 12_8."""
    m = _ARRAY_ID.fullmatch(batch_id)
    if m is None or m[3] is None:
        return [batch_id]
    out = []
    for part in m[3].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out += [f"{m[1]}_{i}" for i in range(int(low), int(high or low) + 1)]
    return out


class Slurm:
    kind = "slurm"
    waiting = frozenset(("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
                         "RESV_DEL_HOLD"))
    ended = MappingProxyType({
        "COMPLETED": "", "FAILED": "", "CANCELLED": "cancelled in Slurm",
        "TIMEOUT": "timeout: it reached its Slurm time limit",
        "NODE_FAIL": "node failure: Slurm lost the node it ran on",
        "OUT_OF_MEMORY": "out of memory: Slurm killed it at its memory limit",
        "PREEMPTED": "preempted by Slurm", "BOOT_FAIL": "its node failed to boot",
        "DEADLINE": "Slurm's deadline passed", "SPECIAL_EXIT": "Slurm special exit",
        "REVOKED": "revoked by Slurm",
    })

    def submit(self, launch: Launch, job_dir: str, work: str, body: str) -> str:
        """sbatch with the script on its standard input: the name ccd finds it by, Slurm's
        own output beside the job's (the job's output is the wrapper's log), the node's
        directives, then its verbatim `sbatch:` options."""
        from ccd.executors.batch import job_name

        return _sbatch(launch, [f"--job-name={job_name(launch)}",
                                f"--output={job_dir}/batch.out"], work, body)

    def submit_array(self, launch: Launch, out_dir: str, work: str, body: str, tasks: int,
                     throttle: int | None) -> str:
        """One sbatch for the instances of a sweep node: `--array=0-(N-1)[%throttle]`,
        named after the node; the script picks its instance by SLURM_ARRAY_TASK_ID."""
        from ccd.executors.batch import job_name

        array = f"0-{tasks - 1}" + (f"%{throttle}" if throttle else "")
        return _sbatch(launch, [f"--job-name={job_name(launch, '0_0')}", f"--array={array}",
                                f"--output={out_dir}/%x-%A_%a.batch.out"], work, body)

    def submitted(self, status: int, out: str, err: str) -> str | None:
        batch_id = out.strip().split(";")[0]
        return batch_id if status == 0 and batch_id.isdigit() else None

    def error(self, err: str) -> str:
        return " ".join(err.split()).replace("sbatch: error: ", "")

    def query(self, names: list[str]) -> str:
        return f"squeue -h -t all -o '%i|%j|%T|%r' --name={shlex.quote(','.join(names))}"

    def parse(self, out: str) -> tuple[dict[str, Queued], dict[str, str]]:
        by_id: dict[str, Queued] = {}
        by_name: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) == 4 and (parts[0].isdigit() or _ARRAY_ID.fullmatch(parts[0])):
                batch_id, name, state, reason = parts
            elif (m := _SCONTROL.match(line.strip())) is not None:
                batch_id = f"{m[2]}_{m[3]}" if m[2] else m[1]  # an array's task: ID_TASK
                name, state, reason = m[4], m[5], m[6]
            else:
                continue
            queued = Queued(state, "" if reason in (None, "None") else reason)
            for one in _tasks(batch_id):
                by_id[one] = queued
            by_name.setdefault(name, batch_id)  # the newest is listed first
        return by_id, by_name

    def lookup(self, batch_id: str) -> str:
        return f"scontrol -o show job {shlex.quote(batch_id)}"

    def cancel(self, batch_id: str, force: bool) -> str:
        return f"scancel {'--signal=KILL --full ' if force else ''}{shlex.quote(batch_id)}"

    def directives(self, script_head: list[str]) -> list[str]:
        return [line for line in script_head if line.startswith("#SBATCH")]
