"""Carry on after a fix: what each job is (its fingerprint) and what a new run of an edited
workflow keeps from an earlier run of it.

A job's fingerprint is a digest of what decides what it computes, after sweeps are
expanded: its script's path and bytes, exec, venv, cwd, env, outputs, a notebook's
parameters, a sweep instance's values, its repeat rule, and its parents' fingerprints.
Where it runs (kind, host, user, batch directives) and how it is shown, retried or gated
(label, shape, style, timeout, retries, trigger, when) are left out: moving a finished
two-day job to another host or raising its timeout does not make its result stale. The
workflow's other `files:` are not part of it either: ccd cannot know which job reads
which file (Snakemake and Nextflow hash only declared inputs); `--new` runs everything.

A job is kept when it ended done before, its fingerprint is unchanged and none of its
ancestors runs again; every other job runs, with the reason said in one phrase
(`changed: script`, `upstream changed`, `failed before`, `new job`, ...).

Pure but for reading the scripts; a fingerprint is stored as text: the digest, then
`part=digest` for each part the job has, so a later run can say which part changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ccd import dag
from ccd.model import JobSpec, JobState, JobStatus, WorkflowSpec

_PART = 12  # hex digits of a part's digest: enough to tell parts apart, short in the store
_WHOLE = 32  # hex digits of the whole digest: 128 bits decide whether a job is kept
AGAIN = "runs again: "  # how the message of a job that runs again starts


@dataclass(frozen=True, slots=True)
class Before:
    """A job of the run being carried on: how it ended and what it was."""

    state: JobState
    fingerprint: str | None  # None: not known (a run made before ccd kept them)


def fingerprints(spec: WorkflowSpec, files: Mapping[str, Path]) -> dict[str, str]:
    """Each job's fingerprint, its script read from `files` (a run's files by their path
    in its working copy, see ccd.workdir) or where it is if absolute; a script that cannot
    be read counts as missing."""
    parents = dag.parents_of(spec.jobs, spec.edges)
    scripts: dict[str, bytes] = {}  # a sweep's instances share one script: read it once
    out: dict[str, str] = {}
    for name in dag.topological_order(list(spec.jobs), spec.edges):
        job = spec.jobs[name]
        if job.script is not None and job.script not in scripts:
            scripts[job.script] = _read(job.script, files)
        parts = _parts(job, scripts)
        whole = hashlib.sha256()
        for part, digest in parts:
            whole.update(f"{part}={digest}\n".encode())
        for digest in sorted(out[p].split(" ", 1)[0] for p in parents[name]):
            whole.update(f"parent={digest}\n".encode())
        out[name] = " ".join((whole.hexdigest()[:_WHOLE], *(f"{p}={d}" for p, d in parts)))
    return out


def plan(spec: WorkflowSpec, prints: Mapping[str, str], before: Mapping[str, Before]
         ) -> dict[str, str]:
    """Why each job of `spec` runs again, "" for a job that is kept."""
    parents = dag.parents_of(spec.jobs, spec.edges)
    why: dict[str, str] = {}
    for name in dag.topological_order(list(spec.jobs), spec.edges):
        old, new = before.get(name), prints[name]
        if old is None:
            why[name] = "new job"
        elif old.fingerprint is not None and (changed := _changed(old.fingerprint, new)):
            why[name] = "changed: " + ", ".join(changed)
        elif old.state is not JobState.DONE:
            why[name] = f"{old.state.value} before" if old.state.final else "not done before"
        elif old.fingerprint is None:
            why[name] = "no record of what it was (run made by an older ccd)"
        elif old.fingerprint.split(" ", 1)[0] != new.split(" ", 1)[0]:
            why[name] = "upstream changed"
        elif any(why[p] for p in parents[name]):
            why[name] = "upstream runs again"
        else:
            why[name] = ""
    return why


def compare(spec: WorkflowSpec, files: Mapping[str, Path], statuses: Mapping[str, JobStatus],
            before: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The fingerprints of `spec`'s jobs (see `fingerprints`), and why each runs again
    (see `plan`) after jobs that ended as `statuses` say and were what `before` says."""
    prints = fingerprints(spec, files)
    return prints, plan(spec, prints, {name: Before(s.state, before.get(name))
                                       for name, s in statuses.items()})


def given(spec: WorkflowSpec, statuses: Mapping[str, JobStatus], why: Mapping[str, str],
          source: str) -> dict[str, JobStatus]:
    """The jobs of a new run of `spec` as they start: the kept ones done (their times and
    exit codes as they were in `source`), the others ready, their message saying why they
    run again."""
    out = {}
    for name, reason in why.items():
        s = statuses.get(name)
        if s is not None and not reason:
            out[name] = JobStatus(name, JobState.DONE, 100, s.host, s.pid, s.exit_code,
                                  s.tstart, s.tend, s.modified, f"kept from {source}",
                                  s.attempt)
        else:
            out[name] = JobStatus(name, host=spec.jobs[name].host, message=AGAIN + reason)
    return out


def summary(why: Mapping[str, str], limit: int = 20) -> list[str]:
    """Lines that say what is kept and why the others run, for a person."""
    kept_jobs = [n for n, reason in why.items() if not reason]
    again = [(n, reason) for n, reason in why.items() if reason]
    lines = [f"keeps {len(kept_jobs)} done job(s), unchanged: {_names(kept_jobs, limit)}"
             if kept_jobs else "keeps no job"]
    lines += [f"runs again: {n} ({reason})" for n, reason in again[:limit]]
    if len(again) > limit:
        lines.append(f"runs again: {len(again) - limit} more")
    return lines


def _names(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _parts(job: JobSpec, scripts: Mapping[str, bytes]) -> list[tuple[str, str]]:
    values: list[tuple[str, object]] = [
        ("exec", job.exec), ("venv", job.venv), ("cwd", job.cwd),
        ("env", dict(job.env) or None), ("outputs", list(job.outputs) or None),
        ("parameters", dict(job.parameters) or None), ("sweep", dict(job.params) or None),
        ("repeat", [job.repeat_until, job.repeat_max] if job.repeat_until else None),
    ]
    parts = [(part, _digest(json.dumps(value, sort_keys=True).encode()))
             for part, value in values if value is not None]
    if job.script is not None:
        parts.insert(0, ("script", _digest(job.script.encode() + b"\0" + scripts[job.script])))
    return parts


def _read(script: str, files: Mapping[str, Path]) -> bytes:
    path = PurePosixPath(script)
    try:
        if path.is_absolute():
            return Path(path).read_bytes()
        return files[path.as_posix()].read_bytes()
    except (OSError, KeyError):
        return b"\0missing"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:_PART]


def _changed(old: str, new: str) -> list[str]:
    a, b = dict(_split(old)), dict(_split(new))
    return [part for part in dict.fromkeys([*a, *b]) if a.get(part) != b.get(part)]


def _split(fingerprint: str) -> Iterable[tuple[str, str]]:
    for item in fingerprint.split(" ")[1:]:
        part, _, digest = item.partition("=")
        yield part, digest
