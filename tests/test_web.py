"""The web page in a real browser (Debian's chromium, driven by Playwright) against a real
daemon: login, upload, runs followed by push in the table and the graph, the live log,
results, states and colours from the daemon, the page's events applied as `model.apply`
does, HTML shown as text, and catching up after the daemon restarts."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
from conftest import ROOT, Daemon, Mount, fill, require, ssh_workflow, wait_for
from playwright.sync_api import Browser, Locator, Page, Request, expect, sync_playwright
from sshd import SshHosts, free_port

from ccd import shapes
from ccd.model import Event, JobSpec, JobState, JobStatus, Run, RunState, WorkflowSpec, apply
from ccd.uploads import pack

T = TypeVar("T")
CHROMIUM = Path("/usr/lib/chromium/chromium")
OUT = ROOT / "test-output" / "web"
SCREENSHOTS = ROOT / "web" / "screenshots"
PUSH_MS = 30_000  # a bound that only stops a hung test; pushes arrive in milliseconds
DONE_FILL = "#ccffcc"
RUNNING_FILL = "#cce5ff"


def require_chromium() -> None:
    """The browser is a real component: missing it skips locally and fails under CI=true."""
    if not CHROMIUM.is_file():
        require(f"chromium is not installed at {CHROMIUM} (make test installs it as root)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


class Web:
    """One browser tab on the daemon, with what it requested and what went wrong in it."""

    def __init__(self, page: Page, daemon: Daemon) -> None:
        self.page = page
        self.daemon = daemon
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", self._request)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("console", lambda m: self.problems.append(m.text)
                if m.type == "error" and "Content Security Policy" in m.text else None)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def login(self) -> None:
        """Open the one-time link and wait for the page's event stream to be connected."""
        self.page.goto(self.daemon.login)
        self.wait_live()
        self.page.evaluate("window.sameDocument = true")  # gone if the page reloads

    def wait_live(self) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-live", "open",
                                                            timeout=PUSH_MS)

    def open(self, hash_: str) -> None:
        self.page.evaluate("h => { location.hash = h; }", hash_)

    def job_row(self, job: str) -> Locator:
        return self.page.locator(f'table.jobs tr[data-job="{job}"]')

    def rgb(self, colour: str) -> str:
        """A CSS colour as the browser computes it: 'white' is 'rgb(255, 255, 255)'."""
        return str(self.page.evaluate("""c => {
            const probe = document.body.appendChild(document.createElement("span"));
            probe.style.color = c;
            const rgb = getComputedStyle(probe).color;
            probe.remove();
            return rgb;
        }""", colour))

    def node_fill(self, job: str) -> str:
        shape = self.page.locator(f'g.node[data-job="{job}"] > :is(polygon, ellipse, path)')
        return str(shape.first.get_attribute("fill")).lower()

    def assert_not_reloaded_and_clean(self) -> None:
        assert self.page.evaluate("window.sameDocument") is True
        assert self.problems == []
        assert all(url.startswith(self.daemon.url) for url in self.requests), \
            "the page must not load anything from elsewhere (the lab may be offline)"


@pytest.fixture
def web(browser: Browser, daemon: Daemon) -> Iterator[Web]:
    """A fresh browser context on the daemon; closed before the daemon stops, or the
    daemon's shutdown would wait on the page's open event stream."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield Web(context.new_page(), daemon)
    finally:
        context.close()


def upload(daemon: Daemon, text: str, name: str) -> None:
    with daemon.http() as http:
        r = http.post("/api/v1/workflows", content=text.encode(),
                      params={"name": name, "filename": f"{name}.yaml"})
        assert r.status_code == 201, r.text


def start(daemon: Daemon, workflow: str) -> str:
    with daemon.http() as http:
        run_id: str = http.post("/api/v1/runs", json={"workflow": workflow}).json()["run"]
    return run_id


def upload_example(daemon: Daemon) -> None:
    data, filename = pack(ROOT / "examples" / "workflow-example")
    with daemon.http() as http:
        assert http.post("/api/v1/workflows", content=data,
                         params={"filename": filename}).status_code == 201


def gated(gate: Path) -> str:
    """start -> wait (until `gate` exists; logs before and after) -> end."""
    return f"""\
