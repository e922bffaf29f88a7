"""A run's report: `ccctl report RUN -o FILE` and GET /api/v1/runs/{run}/report give one
HTML file that opens offline in a real browser, with the failed job's log tail, and every
label and log line shown as text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_web
from conftest import Ccctl, Daemon
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from test_web import OUT, start, upload

from ccd import report, shapes
from ccd.model import JobState, RunState

browser = test_web.browser  # the page's fixture

WORKFLOW = """\
workflow:
  nodes:
    prepare: {exec: 'echo ready', label: '<script>window.pwned = 1</script>{name}'}
    bad: {exec: 'seq -f "line %g" 100; echo "<img src=x onerror=alert(1)> boom"; exit 3'}
    after: {exec: 'true'}
  dependencies: ['prepare,bad,after']
"""


def test_the_report_of_a_failed_run_opens_offline_with_the_failed_jobs_log_tail(
        daemon: Daemon, ccctl: Ccctl, browser: Browser, tmp_path: Path) -> None:
    upload(daemon, WORKFLOW, "reported")
    run_id = start(daemon, "reported")
    assert daemon.ended(run_id)[""]["state"] == "failed"
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    proc = ccctl("report", "@last", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)

    context, page, requests = offline(browser, out)
    try:
        assert requests == [out.as_uri()], "the report must need nothing but itself"
        tail = page.locator("pre.log")
        expect(tail).to_contain_text("line 100\n<img src=x onerror=alert(1)> boom")
        expect(tail).not_to_contain_text("line 60\n")  # a tail, not the whole log
        expect(page.locator("table.jobs")).to_contain_text(
            "<script>window.pwned = 1</script>{name}")  # the label as written
        assert page.evaluate("document.scripts.length") == 0
        assert page.evaluate("window.pwned") is None
        assert page.locator("img").count() == 0
        if shutil.which("dot"):  # the daemon's Graphviz drew it; else its DOT is there
            expect(page.locator(".graph svg g.node")).to_have_count(3)
        else:
            expect(page.locator("pre").first).to_contain_text("digraph")
        expect(page.locator("svg[aria-label^='Timeline'] rect")).to_have_count(2)  # not after
        expect(page.locator("table.hosts")).to_contain_text("localhost")
        OUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=OUT / "report.png", full_page=True)  # for a person to look at
    finally:
        context.close()

    with daemon.http() as http:
        served = http.get(f"/api/v1/runs/{run_id}/report")
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/html; charset=utf-8"
    assert report.CSP in served.headers["content-security-policy"]  # with the guard's own
    assert "line 100" in served.text


def test_ccctl_report_of_an_unknown_run_says_so(daemon: Daemon, ccctl: Ccctl,
                                                tmp_path: Path) -> None:
    proc = ccctl("report", "nosuch", "-o", tmp_path / "r.html")
    assert proc.returncode == 2
    assert "no run 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.html").exists()


def offline(browser: Browser, file: Path) -> tuple[BrowserContext, Page, list[str]]:
    """A page on `file` where every request is recorded and any other than the file's own is
    refused."""
    context = browser.new_context()
    requests: list[str] = []

    def record(route: Route) -> None:
        requests.append(route.request.url)
        if route.request.url == file.as_uri():
            route.continue_()
        else:
            route.abort()

    context.route("**/*", record)
    page = context.new_page()
    page.goto(file.as_uri())
    return context, page, requests


def test_without_graphviz_the_inlined_renderer_draws_the_graph_offline(
        browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = shapes.Run("r", "wf", RunState.DONE, 1.0, 1.0, 2.0, "", "/x", {"done": 1}, jobs=[
        shapes.Job("a", JobState.DONE, 100, "localhost", "local", None, None, 0, 1.0, 2.0, 2.0,
                   1, "", [])])
    dot = 'digraph { "<a>" -> b }'
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz here
    graph = report.draw(dot)
    assert graph.svg is None and graph.renderer is not None
    drawn = tmp_path / "drawn.html"
    drawn.write_text(report.render(run, [], {}, graph, now=3.0))
    context, page, requests = offline(browser, drawn)
    try:
        expect(page.locator("#graph svg g.node")).to_have_count(2, timeout=30_000)
        expect(page.locator("#graph svg g.node text").first).to_have_text("<a>")
        assert requests == [drawn.as_uri()]
    finally:
        context.close()

    html = report.render(run, [], {}, report.Graph(dot), now=3.0)  # no renderer either
    assert "digraph { &quot;&lt;a&gt;&quot; -&gt; b }" in html
    assert "<script" not in html


def test_past_the_tail_limit_failed_jobs_are_named_not_their_logs() -> None:
    jobs = [shapes.Job(n, JobState.FAILED, 0, "localhost", "local", None, None, 1, 1.0, 2.0,
                       2.0, 1, "exit code 1", []) for n in ("a", "<b>")]
    run = shapes.Run("r", "wf", RunState.FAILED, 1.0, 1.0, 2.0, "", "/x", {"failed": 2},
                     jobs=jobs)
    html = report.render(run, [], {"a": "the end of a"}, report.Graph("digraph {}"), now=3.0)
    assert "the end of a" in html
    assert "The logs of 1 more failed jobs are left out" in html and "&lt;b&gt;." in html
