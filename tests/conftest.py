"""Shared fixtures: workflow files in a temporary directory and `ccctl` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str, mode: int | None = None) -> Path:
    """Write dedented text; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A private state directory for one test."""
    return tmp_path / "state"


@pytest.fixture
def env(state_dir: Path) -> dict[str, str]:
    """The environment `ccctl` runs with in tests."""
    return {**os.environ, "CCD_STATE_DIR": str(state_dir), "COLUMNS": "200"}


class Ccctl:
    """Runs `ccctl` as a real process, the way a user does."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ccctl", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "ccctl", *map(str, args)], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def ccctl(env: dict[str, str]) -> Iterator[Ccctl]:
    yield Ccctl(env)
