"""The baseline ccd is measured against: the least an asyncio program must do to run a DAG.

usage: python bench/baseline.py DAG.json
where DAG.json is {"cwd": DIR, "jobs": {name: command or null}, "edges": [[parent, child]]}.
Every command runs as `sh -c COMMAND` in DIR as soon as all its parents have finished, with
no concurrency limit; a null command is a join node that only waits. Exit 1 if a job failed.
Deliberately imports nothing but the standard library (no ccd).
"""

from __future__ import annotations

import asyncio
import json
import sys


async def run_dag(cwd: str, jobs: dict[str, str | None], edges: list[list[str]]) -> int:
    """Run every job after its parents; returns how many commands exited non-zero."""
    parents: dict[str, list[str]] = {name: [] for name in jobs}
    for a, b in edges:
        parents[b].append(a)
    tasks: dict[str, asyncio.Task[int]] = {}

    async def one(name: str) -> int:
        failed = sum(await asyncio.gather(*(tasks[p] for p in parents[name])))
        cmd = jobs[name]
        if cmd is None or failed:
            return failed
        proc = await asyncio.create_subprocess_exec("sh", "-c", cmd, cwd=cwd)
        return int(await proc.wait() != 0)

    for name in jobs:
        tasks[name] = asyncio.create_task(one(name))
    return max(await asyncio.gather(*tasks.values()), default=0)


def main() -> None:
    """Read the DAG file and run it."""
    with open(sys.argv[1], encoding="utf-8") as f:
        dag = json.load(f)
    failed = asyncio.run(run_dag(dag["cwd"], dag["jobs"], dag["edges"]))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
