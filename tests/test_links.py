"""This machine as a link (ccd.executors.links.HereLink): what the batch executor runs
`sbatch`, `squeue` and its scripts through when the cluster's login node is this machine."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import wait_for

from ccd.errors import ExecutorError
from ccd.executors.links import HereLink


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_cancelled_command_leaves_no_process_and_no_open_pipe(tmp_path: Path) -> None:
    # ccd stopping cancels the commands in flight: each must end there and then, not run on
    # with a pipe nobody reads (which also warned "loop is closed" when collected later).
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        link = HereLink()
        command = asyncio.create_task(link.run(f"echo $$ > {pidfile}; sleep 60"))
        await asyncio.to_thread(wait_for, lambda: pidfile.read_text().strip() if
                                pidfile.exists() else "", 10, what="the command to start")
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command

    asyncio.run(scenario())
    assert gone(int(pidfile.read_text()))


def test_a_command_that_does_not_answer_in_time_is_ended(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        with pytest.raises(ExecutorError, match=r"got no answer in 0\.5 s"):
            await HereLink().run(f"echo $$ > {pidfile}; sleep 60", timeout=0.5)

    asyncio.run(scenario())
    assert gone(int(pidfile.read_text()))
