"""The graph of a workflow run as DOT (through pydot), and its rendering by graphviz.

to_dot is pure; render runs graphviz's `dot` as a subprocess and blocks, so async callers
run it in a thread.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ccd import labels
from ccd.errors import GraphvizFailed, GraphvizMissing
from ccd.labels import RunTimes
from ccd.model import JobState, JobStatus, WorkflowSpec
from ccd.palette import STATE_COLORS

FORMATS = ("svg", "png")
DEFAULT_STYLE = "filled"  # so the fill colour shows the state; '' means this too (the paper)
DOT_TIMEOUT = 300.0  # seconds; a layout of thousands of nodes is slow, a hung one is a bug

# A backslash that does not start a graphviz line break (\n, \l, \r) is shown as written.
_LONE_BACKSLASH = re.compile(r"\\(?![nlr])")


def to_dot(
    spec: WorkflowSpec,
    statuses: Mapping[str, JobStatus],
    times: RunTimes,
    now: float,
    variables: Mapping[str, str],
    environ: Mapping[str, str],
) -> str:
    """DOT of the workflow: one node per job with its label, shape, style and state colour."""
    import pydot  # here, not at the top: importing pydot (pyparsing) slows every CLI start

    colors = {**STATE_COLORS, **spec.colors}
    graph = pydot.Dot(graph_name=_quote_id(spec.name), graph_type="digraph")
    groups = _sweep_groups(spec, statuses, graph)
    for job in spec.jobs.values():
        status = statuses.get(job.name) or JobStatus(name=job.name)
        text = labels.render(job.label, job, status, times, now, variables, environ)
        box = groups.get(job.name)
        if box is not None and text.startswith(f"{box.node}[") and text.endswith("]"):
            text = text[len(box.node) + 1:-1].replace(",", " ")  # the box says the node
        node = pydot.Node(
            _quote_id(job.name),
            label=_quote_label(text),
            style=_quote_id(job.style or DEFAULT_STYLE),
            fillcolor=_quote_id(colors[status.state.value]),
        )
        if job.shape:  # otherwise graphviz's own default (an ellipse)
            node.set("shape", _quote_id(job.shape))
        (box.cluster if box is not None else graph).add_node(node)
    for source, destination, attrs in _edges(spec, groups):
        graph.add_edge(pydot.Edge(_quote_id(source), _quote_id(destination), **attrs))
    if groups:
        graph.set("compound", "true")  # edges to and from a sweep's box
    return str(graph.to_string())


@dataclass(slots=True)
class _Box:
    """A sweep drawn as one box: its cluster and its instances."""

    node: str
    cluster: Any
    members: list[str]


def _edges(spec: WorkflowSpec, groups: Mapping[str, _Box]
           ) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The workflow's edges, but a job linked to every instance of a sweep (or from every
    one) is one edge to (or from) the sweep's box."""
    into: dict[tuple[str, int], list[str]] = {}
    out_of: dict[tuple[int, str], list[str]] = {}
    for a, b in spec.edges:
        if b in groups and a not in groups:
            into.setdefault((a, id(groups[b])), []).append(b)
        elif a in groups and b not in groups:
            out_of.setdefault((id(groups[a]), b), []).append(a)
    whole_into = {k for k, v in into.items() if len(v) == len(groups[v[0]].members)}
    whole_out = {k for k, v in out_of.items() if len(v) == len(groups[v[0]].members)}
    for a, b in spec.edges:
        if b in groups and (a, id(groups[b])) in whole_into:
            box = groups[b]
            if b == box.members[0]:
                yield a, b, {"lhead": _quote_id(box.cluster.get_name())}
        elif a in groups and (id(groups[a]), b) in whole_out:
            box = groups[a]
            if a == box.members[-1]:
                yield a, b, {"ltail": _quote_id(box.cluster.get_name())}
        else:
            yield a, b, {}


def _sweep_groups(spec: WorkflowSpec, statuses: Mapping[str, JobStatus],
                  graph: Any) -> dict[str, _Box]:
    """One box (a graphviz cluster) per sweep, holding its instances in a grid, labelled
    with the node's name, its size and its instances' states: 45 instances are one thing
    to read, not a row of 45 loose nodes. Returns the box of each instance."""
    import pydot

    boxes: dict[str, _Box] = {}
    for i, node in enumerate(sorted(spec.sweeps, key=len, reverse=True)):  # `a.b` first
        members = [name for name in spec.jobs
                   if name.startswith(f"{node}.") and name not in boxes]
        if not members:
            continue
        counts = Counter((statuses.get(n) or JobStatus(name=n)).state.value for n in members)
        states = " · ".join(f"{counts[s.value]} {s.value}" for s in JobState if counts[s.value])
        cluster = pydot.Cluster(f"sweep{i}", label=_quote_label(
            f"{node} x {len(members)}\n{states}"), style="rounded", color='"#98a2ae"')
        graph.add_subgraph(cluster)
        boxes.update(dict.fromkeys(members, _Box(node, cluster, members)))
        width = math.ceil(math.sqrt(len(members)))  # rows of `width`, one under the other
        for above, below in zip(members, members[width:], strict=False):
            cluster.add_edge(pydot.Edge(_quote_id(above), _quote_id(below), style="invis"))
    return boxes


def render(dot: str, fmt: str) -> bytes:
    """The graph drawn by graphviz as svg or png bytes (blocks; may take seconds)."""
    if fmt not in FORMATS:
        raise ValueError(f"cannot draw a graph as {fmt!r}; use one of {', '.join(FORMATS)}")
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissing(
            "drawing a graph needs graphviz's `dot` program, which is not on PATH; "
            "install graphviz (Debian/Ubuntu: `apt-get install graphviz`, "
            "Fedora: `dnf install graphviz`, macOS: `brew install graphviz`)"
        )
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=dot.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise GraphvizFailed(f"graphviz `dot` did not finish within {DOT_TIMEOUT:g} s") from error
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise GraphvizFailed(f"graphviz `dot` failed with exit code {done.returncode}: {said}")
    return done.stdout


def _quote_id(value: str) -> str:
    """A DOT quoted string that is exactly `value` (pydot passes quoted strings through)."""
    # Quoting everything ourselves keeps pydot from reading `a:b` as a port, `<...>` as an
    # HTML label, or `node` as the keyword.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{_line_breaks(escaped)}"'


def _quote_label(text: str) -> str:
    """A DOT label that shows `text`, where `\\n` (as written in YAML) breaks the line."""
    escaped = _LONE_BACKSLASH.sub(r"\\\\", text).replace('"', '\\"')
    return f'"{_line_breaks(escaped)}"'


def _line_breaks(text: str) -> str:
    # Real newlines (a double-quoted YAML "\n") become graphviz's centred line break.
    return text.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")
