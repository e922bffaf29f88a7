"""Progress lines: parsing them from job logs, and the helper that jobs call to write them.

The paper's format, exactly: `# cloudmesh status=running progress=40 pid=123`, with any
extra `key=value` pairs; `# progress=40` alone is accepted too. A job publishes values
for the `when:` conditions of the jobs after it with `# ccd loss=0.31 best=yes`. Inside a
job:

    from ccd.progress import progress
    progress(40)
    progress(progress=100, filename="run.log")   # cloudmesh's spelling, as in the paper
"""

from __future__ import annotations

import os
import re
import sys

_LINE = re.compile(rb"^#\s*(?:cloudmesh\s+)?(?:\S+=\S*\s+)*?progress=(\d{1,3})\b", re.MULTILINE)


def highest_progress(chunk: bytes) -> int | None:
    """The highest progress among the complete progress lines in `chunk`, or None."""
    value = None
    for m in _LINE.finditer(chunk):
        n = int(m.group(1))
        if n <= 100:
            value = n if value is None else max(value, n)
    return value


_PUBLISHED = re.compile(rb"^#\s*ccd((?:[ \t]+[A-Za-z_][A-Za-z0-9_]*=\S*)+)[ \t]*$", re.MULTILINE)
_PAIR = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")


def published(log: bytes) -> dict[str, str]:
    """The values a job published with `# ccd key=value ...` lines; the last one wins."""
    values: dict[str, str] = {}
    for line in _PUBLISHED.finditer(log):
        for key, value in _PAIR.findall(line.group(1)):
            values[key.decode()] = value.decode(errors="replace")
    return values


class LogFollower:
    """Follows a growing log and keeps the highest progress seen; never goes backwards."""

    __slots__ = ("offset", "partial", "progress")

    def __init__(self, offset: int = 0, progress: int = 0) -> None:
        self.offset = offset
        self.partial = b""
        self.progress = progress

    def feed(self, data: bytes) -> bool:
        """Take the next bytes of the log; True if the progress went up."""
        self.offset += len(data)
        data = self.partial + data
        end = data.rfind(b"\n") + 1
        self.partial = data[end:][-4096:]  # a progress line is short; keep memory bounded
        found = highest_progress(data[:end])
        if found is not None and found > self.progress:
            self.progress = found
            return True
        return False


def progress(percent: int | None = None, status: str = "running", filename: str | None = None,
             *, progress: int | None = None, **fields: object) -> None:
    """Report a job's progress (0-100) in the paper's format, to stdout or to `filename`.

    `progress=` is cloudmesh's spelling of `percent` (the paper's Figure 6 calls
    `progress(progress=1, filename=filename)`); give one of them.
    """
    given = [p for p in (percent, progress) if p is not None]
    if len(given) != 1:
        raise TypeError("progress() takes the percentage once: "
                        "progress(40) or progress(progress=40)")
    percent = max(0, min(100, int(given[0])))
    if percent == 100 and status == "running":
        status = "done"
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    line = f"# cloudmesh status={status} progress={percent} pid={os.getpid()}{extra}\n"
    if filename is None:
        sys.stdout.write(line)
        sys.stdout.flush()
    else:
        with open(filename, "a", encoding="utf-8") as f:
            f.write(line)
