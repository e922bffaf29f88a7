"""Durable state: one SQLite database (WAL) with runs, jobs and an append-only event journal.

Writes go through one writer thread that commits whatever has queued up in a single
transaction, so the event loop never waits on the disk and one scheduler tick costs one
commit. `synchronous=NORMAL`: a commit survives kill -9 of any ccd process (the pages
are in the OS); the last commits before a power loss may roll back, which is safe because
the job's status file, not the database, decides whether a job started. Event ids are
SQLite's AUTOINCREMENT ids, so several processes (the daemon, `ccctl run` in another
terminal) can share one database and ids stay unique and increasing.

Events carry every field of a job's new state, so applying one is plain assignment, here
in SQL as in `model.apply` (tests/test_store.py replays random sequences through both).
The schema evolves by numbered forward migrations (`PRAGMA user_version`), run in one
transaction by whichever process opens the database first; a database from a newer ccd is
refused rather than misread. `Reader` only reads, without writing anything or taking a
lock a writer would wait for: `ccctl` reads a state directory that way when no daemon runs.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ccd.errors import NotFound, StoreError
from ccd.model import Event, JobState, JobStatus, Run, RunState, Trace, WorkflowSpec

log = logging.getLogger("ccd.store")
COMMIT_EVERY = 0.02  # seconds
# Bounds of the commit-time histogram (seconds): a commit takes about a millisecond; past a
# second, the disk is full or another process holds the lock.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB_COLUMNS = ("run_id, name, position, state, progress, host, pid, exit_code, tstart, tend,"
                " modified, message, attempt, batch_id, trace")
_EVENT_COLUMNS = ("run_id, job, state, progress, time, exit_code, pid, message, tstart, tend,"
                  " attempt, batch_id, trace")

# Version 1: ccd 0.1.0, which set no user_version. Later versions are MIGRATIONS below.
_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, source TEXT NOT NULL, spec BLOB NOT NULL,
    state TEXT NOT NULL, created REAL NOT NULL, t0 REAL, t1 REAL, message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
    progress INTEGER NOT NULL, host TEXT NOT NULL, pid INTEGER, exit_code INTEGER,
    tstart REAL, tend REAL, modified REAL, message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, job TEXT, state TEXT NOT NULL,
    progress INTEGER NOT NULL, time REAL NOT NULL, exit_code INTEGER, pid INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
CREATE TABLE IF NOT EXISTS workflows (
    name TEXT PRIMARY KEY, path TEXT NOT NULL, created REAL NOT NULL, jobs INTEGER NOT NULL
);
"""



def _to_5(db: sqlite3.Connection) -> None:
    """What a job's last attempt used (`model.Trace` as JSON), so it survives a restart."""
    for table in ("jobs", "events"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN trace TEXT")


def _to_4(db: sqlite3.Connection) -> None:
    """Each job's fingerprint (ccd.reuse), so a later run of an edited workflow keeps what
    did not change. NULL for jobs of earlier runs: they are not kept."""
    db.execute("ALTER TABLE jobs ADD COLUMN fingerprint TEXT")


def _to_3(db: sqlite3.Connection) -> None:
    """A job's id in its batch system (Slurm, LSF), kept so a restart finds it there."""
    for table in ("jobs", "events"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN batch_id TEXT")


def _to_2(db: sqlite3.Connection) -> None:
    """Attempts; events carry every field; a run's working copy (NULL: runs/<id>/work; runs
    made before it ran in their workflow's own directory, and still do)."""
    db.execute("ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE jobs SET attempt = 1 WHERE pid IS NOT NULL OR state = 'running'")
    for column in ("tstart REAL", "tend REAL", "attempt INTEGER NOT NULL DEFAULT 0"):
        db.execute(f"ALTER TABLE events ADD COLUMN {column}")
    db.execute("ALTER TABLE runs ADD COLUMN workdir TEXT")
    for run_id, source in db.execute("SELECT id, source FROM runs").fetchall():
        db.execute("UPDATE runs SET workdir = ? WHERE id = ?", (str(Path(source).parent), run_id))


def _to_1(db: sqlite3.Connection) -> None:
    """An empty database becomes ccd 0.1.0's. (Not executescript: it commits first, and a
    migration is one transaction.)"""
    for statement in _SCHEMA_1.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_to_1, _to_2, _to_3, _to_4, _to_5]
VERSION = len(MIGRATIONS)


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as listed, without its jobs."""

    id: str
    workflow: str
    source: str
    state: RunState
    created: float
    t0: float | None
    t1: float | None
    message: str


@dataclass(slots=True)
class CommitTimes:
    """How long the writer's commits took, retries while they fail included: how many fell
    in each bucket of COMMIT_BUCKETS (the last counts those past them all) and their sum.
    The writer thread adds; `/metrics` reads."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS) + 1))
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(COMMIT_BUCKETS, seconds)] += 1
        self.seconds += seconds


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """A workflow uploaded to the daemon: its main YAML file and its size."""

    name: str
    path: str
    created: float
    jobs: int


