"""The paper's `save_with_state`: the workflow as YAML with every job's current state.

Written by hand, not through a YAML dumper: dumping 10,000 nodes with ruamel takes
seconds. Strings are JSON-quoted, which YAML reads as double-quoted scalars; the output
loads back in ccd and in cloudmesh-cc.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ccd.model import JobSpec, JobStatus, WorkflowSpec

_FIELDS = ("user", "host", "kind", "label", "script", "exec", "venv", "shape", "style", "cwd")


def with_state(spec: WorkflowSpec, statuses: dict[str, JobStatus] | None = None) -> str:
    """YAML text of the workflow; with statuses, each node carries status and progress."""
    q = json.dumps
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
            limit = f"\n    max_jobs: {h.max_jobs}" if h.max_jobs else " {}"
            out.append(f"  {q(h.name)}:{limit}")
    return "\n".join(out) + "\n"


def _extensions(job: JobSpec) -> list[str]:
    out = []
    if job.timeout is not None:
        out.append(f"      timeout: {job.timeout:g}")
    if job.retries:
        out.append(f"      retries: {job.retries}")
    if job.env:
        out.append("      env:")
        out.extend(f"        {k}: {json.dumps(v)}" for k, v in job.env)
    if job.outputs:
        out.append("      outputs:")
        out.extend(f"        - {json.dumps(pattern)}" for pattern in job.outputs)
    return out


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
