"""Label templates of the paper's Table 3: the text shown on a job's node in the graph.

A template is literal text with fields in braces, e.g.
``'{name}\\nprogress={progress}\\nstart={t0.%Y/%m/%d, %H--%M--%S}'``:

- ``name``, ``progress`` and ``status`` (the job's current state);
- any other attribute of the job as written (``user``, ``host``, ``kind``, ``script`` ...);
- points in time ``now``, ``created``, ``t0``, ``t1``, ``tstart``, ``tend``, ``modified``
  and durations ``dt0``, ``dt1``, ``dt``, each with an optional strftime format after a dot;
  ``start`` and ``end`` are cloudmesh-cc's first names for ``tstart`` and ``tend`` (its own
  example labels still say ``start={start.}``), kept so those labels work;
- ``os.VAR`` (the environment) and ``cm.VAR`` (the workflow's variables).

``--`` in the template's text and formats becomes ``:``, because a colon cannot be written
in a format (the paper's rule); ``{{`` and ``}}`` are literal braces. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ccd.model import JobSpec, JobStatus


@dataclass(frozen=True, slots=True)
class RunTimes:
    """When the run of a workflow was created, started and ended (epoch seconds)."""

    created: float | None = None
    t0: float | None = None
    t1: float | None = None


POINT_FORMAT = "%m/%d/%Y, %H:%M:%S"  # cloudmesh's default for a point in time
DURATION_FORMAT = "%H:%M:%S"
NOT_YET = "N/A"  # a time that does not exist yet, as cloudmesh writes it

_POINTS = ("now", "created", "t0", "t1", "tstart", "tend", "modified")
_DURATIONS = ("dt0", "dt1", "dt")
# cloudmesh-cc's earlier names for the job's start and end (commit 0850c67f of its labelmaker).
# Not reserved: a sweep's parameter may be called `start`; then `{start}` is the parameter.
_ALIASES = {"start": "tstart", "end": "tend"}
# Listed first in messages; `progress` and `status` are read live from the job's status.
_LIVE = ("name", "progress", "status")
_ATTRIBUTES = tuple(f.name for f in dataclasses.fields(JobSpec) if f.name not in _LIVE)
_PLAIN = frozenset(_LIVE + _ATTRIBUTES)
_ALLOWED = ", ".join((*_LIVE, *_ATTRIBUTES, *_POINTS, *_ALIASES, *_DURATIONS, "os.VAR",
                      "cm.VAR"))
# Names a sweep's parameter cannot take: in a label they mean something live or another
# kind of field. A parameter named like a node field (`host`) is fine: it wins there.
RESERVED = frozenset((*_LIVE, *_POINTS, *_DURATIONS, "os", "cm"))

# One token of a template; a lone brace is an error, so it is its own token.
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}]*\}|\{|\}|[^{}]+")
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")  # a field, or an escaped brace, as _TOKEN reads


class _Kind(enum.Enum):
    TEXT = enum.auto()
    PLAIN = enum.auto()
    POINT = enum.auto()
    DURATION = enum.auto()
    OS = enum.auto()
    CM = enum.auto()


@dataclass(frozen=True, slots=True)
class _Part:
    kind: _Kind
    text: str  # the literal text, or the field's name or variable
    fmt: str = ""  # strftime format of a time field, `--` already replaced


@dataclass(frozen=True, slots=True)
class _Parsed:
    parts: tuple[_Part, ...]
    problems: tuple[tuple[int, str], ...]


def check(template: str, params: Collection[str] = ()) -> list[tuple[int, str]]:
    """Problems of a label template as (character offset in template, message); [] if fine.

    `params`: the parameters of a sweep's node, which are fields too (see `substitute`).
    """
    problems = list(_parse(template).problems)
    if not params:
        return problems
    known = ", ".join(params)
    out = []
    for offset, message in problems:
        field = _FIELD.match(template, offset)
        if field is None or field[1] not in params:
            out.append((offset, message.replace("; fields are:",
                                                f"; parameters are: {known}; fields are:")))
    return out


def substitute(template: str, values: Mapping[str, str]) -> str:
    """The template with a sweep instance's parameters in place of their fields (`{gpu}`);
    every other field, and `{{`, `}}`, are left to `render`."""
    return _FIELD.sub(lambda m: values.get(m[1], m[0]) if m[1] is not None else m[0], template)


def render(
    template: str | None,
    job: JobSpec,
    status: JobStatus,
    times: RunTimes,
    now: float,
    variables: Mapping[str, str],
    environ: Mapping[str, str],
) -> str:
    """The label text (no label -> the job name). Never raises.

    A field that check() rejects is shown as written, so a bad label is visible on the
    graph instead of breaking it.
    """
    if not template:
        return job.name
    out: list[str] = []
    for part in _parse(template).parts:
        kind = part.kind
        if kind is _Kind.TEXT:
            out.append(part.text)
        elif kind is _Kind.PLAIN:
            out.append(_plain(part.text, job, status))
        elif kind is _Kind.POINT:
            out.append(_strftime(part.fmt, _point(part.text, status, times, now), time.localtime))
        elif kind is _Kind.DURATION:
            seconds = _duration(part.text, status, times, now)
            # Clock skew between hosts must not show a negative time as 23:59:59.
            seconds = None if seconds is None else max(0.0, seconds)
            out.append(_strftime(part.fmt, seconds, time.gmtime))
        elif kind is _Kind.OS:
            out.append(environ.get(part.text, ""))
        else:
            out.append(variables.get(part.text, ""))
    return "".join(out)


# A workflow of thousands of jobs usually repeats a handful of templates; the bound keeps a
# long-running daemon from growing without limit over many workflows.
@functools.lru_cache(maxsize=1024)
def _parse(template: str) -> _Parsed:
    parts: list[_Part] = []
    problems: list[tuple[int, str]] = []
    for match in _TOKEN.finditer(template):
        token = match.group()
        offset = match.start()
        if token == "{{":
            parts.append(_Part(_Kind.TEXT, "{"))
        elif token == "}}":
            parts.append(_Part(_Kind.TEXT, "}"))
        elif token == "{":
            problems.append((offset, "'{' is not closed; write '{{' for a literal brace"))
            parts.append(_Part(_Kind.TEXT, token))
        elif token == "}":
            problems.append((offset, "'}' was not opened; write '}}' for a literal brace"))
            parts.append(_Part(_Kind.TEXT, token))
        elif token[0] == "{":
            field = _field(token[1:-1])
            if isinstance(field, _Part):
                parts.append(field)
            else:
                problems.append((offset, field))
                parts.append(_Part(_Kind.TEXT, token))
        else:
            parts.append(_Part(_Kind.TEXT, token.replace("--", ":")))
    return _Parsed(tuple(_merge(parts)), tuple(problems))


@functools.lru_cache(maxsize=1024)  # fields repeat across templates that differ in text
def _field(body: str) -> _Part | str:
    """The part for the inside of one `{...}`, or why it is not a field."""
    head, dot, rest = body.partition(".")
    head = _ALIASES.get(head, head)
    if not body:
        return f"empty field '{{}}'; fields are: {_ALLOWED}"
    if head in ("os", "cm"):
        if not rest:
            return f"'{{{body}}}' needs a variable name, e.g. '{{{head}.HOME}}'"
        return _Part(_Kind.OS if head == "os" else _Kind.CM, rest)
    if head in _POINTS or head in _DURATIONS:
        default = POINT_FORMAT if head in _POINTS else DURATION_FORMAT
        fmt = rest.replace("--", ":") or default
        try:
            time.strftime(fmt, time.gmtime(0))
        except ValueError as error:
            return f"'{{{body}}}' has a bad time format: {error}"
        return _Part(_Kind.POINT if head in _POINTS else _Kind.DURATION, head, fmt)
    if head in _PLAIN:
        if dot:
            return f"'{{{body}}}': only times take a format, '{head}' is not a time"
        return _Part(_Kind.PLAIN, head)
    return f"unknown field '{body}'; fields are: {_ALLOWED}"


def _merge(parts: list[_Part]) -> list[_Part]:
    """Join neighbouring text so rendering appends fewer pieces."""
    merged: list[_Part] = []
    for part in parts:
        if part.kind is _Kind.TEXT and merged and merged[-1].kind is _Kind.TEXT:
            merged[-1] = _Part(_Kind.TEXT, merged[-1].text + part.text)
        else:
            merged.append(part)
    return merged


def _plain(name: str, job: JobSpec, status: JobStatus) -> str:
    if name == "progress":
        return str(status.progress)
    if name == "status":
        # Live, as in cloudmesh, where a node's status is updated while it runs; the
        # spec's `status` is only the initial one.
        return status.state.value
    value = getattr(job, name)
    if value is None:
        return ""
    if name == "env":
        return " ".join(f"{key}={val}" for key, val in value)
    if name == "outputs":
        return " ".join(value)
    return str(value)


def _point(name: str, status: JobStatus, times: RunTimes, now: float) -> float | None:
    if name == "now":
        return now
    if name == "created":
        return times.created
    if name == "t0":
        return times.t0
    if name == "t1":
        return times.t1
    if name == "tstart":
        return status.tstart
    if name == "tend":
        return status.tend
    return status.modified


def _duration(name: str, status: JobStatus, times: RunTimes, now: float) -> float | None:
    if name == "dt0":
        if times.t0 is None:
            return None
        return (times.t1 if times.t1 is not None else now) - times.t0
    if name == "dt1":
        if times.t0 is None or times.t1 is None:
            return None
        return times.t1 - times.t0
    if status.tstart is None:
        return None
    if status.tend is not None:
        return status.tend - status.tstart
    if status.state.started:
        return now - status.tstart
    return None  # final without an end time: its duration is unknown, not growing


def _strftime(fmt: str, seconds: float | None, convert: Callable[[float], time.struct_time]) -> str:
    if seconds is None:
        return NOT_YET
    try:
        return time.strftime(fmt, convert(seconds))
    except (OverflowError, OSError, ValueError):
        # A time beyond what the platform can convert (or NaN) is as good as unknown.
        return NOT_YET
