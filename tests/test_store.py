"""The journal: nothing recorded is lost, even while the database cannot be written."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from conftest import wait_for

from ccd.model import Event
from ccd.store import Store, connect


def test_events_wait_out_a_locked_database_and_are_then_committed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ccd.db"
    store = Store(path, busy_timeout=0.05)
    other = connect(path)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with caplog.at_level(logging.ERROR, logger="ccd.store"):
            store.record(Event("r1", "a", "running", 0, 1.0))
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

