"""What a job used (`model.Trace`): CPU time, peak resident memory, bytes read and written.

Measured by the job protocol, so that every kind of host gives what it offers, and read at
the job's end rather than sampled wherever the kernel keeps the figure:

- The wrapper (job.sh) writes one `trace=` line into the status file before `exit=`, with
  builtins only (no fork): `times`, the user and system CPU seconds of the wrapper and of
  every process it waited for (the whole job, but for what it left running detached), and
  on Linux /proc/$$/io's rchar and wchar, the bytes the same processes passed through read
  and write system calls (files, pipes, sockets; from the page cache or not: not the disk's
  traffic). The kernel adds a process's counts to its parent's when it is waited for, so
  the wrapper's own are the job's. Exact however short the job, on every host (this one, an
  ssh host, a batch node), read with the status file.
- A local job this process started: its wrapper's rusage from wait4 when it ends (the same
  CPU figures), its bytes from its /proc/PID/io read just before (`io_of`: the wrapper,
  ccd's child, then skips its own read), and ru_maxrss, the kernel's high-water mark of the
  largest process of the job, exact however short the job, but only when it exceeds ccd's
  own VmHWM (the kernel carries the starting process's mark across exec, see `of_wait4`,
  `own_peak_kb`).
- Peak RSS otherwise is sampled while the job runs: the largest VmHWM (one process's
  high-water mark, kept by the kernel) among the wrapper and its descendants, every
  SAMPLE_EVERY seconds in the pass that already watches all running jobs: `ccd_poll`
  (remote.sh) on an ssh host, the local poller here (used for a job smaller than ccd, or
  one an earlier ccd started). A job that ends within a second is never sampled. A
  process that starts and ends between two samples is missed, so it is a lower bound
  (`rss_sampled`), and a job shorter than the interval may have none: None, never a guess.
  Batch jobs run on a node the login node cannot see into: no peak RSS (Slurm's sacct
  would have it where accounting is on; the test cluster has none, so it is not read).

Peak RSS is the largest process's, as wait4, VmHWM and Slurm's MaxRSS report it, not the
sum over the job's processes: four workers of 1 GB each show 1 GB.
"""

from __future__ import annotations

import os
import re
import resource

import msgspec

from ccd.model import Trace

SAMPLE_EVERY = 1.0  # seconds between two samples of a running job's memory
_TIME = re.compile(r"(\d+)m\s*(\d+(?:\.\d*)?)s")  # as `times` prints: 0m1.234000s


def parse(value: str) -> Trace | None:
    """The wrapper's `trace=` value: `RCHAR WCHAR` (`-` where there is no /proc), then what
    `times` printed: the shell's user and system time, its children's user and system
    time (`1m2.5s` each; shells space them differently)."""
    parts = value.split(None, 2)
    if len(parts) < 3:
        return None
    times = [int(m) * 60 + float(s) for m, s in _TIME.findall(parts[2])]
    user = times[0] + times[2] if len(times) == 4 else None
    system = times[1] + times[3] if len(times) == 4 else None
    read, written = _int(parts[0]), _int(parts[1])
    if user is None and read is None:
        return None
    return Trace(cpu_user=user, cpu_system=system, bytes_read=read, bytes_written=written)


def of_wait4(wrapper: Trace | None, usage: resource.struct_rusage, own: int,
             sampled: int | None, io: tuple[int, int] | None = None) -> Trace:
    """A local job's trace from its wrapper's rusage (wait4) and its bytes (`io`, read from
    its remains by `io_of`, else its record). ru_maxrss also counts the process that started
    the wrapper (the kernel keeps the high-water mark of the memory an exec replaces), so it
    is the job's own only above `own` (kB: ours, from RUSAGE_SELF); a smaller job has what
    sampling saw of it (`sampled`, bytes), if anything."""
    exact = usage.ru_maxrss > own
    read, written = io if io is not None else (
        (wrapper.bytes_read, wrapper.bytes_written) if wrapper else (None, None))
    return Trace(cpu_user=usage.ru_utime, cpu_system=usage.ru_stime,
                 peak_rss=usage.ru_maxrss * 1024 if exact else sampled,
                 rss_sampled=not exact and sampled is not None,
                 bytes_read=read, bytes_written=written)


def io_of(pid: int) -> tuple[int, int] | None:
    """rchar and wchar of our child `pid` once it has ended, before it is reaped: what the
    wrapper and every process it waited for read and wrote (job.sh then skips its own read
    of them). None if they cannot be read (no /proc)."""
    try:
        fd = os.open(f"/proc/{pid}/io", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        first, second, _ = os.read(fd, 512).split(b"\n", 2)
        return int(first.split()[1]), int(second.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


_own_kb = 0  # this process's VmHWM when last read (kB); it only grows


def own_peak_kb(child_kb: int) -> int:
    """This process's own memory high-water mark (VmHWM, kB), as compared with a child's
    ru_maxrss `child_kb`: what a child started by posix_spawn (which shares our memory until
    it execs) carries into its ru_maxrss. Not getrusage(RUSAGE_SELF).ru_maxrss: that also
    carries the mark of whatever started ccd (a 300 MB test runner made every smaller job's
    peak look like ccd's). Reading /proc/self/status costs ~12 us, so it is read again only
    when the mark read before cannot settle the comparison (the mark only grows): once in a
    while, not at every job's end."""
    global _own_kb
    if child_kb > _own_kb:
        try:
            with open("/proc/self/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        _own_kb = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            _own_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _own_kb


def with_peak(trace: Trace | None, peak: int | None) -> Trace | None:
    """The wrapper's trace with the peak RSS sampled while the job ran."""
    if peak is None:
        return trace
    return msgspec.structs.replace(trace or Trace(), peak_rss=peak, rss_sampled=True)


def peak_rss(pid: int) -> int | None:
    """The largest VmHWM, in bytes, of `pid` and its descendants now; None if it is gone."""
    todo, peak = [pid], None
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        kb = int(line.split()[1])
                        peak = max(peak or 0, kb * 1024)
                        break
            with open(f"/proc/{p}/task/{p}/children", "rb") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return peak


def sampled_kb(text: str) -> int | None:
    """A peak that `ccd_poll` sampled (kB), in bytes."""
    kb = _int(text.strip())
    return kb * 1024 if kb else None


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None
