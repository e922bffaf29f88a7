"""The paper's Python API (Figures 8-10): `Workflow` and `Job`, with cloudmesh-cc's names.

Plain synchronous methods over the async engine:

    w = Workflow(name="workflow-analyze")
    w.add_job(name="fetch-data", exec="hostname", label="{name}\\nprogress={progress}")
    w.add_job(name="compute", exec="echo compute")
    w.add_dependencies("fetch-data,compute")
    w.run_topo()
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
from pathlib import Path
from typing import Any

from ccd import dag, export, reuse
from ccd.model import (
    HostSpec,
    JobSpec,
    JobState,
    JobStatus,
    NotifySpec,
    Run,
    RunState,
    WorkflowSpec,
)

LOG_LIMIT = 64 * 1024 * 1024  # get_log reads at most this much


class Job:
    """One job of a workflow: what it runs (`spec`) and what it is doing (`status`)."""

    def __init__(self, spec: JobSpec, status: JobStatus, run: Run | None = None,
                 workflow: Workflow | None = None) -> None:
        self.spec = spec
        self.status = status
        self._run = run
        self._workflow = workflow

    @property
    def name(self) -> str:
        return self.spec.name

    def get_status(self) -> str:
        """The job's state: ready, running, done, failed, skipped or cancelled."""
        return self.status.state.value

    def get_progress(self) -> int:
        """Progress 0-100."""
        return self.status.progress

    def get_pid(self) -> int | None:
        """The pid of the job's wrapper on its host, once started."""
        return self.status.pid

    def get_log(self) -> str:
        """The job's output so far ("" before it ran), from the executor that ran it."""
        run = self._run
        if run is None or self.spec.is_join:
            return ""
        from ccd.executors.protocol import launch_for
        from ccd.hosts import Hosts

        async def read() -> bytes:
            async with Hosts() as hosts:
                executor = hosts.executor(self.spec.kind, self.spec.host)
                data, _ = await executor.read_log(launch_for(run, self.name), 0, LOG_LIMIT)
                return data

        return asyncio.run(read()).decode(errors="replace")

    def kill(self, period: float = 1, timeout: float | None = 60) -> JobStatus:
        """End the job, cancelled, and return its status then: a running job's process group
        gets SIGTERM, then SIGKILL 5 s later; one not started yet never starts; one that
        ended is left as it is. Works on a run this process drives (in another thread) or one
        left running by an interrupted run; RunError if another process (the daemon, a
        `ccctl run`) drives it. `period` is cloudmesh-cc's and not needed here."""
        from ccd import control

        self.status = control.kill(self._current_run(), self.name, timeout)
        return self.status

    def watch(self, period: float = 10, timeout: float | None = None) -> JobStatus:
        """Wait until the job ends (whatever its progress says) and return its status then.
        A run driven here or by no one is followed as it changes; one another process drives,
        every `period` s. TimeoutError after `timeout` s."""
        from ccd import control

        self.status = control.watch(self._current_run(), self.name, period, timeout)
        return self.status

    def sync(self, directory: str | Path | None = None) -> list[Path]:
        """The job's declared outputs (`outputs:`), fetched into its run's working copy, or
        copied into `directory`; the paths. A remote job's come back by themselves when it
        ends (one that ended while its run was interrupted is collected now); a local job's
        are in the working copy already, so without `directory` nothing is copied."""
        from ccd import control

        return control.sync(self._current_run(), self.name,
                            None if directory is None else Path(directory))

    def _current_run(self) -> Run:
        """The run this job is part of: its workflow's in this process, else the newest run
        of its workflow in the state directory."""
        from ccd import control
        from ccd.errors import RunError

        if self._run is None and self._workflow is not None:
            w = self._workflow
            self._run = control.newest_run(w.state_dir, w.source())
        if self._run is None:
            where = f" in {self._workflow.state_dir}" if self._workflow else ""
            raise RunError(f"job {self.name!r} has not run: its workflow has no run{where}")
        return self._run

    def __getitem__(self, key: str) -> Any:
        """The paper's dict access: job["status"], job["progress"], job["script"], ..."""
        if key in ("status", "progress", "pid", "exit_code", "tstart", "tend", "modified"):
            value = getattr(self.status, "state" if key == "status" else key)
            return value.value if isinstance(value, JobState) else value
        return getattr(self.spec, key)

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {self.get_status()}, {self.get_progress()}%)"


