"""The graph of a workflow run as DOT (through pydot), and its rendering by graphviz.

to_dot is pure; render runs graphviz's `dot` as a subprocess and blocks, so async callers
run it in a thread.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping

from ccd import labels
from ccd.errors import GraphvizFailed, GraphvizMissing
from ccd.labels import RunTimes
from ccd.model import JobStatus, WorkflowSpec
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
    for job in spec.jobs.values():
        status = statuses.get(job.name) or JobStatus(name=job.name)
        text = labels.render(job.label, job, status, times, now, variables, environ)
        node = pydot.Node(
            _quote_id(job.name),
            label=_quote_label(text),
            style=_quote_id(job.style or DEFAULT_STYLE),
            fillcolor=_quote_id(colors[status.state.value]),
        )
        if job.shape:  # otherwise graphviz's own default (an ellipse)
            node.set("shape", _quote_id(job.shape))
        graph.add_node(node)
    for source, destination in spec.edges:
        graph.add_edge(pydot.Edge(_quote_id(source), _quote_id(destination)))
    return str(graph.to_string())


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
