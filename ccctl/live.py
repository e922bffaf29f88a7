"""The foreground view of a run: a live table on a terminal, one line per job change when
the output is a file or a pipe, a summary at the end, or JSON for scripts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import msgspec

from ccctl.console import Printer
from ccctl.trace import cpu_text, memory_text
from ccd.model import Event, JobState, JobStatus, NotifySpec, Run, RunState
from ccd.palette import LOOKS

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from rich.console import RenderableType
    from rich.live import Live

    from ccd.hosts import Hosts
    from ccd.runs import Opened
    from ccd.scheduler import Scheduler

# The page's bar colours (ccd/palette.py), bold where a state asks to be noticed.
STYLES = {state.value: ("bold " if state in (JobState.RUNNING, JobState.FAILED) else "")
          + (look.bar if state is not JobState.READY else "default")
          for state, look in LOOKS.items()}
FLUSH_EVERY = 0.1  # s: job lines go out at most this often (one write a flush, whatever
# PYTHONUNBUFFERED says: a write per line cost ~0.1 ms a job of fan500's main thread)
TAIL_LINES = 10  # of each failed job's log, at the end of a run
TAIL_BYTES = 8192  # read to find them
_ORDER = {JobState.RUNNING: 0, JobState.FAILED: 1, JobState.QUEUED: 2, JobState.READY: 3,
          JobState.CANCELLED: 4, JobState.SKIPPED: 5, JobState.DONE: 6}


def elapsed(status: JobStatus, now: float) -> str:
    """How long a job ran (or has been running), as M:SS or H:MM:SS."""
    if status.tstart is None:
        return ""
    return clock_time((status.tend or now) - status.tstart)


def clock_time(seconds: float) -> str:
    s = max(0, int(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02}:{s % 60:02}" if h else f"{m}:{s % 60:02}"


class Board:
    """Shows a run: a live table on a terminal, lines otherwise, then a summary or JSON."""

    def __init__(self, run: Run, json_out: bool = False, resumed: bool | None = None) -> None:
        self.run = run
        self.json_out = json_out
        self.resumed = resumed
        self._err = Printer(stderr=True)
        self._out = Printer()
        self.live = not json_out and self._out.is_terminal
        self._announced: set[str] = set()  # jobs whose start was printed
        # The state directory the run was read from or driven in, when it is not the one
        # `ccctl` reads by default: the commands it suggests then name it.
        self.state_dir: Path | None = None
        self._pending: list[str] = []  # job lines not written yet
        self._second, self._stamp = -1, ""  # the last line's time, and how it was shown
        self._flushing: asyncio.TimerHandle | None = None

    def live_view(self) -> Live:
        """A rich Live that redraws the table; use as a context manager."""
        from rich.live import Live

        return Live(get_renderable=self._table, console=self._out.rich, auto_refresh=True,
                    refresh_per_second=8, transient=True)

    def on_event(self, event: Event) -> None:
        """Print a line for a job event when not drawing the live table."""
        if not self.live and not self.json_out:
            self._line(event)


    def _line(self, event: Event) -> None:
        """One line per job that starts or ends (not per progress step)."""
        if event.job is None or event.state == "ready":
            return
        status = self.run.jobs[event.job]
        if event.state == "running":
            if event.job in self._announced:
                return  # a progress step, not the start
            self._announced.add(event.job)
        second = int(event.time)
        if second != self._second:  # localtime and strftime: once a second, not per line
            self._second, self._stamp = second, time.strftime("%H:%M:%S",
                                                              time.localtime(second))
        stamp = self._stamp
        extra = f"  {event.message}" if event.message else ""
        took = f"  {elapsed(status, event.time)}" if event.state != "running" else ""
        self._pending.append(f"{stamp}  {event.state:<9} {event.job}{took}{extra}\n")
        if self._flushing is None:
            import asyncio  # here: ccctl's other commands do without it

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # following a daemon's run: events come one at a time
                self.flush()
                return
            self._flushing = loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Write the job lines not written yet."""
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self._pending:
            sys.stdout.write("".join(self._pending))
            self._pending.clear()
            sys.stdout.flush()

    def _table(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        jobs = list(self.run.jobs.values())
        room = max(3, self._out.rich.size.height - 6)
        shown = jobs if len(jobs) <= room else sorted(jobs, key=lambda s: _ORDER[s.state])[:room]
        if len(jobs) > room:
            position = {name: i for i, name in enumerate(self.run.jobs)}
            shown.sort(key=lambda s: position[s.name])
        table = Table(expand=False, box=None, pad_edge=False, header_style="bold")
        for column in ("job", "state", "progress", "", "elapsed", "host"):
            table.add_column(column, no_wrap=True, justify="right" if column == "" else "left")
        for s in shown:
            table.add_row(Text(s.name), Text(s.state.value, style=STYLES[s.state.value]),
                          ProgressBar(total=100, completed=s.progress, width=20),
                          f"{s.progress:>3}%", elapsed(s, now), Text(s.host))
        footer = Text(self._counts() + f"   elapsed {clock_time(now - (self.run.t0 or now))}",
                      style="dim")
        if len(jobs) > room:
            footer.append(f"   ({len(jobs) - room} more jobs not shown)")
        return Group(table, footer)

    def _counts(self) -> str:
        counts: dict[str, int] = {}
        for s in self.run.jobs.values():
            counts[s.state.value] = counts.get(s.state.value, 0) + 1
        return "  ".join(f"{n} {state}" for state, n in counts.items())

    def summary(self) -> None:
        """The end of a run: a table of notable jobs and one line, or the JSON."""
        self.flush()
        run = self.run
        took = clock_time((run.t1 or time.time()) - (run.t0 or run.created))
        if self.json_out:
            from ccd.shapes import Run as RunShape

            print(json.dumps(msgspec.to_builtins(RunShape.of(run, resumed=self.resumed)),
                             indent=2))
            return
        if self.live:
            from rich.table import Table
            from rich.text import Text

            table = Table(box=None, header_style="bold", pad_edge=False)
            for column in ("job", "state", "progress", "elapsed", "cpu", "memory", "exit",
                           "message"):
                table.add_column(column, overflow="fold")
            notable = [s for s in run.jobs.values()
                       if len(run.jobs) <= 40 or s.state is not JobState.DONE]
            for s in notable:
                table.add_row(Text(s.name), Text(s.state.value, style=STYLES[s.state.value]),
                              f"{s.progress}%", elapsed(s, run.t1 or time.time()),
                              cpu_text(s), memory_text(s),
                              "" if s.exit_code is None else str(s.exit_code), Text(s.message))
            if notable:
                self._out.rich.print(table)
        why = f"\n{run.message}" if run.message else ""  # e.g. who cancelled it
        self._err.say(f"run {run.id} ", (run.state.value, STYLES[run.state.value]),
                      f" in {took}: {self._counts()}{why}\nits files: {run.run_dir}")


    def failures(self, logs: dict[str, bytes]) -> None:
        """The last lines of each failed job's log, and the command that shows all of it."""
        if self.json_out:
            return
        where = ""
        if self.state_dir is not None:
            import shlex

            from ccd.settings import state_dir

            if self.state_dir != state_dir():
                where = f" --state-dir {shlex.quote(str(self.state_dir))}"
        for job, data in logs.items():
            lines = data.decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
            head = ("its log is empty" if not lines else "the last line of its log:"
                    if len(lines) == 1 else f"the last {len(lines)} lines of its log:")
            sys.stderr.write(f"\n{job} failed; {head}\n"
                             + "".join(f"  {line}\n" for line in lines)
                             + f"the whole log: ccctl logs {self.run.id} {job}{where}\n")

    def failed(self) -> list[str]:
        """The jobs that failed, in the workflow's order."""
        return [s.name for s in self.run.jobs.values() if s.state is JobState.FAILED]


class Display(Board):
    """Runs an opened run and shows it."""

    def __init__(self, opened: Opened, json_out: bool = False) -> None:
        super().__init__(opened.run, json_out, opened.resumed)
        self.state_dir = opened.run.run_dir.parent.parent  # (runs.run_dir)
        self.opened = opened
        self._scheduler: Scheduler | None = None
        self._interrupted = 0

    async def drive(self, max_jobs: int | None, notify: tuple[NotifySpec, ...] = ()
                    ) -> RunState:
        """Execute the run while showing it, then tell the run's notifiers and `notify` (the
        settings') that it ended; Ctrl-C cancels, a second Ctrl-C leaves."""
        import asyncio
        import signal

        from ccd import runs
        from ccd.hosts import Hosts
        from ccd.notify import Notifier

        self._intro()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_sigint() -> None:
            self._interrupted += 1
            if self._interrupted == 1 and self._scheduler is not None:
                self._err.say(("cancelling: running jobs get SIGTERM (Ctrl-C again to quit "
                               "and leave them running)", "yellow"))
                self._scheduler.cancel("cancelled by Ctrl-C in ccctl run")
            else:
                task.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            # Outermost: the news of the run's end goes out while the summary is shown.
            async with Notifier(notify) as notifier, Hosts(max_jobs) as hosts:

                def trouble(why: str | None) -> None:  # the state cannot be saved (full disk)
                    hosts.pause(why)
                    self._err.say((f"{why}: no job starts until it can", "yellow") if why
                                  else ("the state is saved again", "green"))

                def from_writer(why: str | None) -> None:  # on the store's writer thread
                    loop.call_soon_threadsafe(trouble, why)

                self.opened.store.on_trouble = from_writer
                if self.live:
                    with self.live_view():
                        state = await runs.execute(self.opened, hosts, started=self._started,
                                                   notifier=notifier)
                else:
                    state = await runs.execute(self.opened, hosts, on_event=self.on_event,
                                               started=self._started, notifier=notifier)
                logs = {job: await _tail(hosts, self.run, job) for job in self.failed()}
                self.summary()
                self.failures(logs)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        return state

    def ended(self) -> None:
        """A run that had already ended: say so, and show it."""
        self._intro(announce=False)
        self.summary()

    def left_running(self) -> None:
        """After a second Ctrl-C: say how to come back."""
        self.flush()
        self._err.say(f"left run {self.run.id} with its jobs running; run the same command "
                      "again to resume it")

    def _started(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def _intro(self, announce: bool = True) -> None:
        for w in self.opened.warnings:
            self._err.say(str(w))
        for note in self.opened.notes:
            self._err.say((note, "yellow"))
        if announce:
            verb = "resuming" if self.opened.resumed else "run"
            self._err.say(f"{verb} ", (self.run.id, "bold"), f" ({len(self.run.jobs)} jobs)")

async def _tail(hosts: Hosts, run: Run, job: str) -> bytes:
    """The end of a job's log, from its executor (wherever the job ran); empty if unreadable."""
    from ccd.errors import CcdError
    from ccd.executors.protocol import launch_for

    launch = launch_for(run, job)
    try:
        executor = hosts.executor(launch.job.kind, launch.job.host)
        _, size = await executor.read_log(launch, 0, 0)
        data, _ = await executor.read_log(launch, max(0, size - TAIL_BYTES), TAIL_BYTES)
    except (CcdError, OSError):
        return b""
    return data
