"""The run's timeline in a real browser against a real daemon: bars appear and grow by push,
jobs are grouped by host (a remote one over the loopback sshd too), a retried job shows its
two attempts, a click opens the job's log, the page folds events as ccd/timeline.py does,
and 500 jobs keep the drawing fast."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import test_web
from conftest import Daemon, ssh_workflow, wait_for
from playwright.sync_api import APIResponse, Route, expect
from sshd import SshHosts, free_port
from test_web import PUSH_MS, Web, gated, random_event, screenshot, start, start_gated, upload

from ccd.timeline import segments

browser, web = test_web.browser, test_web.web  # the page's fixtures


def boxes(web: Web, job: str) -> list[dict[str, Any]]:
    """Where the job's bars are drawn now (the view reports what it drew); none before the
    timeline is shown."""
    found: list[dict[str, Any]] = web.page.evaluate(
        "job => document.querySelector('.timeline')?.view.boxes(job) ?? []", job)
    return found


def test_bars_appear_and_grow_while_a_job_runs_and_a_click_opens_its_log(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate, run_id = start_gated(daemon, tmp_path)
    web.login()
    web.open(f"#/runs/{run_id}?tab=timeline")
    expect(web.page.get_by_role("tab", name="Timeline")).to_have_attribute(
        "aria-selected", "true")
    wait_for(lambda: [b["open"] for b in boxes(web, "wait")] == [True], what="a running bar")
    first = boxes(web, "wait")[0]["width"]
    wait_for(lambda: boxes(web, "wait")[0]["width"] > first + 2, what="the bar to grow")

    bar = boxes(web, "wait")[0]
    web.page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"])
    expect(web.page).to_have_url(f"{web.daemon.url}/#/runs/{run_id}?tab=timeline&job=wait")
    expect(web.page.locator("pre.log")).to_have_text("before\n", timeout=PUSH_MS)
    web.page.locator(".timeline canvas").focus()  # the keyboard: the next job, and back
    web.page.keyboard.press("ArrowDown")
    expect(web.page).to_have_url(f"{web.daemon.url}/#/runs/{run_id}?tab=timeline&job=end")
    expect(web.page.locator(".timeline canvas")).to_be_focused()
    web.page.keyboard.press("ArrowUp")
    expect(web.page).to_have_url(f"{web.daemon.url}/#/runs/{run_id}?tab=timeline&job=wait")

    gate.touch()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    wait_for(lambda: [(b["open"], b["state"]) for b in boxes(web, "wait")] == [(False, "done")],
             what="the bar to end done")
    wait_for(lambda: [b["state"] for b in boxes(web, "end")] == ["done"],
             what="the join's bar, drawn on a later frame than the run's end")
    web.assert_not_reloaded_and_clean()


def test_no_bar_is_lost_when_the_run_reloads_while_its_timeline_loads(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate, run_id = start_gated(daemon, tmp_path)
    held: list[tuple[Route, APIResponse]] = []

    def hold(route: Route) -> None:  # the daemon answers now; the page gets it when told
        held.append((route, route.fetch()))

    def answered(n: int) -> bool:
        web.page.evaluate("true")  # the page's requests are handled while it is talked to
        return len(held) == n

    web.page.route("**/timeline", hold)
    web.login()
    web.open(f"#/runs/{run_id}?tab=timeline")
    wait_for(lambda: answered(1), what="the timeline to be asked for")
    upload(daemon, gated(gate), "other")  # stored elsewhere: the run's view reloads
    wait_for(lambda: answered(2), what="the timeline to be asked for again")
    held[0][0].fulfill(response=held[0][1])  # the first answer comes first
    gate.touch()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    held[1][0].fulfill(response=held[1][1])  # from before the run ended
    wait_for(lambda: [b["state"] for b in boxes(web, "end")] == ["done"],
             what="the bar of the job that ran while the timeline loaded")
    assert [(b["state"], b["open"]) for b in boxes(web, "wait")] == [("done", False)]
    web.assert_not_reloaded_and_clean()


def test_jobs_are_grouped_by_host_with_a_remote_jobs_bar_growing(
        web: Web, daemon: Daemon, sshd_hosts: SshHosts) -> None:
    hostile = "<img src=x onerror=window.pwned=1>"  # a host's name, drawn as written
    upload(daemon, ssh_workflow(sshd_hosts, free_port("127.0.0.9"), gone=hostile), "remote")
    run_id = start(daemon, "remote")
    web.login()
    web.open(f"#/runs/{run_id}?tab=timeline")
    wait_for(lambda: [b["open"] for b in boxes(web, "j")] == [True], what="j running on b")
    first = boxes(web, "j")[0]["width"]
    wait_for(lambda: boxes(web, "j")[0]["width"] > first + 2, what="j's bar to grow")
    rows = web.page.evaluate("document.querySelector('.timeline').view.rows")
    assert rows == [{"host": "b", "count": 1}, {"job": "j"}, {"host": hostile, "count": 1},
                    {"job": "k"}]
    wait_for(lambda: [(b["state"], b["open"]) for b in boxes(web, "k")] == [("failed", False)],
             what="k to fail: its host refuses connections")
    assert web.page.evaluate("window.pwned") is None
    with daemon.http() as http:
        http.post(f"/api/v1/runs/{run_id}/cancel")
    wait_for(lambda: [b["state"] for b in boxes(web, "j")] == ["cancelled"],
             what="j's bar to end cancelled")
    web.assert_not_reloaded_and_clean()


FLAKY = """\
workflow:
  nodes:
    flaky: {exec: 'if [ -f tried ]; then echo again; else touch tried; exit 1; fi', retries: 1}
    after: {exec: 'true'}
  dependencies: ['flaky,after']
