"""The journal and the database: nothing recorded is lost, even while the database cannot
be written; applying an event in SQL is the same as `model.apply`; old databases migrate."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import wait_for
from hypothesis import given, settings
from hypothesis import strategies as st

from ccd.errors import StoreError
from ccd.model import Event, JobSpec, JobState, JobStatus, Run, RunState, WorkflowSpec, apply
from ccd.store import VERSION, Store, connect


def test_events_wait_out_a_locked_database_and_are_then_committed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ccd.db"
    store = Store(path, busy_timeout=0.05)
    other = connect(path)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with caplog.at_level(logging.ERROR, logger="ccd.store"):
            store.record(Event(run_id="r1", job="a", state="running", progress=0, time=1.0))
            flushed = threading.Event()
            flusher = threading.Thread(target=lambda: (store.flush(), flushed.set()))
            flusher.start()
            wait_for(lambda: "cannot write the journal" in caplog.text,
                     what="the writer to meet the lock")
            assert not flushed.is_set()  # still held, not dropped
            other.execute("COMMIT")
            flusher.join(timeout=30)
        assert flushed.is_set()
        assert [(e.run_id, e.job, e.state) for _, e in store.events()] == [("r1", "a", "running")]
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
        store.close()


NAMES = ["a", "b", "c"]
times = st.one_of(st.none(), st.floats(0, 2e9, allow_nan=False))
ints = st.one_of(st.none(), st.integers(-255, 2**31))
events = st.builds(
    lambda job, state, run_state, **fields: Event(
        run_id="r1", job=job, state=JobState((state if job else run_state).value), **fields),
    job=st.one_of(st.none(), st.sampled_from(NAMES)), state=st.sampled_from(JobState),
    run_state=st.sampled_from(RunState), progress=st.integers(0, 100),
    time=st.floats(0, 2e9, allow_nan=False), tstart=times, tend=times, exit_code=ints,
    pid=ints, attempt=st.integers(0, 100), message=st.text(max_size=20))


def new_run(run_dir: Path) -> Run:
    spec = WorkflowSpec("t", Path("/t.yaml"), {n: JobSpec(n, exec="x") for n in NAMES}, ())
    return Run("r1", spec, {n: JobStatus(n) for n in NAMES}, run_dir, created=1.0)


@settings(max_examples=60, deadline=None)
@given(sequence=st.lists(events, max_size=30))
def test_the_store_applies_any_event_sequence_as_model_apply_does(
        tmp_path_factory: pytest.TempPathFactory, sequence: list[Event]) -> None:
    path = tmp_path_factory.mktemp("db") / "ccd.db"
    live = new_run(path.parent)
    store = Store(path)
    try:
        store.create_run(new_run(path.parent), b"")
        for e in sequence:
            apply(live, e)
            store.record(e)
        store.flush()
        stored = store.load_run("r1", live.spec, path.parent)
        journal = [e for _, e in store.events("r1")]
    finally:
        store.close()
    assert stored.jobs == live.jobs
    assert (stored.state, stored.t0, stored.t1, stored.message) == \
        (live.state, live.t0, live.t1, live.message)
    assert [(e.id > 0, e.job, e.state, e.tstart, e.tend, e.exit_code, e.pid, e.attempt,
             e.message) for e in journal] == \
        [(True, e.job, e.state, e.tstart, e.tend, e.exit_code, e.pid, e.attempt, e.message)
         for e in sequence]


def test_a_database_from_a_newer_ccd_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "ccd.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="written by a newer ccd"):
        Store(path)


def test_closing_while_commits_fail_gives_up_in_time_and_frees_who_waits(
        tmp_path: Path) -> None:
    path = tmp_path / "ccd.db"
    store = Store(path, busy_timeout=0.05)
    other = connect(path)
    other.execute("BEGIN EXCLUSIVE")  # every commit of the store fails from now on
    try:
        store.record(Event(run_id="r1", job="a", state=JobState.RUNNING, progress=0, time=1.0))
        flushed: list[bool] = []
        flusher = threading.Thread(target=lambda: flushed.append(store.flush()))
        flusher.start()
        wait_for(lambda: store.trouble is not None, what="the writer to meet the lock")
        store.close(patience=0.2)  # returns: a stopping daemon must not hang on a full disk
        flusher.join(timeout=10)
        assert flushed == [False]  # the flush was told it did not happen
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_two_processes_creating_the_state_database_at_once_both_open_it(
        tmp_path: Path) -> None:
    # Two `ccctl run`s (or a daemon and one) started together on a new state directory:
    # turning WAL on takes a lock SQLite does not wait for, so one of them said "database
    # is locked" and gave up.
    opener = ("import sys; from pathlib import Path; from ccd.store import Store; "
              "Store(Path(sys.argv[1])).close()")
    for i in range(20):
        db = tmp_path / f"{i}" / "ccd.db"
        both = [subprocess.Popen([sys.executable, "-c", opener, str(db)], text=True,
                                 stderr=subprocess.PIPE) for _ in range(2)]
        errors = [p.communicate(timeout=60)[1] for p in both]
        assert [p.returncode for p in both] == [0, 0], errors
