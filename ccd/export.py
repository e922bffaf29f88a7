"""The paper's `save_with_state`: the workflow as YAML with every job's current state.

Written by hand, not through a YAML dumper: dumping 10,000 nodes with ruamel takes
seconds. Strings are JSON-quoted, which YAML reads as double-quoted scalars, except for
characters past U+FFFF: JSON writes them as surrogate pairs, which YAML refuses, so they
become YAML's own \\U escape. The output loads back in ccd and in cloudmesh-cc.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from json.encoder import encode_basestring_ascii
from pathlib import Path

from ccd.model import JobSpec, JobState, JobStatus, NotifySpec, Trigger, WorkflowSpec

_FIELDS = ("user", "host", "kind", "label", "script", "exec", "venv", "shape", "style", "cwd")
_HOST_FIELDS = ("hostname", "port", "user", "identity", "known_hosts", "workdir", "max_jobs",
                "max_sessions", "poll")
# An escape in JSON's output (every backslash we write is in a JSON string); groups 1 and 2
# if it is a surrogate pair. Matching every escape, left to right, keeps an escaped
# backslash followed by "ud83d" from reading as one.
_ESCAPE = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\.")


# json.dumps of a str, without json.dumps' own layers (~1.5 us a call, 16 calls a job:
# `ccctl run` writes this at a run's start and end).
_q = encode_basestring_ascii


def with_state(spec: WorkflowSpec, statuses: dict[str, JobStatus] | None = None,
               prints: dict[str, str] | None = None) -> str:
    """YAML text of the workflow; with statuses, each node carries status and progress,
    and each done one its fingerprint from `prints` (so loading it again keeps it done)."""
    q = _q
    out = ["workflow:", "  nodes:"]
    for name, job in spec.jobs.items():
        out.append(f"    {q(name)}:")
        out.append(f"      name: {q(name)}")
        for field in _FIELDS:
            value = getattr(job, field)
            if value is not None:
                out.append(f"      {field}: {q(value)}")
        status = statuses.get(name) if statuses else None
        out.append(f"      status: {q(status.state.value if status else job.status or 'ready')}")
        out.append(f"      progress: {status.progress if status else job.progress}")
        if status and status.state is JobState.DONE and prints and name in prints:
            out.append(f"      fingerprint: {q(prints[name])}")
        out.extend(_extensions(job))
    out.append("  dependencies:")
    out.extend(f"    - {q(f'{a},{b}')}" for a, b in spec.edges)
    if not spec.edges:
        out[-1] += " []"
    if spec.files:
        out.append("files:")
        out.extend(f"  - {q(path)}" for path in spec.files)
    if spec.colors:
        out += ["colors:", "  status:"]
        out.extend(f"    {q(k)}: {q(v)}" for k, v in spec.colors.items())
    if spec.hosts:
        out.append("hosts:")
        for h in spec.hosts.values():
            fields = [f"\n    {k}: {q(v) if isinstance(v, str) else v}"
                      for k in _HOST_FIELDS if (v := getattr(h, k)) is not None]
            out.append(f"  {q(h.name)}:{''.join(fields) or ' {}'}")
    if spec.notify:
        out.append("notify:")
        for n in spec.notify:
            out.extend(_notifier(n))
    return _yaml_escapes("\n".join(out) + "\n")


def _extensions(job: JobSpec) -> list[str]:
    out = []
    if job.timeout is not None:
        out.append(f"      timeout: {job.timeout:g}")
    if job.retries:
        out.append(f"      retries: {job.retries}")
    if job.trigger is not Trigger.ALL_SUCCESS:
        out.append(f"      trigger: {job.trigger.value}")
    if job.repeat_until is not None and not job.params:
        out.append(f"      repeat: {{until: {json.dumps(job.repeat_until)}, "
                   f"max: {job.repeat_max}}}")
    if job.when is not None and not job.params:  # an instance's would read its parameters,
        out.append(f"      when: {json.dumps(job.when)}")  # which plain nodes do not have
    if job.env:
        out.append("      env:")
        out.extend(f"        {k}: {json.dumps(v)}" for k, v in job.env)
    if job.outputs:
        out.append("      outputs:")
        out.extend(f"        - {json.dumps(pattern)}" for pattern in job.outputs)
    if job.parameters:
        out.append("      parameters:")
        out.extend(f"        {k}: {json.dumps(v)}" for k, v in job.parameters)
    out.extend(f"      {field}: {json.dumps(value)}" for field, value in job.batch)
    if job.batch_options:
        out.append(f"      {'bsub' if job.kind == 'lsf' else 'sbatch'}:")
        out.extend(f"        - {json.dumps(option)}" for option in job.batch_options)
    return out


def _notifier(n: NotifySpec) -> list[str]:
    value = "true" if n.kind == "desktop" else json.dumps(n.target[0]) \
        if n.kind != "command" else f"[{', '.join(json.dumps(a) for a in n.target)}]"
    out = [f"  - {n.kind}: {value}"]
    default = NotifySpec(n.kind)
    if n.on != default.on:
        out.append(f"    on: [{', '.join(s.value for s in n.on)}]")
    if n.timeout != default.timeout:
        out.append(f"    timeout: {n.timeout:g}")
    return out


def _yaml_escapes(text: str) -> str:
    """JSON-quoted text with each surrogate pair turned into YAML's \\U escape."""
    return _ESCAPE.sub(_yaml_escape, text) if "\\ud" in text else text


def _yaml_escape(escape: re.Match[str]) -> str:
    if escape[1] is None:
        return escape[0]
    high, low = int(escape[1], 16), int(escape[2], 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
