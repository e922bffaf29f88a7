"""The daemon's work, without HTTP: stored workflows, runs in progress, control, recovery.

Every run the daemon drives is one task in the service's TaskGroup, and all of them share
the service's executors (`Hosts`): one per host, with limits across runs. Stopping the
service cancels those tasks, which detaches from the jobs (they are in their own sessions
and keep running); the next start re-attaches through their status files. Work that
touches many files (a run's working copy) or takes seconds of CPU (unpacking, validating
and writing a workflow) happens in a worker thread; the store is used only on the event
loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import msgspec

from ccd import reuse, runs, shapes, workdir
from ccd.bus import Bus
from ccd.errors import CcdError, Conflict, NotFound, RunError, StateFull, UploadError
from ccd.hosts import Hosts
from ccd.hostsfeed import HostsFeed
from ccd.model import SAFE_NAME, Event, JobState, NotifySpec, Run, RunState, WorkflowSpec
from ccd.notify import Notifier
from ccd.scheduler import Scheduler
from ccd.spec import load_spec
from ccd.store import Store, WorkflowRow
from ccd.uploads import layout, main_yaml, unpack
from ccd.yamltree import paused_gc

log = logging.getLogger("ccd.service")


@dataclass(eq=False)
class _Active:
    opened: runs.Opened
    task: asyncio.Task[None] | None = None
    scheduler: Scheduler | None = None
    cancelled: str | None = None  # asked before the scheduler existed


class Service:
    """Workflows and runs of one state directory, driven in this process."""

    def __init__(self, state_dir: Path, max_jobs: int | None = None,
                 journal_poll: float = 0.25, prune_after: float | None = None,
                 notify: tuple[NotifySpec, ...] = ()) -> None:
        self.state_dir = state_dir
        self.hosts = Hosts(max_jobs)
        # Besides each workflow's own; a stop waits a little for notifications under way.
        self.notifier = Notifier(notify, grace=5.0)
        self.bus = Bus()
        self.feed = HostsFeed(self.hosts, self.bus)
        self.hosts.on_change = self.feed.changed
        self.started = time.time()
        self._journal_poll = journal_poll
        self._prune_after = prune_after
        self._loop = asyncio.get_running_loop()
        self.store = Store(state_dir / "ccd.db", on_commit=self._committed)
        self.store.on_trouble = self._trouble_from_writer
        self.bus.last_id = self.store.last_event_id()
        self._external_seen = self.bus.last_id
        self._active: dict[str, _Active] = {}
        self._specs: dict[str, WorkflowSpec] = {}  # recently shown runs' specs, oldest first
        self._driven: set[str] = set()  # runs whose events this process publishes itself
        self._tasks: set[asyncio.Task[None]] = set()
        self._group = asyncio.TaskGroup()
        self._storing = asyncio.Lock()  # workflow versions being written: see _store

    async def __aenter__(self) -> Service:
        self._remove_half_stored()
        await self.notifier.__aenter__()
        await self._group.__aenter__()
        self._tasks.add(self._group.create_task(self._follow_journal()))
        self._tasks.add(self._group.create_task(self.feed.refresh_forever()))
        if self._prune_after is not None:
            self._tasks.add(self._group.create_task(self._prune_forever(self._prune_after)))
        self.recover()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await self._group.__aexit__(kind, exc, tb)
        finally:
            await self.notifier.__aexit__(None, None, None)
            self.hosts.on_change = None
            self.feed.close()
            await self.hosts.aclose()
            self.store.close()

    # -- runs -----------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Resume every unfinished run no other live process drives; returns their ids."""
        resumed = []
        for row in self.store.runs(unfinished=True):
            if row.id in self._active:
                continue
            held = runs.lock(self.state_dir, row.id)
            if held is None:
                continue  # a `ccctl run` in a terminal drives it
            try:
                opened = runs.resume(self.store, self.state_dir, row.id)
            except RunError as e:
                log.error("cannot resume run %s: %s", row.id, e)
                os.close(held)
                continue
            opened.lock = held
            self._drive(opened)
            resumed.append(row.id)
        if resumed:
            log.info("resumed %d run(s): %s", len(resumed), ", ".join(resumed))
        return resumed

    async def start_run(self, workflow: str, resume: str | None = None) -> Run:
        """Start a new run of a stored workflow, in a copy of everything uploaded with it;
        with `resume` (an ended run of it, or "" for its newest), carry on from that run:
        its done jobs that did not change are kept (see ccd.reuse)."""
        row = self._workflow(workflow)
        old = None if resume is None else await self._resumable(workflow, resume)

        def prepare() -> tuple[Run, bytes]:
            path = Path(row.path)
            data = path.read_bytes()
            spec, _ = load_spec(path, data)
            files = workdir.tree(path.parent)
            if old is None:
                return runs.prepare(self.state_dir, spec, data, files), data
            return self._carry_on(old, spec, data, files), data

        run, data = await asyncio.to_thread(prepare)
        return self._drive(runs.record(self.store, self.state_dir, run, data))

    async def rerun(self, run_id: str) -> Run:
        """A new run of an ended run's spec, in a copy of its working copy: its done jobs
        stay done (with their outputs), the rest run again."""
        old = await self._resumable(None, run_id)
        if old.state is RunState.DONE:
            raise Conflict(f"run {run_id} is done: nothing to run again (no run made)")
        stored = self.store.spec_text(run_id)
        assert stored is not None
        run = await asyncio.to_thread(lambda: self._carry_on(old, old.spec, stored[1],
                                                              workdir.tree(old.work)))
        return self._drive(runs.record(self.store, self.state_dir, run, stored[1]))

    async def _resumable(self, workflow: str | None, run_id: str) -> Run:
        """An ended run to carry on from: `run_id`, or the newest of `workflow` for ""."""
        if not run_id:
            assert workflow is not None
            ended = [r for r in self.store.runs(workflow=workflow) if r.state.final]
            if not ended:
                raise Conflict(f"workflow {workflow!r} has no ended run to carry on from")
            run_id = ended[0].id
        old = await self.run(run_id)
        if not old.state.final:
            raise Conflict(f"run {run_id} is still {old.state.value}; cancel it first")
        if workflow is not None and old.spec.name != workflow:
            raise Conflict(f"run {run_id} is a run of workflow {old.spec.name!r}, not "
                           f"{workflow!r}")
        return old

    def _carry_on(self, old: Run, spec: WorkflowSpec, data: bytes, files: dict[str, Path]
                  ) -> Run:
        """`runs.carry_on` from `old`, refused (before any file is copied) when no job would
        run. Only files: for a worker thread."""
        prints, why = reuse.compare(spec, files, old.jobs, old.prints)
        if not any(why.values()):
            raise Conflict(f"run {old.id} is {old.state.value} and nothing changed since: "
                           "nothing to run again (no run made)")
        return runs.carry_on(self.state_dir, old, spec, data, files, prints, why)

    async def cancel(self, run_id: str, by: str | None = None) -> Run:
        """Cancel a run this daemon drives; `by` is who asks, as the client says (shown in
        the run's and its jobs' messages, trusted for nothing else)."""
        active = self._active.get(run_id)
        run = active.opened.run if active is not None else await self.run(run_id)
        if run.state.final:  # (also while its last events are being saved)
            raise Conflict(f"run {run_id} is {run.state.value}")
        if active is None:
            raise Conflict(f"run {run_id} is driven by another process; cancel it there")
        who = (by or "").strip()
        active.cancelled = f"cancelled by {who}" if who else "cancelled through the API"
        if active.scheduler is not None:
            active.scheduler.cancel(active.cancelled)
        return active.opened.run

    async def run(self, run_id: str) -> Run:
        """A run, live if this daemon drives it, else as the database has it (its stored
        workflow parsed in a worker thread the first time: 10,000 jobs take 0.3 s)."""
        active = self._active.get(run_id)
        if active is not None:
            return active.opened.run
        spec = self._specs.pop(run_id, None)
        try:
            if spec is None:
                stored = self.store.spec_text(run_id)
                if stored is None:
                    raise NotFound(f"no run {run_id!r}")
                spec = await asyncio.to_thread(runs.parse_stored, run_id, *stored)
            run = runs.load(self.store, self.state_dir, run_id, spec)
        except NotFound:
            raise NotFound(f"no run {run_id!r}") from None
        # A run's spec never changes: keep the newest few.
        self._specs[run_id] = spec
        while len(self._specs) > 64:
            self._specs.pop(next(iter(self._specs)))
        return run

    def list_runs(self, workflow: str | None = None, limit: int = -1,
                  prefix: str | None = None) -> list[shapes.Run]:
        """Runs, newest first (at most `limit`, only ids starting with `prefix`), with job
        counts and without their jobs; those this daemon drives as it has them now."""
        out = runs.listed(self.store, self.state_dir, workflow, limit, prefix)
        for i, listed in enumerate(out):
            active = self._active.get(listed.run)
            if active is not None:
                out[i] = msgspec.structs.replace(
                    shapes.Run.of(active.opened.run, jobs=False), colors=None, driven_here=True)
        return out

    async def read_log(self, run_id: str, job: str, offset: int, limit: int
                       ) -> tuple[bytes, int, bool]:
        """Bytes of a job's log, the log's size, and whether the job has ended (nothing
        more will come)."""
        return runs.read_log(await self.run(run_id), job, offset, limit)

    async def results(self, run_id: str, job: str | None = None) -> list[workdir.Result]:
        """The outputs of a run's jobs (or of one job) in its working copy (found in a
        worker thread: a copy may hold many files)."""
        return await asyncio.to_thread(runs.results, await self.run(run_id), job)

    async def result_file(self, run_id: str, path: str) -> Path:
        """One output file of a run, path-safe."""
        run = await self.run(run_id)
        return await asyncio.to_thread(workdir.result_file, run.spec, run.work, path)

    @property
    def active(self) -> int:
        return len(self._active)

    def _drive(self, opened: runs.Opened) -> Run:
        active = _Active(opened)
        self._active[opened.run.id] = active
        self._driven.add(opened.run.id)

        def started(scheduler: Scheduler) -> None:
            active.scheduler = scheduler
            if active.cancelled is not None:
                scheduler.cancel(active.cancelled)

        async def drive() -> None:
            try:
                await runs.execute(opened, self.hosts, started=started, notifier=self.notifier)
            except asyncio.CancelledError:
                raise  # the daemon is stopping: detach, the jobs go on
            except Exception as e:  # the scheduler ends its run itself; this is the rest
                log.exception("run %s stopped by an internal error", opened.run.id)
                run = opened.run
                if not run.state.final:
                    self.store.record(Event(
                        run_id=run.id, job=None, state=JobState.FAILED, progress=0,
                        time=time.time(), tstart=run.t0, tend=time.time(),
                        message=f"ccd stopped driving this run: {type(e).__name__}: {e}"))
            finally:
                self._active.pop(opened.run.id, None)
                if active.task is not None:
                    self._tasks.discard(active.task)
                opened.release()

        active.task = self._group.create_task(drive(), name=f"run {opened.run.id}")
        self._tasks.add(active.task)
        return opened.run

    # -- workflows ------------------------------------------------------------------------

    async def add_workflow(self, data: bytes, filename: str, name: str | None = None
                           ) -> shapes.Workflow:
        """Store an uploaded workflow (YAML or tar) after validating it. Raises UploadError or
        SpecError; nothing is kept from a refused upload."""

        def keep() -> WorkflowRow:
            files = unpack(data, filename)
            main = main_yaml(files, prefer=name)
            kept = name or Path(main).stem
            if not SAFE_NAME.fullmatch(kept):
                raise UploadError(f"workflow name {kept!r} is not safe as a file name", 422)
            return self._keep(kept, files, main)

        return await self._store(keep)

    async def edit_workflow(self, name: str, job: str, fields: shapes.JobFields | None
                            ) -> shapes.Workflow:
        """A new version of a stored workflow with `job` added or replaced (`fields`), or
        removed (None); its scripts are kept. The paper's RESTWorkflow.add_job."""
        from ccd import export
        from ccd.workflow import Workflow

        row = self._workflow(name)

        def keep() -> WorkflowRow:
            version = Path(row.path).parent
            w = Workflow(filename=row.path, state_dir=self.state_dir)
            if fields is None:
                if job not in w.jobs:
                    raise NotFound(f"workflow {name!r} has no job {job!r}")
                w.remove_job(job)
            else:
                w.add_job(name=job, **{k: v for k, v in msgspec.structs.asdict(fields).items()
                                       if v is not None})
            files = {str(p.relative_to(version)): p.read_bytes()
                     for p in version.rglob("*") if p.is_file()}
            files[f"{name}.yaml"] = export.with_state(w.spec()).encode()
            return self._keep(name, files, f"{name}.yaml")

        return await self._store(keep)

    async def _store(self, keep: Callable[[], WorkflowRow]) -> shapes.Workflow:
        """Run `keep` (which unpacks, validates and writes a workflow's files) in a worker
        thread, so that other clients are served meanwhile, then record what it kept here,
        on the event loop's thread, which owns the store's connection. One at a time: an
        8 MiB workflow of 100,000 jobs takes 2-3 s of CPU and 230 MB to validate, and more
        at once would only share one interpreter lock."""
        async with self._storing:
            row = await asyncio.to_thread(_without_gc_pauses, keep)
        if not Path(row.path).is_file():  # its workflow was deleted while it was written
            raise Conflict(f"workflow {row.name!r} was deleted while this version was being "
                           "stored; send it again")
        self.store.put_workflow(row)
        self.bus.notice("workflow", {"workflow": row.name, "change": "stored"})
        return _workflow_shape(row)

    def _remove_half_stored(self) -> None:
        """An upload a killed daemon was writing (`workflows/.upload-*`, never recorded)
        goes; one younger than a minute may be another daemon's, on the same directory."""
        for tmp in (self.state_dir / "workflows").glob(".upload-*"):
            with contextlib.suppress(OSError):
                if time.time() - tmp.stat().st_mtime > 60:
                    shutil.rmtree(tmp, ignore_errors=True)
                    log.info("removed %s, an upload that was never stored", tmp)

    def _keep(self, name: str, files: dict[str, bytes], main: str) -> WorkflowRow:
        """Validate a workflow's files and keep them as a new version (files only: this
        runs in a worker thread); nothing is left behind on error."""
        kept = layout(files, main, name)
        root = self.state_dir / "workflows" / name
        tmp = root.parent / f".upload-{secrets.token_hex(4)}"
        try:
            tmp.mkdir(parents=True)
            for rel, content in kept.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            spec, _ = load_spec(tmp / f"{name}.yaml", display=main)
            version = root / (time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2))
            root.mkdir(exist_ok=True)
            tmp.rename(version)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StateFull(f"the state directory is full: {self.state_dir} has no room "
                                   "for this workflow; nothing of it was kept") from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return WorkflowRow(name, str(version / f"{name}.yaml"), time.time(), len(spec.jobs))

    def workflows(self) -> list[shapes.Workflow]:
        """Stored workflows, each with how many runs it has and its newest run."""
        summaries = self.store.run_summaries()
        out = []
        for w in self.store.workflows():
            n, last = summaries.get(w.name, (0, None))
            newest = None if last is None else shapes.RunBrief(last.id, last.state,
                                                                last.created, last.t0)
            out.append(msgspec.structs.replace(_workflow_shape(w), runs=n, last_run=newest))
        return out

    def workflow(self, name: str) -> tuple[shapes.Workflow, bytes]:
        """A stored workflow and its YAML text."""
        row = self._workflow(name)
        return _workflow_shape(row), Path(row.path).read_bytes()

    def delete_workflow(self, name: str) -> None:
        """Forget a workflow and its files; refused while one of its runs is active."""
        row = self._workflow(name)
        busy = [a.opened.run.id for a in self._active.values()
                if str(a.opened.run.spec.source).startswith(str(Path(row.path).parent.parent))]
        if busy:
            raise Conflict(f"workflow {name!r} has active runs: {', '.join(busy)}")
        self.store.delete_workflow(name)
        shutil.rmtree(Path(row.path).parent.parent, ignore_errors=True)
        self.bus.notice("workflow", {"workflow": name, "change": "deleted"})

    def _workflow(self, name: str) -> WorkflowRow:
        row = self.store.workflow(name)
        if row is None:
            raise NotFound(f"no workflow {name!r}")
        return row

    async def _prune_forever(self, age: float) -> None:
        """Every hour, remove the runs that ended more than `age` seconds ago."""
        while True:
            try:
                removed = await asyncio.to_thread(self._prune, time.time() - age)
            except (CcdError, sqlite3.Error, OSError) as e:
                log.warning("cannot prune old runs: %s", e)
            else:
                if removed:
                    log.info("pruned %d run(s) that ended over %.0f s ago", len(removed), age)
            await asyncio.sleep(3600)

    def _prune(self, before: float) -> list[str]:
        store = Store(self.store.path)  # its own connections: this runs in a worker thread
        try:
            return runs.prune(store, self.state_dir, before)
        finally:
            store.close()

    # -- hosts ----------------------------------------------------------------------------

    def remote_hosts(self) -> list[shapes.Host]:
        """How this daemon reaches each remote host its runs use now (none for this
        machine); the `hosts` notice carries the same list when it changes."""
        return self.feed.hosts()

    # -- trouble --------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What keeps runs from going on now, in words (the health report, the page)."""
        return self.hosts.problems()

    def _trouble_from_writer(self, trouble: str | None) -> None:
        # Called on the store's writer thread.
        with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
            self._loop.call_soon_threadsafe(self._trouble, trouble)

    def _trouble(self, trouble: str | None) -> None:
        """The state cannot be saved (or can again): hold every start meanwhile, and tell
        the pages and clients that follow the global stream."""
        self.hosts.pause(trouble)
        self.bus.notice("problems", {"problems": self.problems()})

    # -- events ---------------------------------------------------------------------------

    def _committed(self, batch: list[tuple[int, Event]]) -> None:
        # Called on the store's writer thread.
        with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
            self._loop.call_soon_threadsafe(self.bus.publish, batch)

    async def _follow_journal(self) -> None:
        """Publish events that other processes (a `ccctl run` in a terminal) journal."""
        while True:
            await asyncio.sleep(self._journal_poll)
            batch = []
            try:
                for i, e in self.store.events(after=self._external_seen):
                    self._external_seen = i
                    if e.run_id not in self._driven:
                        batch.append((i, e))
            except sqlite3.Error as e:  # e.g. locked for longer than the busy timeout
                log.warning("cannot read the journal: %s", e)
            if batch:
                self.bus.publish(batch)


def _without_gc_pauses(work: Callable[[], WorkflowRow]) -> WorkflowRow:
    """`work()` with the cyclic garbage collector off (yamltree.paused_gc): unpacking and
    validating a big upload makes millions of objects, and each full collection walked
    them all holding the interpreter lock, 0.15-0.35 s the event loop could not run."""
    with paused_gc():
        return work()


def _workflow_shape(row: WorkflowRow) -> shapes.Workflow:
    return shapes.Workflow(row.name, row.jobs, row.created, row.path)
