"""A run's report: one self-contained HTML file to mail to a colleague or attach to a paper.
`render` is pure: a function from the run, its timeline, its failed jobs' log tails and its
graph to a string. `build` gathers those from a run, its journal's events and a way to read
the end of a job's log (and draws the graph with Graphviz, in a thread): the daemon serves
it (`GET /api/v1/runs/{run}/report`, which `ccctl report` saves), and a state directory read
without a daemon can call it the same way.

Everything is inline: the style, the timeline as SVG, and the graph as Graphviz's SVG when
the daemon has Graphviz, else its DOT with the page's vendored renderer (viz.js, 1.2 MB,
the one script, allowed by its hash) to draw it when the file is opened. Every text is
escaped, and a Content-Security-Policy of `default-src 'none'` forbids the file any request
and any other script, so it opens offline and a label holding `<script>` is only text.
The table shows what each job used (its trace: CPU time and peak memory) as `ccctl status`
and the page do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from ccd import graph as graphs
from ccd import model, shapes, timeline
from ccd.assets import asset_dir
from ccd.errors import GraphvizFailed, GraphvizMissing
from ccd.labels import RunTimes
from ccd.model import Event, JobState
from ccd.palette import LOOKS
from ccd.settings import variables

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TAIL_LINES = 40  # of each failed job's log
TAIL_JOBS = 100  # failed jobs whose log tails are in the report (the rest are named)
ROW = 18  # the timeline's row height, px
LEFT = 220  # its label column, px
WIDTH = 1100  # the whole timeline, px
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;color:#1d2430;margin:24px;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:14px}
table{border-collapse:collapse}td,th{border-bottom:1px solid #dde2e8;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f6f8}td.n{text-align:right;
font-variant-numeric:tabular-nums}.badge{padding:0 6px;border-radius:8px;border:1px solid}
pre{background:#f4f6f8;padding:8px;overflow:auto;white-space:pre-wrap}
.muted{color:#5d6877}.graph svg{max-width:100%;height:auto}.facts span{margin-right:16px}
"""