def connect(path: Path, busy_timeout: float = 30) -> sqlite3.Connection:
    """Open (and create) the database with the settings every connection needs;
    `busy_timeout` is how long a statement waits for another process's lock."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _make_private(path)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                         check_same_thread=False)
    try:
        _wal(db, busy_timeout)
    except BaseException:
        db.close()
        raise
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    try:
        if _version(db) != VERSION:
            _migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _wal(db: sqlite3.Connection, patience: float) -> None:
    """Turn WAL on (a property of the file: only its creator changes anything). Doing so
    takes a lock SQLite does not wait for: two processes creating the database at once
    (two `ccctl run`s on a new state directory) would have one fail with "database is
    locked" at once; it waits its turn instead, as every other statement does."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def read_only(path: Path, busy_timeout: float = 5) -> sqlite3.Connection:
    """Open an existing database only to read it: no migration, no PRAGMA that writes (a
    reader needs none: WAL is a property of the file). SQLite may create the -wal and -shm
    files a reader needs, as any reader does. A database of another schema is refused:
    newer is unreadable, older needs a writer to migrate it first."""
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=busy_timeout,
                         isolation_level=None, check_same_thread=False)
    try:
        version = _version(db)
        if version > VERSION:
            raise StoreError(f"{path} was written by a newer ccd (schema {version}; this one "
                             f"reads up to {VERSION}): upgrade ccd")
        if version < VERSION:
            raise StoreError(f"{path} is from an older ccd (schema {version}): start `ccd` (or"
                             " `ccctl run`) once to bring it up to date, then try again")
    except BaseException:
        db.close()
        raise
    return db


def _make_private(path: Path) -> None:
    """The database is the user's alone: created 0600 (SQLite gives its -wal and -shm files
    the database's mode), and tightened if an older ccd left it or them 0644. Best effort:
    when the file cannot be created or changed, sqlite3 reports why right after. An existing
    database is never opened here: closing any descriptor of it would drop the POSIX locks
    that this process's other connections hold on it."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def _version(db: sqlite3.Connection) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
        return 1  # made by ccd 0.1.0
    return version


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the database to VERSION, all steps in one transaction (others wait for it)."""
    with _transaction(db):
        version = _version(db)
        if version > VERSION:
            raise StoreError(f"{path} was written by a newer ccd (schema {version}; this one "
                             f"reads up to {VERSION}): upgrade ccd, or use another state "
                             "directory")
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute(f"PRAGMA user_version = {VERSION}")
        if version:
            log.info("migrated %s from schema %d to %d", path, version, VERSION)