"""


def test_a_job_that_fails_and_retries_shows_two_segments_live_and_after_a_reload(
        web: Web, daemon: Daemon) -> None:
    upload(daemon, FLAKY, "flaky")
    web.login()
    with daemon.http() as http:  # an empty timeline before the run, so it all comes by push
        run_id = http.post("/api/v1/runs", json={"workflow": "flaky"}).json()["run"]
    web.open(f"#/runs/{run_id}?tab=timeline")
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    want = [(1, "running", "failed"), (2, "running", "done")]
    try:
        wait_for(lambda: [(b["attempt"], b["phase"], b["state"]) for b in boxes(web, "flaky")]
                 == want, what="two attempts of flaky")
    except AssertionError:
        got = boxes(web, "flaky")
        raise AssertionError(f"timed out waiting for two attempts of flaky; drawn: {got}") from None
    live = boxes(web, "flaky")
    assert live[0]["x"] + live[0]["width"] <= live[1]["x"] + 1, "the retry comes after"
    screenshot(web.page, "timeline")
    with web.page.expect_download() as saved:
        web.page.get_by_role("link", name="Report").click()
    assert saved.value.suggested_filename == f"report-{run_id}.html"
    assert "flaky · attempt 1 · running · failed" in Path(saved.value.path()).read_text()

    web.page.reload()  # now from the journal, through GET .../timeline
    web.wait_live()
    wait_for(lambda: [(b["attempt"], b["phase"], b["state"]) for b in boxes(web, "flaky")]
             == want, what="the two attempts from the journal")
    with daemon.http() as http:
        served = http.get(f"/api/v1/runs/{run_id}/timeline").json()
    assert [(s["job"], s["attempt"], s["state"]) for s in served["segments"]] == [
        ("flaky", 1, "failed"), ("flaky", 2, "done"), ("after", 1, "done")]


def test_the_page_folds_any_event_sequence_as_ccd_timeline_does(web: Web) -> None:
    rng = random.Random(15)
    events = [msgspec.structs.replace(random_event(rng, ["a", "b", "c"]), id=i + 1)
              for i in range(300)]
    want = json.loads(msgspec.json.encode(segments(events)))
    web.login()
    folded = web.page.evaluate("""async (events) => {
        const { Fold } = await import("/static/timeline.js");
        const fold = new Fold();
        for (const e of events) fold.add(e);
        return fold.segments;
    }""", json.loads(msgspec.json.encode(events)))
    assert folded == want


def test_500_jobs_draw_in_well_under_a_frame_while_the_run_runs(
        web: Web, daemon: Daemon, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    nodes = "\n".join(f"    j{i:03}: {{exec: 'true', label: 'job <b>{i}</b>'}}"
                      for i in range(499))
    upload(daemon, f"""\
workflow:
  nodes:
    wait: {{exec: 'while [ ! -f {gate} ]; do sleep 0.05; done'}}
{nodes}
""", "wide")
    run_id = start(daemon, "wide")
    web.login()
    web.open(f"#/runs/{run_id}?tab=timeline")
    expect(web.page.locator(".run-head .summary")).to_contain_text("499 done",
                                                                   timeout=120_000)
    wait_for(lambda: len(boxes(web, "j498")) == 1, what="the last job's bar")
    burst: list[float] = web.page.evaluate("document.querySelector('.timeline').view.drawTimes")
    # Frames drawn from now on, while `wait` still runs (every frame redraws).
    times: list[float] = web.page.evaluate("""() => new Promise((resolve) => {
        const view = document.querySelector('.timeline').view;
        const from = view.drawTimes.length;
        const scroller = view.scroller;
        let frames = 0;
        function next() {
          scroller.scrollTop = (frames * 97) % scroller.scrollHeight; // other rows in view
          frames += 1;
          if (frames < 120) requestAnimationFrame(next);
          else resolve(view.drawTimes.slice(-Math.min(120, view.drawTimes.length - from)));
        }
        requestAnimationFrame(next);
    })""")
    assert len(times) >= 60, f"the timeline drew only {len(times)} frames while it ran"
    for what, drawn in (("while the jobs ran", burst), ("scrolling", times)):
        p95 = sorted(drawn)[int(len(drawn) * 0.95)]
        print(f"500 jobs, {what}: {len(drawn)} frames, median "
              f"{sorted(drawn)[len(drawn) // 2]:.2f} ms, p95 {p95:.2f} ms, max {max(drawn):.2f} ms")
        assert p95 < 50, f"p95 draw time {what}: {p95:.1f} ms"
    assert [b["open"] for b in boxes(web, "wait")] == [True]
    web.page.evaluate("document.querySelector('.timeline-scroll').scrollTop = 0")
    screenshot(web.page, "timeline-500")
    gate.touch()
    expect(web.page.locator(".run-head")).to_have_attribute("data-state", "done",
                                                            timeout=PUSH_MS)
    web.assert_not_reloaded_and_clean()
