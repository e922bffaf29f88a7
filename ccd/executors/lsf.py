"""IBM Spectrum LSF's dialect for the batch executor (`batch.py`): bsub, bjobs, bkill.

Untested against a real LSF (none can be installed here): written to IBM's documentation
for LSF 10.1 and tested against stand-in commands that speak the documented output
(tests/lsf.py). What it relies on:

- `bsub [options] < script` reads the batch script, `#BSUB` lines included, from its
  standard input and prints `Job <ID> is submitted to queue <NAME>.` (only `Job <ID> is
  submitted` is relied on: the rest varies, "to default queue"); options on the command
  line win over `#BSUB` lines. A refused job prints why on stderr ("nope: No such queue.
  Job not submitted."). Without `-o`, LSF mails the output: always given.
  https://www.ibm.com/support/knowledgecenter/en/SSWRJV_10.1.0/lsf_command_ref/bsub.zz4category.description.1.html
- `bjobs -a -noheader -o "jobid stat job_name pend_reason delimiter='|'" -J NAME` lists the
  user's jobs of that name (`*` a wildcard), recently finished ones too (`-a`), one
  `id|STAT|name|reason` a line, a field without a value as `-`; a field given without a
  width is not truncated. pend_reason is last as the only field that may hold anything.
  https://www.ibm.com/docs/en/SSWRJV_10.1.0/lsf_command_ref/bjobs.o.1.html,
  https://www.ibm.com/docs/SSWRJV_10.1.0/lsf_command_ref/bjobs.noheader.1.html
- No job found is "No job found" / "Job <X> is not found" on stderr, with exit status 0
  or 255 as the cluster's LSB_BJOBS_CONSISTENT_EXIT_CODE says: the query turns those
  into 0, so that a failing bjobs means a controller that does not answer.
  https://www.ibm.com/support/knowledgecenter/SSWRJV_10.1.0/lsf_config_ref/lsf.conf.lsb_bjobs_consistent_exit_code.5.html
- States (https://www.hpc.dtu.dk/lsf931/api_ref/group__job__states.html): waiting are
  PEND, PSUSP (held: `bsub -H`, or suspended while pending), WAIT (a chunk job's turn)
  and PROV (its host is being woken); DONE (exit 0) and EXIT (non-zero, or killed) have
  ended. Any other state counts as running: RUN, USUSP and SSUSP (suspended after it
  started), UNKWN (LSF lost the job's host, where it may still run) and ZOMBI (killed
  while its host was unreachable; it becomes EXIT when LSF hears of it).
- `bkill ID` sends SIGINT, SIGTERM then SIGKILL; `bkill -s KILL ID` SIGKILL at once.
- bsub reads `%J` and `%I` in the -o and -cwd paths as the job's id and index: a `%` in
  the state directory's path (or an SSH host's workdir) would be rewritten. Not escaped.

Node fields become: partition `-q`, time `-W` ([hours:]minutes, as LSF reads it), ntasks
`-n`, cpus `-n` with `-R "span[hosts=1]"` (a task's CPUs are on one host), mem `-M` and
`-R "rusage[mem=...]"` (the limit and the reservation, as Slurm's --mem is both; in the
cluster's unit unless written with one), gpus `-gpu "num=N"`, account `-P` (LSF's
project), nodes: 1 `-R "span[hosts=1]"`. LSF has no equivalent of gres, of qos (an LSF
service class, `-sla`, is another thing), of several nodes (LSF counts slots, not hosts)
or of ntasks with cpus: such a job fails at submission with a message that says to write
`bsub:` options instead.
"""

from __future__ import annotations

import re
import secrets
import shlex
from types import MappingProxyType

from ccd.executors.batch import Queued
from ccd.executors.protocol import Launch

_FORMAT = "jobid stat job_name pend_reason delimiter='|'"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
_NOT_FOUND = ("No job found", "No unfinished job found", "is not found")
_UNSUPPORTED = {
    "gres": "LSF has no generic resources by that name",
    "qos": "LSF has no quality of service (a service class, -sla, is another thing)",
}