workflow:
  nodes:
    start:
    wait: {{exec: 'echo before; while [ ! -f {gate} ]; do sleep 0.02; done; echo after'}}
    end:
  dependencies: ['start,wait,end']
"""


def start_gated(daemon: Daemon, tmp_path: Path) -> tuple[Path, str]:
    """The `gated` workflow stored and a run of it started: its gate (to touch) and run."""
    gate = tmp_path / "gate"
    upload(daemon, gated(gate), "gated")
    return gate, start(daemon, "gated")


def screenshot(page: Page, name: str) -> None:
    """Saved under test-output/ for a person to look at; with CCD_UPDATE_SCREENSHOTS=1 also
    copied to web/screenshots/ for the README (otherwise every run would change them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)  # no hover effects in the picture
    size, main = page.viewport_size, page.locator("main").bounding_box()
    assert size is not None and main is not None
    page.screenshot(path=OUT / f"{name}.png", clip={  # the page down to its content
        "x": 0, "y": 0, "width": size["width"],
        "height": min(size["height"], main["y"] + main["height"])})
    if os.environ.get("CCD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        shutil.copyfile(OUT / f"{name}.png", SCREENSHOTS / f"{name}.png")


# -- login ------------------------------------------------------------------------------------


def test_without_login_the_page_says_how_to_log_in(web: Web) -> None:
    web.page.goto(web.daemon.url)
    expect(web.page.get_by_role("heading", name="Log in to ccd")).to_be_visible()
    expect(web.page.locator("main pre")).to_have_text("ccctl open")
    expect(web.page.locator("body")).to_have_attribute("data-live", "offline")


def test_login_link_sets_an_httponly_strict_cookie_and_leaves_no_code_in_the_url(
        web: Web) -> None:
    web.login()
    assert web.page.url == f"{web.daemon.url}/"
    (cookie,) = web.page.context.cookies()
    assert cookie["name"] == f"ccd_session_{web.daemon.port}"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert web.page.evaluate("document.cookie") == ""  # out of reach of scripts
    expect(web.page.get_by_role("heading", name="Workflows")).to_be_visible()
    expect(web.page.locator("main")).to_contain_text("No workflows yet")


def test_log_out_ends_this_browsers_session(web: Web) -> None:
    web.login()
    (cookie,) = web.page.context.cookies()
    web.page.get_by_role("button", name="Log out").click()
    expect(web.page.get_by_role("heading", name="Log in to ccd")).to_be_visible()
    expect(web.page.locator("body")).to_have_attribute("data-live", "offline")
    assert web.page.context.cookies() == []
    stale = httpx.get(f"{web.daemon.url}/api/v1/health",
                      headers={"Cookie": f"{cookie['name']}={cookie['value']}"})
    assert stale.status_code == 401
    web.page.reload()
    expect(web.page.get_by_role("heading", name="Log in to ccd")).to_be_visible()
    assert web.problems == []


# -- workflows --------------------------------------------------------------------------------


def test_upload_a_workflow_then_see_it_listed_with_a_run_button(web: Web, tmp_path: Path) -> None:
    web.login()
    good = tmp_path / "quick.yaml"
    good.write_text("workflow:\n  nodes: {a: {exec: 'true'}}\n  dependencies: []\n")
    web.page.set_input_files("#upload-file", good)
    web.page.get_by_role("button", name="Upload", exact=True).click()
    expect(web.page.locator(".upload-result .ok")).to_contain_text("Uploaded quick (1 job).")
    row = web.page.locator('table.workflows tr[data-key="workflow:quick"]')
    expect(row).to_contain_text("never run")
    row.get_by_role("button", name="Run").click()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    web.assert_not_reloaded_and_clean()


def test_the_upload_name_follows_the_servers_name_rule(web: Web) -> None:
    web.login()
    name = web.page.locator("#upload-name")
    from ccd.model import SAFE_NAME

    expect(name).to_have_attribute("pattern", SAFE_NAME.pattern)  # from /api/v1/meta
    for text, bad in (("good-name_1.2+x", False), ("../up", True), ("-dash", True),
                      ("a" * 129, True)):
        name.fill(text)
        assert name.evaluate("el => el.validity.patternMismatch") is bad, text
    web.assert_not_reloaded_and_clean()


def test_an_invalid_upload_shows_the_servers_file_line_col_problems(
        web: Web, tmp_path: Path) -> None:
    web.login()
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow:\n  nodes: {a: {kind: nope}}\n")
    web.page.set_input_files("#upload-file", bad)
    web.page.get_by_role("button", name="Upload", exact=True).click()
    result = web.page.locator(".upload-result .bad")
    expect(result).to_contain_text("bad.yaml was not uploaded: invalid workflow")
    expect(result.locator("li")).to_have_text(
        ["bad.yaml:2:21: unknown kind 'nope'; expected one of local, ssh, slurm, lsf, wsl"])
    expect(web.page.locator("main")).to_contain_text("No workflows yet")


def test_a_workflow_stored_or_deleted_elsewhere_appears_without_reload(web: Web) -> None:
    web.login()
    expect(web.page.locator("main")).to_contain_text("No workflows yet")
    upload(web.daemon, "workflow:\n  nodes: {a: {exec: 'true'}}\n", "from-cli")
    row = web.page.locator('table.workflows tr[data-key="workflow:from-cli"]')
    expect(row).to_contain_text("never run", timeout=PUSH_MS)
    with web.daemon.http() as http:
        assert http.delete("/api/v1/workflows/from-cli").status_code == 204
    expect(row).to_have_count(0, timeout=PUSH_MS)
    web.assert_not_reloaded_and_clean()


# -- runs -------------------------------------------------------------------------------------


def test_a_workflows_own_state_colours_are_the_same_in_table_and_graph(web: Web) -> None:
    upload(web.daemon, """\
workflow:
  nodes: {a: {exec: 'true'}}
colors:
  status: {done: '#AABBCC'}
""", "painted")
    web.login()
    web.open(f"#/runs/{start(web.daemon, 'painted')}")
    badge = web.job_row("a").locator(".badge")
    expect(badge).to_have_text("done", timeout=PUSH_MS)
    expect(badge).to_have_css("background-color", "rgb(170, 187, 204)")
    web.page.get_by_role("tab", name="Graph").click()
    wait_for(lambda: web.node_fill("a") == "#aabbcc", what="the graph in the same colour")
    web.open("#/runs")  # elsewhere the default colours come back
    expect(web.page.locator(".badge").first).not_to_have_css("background-color",
                                                             "rgb(170, 187, 204)")
    web.assert_not_reloaded_and_clean()


def test_the_example_runs_to_done_in_the_table_and_the_graph_by_push(web: Web) -> None:
    upload_example(web.daemon)
    web.page.set_viewport_size({"width": 1280, "height": 960})  # room for the graph at ~90%
    web.login()
    web.page.get_by_role("button", name="Run the example").click()
    head = web.page.locator(".run-head")
    expect(head).to_have_attribute("data-state", "running", timeout=PUSH_MS)
    expect(head).to_have_attribute("data-state", "done", timeout=PUSH_MS)
    jobs = ["start", "fetch-data", "compute", "analyze", "end"]
    for job in jobs:
        expect(web.job_row(job)).to_have_attribute("data-state", "done")
        expect(web.job_row(job).locator(".pct")).to_have_text("100%")
    expect(web.job_row("analyze").locator("td.exit")).to_have_text("0")
    expect(head).to_contain_text("5 done")
    screenshot(web.page, "table")

    web.page.get_by_role("tab", name="Graph").click()
    nodes = web.page.locator(".viewport g.node")
    expect(nodes).to_have_count(len(jobs), timeout=PUSH_MS)
    wait_for(lambda: all(web.node_fill(j) == DONE_FILL for j in jobs), what="a green graph")
    expect(web.page.locator('g.node[data-job="end"]')).to_contain_text("Total Time=00:0")
    expect(web.page.locator('g.node[data-job="start"] polygon')).to_have_count(1)  # invhouse
    screenshot(web.page, "graph")
    events = [u for u in web.requests if "/api/v1/events" in u]
    assert len(events) == 1, "one EventSource per page"
    web.assert_not_reloaded_and_clean()


def test_table_graph_and_log_change_in_place_while_a_job_runs(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate, run_id = start_gated(daemon, tmp_path)
    web.login()
    web.open(f"#/runs/{run_id}?tab=graph")
    expect(web.page.locator('g.node[data-job="wait"]')).to_have_count(1, timeout=PUSH_MS)
    wait_for(lambda: web.node_fill("wait") == RUNNING_FILL, what="wait to run in the graph")
    svg = web.page.locator(".viewport svg")
    svg.evaluate("svg => { svg.dataset.mark = 'first'; }")
    web.page.get_by_role("button", name="Zoom in (+)").click()
    zoom = web.page.locator(".zoom-label").text_content()

    web.page.locator('g.node[data-job="wait"]').focus()  # keyboard: Enter opens the job
    web.page.keyboard.press("Enter")
    log = web.page.locator("pre.log")
    expect(log).to_have_text("before\n", timeout=PUSH_MS)
    expect(web.page.locator(".log-status")).to_contain_text("Following")

    gate.touch()
    wait_for(lambda: web.node_fill("end") == DONE_FILL, what="end to be done in the graph")
    expect(log).to_have_text("before\nafter\n", timeout=PUSH_MS)
    expect(web.page.locator(".log-status")).to_have_text("End of the log: the job is over.")
    expect(svg).to_have_attribute("data-mark", "first")  # redrawn in the same <svg>
    expect(web.page.locator(".zoom-label")).to_have_text(str(zoom))

    web.page.get_by_role("tab", name="Graph").press("ArrowLeft")
    expect(web.page.get_by_role("tab", name="Table")).to_have_attribute("aria-selected", "true")
    expect(web.job_row("wait")).to_have_attribute("data-state", "done")
    expect(web.job_row("wait").locator("td.exit")).to_have_text("0")
    web.assert_not_reloaded_and_clean()


def test_cancel_and_rerun_from_the_page(web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    upload(daemon, gated(gate), "gated")
    web.login()
    web.page.locator('tr[data-key="workflow:gated"]').get_by_role("button", name="Run").click()
    expect(web.job_row("wait")).to_have_attribute("data-state", "running", timeout=PUSH_MS)
    rerun = web.page.get_by_role("button", name="Rerun")
    expect(rerun).to_be_disabled()
    web.page.get_by_role("button", name="Cancel").click()
    head = web.page.locator(".run-head")
    expect(head).to_have_attribute("data-state", "cancelled", timeout=PUSH_MS)
    expect(head.locator(".run-message")).to_have_text("cancelled by the page")
    expect(web.job_row("wait")).to_have_attribute("data-state", "cancelled")
    expect(web.job_row("end")).to_have_attribute("data-state", "cancelled")
    first = web.page.url
    gate.touch()
    rerun.click()
    expect(web.page).not_to_have_url(first)
    expect(head).to_have_attribute("data-state", "done", timeout=PUSH_MS)
    expect(web.job_row("start")).to_have_attribute("data-state", "done")
    web.assert_not_reloaded_and_clean()


def test_carry_on_after_a_fix_keeps_the_done_jobs_and_runs_the_fixed_one(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    text = f"""\
workflow:
  nodes:
    first: {{exec: 'echo first >> {tmp_path}/ran'}}
    second: {{exec: 'exit 3'}}
  dependencies: ['first,second']
"""
    upload(daemon, text, "fixme")
    web.login()
    web.page.locator('tr[data-key="workflow:fixme"]').get_by_role("button", name="Run").click()
    head = web.page.locator(".run-head")
    expect(head).to_have_attribute("data-state", "failed", timeout=PUSH_MS)
    upload(daemon, text.replace("exit 3", "echo fixed"), "fixme")  # the fix, stored
    first = web.page.url
    web.page.get_by_role("button", name="Carry on").click()
    expect(web.page).not_to_have_url(first)
    expect(head).to_have_attribute("data-state", "done", timeout=PUSH_MS)
    expect(web.job_row("first")).to_have_attribute("data-state", "done")
    assert (tmp_path / "ran").read_text() == "first\n"  # kept, not run again
    web.assert_not_reloaded_and_clean()


def test_a_failed_run_says_why_and_its_jobs_show_their_attempts_in_the_daemons_colours(
        web: Web, daemon: Daemon) -> None:
    upload(daemon, """\
workflow:
  nodes:
    flaky: {exec: 'if [ -f tried ]; then echo again; else touch tried; exit 1; fi', retries: 1}
    bad: {exec: 'exit 3'}
    after: {exec: 'true'}
  dependencies: ['bad,after']
""", "failing")
    with daemon.http() as http:
        looks = {s["name"]: s for s in http.get("/api/v1/meta").json()["states"]}
    web.login()
    web.open(f"#/runs/{start(daemon, 'failing')}?job=flaky")
    head = web.page.locator(".run-head")
    expect(head).to_have_attribute("data-state", "failed", timeout=PUSH_MS)
    expect(head.locator(".run-message")).to_have_text("1 job failed: bad: exit code 3")
    expect(web.page.locator("dd.fact-attempt")).to_have_text("2")
    expect(web.page.locator("dd.fact-message")).to_have_text("")
    badges = {"done": web.job_row("flaky").locator(".badge"),
              "failed": web.job_row("bad").locator(".badge"),
              "skipped": web.job_row("after").locator(".badge")}
    for state, badge in badges.items():
        expect(badge).to_have_css("background-color", web.rgb(looks[state]["fill"]))
        expect(badge).to_have_css("border-top-color", web.rgb(looks[state]["line"]))
        expect(badge).to_have_css("color", web.rgb(looks[state]["ink"]))
    expect(web.job_row("bad").locator(".bar .fill")).to_have_css(
        "background-color", web.rgb(looks["failed"]["bar"]))
    expect(head.locator(".run-message")).to_have_css("color", web.rgb(looks["failed"]["ink"]))
    expect(head).to_contain_text("1 done · 1 failed · 1 skipped")  # the daemon's order
    web.assert_not_reloaded_and_clean()


def random_event(rng: random.Random, jobs: list[str]) -> Event:
    """Any event of run r1: of the run or one of `jobs`, every field random or absent."""
    job = rng.choice([None, *jobs])
    states = list(RunState) if job is None else list(JobState)

    def maybe(value: T) -> T | None:
        return rng.choice([None, value])

    return Event(
        run_id="r1", job=job, state=JobState(rng.choice(states).value),
        progress=rng.randint(0, 100), time=rng.uniform(1.6e9, 1.8e9),
        tstart=maybe(rng.uniform(1.6e9, 1.8e9)), tend=maybe(rng.uniform(1.6e9, 1.8e9)),
        exit_code=maybe(rng.choice([0, 1, 3, 127, -9])), pid=maybe(rng.randint(2, 2**22)),
        attempt=rng.randint(0, 4), message=rng.choice([
            "", "exit code 1 (attempt 2 of 4); trying again", "an ancestor failed",
            "<b>not html</b> & ünïcode", "1 job failed: there: kind 'ssh' cannot run"]))


def test_the_page_applies_any_event_sequence_as_model_apply_does(
        web: Web, tmp_path: Path) -> None:
    rng = random.Random(9)
    names = ["a", "b", "c"]
    sequence = [random_event(rng, names) for _ in range(200)]

    def new_run() -> Run:
        spec = WorkflowSpec("t", tmp_path / "t.yaml",
                            {n: JobSpec(n, exec="x", outputs=("out/*",)) for n in names}, ())
        return Run("r1", spec, {n: JobStatus(n) for n in names}, tmp_path, created=1.0)

    def as_page_sees(run: Run) -> dict[str, Any]:
        """The run's JSON as GET /api/v1/runs/r1 gives it."""
        seen: dict[str, Any] = json.loads(msgspec.json.encode(shapes.Run.of(run)))
        return seen

    expected = new_run()
    for e in sequence:
        apply(expected, e)
    web.login()
    applied = web.page.evaluate("""async ([run, events]) => {
        const { applyEvent } = await import("/static/events.js");
        const jobs = new Map(run.jobs.map((j) => [j.name, j]));
        for (const e of events) applyEvent(run, jobs, e);
        return run;
    }""", [as_page_sees(new_run()), json.loads(msgspec.json.encode(sequence))])
    want = as_page_sees(expected)
    del applied["counts"], want["counts"]  # the page counts its jobs itself
    for job, wanted in zip(applied.pop("jobs"), want.pop("jobs"), strict=True):
        assert job == wanted
    assert applied == want


def test_a_jobs_results_are_listed_in_its_detail_and_download_from_the_page(web: Web) -> None:
    upload_example(web.daemon)
    web.login()
    web.page.get_by_role("button", name="Run the example").click()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    web.job_row("analyze").get_by_role("link", name="analyze").click()
    link = web.page.locator(".job-detail .results a")
    expect(link).to_have_text("results/answer.txt", timeout=PUSH_MS)
    expect(link).to_have_attribute("download", "answer.txt")
    expect(web.page.locator(".job-detail .results")).to_contain_text("39 B")
    response = web.page.request.get(web.daemon.url + str(link.get_attribute("href")))
    assert response.ok
    assert response.text() == "the sum of the squares of 1 to 5 is 55\n"
    web.assert_not_reloaded_and_clean()


def test_results_appear_when_the_job_ends_with_their_paths_as_text(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    upload(daemon, f"""\
workflow:
  nodes:
    wait:
      exec: 'while [ ! -f {gate} ]; do sleep 0.02; done; mkdir out; echo made > "out/a b#<i>1.txt"'
      outputs: ['out/*.txt']
""", "making")
    run_id = start(daemon, "making")
    web.login()
    web.open(f"#/runs/{run_id}?job=wait")
    results = web.page.locator(".job-detail .results")
    expect(results).to_have_text("Its outputs (out/*.txt) are listed when it ends.",
                                 timeout=PUSH_MS)
    gate.touch()
    link = results.locator("a")
    expect(link).to_have_text("out/a b#<i>1.txt", timeout=PUSH_MS)
    assert results.locator("i").count() == 0
    response = web.page.request.get(web.daemon.url + str(link.get_attribute("href")))
    assert response.text() == "made\n"
    asked = [u for u in web.requests if "/results" in u]
    assert len(asked) == 2, "listed when the detail opens and once more when the job ends"
    web.assert_not_reloaded_and_clean()


def test_html_in_labels_and_logs_is_shown_as_text(web: Web, daemon: Daemon) -> None:
    label = "<script>window.pwned = 1</script><b>bold</b>"
    output = "<script>window.pwned = 2</script><img src=x onerror=window.pwned=3>"
    upload(daemon, f"""\
workflow:
  nodes:
    x: {{label: '{label}', exec: 'echo "{output}"'}}
  dependencies: []
""", "hostile")
    run_id = start(daemon, "hostile")
    with daemon.http() as http:
        wait_for(lambda: http.get(f"/api/v1/runs/{run_id}").json()["state"] == "done",
                 what="the run to end")
    web.login()
    web.open(f"#/runs/{run_id}?tab=graph&job=x")
    node = web.page.locator('g.node[data-job="x"]')
    expect(node).to_contain_text(label, timeout=PUSH_MS)
    expect(web.page.locator("dd.fact-label")).to_have_text(label)
    expect(web.page.locator("pre.log")).to_have_text(output + "\n", timeout=PUSH_MS)
    assert web.page.locator("main script, main img, main b").count() == 0
    assert web.page.evaluate("window.pwned") is None
    web.assert_not_reloaded_and_clean()


def test_who_cancelled_is_shown_as_text(web: Web, daemon: Daemon, tmp_path: Path) -> None:
    hostile = "<img src=x onerror=window.pwned=4>"  # as an API client may say who it is
    upload(daemon, gated(tmp_path / "gate"), "gated")
    run_id = start(daemon, "gated")
    with daemon.http() as http:
        wait_for(lambda: http.get(f"/api/v1/runs/{run_id}").json()["counts"].get("running"),
                 what="the run to start a job")
        assert http.post(f"/api/v1/runs/{run_id}/cancel", json={"by": hostile}).status_code \
            == 202
    web.login()
    web.open(f"#/runs/{run_id}")
    message = web.page.locator(".run-head .run-message")
    expect(message).to_have_text(f"cancelled by {hostile}", timeout=PUSH_MS)
    assert web.page.locator("main img").count() == 0
    assert web.page.evaluate("window.pwned") is None
    web.assert_not_reloaded_and_clean()


def test_the_hosts_view_shows_each_link_by_push_and_why_an_unreachable_one_is_down(
        web: Web, daemon: Daemon, sshd_hosts: SshHosts) -> None:
    hostile = "<img src=x onerror=window.pwned=1>"  # a host's name, shown as written
    web.login()
    web.open("#/hosts")
    expect(web.page.locator(".host-list .empty")).to_contain_text("No remote hosts in use")
    upload(daemon, ssh_workflow(sshd_hosts, free_port("127.0.0.9"), gone=hostile), "remote")
    run_id = start(daemon, "remote")
    up = web.page.locator('table.hosts tr[data-host="b"]')
    down = web.page.locator("table.hosts tr.host.link-unreachable")
    why = web.page.locator("table.hosts tr.link-why td.link-error")
    expect(up).to_have_attribute("data-link", "connected", timeout=PUSH_MS)
    expect(up.locator("td.jobs")).to_have_text("1", timeout=PUSH_MS)
    expect(up.locator(".link-state")).to_have_text("connected")
    b = sshd_hosts.servers[1]
    expect(up).to_contain_text(f"{sshd_hosts.user}@{b.address}:{b.port}")
    expect(down.locator("th")).to_have_text(hostile, timeout=PUSH_MS)
    expect(down.locator(".link-state")).to_have_text("unreachable")
    expect(why).to_contain_text("Connection refused")
    expect(why).to_contain_text(hostile)
    assert web.rgb(down.locator(".link-state").evaluate("e => getComputedStyle(e).color")) \
        == web.rgb("#b42318")  # the page's --danger
    expect(web.page.locator('nav.main a[data-view="hosts"]')).to_have_attribute(
        "aria-current", "page")
    assert web.page.locator("main img").count() == 0
    assert web.page.evaluate("window.pwned") is None
    # The counters stay fresh by push (the periodic notice), with no request; what did not
    # change stays as it was: the reason selected to copy it is still selected.
    said = web.page.evaluate("""() => {
        const cell = document.querySelector("table.hosts tr.link-why td.link-error");
        getSelection().selectAllChildren(cell);
        return getSelection().toString();
    }""")
    assert "Connection refused" in said
    asked = sum("/api/v1/hosts" in url for url in web.requests)
    commands = up.locator("td.commands")
    expect(commands).not_to_have_text(commands.inner_text(), timeout=PUSH_MS)
    assert sum("/api/v1/hosts" in url for url in web.requests) == asked
    assert web.page.evaluate("getSelection().toString()") == said
    screenshot(web.page, "hosts")
    with daemon.http() as http:
        http.post(f"/api/v1/runs/{run_id}/cancel")
    web.assert_not_reloaded_and_clean()


def test_the_page_catches_up_after_the_daemon_restarts(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate, run_id = start_gated(daemon, tmp_path)
    web.login()
    web.open(f"#/runs/{run_id}?job=wait")
    expect(web.job_row("wait")).to_have_attribute("data-state", "running", timeout=PUSH_MS)
    expect(web.page.locator("pre.log")).to_have_text("before\n", timeout=PUSH_MS)

    daemon.kill()
    expect(web.page.locator("body")).to_have_attribute("data-live", "reconnecting",
                                                      timeout=PUSH_MS)
    gate.touch()  # the job finishes while the daemon is down
    daemon.start()

    web.wait_live()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    for job in ("start", "wait", "end"):
        expect(web.job_row(job)).to_have_attribute("data-state", "done")
    expect(web.page.locator("pre.log")).to_have_text("before\nafter\n", timeout=PUSH_MS)
    web.assert_not_reloaded_and_clean()


@pytest.fixture
def small_state(state_dir: Path, tmpfs: Mount) -> Path:
    """The daemon's state directory on a 16 MiB tmpfs (asked for before `web` starts it)."""
    return tmpfs(state_dir.name, size="16m")


def test_a_full_state_directory_shows_a_banner_until_there_is_room(
        small_state: Path, web: Web, tmp_path: Path) -> None:
    web.login()
    banner = web.page.locator("#problems")
    expect(banner).to_be_hidden()
    gate = tmp_path / "gate"
    upload(web.daemon, "workflow:\n  nodes:\n"
           f"    wait: {{exec: 'while [ ! -f {gate} ]; do sleep 0.02; done'}}\n", "held")
    run = start(web.daemon, "held")
    web.open(f"#/runs/{run}")
    expect(web.job_row("wait")).to_have_attribute("data-state", "running", timeout=PUSH_MS)
    filler = fill(small_state)
    try:
        gate.touch()  # its end cannot be saved: the daemon says so, by push
        expect(banner).to_be_visible(timeout=PUSH_MS)
        expect(banner).to_contain_text("is full: cannot save the state")
    finally:
        filler.unlink()
    expect(banner).to_be_hidden(timeout=PUSH_MS)
    expect(web.job_row("wait")).to_have_attribute("data-state", "done", timeout=PUSH_MS)
    web.assert_not_reloaded_and_clean()


def test_the_example_cards_commands_work_as_typed_in_a_new_directory(web: Web,
                                                                     tmp_path: Path) -> None:
    web.login()
    hint = web.page.locator("section.example p.hint")
    expect(hint).to_contain_text("ccctl example workflow-example")
    typed = [c for c in hint.locator("code").all_inner_texts() if c.startswith("ccctl ")]
    assert len(typed) == 2
    for command in typed:  # where a wheel user is: no checkout, no examples/ directory
        proc = subprocess.run([sys.executable, "-m", "ccctl", *command.split()[1:]],
                              cwd=tmp_path, env={**web.daemon.env, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{command}: {proc.stderr}"
    web.page.reload()
    expect(web.page.get_by_role("button", name="Run the example")).to_be_visible()