# Draws the DOT with the inlined viz.js (its module text, without its exports, comes first).
_DRAW = """
instance().then((viz) => {
  const dot = document.getElementById("dot");
  document.getElementById("graph").replaceChildren(viz.renderSVGElement(dot.textContent));
  dot.hidden = true;
}).catch((e) => {
  document.getElementById("graph").textContent = `The graph cannot be drawn: ${e.message}`;
});
"""
# A NUL and the backslashes before it: an HTML parser reads a NUL in a script as U+FFFD (and
# the hash would no longer match); viz.js has them in one string literal, where \x00 says
# the same (a NUL after an odd number of backslashes is itself escaped: `\<NUL>` is NUL).
_NUL = re.compile(r"(\\*)\0")
# What could end or nest a <script> element early ("<!--" alone cannot).
_SCRIPT_TAG = re.compile(r"</?script", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Graph:
    """The run's graph: Graphviz's SVG when it could be drawn; else its DOT, drawn when the
    file opens by `renderer` (the text of the vendored viz.js module) if given."""

    dot: str
    svg: str | None = None
    renderer: str | None = None


async def build(run: model.Run, events: Iterable[Event],
                tail: Callable[[str], Awaitable[str]], now: float | None = None) -> str:
    """The report of `run` from its journal's `events`; `tail(job)` reads the end of a
    failed job's log."""
    now = time.time() if now is None else now
    failed = [name for name, s in run.jobs.items() if s.state is JobState.FAILED]
    tails = {name: await tail(name) for name in failed[:TAIL_JOBS]}
    dot = graphs.to_dot(run.spec, run.jobs, RunTimes(run.created, run.t0, run.t1), now,
                        variables(), os.environ)
    drawn = await asyncio.to_thread(draw, dot)
    return render(shapes.Run.of(run), timeline.segments(events, run.jobs, run.created),
                  tails, drawn, now)


def draw(dot: str) -> Graph:
    """The graph drawn by Graphviz; without it, the vendored viz.js to draw it when the
    file opens (blocks: Graphviz may take seconds)."""
    try:
        return Graph(dot, graphs.render(dot, "svg").decode())
    except (GraphvizMissing, GraphvizFailed):
        viz = asset_dir("web") / "vendor" / "viz" / "viz.js"
        return Graph(dot, renderer=viz.read_text("utf-8") if viz.is_file() else None)


def render(run: shapes.Run, segments: Sequence[shapes.Segment], tails: Mapping[str, str],
           graph: Graph, now: float | None = None) -> str:
    """The report as one HTML document; `tails` holds the log tails of failed jobs, `now`
    ends what still runs (default: the clock)."""
    now = time.time() if now is None else now
    jobs = run.jobs or []
    title = f"{run.workflow} · run {run.run} · {run.state.value}"
    drawing, script = _graph(graph)
    policy = CSP
    if script is not None:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        policy += f"; script-src 'sha256-{digest}' 'wasm-unsafe-eval'"
    parts = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
        f"<title>{escape(title)} · ccd report</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(run.workflow)}</h1>",
        _facts(run, jobs, now),
        "<h2>Graph</h2>", drawing,
        "<h2>Timeline</h2>", timeline_svg(jobs, segments, now),
        "<h2>Jobs</h2>", _table(jobs),
        "<h2>Hosts</h2>", _hosts(jobs, segments, now),
        "<h2>Logs of failed jobs</h2>", _logs(jobs, tails),
        f'<p class=muted>Made by ccd at {escape(_time(now))}.</p>',
        "" if script is None else f"<script type=module>{script}</script>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _facts(run: shapes.Run, jobs: Sequence[shapes.Job], now: float) -> str:
    counts = " · ".join(f"{n} {s}" for s, n in run.counts.items())
    end = run.t1 if run.t1 is not None else now
    facts = [("run", run.run), ("state", run.state.value), ("started", _time(run.t0)),
             ("ended", _time(run.t1)),
             ("elapsed", _duration(end - run.t0) if run.t0 is not None else ""),
             ("jobs", f"{len(jobs)}: {counts}" if counts else "0")]
    spans = "".join(f"<span>{escape(k)} <b>{escape(v)}</b></span>" for k, v in facts if v)
    message = f"<p>{escape(run.message)}</p>" if run.message else ""
    return f"<p class=facts>{spans}</p>{message}"


def _graph(graph: Graph) -> tuple[str, str | None]:
    """The graph's HTML, and the script that draws it (None: nothing to run)."""
    if graph.svg is not None:
        svg = graph.svg[graph.svg.find("<svg"):]  # without the XML prologue and DOCTYPE
        return f'<div class=graph role=img aria-label="The workflow graph">{svg}</div>', None
    dot = f"<pre id=dot>{escape(graph.dot)}</pre>"
    module = graph.renderer
    if module is not None and "\nexport {" in module:
        module = _NUL.sub(_nul, module[:module.rindex("\nexport {")]) + _DRAW
        if not _SCRIPT_TAG.search(module) and "\r" not in module:  # read as written
            return (f'<div class=graph id=graph role=img aria-label="The workflow graph">'
                    f"<p class=muted>Drawing the graph…</p></div>{dot}", module)
    return (f"<p class=muted>Graphviz is not installed where this report was made: the "
            f"graph is given as DOT; draw it with <code>dot -Tsvg</code>.</p>{dot}", None)


def _nul(m: re.Match[str]) -> str:
    slashes = m.group(1)
    return (slashes[:-1] if len(slashes) % 2 else slashes) + "\\x00"


def timeline_svg(jobs: Sequence[shapes.Job], segments: Sequence[shapes.Segment],
                 now: float) -> str:
    """The timeline as inline SVG: a row per job, grouped by host, a bar per segment (a
    paler one for waiting in a queue), each with a tooltip."""
    if not segments:
        return "<p class=muted>No job has started.</p>"
    t0 = min(s.start for s in segments)
    t1 = max(max((s.end if s.end is not None else now) for s in segments), t0 + 1e-3)
    scale = (WIDTH - LEFT - 10) / (t1 - t0)
    by_job: dict[str, list[shapes.Segment]] = {}
    for s in segments:
        by_job.setdefault(s.job, []).append(s)
    rows: list[str] = []
    y = 20
    for host, members in _by_host(jobs).items():
        rows.append(f'<text x="4" y="{y + 13}" font-weight="bold">{escape(host)}</text>')
        y += ROW
        for job in members:
            rows.append(f'<text x="14" y="{y + 13}">{escape(_clip(job.name, 30))}'
                        f"<title>{escape(job.name)}</title></text>")
            for s in by_job.get(job.name, ()):
                end = s.end if s.end is not None else now
                x, w = LEFT + (s.start - t0) * scale, max(1.0, (end - s.start) * scale)
                look = LOOKS[JobState.QUEUED if s.phase == "queued" else s.state]
                tip = (f"{job.name} · attempt {s.attempt} · {s.phase} · {s.state.value} · "
                       f"{_time(s.start)} to {_time(s.end) or 'now'} ({_duration(end - s.start)})")
                rows.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" '
                            f'fill="{look.fill if s.phase == "queued" else look.bar}" '
                            f'stroke="{look.line}"><title>{escape(tip)}</title></rect>')
            y += ROW
    axis = (f'<text x="{LEFT}" y="12" class=muted>{escape(_time(t0))}</text>'
            f'<text x="{WIDTH - 10}" y="12" text-anchor="end">+{_duration(t1 - t0)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 4}" '
            f'font-size="12" font-family="system-ui,sans-serif" role="img" '
            f'aria-label="Timeline: a bar per attempt of each job, grouped by host">'
            f"{axis}{''.join(rows)}</svg>")


