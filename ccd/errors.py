"""The exceptions of ccd, written down once.

    CcdError                  anything ccd reports to a user (never a traceback)
    ├── SpecError             a workflow file is invalid; carries every Problem at once
    ├── RunError              a run cannot be created, found or resumed
    └── ExecutorError         a job cannot be started or controlled on its host
        └── UnsupportedKind   the workflow asks for an executor this ccd does not have
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow file, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class CcdError(Exception):
    """Base of every error ccd reports to a user."""


class SpecError(CcdError):
    """A workflow file is invalid; `problems` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))


class RunError(CcdError):
    """A run cannot be created, found or resumed."""


class ExecutorError(CcdError):
    """A job cannot be started or controlled on its host."""


class UnsupportedKind(ExecutorError):
    """The workflow asks for a kind of executor that this ccd does not have."""
