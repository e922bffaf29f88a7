"""Stand-in LSF commands (bsub, bjobs, bkill) for the LSF executor's tests.

LSF cannot be installed here, so these speak the output format IBM documents for LSF 10.1
(see ccd/executors/lsf.py) and nothing more: they are not LSF and prove only that ccd
reads what the documentation says LSF prints. `install(directory)` writes three sh
wrappers into `directory/bin` that log their command line (a `Shim`, as for Slurm) and
run this file; state is one JSON file per job in `directory/jobs`, changed under a lock.

- `bsub [options] < script` takes the options ccd gives (-J -o -cwd -q -W -n -R -M -gpu
  -P, -H to hold) and the script's `#BSUB` lines (the command line wins), refuses an
  unknown queue ("nope: No such queue. Job not submitted.", exit 255), records PEND and
  prints `Job <ID> is submitted to queue <normal>.`. A runner of its own session starts
  the job DELAY seconds later (a held job, PSUSP, waits for `StandIn.release`, LSF's
  bresume), records RUN, runs the script with LSB_JOBID, LSB_QUEUE and LSB_DJOB_NUMPROC
  set, its output appended to the -o file, then DONE or EXIT by its exit status.
- `bjobs [-a] [-noheader] [-o "FIELDS delimiter='C'"] [-J NAME] [ID...]`: fields jobid,
  stat, job_name, pend_reason (`-` when empty); `*` in NAME is a wildcard; without -a
  only unfinished jobs. Nothing found is "No job found" (or "Job <X> is not found") on
  stderr and exit 255, as LSB_BJOBS_CONSISTENT_EXIT_CODE=Y makes it, the stricter form.
- While `StandIn.controller_down()`, bjobs says "LSF is down. Please wait ..." on stderr and
  exits 255 (a real one retries first), as when mbatchd does not answer.
- `bkill [-s SIGNAL] ID...` records EXIT and sends the signal (SIGTERM unless given; LSF
  sends SIGINT, SIGTERM then SIGKILL) to the job's process group.

`StandIn.stop()` kills every job's process group: each runner leads a session that holds
its job, so nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slurm import Shim

COMMANDS = ("bsub", "bjobs", "bkill")
QUEUES = ("normal", "short")
DELAY = 0.2  # seconds from bsub to the job's start
_VALUED = ("-J", "-o", "-cwd", "-q", "-W", "-n", "-R", "-M", "-gpu", "-P", "-s")
_FINISHED = ("DONE", "EXIT")
_REASONS = {"PEND": "New job is waiting for scheduling",
            "PSUSP": "The job was suspended by the user while pending"}


@dataclass(frozen=True)
class StandIn:
    """The stand-in commands installed in `directory`; see the module."""

    directory: Path

    @property
    def shim(self) -> Shim:
        return Shim(self.directory / "bin", self.directory / "calls")

    def job(self, batch_id: str) -> dict[str, Any]:
        """A job's record: stat, reason, name, queue, options, pid, exit."""
        return _load(self.directory, batch_id)

    def release(self, batch_id: str) -> None:
        """Let a held job (PSUSP) go on, as LSF's bresume."""
        with _locked(self.directory):
            job = _load(self.directory, batch_id)
            if job["stat"] == "PSUSP":
                _save(self.directory, job | {"stat": "PEND", "reason": _REASONS["PEND"]})

    @contextlib.contextmanager
    def controller_down(self) -> Iterator[None]:
        """bjobs fails as when LSF's controller does not answer, until the block ends."""
        (self.directory / "down").touch()
        try:
            yield
        finally:
            (self.directory / "down").unlink()

    def stop(self) -> None:
        """SIGKILL every job's runner and what it runs."""
        for path in (self.directory / "jobs").glob("*.json"):
            pid = json.loads(path.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


def install(directory: Path) -> StandIn:
    """Write the commands into `directory/bin` (put it first on PATH: `.shim.env`)."""
    (directory / "bin").mkdir(parents=True)
    (directory / "jobs").mkdir()
    log = directory / "calls"
    for command in COMMANDS:
        path = directory / "bin" / command
        path.write_text(f'#!/bin/sh\nprintf "%s\\n" "{command} $*" >> {shlex.quote(str(log))}\n'
                        f"exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} "
                        f'{shlex.quote(str(directory))} {command} "$@"\n')
        path.chmod(0o755)
    return StandIn(directory)


# -- the commands ----------------------------------------------------------------------------


def bsub(directory: Path, args: list[str]) -> int:
    script = sys.stdin.read()
    heads = [line[len("#BSUB"):] for line in script.splitlines() if line.startswith("#BSUB")]
    options = _options([word for head in heads for word in shlex.split(head)])
    options |= _options(args)
    queue = options.get("-q", ["normal"])[-1]
    if queue not in QUEUES:
        print(f"{queue}: No such queue. Job not submitted.", file=sys.stderr)
        return 255
    with _locked(directory):
        counter = directory / "next"
        batch_id = str(int(counter.read_text()) if counter.exists() else 100)
        counter.write_text(str(int(batch_id) + 1))
        stat = "PSUSP" if "-H" in options else "PEND"
        (directory / "jobs" / f"{batch_id}.sh").write_text(script)
        _save(directory, {"id": batch_id, "name": options.get("-J", ["NONAME"])[-1],
                          "stat": stat, "reason": _REASONS[stat], "queue": queue,
                          "options": options, "cwd": os.getcwd(), "pid": None, "exit": None})
        runner = subprocess.Popen([sys.executable, __file__, str(directory), "run", batch_id],
                                  start_new_session=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _save(directory, _load(directory, batch_id) | {"pid": runner.pid})
    print(f"Job <{batch_id}> is submitted to queue <{queue}>.")
    return 0


def run(directory: Path, batch_id: str) -> int:
    """The runner bsub leaves behind: wait, run the job, record how it ended."""
    time.sleep(DELAY)
    while True:
        with _locked(directory):
            job = _load(directory, batch_id)
            if job["stat"] == "PEND":
                _save(directory, job | {"stat": "RUN", "reason": ""})
                break
        if job["stat"] != "PSUSP":  # killed while pending
            return 0
        time.sleep(0.05)
    options = job["options"]
    env = {**os.environ, "LSB_JOBID": batch_id, "LSB_JOBNAME": job["name"],
           "LSB_QUEUE": job["queue"], "LSB_DJOB_NUMPROC": options.get("-n", ["1"])[-1]}
    out = options.get("-o", [os.devnull])[-1]
    with open(out, "ab") as f:
        status = subprocess.run(["sh", str(directory / "jobs" / f"{batch_id}.sh")], env=env,
                                cwd=options.get("-cwd", [job["cwd"]])[-1], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT).returncode
    with _locked(directory):
        job = _load(directory, batch_id)
        if job["stat"] == "RUN":
            _save(directory, job | {"stat": "DONE" if status == 0 else "EXIT", "exit": status})
    return 0


def bjobs(directory: Path, args: list[str]) -> int:
    if (directory / "down").exists():
        print("LSF is down. Please wait ...", file=sys.stderr)
        return 255
    every, header, fields, delimiter, name, ids = False, True, ["jobid", "stat"], " ", None, []
    words = iter(args)
    for word in words:
        if word == "-a":
            every = True
        elif word == "-noheader":
            header = False
        elif word == "-o":
            spec = next(words)
            if m := re.search(r"delimiter='(.)'", spec):
                delimiter, spec = m.group(1), spec[:m.start()] + spec[m.end():]
            fields = spec.split()
        elif word == "-J":
            name = next(words)
        elif word.isdigit():
            ids.append(word)
        else:
            print(f"{word}: Illegal option.", file=sys.stderr)
            return 255
    unknown = set(fields) - {"jobid", "stat", "job_name", "pend_reason"}
    if unknown:
        print(f"{sorted(unknown)[0]}: Illegal field.", file=sys.stderr)
        return 255
    wanted = None if name is None else re.compile(".*".join(map(re.escape, name.split("*"))))
    jobs = []
    for path in sorted((directory / "jobs").glob("*.json"), key=lambda p: -int(p.stem)):
        job = json.loads(path.read_text())
        if ((not ids or job["id"] in ids) and (wanted is None or wanted.fullmatch(job["name"]))
                and (every or ids or job["stat"] not in _FINISHED)):
            jobs.append(job)
    if not jobs:
        for missing in ids or ([name] if name else []):
            print(f"Job <{missing}> is not found", file=sys.stderr)
        if not ids and not name:
            print("No job found" if every else "No unfinished job found", file=sys.stderr)
        return 255
    columns = {"jobid": "id", "stat": "stat", "job_name": "name", "pend_reason": "reason"}
    if header:
        print(delimiter.join(field.upper() for field in fields))
    for job in jobs:
        print(delimiter.join(str(job[columns[field]] or "-") for field in fields))
    return 0


def bkill(directory: Path, args: list[str]) -> int:
    options = _options([a for a in args if not a.isdigit()])
    sig = signal.Signals[f"SIG{options.get('-s', ['TERM'])[-1]}"]
    status = 0
    for batch_id in (a for a in args if a.isdigit()):
        with _locked(directory):
            path = directory / "jobs" / f"{batch_id}.json"
            job = json.loads(path.read_text()) if path.exists() else None
            if job is None or job["stat"] in _FINISHED:
                print(f"Job <{batch_id}>: " + ("No matching job found" if job is None
                                               else "Job has already finished"),
                      file=sys.stderr)
                status = 255
                continue
            _save(directory, job | {"stat": "EXIT", "reason": "", "exit": 128 + sig})
            if job["pid"]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job["pid"], sig)
        print(f"Job <{batch_id}> is being terminated")
    return status


# -- their state -----------------------------------------------------------------------------


def _options(args: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    words = iter(args)
    for word in words:
        if word in _VALUED:
            out.setdefault(word, []).append(next(words))
        elif word == "-H":
            out[word] = []
        else:
            raise SystemExit(f"{word}: Illegal option. Job not submitted.")
    return out


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _load(directory: Path, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "jobs" / f"{batch_id}.json").read_text())
    return data


def _save(directory: Path, job: dict[str, Any]) -> None:
    path = directory / "jobs" / f"{job['id']}.json"
    path.with_suffix(".tmp").write_text(json.dumps(job))
    path.with_suffix(".tmp").replace(path)


def main(argv: list[str]) -> int:
    directory, command, args = Path(argv[1]), argv[2], argv[3:]
    if command == "run":
        return run(directory, args[0])
    return {"bsub": bsub, "bjobs": bjobs, "bkill": bkill}[command](directory, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
