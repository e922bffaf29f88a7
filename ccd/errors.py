"""The exceptions of ccd, written down once. The edges (the CLI, the API) turn them into an
exit code or an HTTP status and one line a person can act on, never a traceback.

    CcdError                  anything ccd reports to a user
    ├── SpecError             a workflow file is invalid; carries every Problem at once
    ├── RunError              a run cannot be created, found or resumed
    ├── StoreError            the state database cannot be used (e.g. from a newer ccd)
    ├── ExecutorError         a job cannot be started or controlled on its host
    │   ├── UnsupportedKind   the workflow asks for an executor this ccd does not have
    │   └── HostBusy          the host cannot take a job now (its disk is full): try later
    ├── GraphvizMissing       graphviz's `dot` is not installed
    ├── GraphvizFailed        `dot` ran but drew nothing; carries what it said
    ├── RequestError          a client's request is refused; `status` is the HTTP status
    │   ├── UploadError       an upload (body, tar, form) is refused       400, 413,
    │   │                                                                  415, 422
    │   ├── Forbidden         not for this client (an archive outside
    │   │                     the directories `--archive-dir` allows)      403
    │   ├── NotFound          no such workflow, run, job or result         404
    │   ├── Conflict          it does not fit the current state            409
    │   └── StateFull         no room in the state directory to keep it    507
    └── ClientError           `ccctl`: the daemon refused (`status`) or is unreachable (None)
        └── NoDaemon          no daemon here at all (no socket or a dead one, no CCD_URL)
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


class StoreError(CcdError):
    """The state database cannot be used."""


class ExecutorError(CcdError):
    """A job cannot be started or controlled on its host."""


class UnsupportedKind(ExecutorError):
    """The workflow asks for a kind of executor that this ccd does not have."""


class HostBusy(ExecutorError):
    """The host cannot take a job now (its disk is full); the job did not start and will be
    started when the host can take it, after `retry_after` seconds at the soonest."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GraphvizMissing(CcdError):
    """graphviz's `dot` program is not installed, so a graph cannot be drawn."""


class GraphvizFailed(CcdError):
    """graphviz's `dot` ran but did not draw the graph; carries what it said."""


class RequestError(CcdError):
    """A request is refused; `status` is the HTTP status that says why."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UploadError(RequestError):
    """An upload was refused (400 unreadable, 413 too large, 415 not a workflow's kind of
    file, 422 invalid)."""


class Forbidden(RequestError):
    """The request asks for something this client may not have (e.g. a file outside the
    directories ccd may read archives from)."""

    status = 403


class NotFound(RequestError):
    """No such workflow, run, job or result."""

    status = 404


class Conflict(RequestError):
    """The request does not fit the current state (e.g. cancel a finished run)."""

    status = 409


class StateFull(RequestError):
    """The state directory has no room (ENOSPC, EDQUOT) for what was asked (an upload, a
    new run's working copy); nothing of it was kept."""

    status = 507


class ClientError(CcdError):
    """`ccctl`: the daemon refused a request (`status` is the HTTP status) or cannot be
    reached (`status` is None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NoDaemon(ClientError):
    """`ccctl`: no daemon runs here: no socket (or one nothing listens on) and no CCD_URL.
    The commands that read runs then read the state directory themselves."""