class Workflow:
    """A DAG of jobs, built in Python or loaded from the paper's YAML, and run here."""

    def __init__(self, name: str = "workflow", filename: str | Path | None = None,
                 state_dir: str | Path | None = None) -> None:
        from ccd.settings import state_dir as default_state_dir

        self.name = name
        self.base_dir = Path.cwd()
        self.jobs: dict[str, JobSpec] = {}
        self.edges: list[tuple[str, str]] = []
        self.colors: dict[str, str] = {}
        self.hosts: dict[str, HostSpec] = {}
        self.files: tuple[str, ...] = ()
        self.notify: tuple[NotifySpec, ...] = ()
        self.statuses: dict[str, JobStatus] = {}
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.run_id: str | None = None
        self._run: Run | None = None
        if filename is not None:
            self.load(filename)

    # -- building -------------------------------------------------------------------------

    def load(self, filename: str | Path, clear: bool = True) -> None:
        """Load a workflow YAML (validated; raises SpecError with every problem)."""
        from ccd.spec import load_spec

        spec, _ = load_spec(filename)
        if clear:
            self.jobs, self.edges, self.statuses = {}, [], {}
        self.name = spec.name
        self.base_dir = spec.base_dir
        self.colors = dict(spec.colors)
        self.hosts = dict(spec.hosts)
        self.files = spec.files
        self.notify = spec.notify
        for job in spec.jobs.values():
            self._put(job)
            if job.status == JobState.DONE and job.fingerprint is not None:
                # Saved with its state: done, and kept by the next run if still the same.
                self.statuses[job.name] = JobStatus(job.name, JobState.DONE, 100, job.host)
        self.edges += [e for e in spec.edges if e not in self.edges]

    def add_job(self, name: str, **fields: Any) -> Job:
        """Add (or replace) a job; fields as in the YAML: script, exec, kind, host, label..."""
        fields.pop("filename", None)  # cloudmesh-cc passes its runtime file; not needed here
        if "command" in fields:  # the paper's Figure 10 spells exec so
            fields["exec"] = fields.pop("command")
        known = {f.name for f in dataclasses.fields(JobSpec)}
        unknown = set(fields) - known
        if unknown:
            raise TypeError(f"add_job() got unknown fields: {', '.join(sorted(unknown))}")
        if isinstance(fields.get("env"), dict):
            fields["env"] = tuple(fields["env"].items())
        if isinstance(fields.get("outputs"), list):
            fields["outputs"] = tuple(fields["outputs"])
        self._put(JobSpec(name=name, **fields))
        return self.job(name)

    def add_dependency(self, source: str, destination: str) -> None:
        """source must finish before destination starts."""
        self.add_dependencies(f"{source},{destination}")

    def add_dependencies(self, dependency: str) -> None:
        """A chain "a,b,c": a before b before c. Unknown names are added as joins."""
        names = [n.strip() for n in dependency.split(",") if n.strip()]
        for n in names:
            if n not in self.jobs:
                self._put(JobSpec(name=n))
        for edge in itertools.pairwise(names):
            if edge not in self.edges:
                self.edges.append(edge)

    def remove_job(self, name: str, state: bool = False) -> None:
        """Remove a job and its dependencies (`state` is accepted for compatibility)."""
        del self.jobs[name]
        self.statuses.pop(name, None)
        self.edges = [e for e in self.edges if name not in e]

    def job(self, name: str) -> Job:
        """A job by name."""
        return Job(self.jobs[name], self.statuses[name], self._run, self)

    def update_status(self, name: str, status: str) -> None:
        """Set a job's state by hand."""
        self.statuses[name].state = JobState(status)
        self.statuses[name].modified = time.time()

    def update_progress(self, name: str) -> int:
        """Re-read a job's progress from its log (never lower than what was seen)."""
        from ccd.progress import LogFollower

        follower = LogFollower(progress=self.statuses[name].progress)
        follower.feed(self.job(name).get_log().encode())
        self.statuses[name].progress = follower.progress
        return follower.progress

    # -- reading --------------------------------------------------------------------------

    def sequential_order(self) -> list[str]:
        """The jobs in a topological order (file order among equals)."""
        return dag.topological_order(list(self.jobs), self.edges)

    @property
    def table(self) -> str:
        """A text table of the jobs: name, state, progress, kind, host, script/exec."""
        rows = [("job", "state", "progress", "kind", "host", "runs")]
        for name, job in self.jobs.items():
            s = self.statuses[name]
            rows.append((name, s.state.value, f"{s.progress}%", job.kind, job.host,
                         job.script or job.exec or "(join)"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                         for r in rows)

    def source(self) -> Path:
        """The workflow file its runs are recorded under in the state directory."""
        return (self.base_dir / f"{self.name}.yaml").absolute()

    def spec(self) -> WorkflowSpec:
        """The workflow as a spec (not yet validated)."""
        return WorkflowSpec(self.name, self.base_dir / f"{self.name}.yaml", dict(self.jobs),
                            tuple(self.edges), dict(self.colors), dict(self.hosts), self.files,
                            notify=self.notify)

    def save(self, filename: str | Path) -> None:
        """Write the workflow as YAML (no state)."""
        export.write_atomically(Path(filename).absolute(), export.with_state(self.spec()))

    def save_with_state(self, filename: str | Path, stdout: bool = False) -> str | None:
        """Write the workflow as YAML with every job's status and progress, and each done
        job's fingerprint: loading the file again keeps the done jobs that did not change."""
        text = export.with_state(self.spec(), self.statuses, self._prints())
        export.write_atomically(Path(filename).absolute(), text)
        return text if stdout else None

    def display(self, filename: str | Path | None = None, name: str = "workflow",
                first: bool = True) -> str:
        """The graph as DOT; with a filename, also rendered to it (.dot, .svg or .png)."""
        from ccd import graph
        from ccd.labels import RunTimes
        from ccd.settings import variables

        dot = graph.to_dot(self.spec(), self.statuses, RunTimes(), time.time(), variables(),
                           os.environ)
        if filename is not None:
            path = Path(filename)
            fmt = path.suffix.lstrip(".")
            path.write_bytes(dot.encode() if fmt == "dot" else graph.render(dot, fmt))
        return dot

    def remove_workflow(self) -> list[str]:
        """Delete the workflow's runs from the state directory (their records, working
        copies and logs); the ids removed. Refused (RunError, nothing removed) while one is
        being driven, or an interrupted one still has a job running. The workflow itself
        (in memory, and its YAML file) stays: it can run again."""
        from ccd import control

        removed = control.remove_runs(self.state_dir, self.source())
        self.run_id, self._run = None, None
        self.statuses = {n: JobStatus(n, host=j.host, progress=j.progress)
                         for n, j in self.jobs.items()}
        return removed

    # -- running --------------------------------------------------------------------------

    def run_topo(self, order: list[str] | None = None, dryrun: bool = False, show: bool = False,
                 filename: str | Path | None = None) -> list[str] | RunState:
        """Run one job at a time in `order` (default: sequential_order()); with dryrun, only
        return the order. `show` prints the order, then the table when the run ends;
        `filename` gets the graph with the final states (.dot, .svg or .png).

        A given order must name every job once and keep every dependency; the run follows
        it by taking it as a chain of dependencies, so a failed job skips all after it.
        """
        order = self.sequential_order() if order is None else self._checked(order)
        if show:
            print("\n".join(order))
        if dryrun:
            return order
        state = self._execute(max_jobs=1, chain=order)
        if show:
            print(self.table)
        if filename is not None:
            self.display(filename)
        return state

    def _checked(self, order: list[str]) -> list[str]:
        if sorted(order) != sorted(self.jobs):
            missing = sorted(set(self.jobs) - set(order))
            extra = sorted(set(order) - set(self.jobs))
            raise ValueError(f"run_topo(order=...) must name every job once; missing: "
                             f"{missing}, unknown: {extra}, repeated: "
                             f"{sorted({n for n in order if order.count(n) > 1})}")
        rank = {n: i for i, n in enumerate(order)}
        broken = [f"{a} -> {b}" for a, b in self.edges if rank[a] > rank[b]]
        if broken:
            raise ValueError(f"run_topo(order=...) breaks dependencies: {', '.join(broken)}")
        return list(order)

    def run_parallel(self, max_jobs: int | None = None) -> RunState:
        """Run every ready job at once (up to max_jobs processes); returns the run's state."""
        return self._execute(max_jobs=max_jobs)

    def _execute(self, max_jobs: int | None, chain: list[str] | None = None) -> RunState:
        from ccd import control, runs, workdir
        from ccd.hosts import Hosts
        from ccd.notify import Notifier
        from ccd.settings import notifiers
        from ccd.spec import load_spec
        from ccd.store import Store

        # Round-trip through the YAML form: the API gets exactly the file format's checks.
        spec = self.spec()
        if chain:
            extra = [e for e in itertools.pairwise(chain) if e not in self.edges]
            spec = dataclasses.replace(spec, edges=(*spec.edges, *extra))
        text = export.with_state(spec).encode()
        spec, _ = load_spec(self.base_dir / f"{self.name}.yaml", text)
        # Carry on: what is done and unchanged (as it ran here, or as the loaded file says)
        # is kept, the rest runs.
        files = workdir.files_of(spec)
        prints, why = reuse.compare(spec, files, self.statuses, self._prints(ran_only=True))
        kept = not all(why.values())
        given = reuse.given(spec, self.statuses, why, "an earlier run") if kept else None
        store = Store(self.state_dir / "ccd.db")
        try:
            opened = runs.create(store, self.state_dir, spec, text, files, given, prints)
            self.run_id, self._run = opened.run.id, opened.run
            self.statuses = opened.run.jobs

            with control.driving(opened.run) as driven:  # so Job.kill/watch reach it
                async def drive() -> RunState:
                    async with Notifier(notifiers()[0]) as notifier, Hosts(max_jobs) as hosts:
                        return await runs.execute(opened, hosts, on_event=driven.event,
                                                  started=driven.started, notifier=notifier)

                try:
                    return asyncio.run(drive())
                finally:
                    opened.release()  # interrupted: another may drive it (or Job.kill)
        finally:
            store.close()

    def _prints(self, ran_only: bool = False) -> dict[str, str]:
        """Each job's fingerprint as it last ran here, else as loaded, else (unless
        `ran_only`) as it is now."""
        from ccd import workdir

        spec = self.spec()
        now = {} if ran_only else reuse.fingerprints(spec, workdir.files_of(spec))
        loaded = {n: j.fingerprint for n, j in self.jobs.items() if j.fingerprint is not None}
        return {**now, **loaded, **(self._run.prints if self._run is not None else {})}

    def _put(self, job: JobSpec) -> None:
        if job.name in self.jobs and self.jobs[job.name] == job:
            return
        self.jobs[job.name] = job
        self.statuses[job.name] = JobStatus(job.name, host=job.host, progress=job.progress)