def _table(jobs: Sequence[shapes.Job]) -> str:
    head = ["Job", "State", "Host", "Kind", "Attempt", "Started", "Ended", "Wall time",
            "Exit code", "CPU", "Peak memory", "Label", "Message"]
    rows = []
    for j in jobs:
        look = LOOKS[j.state]
        wall = _duration(j.tend - j.tstart) if j.tstart is not None and j.tend is not None else ""
        cells = [
            f"<th>{escape(j.name)}</th>",
            f'<td><span class=badge style="background:{look.fill};border-color:{look.line};'
            f'color:{look.ink}">{escape(j.state.value)}</span></td>',
            f"<td>{escape(j.host)}</td>", f"<td>{escape(j.kind)}</td>",
            f"<td class=n>{j.attempt or ''}</td>", f"<td>{escape(_time(j.tstart))}</td>",
            f"<td>{escape(_time(j.tend))}</td>", f"<td class=n>{wall}</td>",
            f"<td class=n>{'' if j.exit_code is None else j.exit_code}</td>",
            *(f"<td class=n>{escape(text)}</td>" for text in _used(j.trace)),
            f"<td>{escape(j.label or '')}</td>", f"<td>{escape(j.message)}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    ths = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table class=jobs><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _used(trace: model.Trace | None) -> tuple[str, str]:
    """A job's CPU seconds (user + system) and peak memory (≥ when sampled), or blanks."""
    if trace is None:
        return "", ""
    cpu = "" if trace.cpu_user is None or trace.cpu_system is None else \
        f"{trace.cpu_user + trace.cpu_system:.2f} s"
    peak = "" if trace.peak_rss is None else \
        f"{'≥' if trace.rss_sampled else ''}{trace.peak_rss / 1e6:.1f} MB"
    return cpu, peak


def _hosts(jobs: Sequence[shapes.Job], segments: Sequence[shapes.Segment], now: float) -> str:
    host_of = {j.name: j.host for j in jobs}
    rows = []
    for host, members in _by_host(jobs).items():
        mine = [s for s in segments if host_of.get(s.job) == host]
        running = [s for s in mine if s.phase == "running"]
        busy = sum((s.end if s.end is not None else now) - s.start for s in running)
        queued = sum((s.end if s.end is not None else now) - s.start for s in mine
                     if s.phase == "queued")
        span = (max((s.end if s.end is not None else now) for s in mine)
                - min(s.start for s in mine)) if mine else 0.0
        failed = sum(j.state is JobState.FAILED for j in members)
        retried = sum(s.state is JobState.FAILED for s in running) - failed
        rows.append(f"<tr><th>{escape(host)}</th><td class=n>{len(members)}</td>"
                    f"<td class=n>{failed}</td><td class=n>{max(0, retried)}</td>"
                    f"<td class=n>{_duration(span)}</td><td class=n>{_duration(busy)}</td>"
                    f"<td class=n>{_duration(queued)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Host", "Jobs", "Failed", "Retried attempts",
                                              "Wall time", "Job time (sum)", "Queued (sum)"))
    return (f"<table class=hosts><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _logs(jobs: Sequence[shapes.Job], tails: Mapping[str, str]) -> str:
    failed = [j for j in jobs if j.state is JobState.FAILED]
    if not failed:
        return "<p class=muted>No job failed.</p>"
    out = []
    for j in failed:
        if j.name not in tails:
            continue
        lines = tails[j.name].splitlines()[-TAIL_LINES:]
        text = "\n".join(lines) if lines else "(the log is empty)"
        out.append(f"<h3>{escape(j.name)} <span class=muted>{escape(j.message)}</span></h3>"
                   f"<pre class=log>{escape(text)}</pre>")
    left = [j.name for j in failed if j.name not in tails]
    if left:
        out.append(f"<p class=muted>The logs of {len(left)} more failed jobs are left out "
                   f"(<code>ccctl logs RUN JOB</code> shows them): "
                   f"{escape(', '.join(left))}.</p>")
    return "".join(out)


def _by_host(jobs: Sequence[shapes.Job]) -> dict[str, list[shapes.Job]]:
    hosts: dict[str, list[shapes.Job]] = {}
    for j in jobs:
        hosts.setdefault(j.host, []).append(j)
    return hosts


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(epoch))


def _duration(seconds: float) -> str:
    """Under a minute in seconds with a tenth, else M:SS or H:MM:SS."""
    if seconds < 60:
        return f"{max(0.0, seconds):.1f} s"
    s = round(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"
