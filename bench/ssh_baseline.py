"""The baseline ccd's SSH jobs are measured against: what cloudmesh-cc does, one OpenSSH
`ssh` client process (a new connection, key exchange and login) per job.

usage: python bench/ssh_baseline.py SSH_CONFIG HOST JOBS PARALLEL COMMAND
Runs `ssh -F SSH_CONFIG -o BatchMode=yes HOST COMMAND` JOBS times, at most PARALLEL at once,
its output discarded. Exit 1 if one failed. Deliberately imports nothing but the standard
library (no ccd).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys


async def run_jobs(config: str, host: str, jobs: int, parallel: int, command: str) -> int:
    """Run the jobs; returns how many exited non-zero."""
    slots = asyncio.Semaphore(parallel)

    async def one() -> int:
        async with slots:
            proc = await asyncio.create_subprocess_exec(
                "ssh", "-F", config, "-o", "BatchMode=yes", host, command,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            return int(await proc.wait() != 0)

    return sum(await asyncio.gather(*(one() for _ in range(jobs))))


def main() -> None:
    """Read the arguments and run the jobs."""
    config, host, jobs, parallel, command = sys.argv[1:6]
    failed = asyncio.run(run_jobs(config, host, int(jobs), int(parallel), command))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