class Lsf:
    kind = "lsf"
    waiting = frozenset(("PEND", "PSUSP", "WAIT", "PROV"))
    ended = MappingProxyType({"DONE": "", "EXIT": ""})

    def submit(self, launch: Launch, job_dir: str, work: str, body: str) -> str:
        """bsub with the script on its standard input: the name ccd finds it by, LSF's own
        output beside the job's, the node's directives, then its verbatim `bsub:` options;
        or, for a directive LSF has no word for, a refusal saying so."""
        from ccd.executors.batch import job_name

        try:
            directives = _directives(dict(launch.job.batch))
        except ValueError as e:
            return f"printf '%s\\n' {shlex.quote(str(e))} >&2\nexit 1\n"
        options = ["-J", job_name(launch), "-o", f"{job_dir}/batch.out", "-cwd", work]
        options += directives + list(launch.job.batch_options)
        end = f"CCD_BATCH_{secrets.token_hex(8)}"  # no line of the script can be it
        return f"bsub {' '.join(map(shlex.quote, options))} <<'{end}'\n{body}{end}\n"

    def submitted(self, status: int, out: str, err: str) -> str | None:
        m = _SUBMITTED.search(out)
        return m.group(1) if status == 0 and m else None

    def error(self, err: str) -> str:
        return " ".join(err.split())

    def query(self, names: list[str]) -> str:
        """One bjobs for all, by their common prefix and a wildcard (the names are
        `ccd.<run>.<job>`, safe names without `*`): other jobs it lists go unasked for."""
        low, high = min(names), max(names)
        common = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b),
                      len(low))
        pattern = low if low == high else low[:common] + "*"
        return _bjobs(f"-J {shlex.quote(pattern)}")

    def parse(self, out: str) -> tuple[dict[str, Queued], dict[str, str]]:
        by_id: dict[str, Queued] = {}
        by_name: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) != 4 or not parts[0].isdigit():
                continue
            batch_id, state, name, reason = parts
            by_id[batch_id] = Queued(state, "" if reason.strip() == "-" else reason.strip())
            if int(batch_id) > int(by_name.get(name, "0")):  # the newest, whatever the order
                by_name[name] = batch_id
        return by_id, by_name

    def lookup(self, batch_id: str) -> str:
        return _bjobs(shlex.quote(batch_id))

    def submit_array(self, launch: Launch, out_dir: str, work: str, body: str, tasks: int,
                     throttle: int | None) -> str | None:
        return None  # LSF's arrays are not used: one bsub per instance

    def cancel(self, batch_id: str, force: bool) -> str:
        return f"bkill {'-s KILL ' if force else ''}{shlex.quote(batch_id)}"

    def directives(self, script_head: list[str]) -> list[str]:
        return [line for line in script_head if line.startswith("#BSUB")]


def _bjobs(selection: str) -> str:
    """bjobs for `selection`, all states, in our format; "no job found" is an answer."""
    found = "|".join(f"*{shlex.quote(text)}*" for text in _NOT_FOUND)
    return (f"{{ out=$(bjobs -a -noheader -o {shlex.quote(_FORMAT)} {selection} 2>&1); "
            f's=$?; printf "%s\\n" "$out"; case $out in {found}) s=0;; esac; '
            '[ "$s" -eq 0 ]; }')


def _directives(batch: dict[str, str]) -> list[str]:
    """bsub options for the node's batch fields; ValueError for one LSF cannot take."""
    for field, why in _UNSUPPORTED.items():
        if field in batch:
            raise ValueError(f"{field}: {why}; give bsub options instead (bsub: [...])")
    if batch.get("nodes", "1").strip() != "1":
        raise ValueError("nodes: LSF counts slots, not hosts; give ntasks and bsub "
                         "options instead (bsub: [-R, 'span[ptile=N]'])")
    if "ntasks" in batch and "cpus" in batch:
        raise ValueError("ntasks and cpus: LSF's -n counts slots; give one of them, and "
                         "bsub options for the rest (bsub: [...])")
    out = []
    if "partition" in batch:
        out += ["-q", batch["partition"]]
    if "time" in batch:
        out += ["-W", batch["time"]]
    if "ntasks" in batch:
        out += ["-n", batch["ntasks"]]
    if "cpus" in batch:
        out += ["-n", batch["cpus"]]
    if "cpus" in batch or "nodes" in batch:
        out += ["-R", "span[hosts=1]"]
    if "mem" in batch:
        out += ["-M", batch["mem"], "-R", f"rusage[mem={batch['mem']}]"]
    if "gpus" in batch:
        out += ["-gpu", f"num={batch['gpus']}"]
    if "account" in batch:
        out += ["-P", batch["account"]]
    return out
