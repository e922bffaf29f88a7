"""Hard faults of the machine, for real: a read-only or full state directory (small tmpfs
mounts, so these need root, as CI has). ccd says what is wrong in one line and loses
nothing; when there is room again it carries on by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Ccctl, write

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """Mount small tmpfs file systems below tmp_path; unmounted after the test."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("these tests mount tmpfs and need root (CI runs as root)")
        pytest.skip("mounting tmpfs needs root")
    mounted: list[Path] = []

    def mount(name: str, size: str = "4m", readonly: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        options = f"size={size}" + (",ro" if readonly else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    """Fill a file system to the last byte; returns the file to delete to make room."""
    filler = where / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    return filler


QUICK = "workflow:\n  nodes: {a: {exec: 'true'}}\n"


@pytest.mark.parametrize("trouble", ["read-only", "full"])
def test_an_unusable_state_directory_is_one_line_and_exit_2(
        tmpfs: Mount, tmp_path: Path, ccctl: Ccctl, env: dict[str, str], trouble: str) -> None:
    disk = tmpfs("disk", readonly=trouble == "read-only")
    if trouble == "full":
        fill(disk)
    wf = write(tmp_path / "quick.yaml", QUICK)
    for command in (["-m", "ccctl", "run", str(wf), "--state-dir", str(disk / "state")],
                    ["-m", "ccd", "--no-tcp", "--state-dir", str(disk / "state"),
                     "--socket", str(tmp_path / "ccd.sock")]):
        proc = subprocess.run([sys.executable, *command], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.endswith(f"cannot use the state directory {disk / 'state'}: " +
                             ("Read-only file system" if trouble == "read-only"
                              else "database or disk is full")), line