class Reader:
    """Reads of the state database on the caller's thread. Opened by itself it is read-only
    (`ccctl` without a daemon): it never writes, never migrates, and takes no lock that
    would hold up a daemon or a `ccctl run` writing meanwhile (WAL readers read a snapshot).
    """

    def __init__(self, path: Path, busy_timeout: float = 5) -> None:
        self.path = path
        try:
            self._mine = read_only(path, busy_timeout)
        except sqlite3.Error as e:
            raise StoreError(f"cannot read the state directory {path.parent}: {e}") from None

    def close(self) -> None:
        self._mine.close()

    def _connection(self) -> sqlite3.Connection:
        """A connection of its own, for a caller on another thread."""
        return read_only(self.path)


    def runs(self, source: str | None = None, unfinished: bool = False,
             workflow: str | None = None, limit: int = -1, prefix: str | None = None
             ) -> list[RunRow]:
        """Runs, newest first: of one workflow file or name, only unfinished, only those whose
        id starts with `prefix`, at most `limit`."""
        sql = "SELECT id, workflow, source, state, created, t0, t1, message FROM runs"
        where: list[str] = []
        args: list[object] = []
        for column, value in (("source", source), ("workflow", workflow)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if prefix is not None:  # substr, not LIKE: `_` and `%` are ordinary in run ids
            where.append("substr(id, 1, ?) = ?")
            args += [len(prefix), prefix]
        if unfinished:
            where.append("state = 'running'")
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._mine.execute(sql + " ORDER BY created DESC, id DESC LIMIT ?",
                                  [*args, limit]).fetchall()
        return [RunRow(r[0], r[1], r[2], RunState(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def counts(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        """Jobs per state of the given runs."""
        out: dict[str, dict[str, int]] = {}
        for start in range(0, len(run_ids), 500):  # SQLite caps the number of parameters
            chunk = run_ids[start:start + 500]
            for run_id, state, n in self._mine.execute(
                    "SELECT run_id, state, count(*) FROM jobs WHERE run_id IN "
                    f"({','.join('?' * len(chunk))}) GROUP BY run_id, state", chunk):
                out.setdefault(run_id, {})[state] = n
        return out

    def totals(self, known: Mapping[str, dict[str, int]]
               ) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        """Every run's state, and its jobs by state, except the runs in `known` (which the
        caller counted when they had ended: they never change). On a connection of its own,
        for a worker thread."""
        db = self._connection()
        try:
            states = dict(db.execute("SELECT id, state FROM runs"))
            jobs: dict[str, dict[str, int]] = {}
            for run_id in states.keys() - known.keys():
                jobs[run_id] = dict(db.execute(
                    "SELECT state, count(*) FROM jobs WHERE run_id = ? GROUP BY state",
                    (run_id,)))
            return states, jobs
        finally:
            db.close()

    def run_summaries(self) -> dict[str, tuple[int, RunRow]]:
        """Per workflow name: how many runs it has, and its newest."""
        rows = self._mine.execute(
            "SELECT r.id, r.workflow, r.source, r.state, r.created, r.t0, r.t1, r.message, c.n"
            " FROM runs r JOIN (SELECT workflow, count(*) AS n, max(created) AS newest"
            " FROM runs GROUP BY workflow) c ON r.workflow = c.workflow"
            " AND r.created = c.newest").fetchall()
        return {r[1]: (r[8], RunRow(r[0], r[1], r[2], RunState(r[3]), r[4], r[5], r[6], r[7]))
                for r in rows}

    def last_event_id(self) -> int:
        """The newest journal id (0 for an empty journal)."""
        row = self._mine.execute("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    def workflows(self) -> list[WorkflowRow]:
        """Stored workflows by name."""
        rows = self._mine.execute("SELECT name, path, created, jobs FROM workflows"
                                    " ORDER BY name").fetchall()
        return [WorkflowRow(*r) for r in rows]

    def workflow(self, name: str) -> WorkflowRow | None:
        """One stored workflow."""
        r = self._mine.execute("SELECT name, path, created, jobs FROM workflows WHERE name=?",
                                 (name,)).fetchone()
        return WorkflowRow(*r) if r else None

    def spec_text(self, run_id: str) -> tuple[str, bytes] | None:
        """The workflow file of a run as submitted: (its path, its bytes)."""
        row = self._mine.execute("SELECT source, spec FROM runs WHERE id=?", (run_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def load_run(self, run_id: str, spec: WorkflowSpec, run_dir: Path) -> Run:
        """Rebuild a run from the database (the spec comes from its stored text)."""
        r = self._mine.execute(
            "SELECT state, created, t0, t1, message, workdir FROM runs WHERE id=?",
            (run_id,)).fetchone()
        if r is None:
            raise NotFound(f"no run {run_id!r} in {self.path}")
        rows = self._mine.execute(
            "SELECT name, state, progress, host, pid, exit_code, tstart, tend, modified, message,"
            " attempt, batch_id, trace, fingerprint FROM jobs WHERE run_id=? ORDER BY position",
            (run_id,)).fetchall()
        jobs = {row[0]: JobStatus(row[0], JobState(row[1]), row[2], row[3], row[4], row[5],
                                  row[6], row[7], row[8], row[9], row[10], row[11],
                                  _decode(row[12])) for row in rows}
        prints = {row[0]: row[13] for row in rows if row[13] is not None}
        return Run(run_id, spec, jobs, run_dir, r[1], RunState(r[0]), r[2], r[3], r[4],
                   Path(r[5]) if r[5] else None, prints)

    def last_event(self, run_id: str, own_connection: bool = False) -> Event | None:
        """The newest journalled event of a run."""
        with contextlib.closing(self.events(run_id, newest_first=True, limit=1,
                                            own_connection=own_connection)) as found:
            return next((e for _, e in found), None)

    def events(self, run_id: str | None = None, after: int = 0, limit: int = -1,
               own_connection: bool = False, newest_first: bool = False
               ) -> Generator[tuple[int, Event], None, None]:
        """The journal after an event id, optionally for one run, at most `limit` entries,
        oldest first unless `newest_first`. `own_connection` for a caller on another thread
        (a connection is not shared between threads)."""
        sql = f"SELECT id, {_EVENT_COLUMNS} FROM events WHERE id > ?"
        args: list[object] = [after]
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        db = self._connection() if own_connection else self._mine
        try:
            order = " ORDER BY id DESC" if newest_first else " ORDER BY id"
            for row in db.execute(sql + order + " LIMIT ?", [*args, limit]):
                yield row[0], Event(id=row[0], run_id=row[1], job=row[2], state=JobState(row[3]),
                                    progress=row[4], time=row[5], exit_code=row[6], pid=row[7],
                                    message=row[8], tstart=row[9], tend=row[10],
                                    attempt=row[11], batch_id=row[12],
                                    trace=_decode(row[13]))
        finally:
            if own_connection:
                db.close()


class Store(Reader):
    """The state database of one state directory, to write and read (its connections are
    its own, not Reader's read-only one)."""

    def __init__(self, path: Path, on_commit: Callable[[list[tuple[int, Event]]], None] | None
                 = None, busy_timeout: float = 30) -> None:
        self.path = path
        # Why commits fail now (a full disk, a lock held too long), or None; the writer
        # thread tells `on_trouble` when it starts and when it is over.
        self.trouble: str | None = None
        self.on_trouble: Callable[[str | None], None] | None = None
        self._flushing: set[threading.Event] = set()  # flush() calls waiting
        self._abandoned = False  # closed with events it could not save
        self.commit_times = CommitTimes()
        # Two connections: one only the writer thread uses, one for the caller's thread (reads
        # and rare writes). A connection shared between threads would mix their transactions.
        try:
            self._db = connect(path, busy_timeout)
            try:
                self._mine = connect(path)
            except BaseException:
                self._db.close()
                raise
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot use the state directory {path.parent}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
        self._queue: queue.SimpleQueue[Event | threading.Event | None] = queue.SimpleQueue()
        self._on_commit = on_commit
        self._writer = threading.Thread(target=self._write_loop, name="ccd-store", daemon=True)
        self._writer.start()

    # -- writing --------------------------------------------------------------------------

    def create_run(self, run: Run, spec_text: bytes) -> None:
        """Record a new run with all its jobs, in one transaction, before anything starts."""
        with _transaction(self._mine):
            self._mine.execute(
                "INSERT INTO runs (id, workflow, source, spec, state, created, t0, t1, message,"
                " workdir) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run.id, run.spec.name, str(run.spec.source), spec_text, run.state.value,
                 run.created, run.t0, run.t1, run.message,
                 None if run.workdir is None else str(run.workdir)))
            self._mine.executemany(
                f"INSERT INTO jobs ({_JOB_COLUMNS}, fingerprint)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(run.id, s.name, i, s.state.value, s.progress, s.host, s.pid, s.exit_code,
                  s.tstart, s.tend, s.modified, s.message, s.attempt, s.batch_id,
                  _encode(s.trace), run.prints.get(s.name))
                 for i, s in enumerate(run.jobs.values())])

    def record(self, event: Event) -> None:
        """Queue an event; the writer thread journals it and applies it to runs/jobs."""
        self._queue.put(event)

    def flush(self) -> bool:
        """Block until everything recorded so far is committed; False if the store was
        closed first with events it could not save."""
        done = threading.Event()
        self._flushing.add(done)
        self._queue.put(done)
        done.wait()
        self._flushing.discard(done)
        return not self._abandoned

    def close(self, patience: float = 10.0) -> None:
        """Flush and stop the writer. While commits fail (a full disk), wait at most
        `patience` seconds, then give up on what is not saved: the jobs' status files keep
        their truth, and the next start reads them again."""
        self._queue.put(None)
        self._writer.join(None if self.trouble is None else patience)
        if self._writer.is_alive():
            log.error("stopping with events not saved (%s); the next start reads the jobs' "
                      "status files again", self.trouble)
            self._abandoned = True
            for waiting in list(self._flushing):  # nobody waits for what will not come
                waiting.set()
            return  # the writer thread is a daemon thread: it ends with the process
        self._db.close()
        self._mine.close()

    def _write_loop(self) -> None:
        db = self._db
        last_commit = 0.0
        while True:
            item = self._queue.get()
            # At most one commit per COMMIT_EVERY: a busy run's events share transactions
            # (each commit writes several WAL pages), an idle one's first event goes at once.
            wait = last_commit + COMMIT_EVERY - time.monotonic()
            if wait > 0 and item is not None and not isinstance(item, threading.Event):
                time.sleep(wait)
            batch: list[Event] = []
            waiters: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if len(batch) >= 5000:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                began = time.monotonic()
                committed = self._commit_until_it_works(db, batch)
                last_commit = time.monotonic()
                self.commit_times.add(last_commit - began)
                if self._on_commit is not None:
                    self._on_commit(committed)
            for w in waiters:
                w.set()
            if stop:
                return

    def _commit_until_it_works(self, db: sqlite3.Connection, batch: list[Event]
                               ) -> list[tuple[int, Event]]:
        """A full disk or a locked database must not lose events: keep them and retry,
        saying so once when it starts and once when it is over."""
        delay = 0.1
        while True:
            try:
                committed = self._commit(db, batch)
            except sqlite3.Error as e:
                if self.trouble is None:
                    log.error("cannot write the journal (%s); holding its events and "
                              "retrying", e)
                    full = isinstance(e, sqlite3.OperationalError) and "full" in str(e)
                    self._tell(f"the state directory {self.path.parent} is full: cannot save "
                               "the state" if full else f"cannot save the state: {e}")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.trouble is not None:
                log.info("the journal is written again")
                self._tell(None)
            return committed

    def _tell(self, trouble: str | None) -> None:
        self.trouble = trouble
        if self.on_trouble is not None:
            self.on_trouble(trouble)

    @staticmethod
    def _commit(db: sqlite3.Connection, batch: list[Event]) -> list[tuple[int, Event]]:
        """Journal the batch and bring runs and jobs to their last event in it: one
        executemany per table, and one row update per job, however many of its events
        (started, ended) the batch holds (as model.apply: every field, assigned)."""
        runs: dict[str, Event] = {}
        jobs: dict[tuple[str, str], Event] = {}
        for e in batch:
            if e.job is None:
                runs[e.run_id] = e
            else:
                jobs[e.run_id, e.job] = e
        with _transaction(db):
            db.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(e.run_id, e.job, e.state, e.progress, e.time, e.exit_code, e.pid, e.message,
                  e.tstart, e.tend, e.attempt, e.batch_id, _encode(e.trace)) for e in batch])
            # AUTOINCREMENT ids, consecutive within this transaction (the database's only
            # writer while it lasts): the batch's are the last len(batch) ids.
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            db.executemany("UPDATE runs SET state=?, message=?, t0=?, t1=? WHERE id=?",
                           [(e.state, e.message, e.tstart, e.tend, e.run_id)
                            for e in runs.values()])
            db.executemany(
                "UPDATE jobs SET state=?, progress=?, tstart=?, tend=?, exit_code=?, pid=?,"
                " attempt=?, message=?, modified=?, batch_id=?, trace=?"
                " WHERE run_id=? AND name=?",
                [(e.state, e.progress, e.tstart, e.tend, e.exit_code, e.pid, e.attempt,
                  e.message, e.time, e.batch_id, _encode(e.trace), e.run_id, e.job)
                 for e in jobs.values()])
        first = last - len(batch) + 1
        return [(first + i, msgspec.structs.replace(e, id=first + i))
                for i, e in enumerate(batch)]

    def _connection(self) -> sqlite3.Connection:
        return connect(self.path)

    # -- workflows and runs (rare writes, on the caller's thread) -----------------

    def put_workflow(self, row: WorkflowRow) -> None:
        """Add or replace a stored workflow."""
        self._mine.execute("INSERT OR REPLACE INTO workflows VALUES (?,?,?,?)",
                             (row.name, row.path, row.created, row.jobs))

    def delete_workflow(self, name: str) -> None:
        """Forget a stored workflow (its runs stay)."""
        self._mine.execute("DELETE FROM workflows WHERE name=?", (name,))

    def delete_run(self, run_id: str) -> None:
        """Forget a run: its row, its jobs and its events (ids are never reused)."""
        with _transaction(self._mine):
            for table, column in (("events", "run_id"), ("jobs", "run_id"), ("runs", "id")):
                self._mine.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))


def _encode(trace: Trace | None) -> str | None:
    return None if trace is None else _TRACE_ENCODER.encode(trace).decode()


def _decode(text: str | None) -> Trace | None:
    return None if text is None else _TRACE_DECODER.decode(text)


_TRACE_ENCODER = msgspec.json.Encoder()
_TRACE_DECODER = msgspec.json.Decoder(Trace)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
