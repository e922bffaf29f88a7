// One run: its header (state, counts, times, Run again / Cancel / Rerun / Carry on), a
// Table, a Graph and a Timeline tab, and the detail of one job with its live log and its
// results. Job and run events from the page's stream change the rows in place and grow the
// timeline; the graph is fetched again after each change, a job's results when it ends.

import { get, json, resultPath, runPath, startRun, text } from "./api.js";
import { fill, h, link, put, route, setText } from "./dom.js";
import { applyEvent } from "./events.js";
import { cpu, elapsed, fullTime, peakMemory, size, when } from "./format.js";
import { GraphView } from "./graph.js";
import { coalesced } from "./live.js";
import { LogTail } from "./log.js";
import { showError, showInfo } from "./messages.js";
import { badge, bar, countsBar, isFinal, setPalette, updateBadge, updateBar } from "./states.js";
import { TimelineView } from "./timeline.js";

const COLUMNS = ["Job", "State", "Progress", "Host", "Kind", "Start", "Elapsed", "CPU",
                 "Peak memory", "Exit code"];
export const TABS = ["table", "graph", "timeline"];
const TAB_NAMES = { table: "Table", graph: "Graph", timeline: "Timeline" };

export class RunView {
  constructor(where, live) {
    this.id = where.run;
    this.live = live;
    this.tab = where.tab;
    this.jobName = where.job;
    this.run = null;
    this.jobs = new Map();
    this.rows = new Map();
    this.pending = null; // events that arrive while the run is being fetched
    this.graphStale = true;
    this.graph = new GraphView((job) => this.go({ job }));
    this.timeline = new TimelineView((job, keyboard) => {
      this.stayInTimeline = keyboard; // arrow keys go on from there
      this.go({ job });
    });
    this.timelinePending = null; // events that arrive while the timeline is being fetched
    this.drawGraph = coalesced(() => this.fetchGraph(), 100);
    this.reload = coalesced(() => this.load());
    this.detail = null;

    this.title = h("h1", { tabindex: -1 }, this.id);
    this.header = h("div", { class: "run-head" });
    this.tabButtons = TABS.map((tab) => h("button", {
      type: "button", role: "tab", id: `tab-${tab}`, "aria-controls": `panel-${tab}`,
      onclick: () => this.go({ tab }), onkeydown: (e) => this.tabKey(e, tab),
    }, TAB_NAMES[tab]));
    this.tbody = h("tbody");
    this.tablePanel = h("div", { role: "tabpanel", id: "panel-table",
                                 "aria-labelledby": "tab-table", class: "panel" },
      h("table", { class: "jobs" },
        h("thead", null, h("tr", null, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
        this.tbody));
    this.graphPanel = h("div", { role: "tabpanel", id: "panel-graph",
                                 "aria-labelledby": "tab-graph", class: "panel" }, this.graph.el);
    this.timelinePanel = h("div", { role: "tabpanel", id: "panel-timeline",
                                    "aria-labelledby": "tab-timeline", class: "panel" },
                           this.timeline.el);
    this.side = h("div", { class: "job-side" });
    this.el = h("section", { class: "run-view" },
      this.title, this.header,
      h("div", { class: "run-body" },
        h("div", { class: "run-main" },
          h("div", { role: "tablist", "aria-label": "Run views", class: "tabs" }, this.tabButtons),
          this.tablePanel, this.graphPanel, this.timelinePanel),
        this.side));
    this.showTab();
    this.reload();
  }

  /** Same run, another tab or job (the URL changed). */
  update(where) {
    this.tab = where.tab;
    this.showTab();
    if (where.job !== this.jobName) {
      this.jobName = where.job;
      this.showDetail();
      if (!this.stayInTimeline) this.side.querySelector("h2")?.focus(); // asked: go there
      this.stayInTimeline = false;
    }
  }

  go(change) {
    const tab = change.tab ?? this.tab;
    const job = "job" in change ? change.job : this.jobName;
    const query = new URLSearchParams();
    if (tab !== "table") query.set("tab", tab);
    if (job) query.set("job", job);
    const q = query.toString();
    location.hash = route("runs", this.id) + (q ? `?${q}` : "");
  }

  unmount() {
    this.detail?.log.stop();
    this.timeline.stop();
  }

  // -- data ------------------------------------------------------------------------------

  async load() {
    this.pending = [];
    let run;
    try {
      run = await get(runPath(this.id));
    } catch (error) {
      this.pending = null;
      if (error.status === 404) {
        fill(this.header, h("p", { class: "empty" }, `There is no run ${this.id}.`));
        this.el.querySelector(".run-body").hidden = true;
      } else {
        showError(error, "The run cannot be loaded");
      }
      return;
    }
    const pending = this.pending;
    this.pending = null;
    this.run = run;
    setPalette(run.colors);
    this.jobs = new Map(run.jobs.map((j) => [j.name, j]));
    for (const event of pending) applyEvent(run, this.jobs, event);
    const shown = this.detail; // a reload: its job may have ended meanwhile
    this.renderHeader();
    this.renderTable();
    this.showDetail();
    this.renderDetail();
    shown?.listResults();
    this.changed();
    if (this.timelineLoaded || this.tab === "timeline") this.loadTimeline();
  }

  /** The timeline from the journal, then the events after it (fetched when first shown).
   *  Only the newest of overlapping loads (a reload while one is on its way) is shown: the
   *  events that came meanwhile wait in its own list, and an older answer, folded up to an
   *  earlier event, would lose them. */
  async loadTimeline() {
    this.timelineLoaded = true;
    const pending = [];
    this.timelinePending = pending;
    let timeline;
    try {
      timeline = await get(`${runPath(this.id)}/timeline`);
    } catch (error) {
      if (this.timelinePending !== pending) return;
      this.timelinePending = null;
      this.timelineLoaded = false;
      if (error.status !== 404) showError(error, "The timeline cannot be loaded");
      return;
    }
    if (this.timelinePending !== pending) return; // a newer load is on its way
    this.timelinePending = null;
    this.timeline.show(timeline, this.jobs);
    for (const event of pending) this.timeline.onEvent(event, this.jobs);
  }

  onEvent(event) {
    if (event.run !== this.id) return;
    if (this.timelinePending) this.timelinePending.push(event);
    else this.timeline.onEvent(event, this.jobs);
    if (this.pending) this.pending.push(event);
    else if (this.run) {
      const before = this.jobs.get(event.job)?.state;
      applyEvent(this.run, this.jobs, event);
      this.renderHeader();
      if (event.job !== null) this.renderRow(event.job);
      if (event.job === this.jobName) {
        this.renderDetail();
        if (isFinal(event.state) && !isFinal(before)) this.detail?.listResults();
      }
      this.changed();
    }
  }

  changed() {
    if (this.tab === "graph") this.drawGraph();
    else this.graphStale = true;
    document.title = `${this.run.workflow} · ${this.run.state} · ccd`;
  }

  async fetchGraph() {
    this.graphStale = false;
    try {
      const dot = await text(`${runPath(this.id)}/graph`);
      await this.graph.show(dot, (job) => this.jobs.get(job)?.state);
    } catch (error) {
      showError(error, "The graph cannot be loaded");
    }
  }

  /** Once a second: the elapsed times of what is running (no request). */
  tick() {
    if (!this.run) return;
    const now = Date.now() / 1000;
    setText(this.facts.elapsed, elapsed(this.run.t0, this.run.t1, now));
    for (const [name, row] of this.rows) {
      const job = this.jobs.get(name);
      if (!isFinal(job.state)) setText(row.elapsed, elapsed(job.tstart, job.tend, now));
    }
    const shown = this.jobs.get(this.jobName);
    if (this.detail && shown && !isFinal(shown.state)) this.renderDetail();
  }

  // -- header ----------------------------------------------------------------------------

  // Built once, then changed in place, so a focused button keeps its focus as events arrive.
  buildHeader() {
    const run = this.run;
    fill(this.title, link(route("workflows", run.workflow), run.workflow));
    this.facts = {
      state: badge(run.state), started: h("span"), elapsed: h("span", { class: "run-elapsed" }),
      counts: h("span", { class: "run-counts" }), message: h("p", { class: "run-message" }),
    };
    this.buttons = {
      again: button("Run again", "Start a new run of this workflow", "primary", async () => {
        const next = await startRun(run.workflow);
        location.hash = route("runs", next.run);
      }),
      cancel: button("Cancel", "Cancel this run: stop its running jobs", "danger", async () => {
        await json("POST", `${runPath(run.run)}/cancel`, { by: "the page" });
        this.cancelling = true;
        showInfo(`Cancelling ${run.run}…`);
      }),
      rerun: button("Rerun", "A new run that keeps the done jobs and runs the others again",
        "", async () => {
          const next = await json("POST", `${runPath(run.run)}/rerun`);
          location.hash = route("runs", next.run);
        }),
      carryOn: button("Carry on",
        "A new run of the workflow as it is now (with your edits) that keeps this run's done " +
        "jobs that did not change; each other job says why it runs again", "", async () => {
          const next = await startRun(run.workflow, run.run);
          location.hash = route("runs", next.run);
        }),
    };
    const f = this.facts;
    fill(this.header,
      h("div", { class: "run-facts" },
        f.state, h("span", { class: "run-id" }, "run ", h("code", null, run.run)),
        h("span", null, "started ", f.started), h("span", null, "elapsed ", f.elapsed),
        f.counts),
      f.message,
      h("div", { class: "actions" }, Object.values(this.buttons),
        h("a", { class: "button", href: `${runPath(run.run)}/report`,
                 download: `report-${run.run}.html`,
                 title: "Save the run's report: one HTML file that opens offline" }, "Report")));
  }

  renderHeader() {
    const run = this.run;
    if (!this.facts) this.buildHeader();
    const f = this.facts;
    updateBadge(f.state, run.state);
    this.header.dataset.state = run.state;
    setText(f.started, when(run.t0 ?? run.created));
    f.started.title = fullTime(run.t0 ?? run.created);
    setText(f.elapsed, elapsed(run.t0, run.t1));
    const counts = {};
    for (const job of this.jobs.values()) counts[job.state] = (counts[job.state] ?? 0) + 1;
    fill(f.counts, countsBar(counts));
    setText(f.message, run.message);
    f.message.hidden = !run.message;
    const final = isFinal(run.state);
    this.buttons.cancel.disabled = final || Boolean(this.cancelling);
    this.buttons.rerun.disabled = !final || run.state === "done"; // a done run: nothing to redo
    this.buttons.carryOn.disabled = !final;
  }

  // -- table -----------------------------------------------------------------------------

  /** Rows for the jobs; kept (with the focus in them) when a reload brings the same jobs. */
  renderTable() {
    const names = [...this.jobs.keys()];
    if (names.join("\n") !== [...this.rows.keys()].join("\n") || !names.length) {
      this.rows.clear();
      fill(this.tbody, names.map((name) => this.makeRow(name)));
      if (!names.length) put(this.tbody, h("tr", null, h("td", { colspan: COLUMNS.length,
        class: "empty" }, "This workflow has no jobs.")));
    }
    for (const name of names) this.renderRow(name);
  }

  makeRow(name) {
    const cell = (cls) => h("td", { class: cls });
    const row = {
      name: h("a", { href: this.jobHash(name) }, name),
      badge: badge(this.jobs.get(name).state), bar: bar(), host: cell("host"), kind: cell("kind"),
      start: cell("time"), elapsed: cell("time"), cpu: cell("cpu"), memory: cell("memory"),
      exit: cell("exit"),
    };
    row.tr = h("tr", { "data-job": name },
      h("th", { scope: "row", class: "job" }, row.name), h("td", null, row.badge),
      h("td", { class: "progress" }, row.bar), row.host, row.kind, row.start, row.elapsed,
      row.cpu, row.memory, row.exit);
    this.rows.set(name, row);
    return row.tr;
  }

  jobHash(name) {
    const query = new URLSearchParams(this.tab === "table" ? { job: name } :
                                      { tab: this.tab, job: name });
    return `${route("runs", this.id)}?${query}`;
  }

  renderRow(name) {
    const job = this.jobs.get(name);
    const row = this.rows.get(name);
    if (!job || !row) return;
    row.tr.dataset.state = job.state;
    row.tr.classList.toggle("selected", name === this.jobName);
    row.name.title = job.label ?? "";
    updateBadge(row.badge, job.state);
    updateBar(row.bar, job.progress, job.state);
    setText(row.host, job.host);
    setText(row.kind, job.kind);
    setText(row.start, when(job.tstart));
    row.start.title = fullTime(job.tstart);
    setText(row.elapsed, elapsed(job.tstart, job.tend));
    setText(row.cpu, cpu(job.trace));
    row.cpu.title = job.trace?.cpu_user == null ? "" :
      `user ${job.trace.cpu_user.toFixed(2)} s, system ${job.trace.cpu_system.toFixed(2)} s`;
    setText(row.memory, peakMemory(job.trace));
    row.memory.title = job.trace?.rss_sampled ? "the most seen by sampling every second" : "";
    setText(row.exit, job.exit_code ?? "");
  }

  // -- tabs ------------------------------------------------------------------------------

  showTab() {
    for (const [i, tab] of TABS.entries()) {
      const on = tab === this.tab;
      this.tabButtons[i].setAttribute("aria-selected", on);
      this.tabButtons[i].tabIndex = on ? 0 : -1;
    }
    this.tablePanel.hidden = this.tab !== "table";
    this.graphPanel.hidden = this.tab !== "graph";
    this.timelinePanel.hidden = this.tab !== "timeline";
    if (this.tab === "timeline") {
      if (!this.timelineLoaded && this.run) this.loadTimeline();
      this.timeline.draw();
    }
    for (const [name, row] of this.rows) row.name.href = this.jobHash(name);
    if (this.tab === "graph" && this.graphStale && this.run) this.drawGraph();
  }

  tabKey(e, tab) {
    const i = TABS.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const to = (next + TABS.length) % TABS.length;
    this.tabButtons[to].focus();
    this.go({ tab: TABS[to] });
  }

  // -- job detail ------------------------------------------------------------------------

  showDetail() {
    for (const [name, row] of this.rows) row.tr.classList.toggle("selected", name === this.jobName);
    this.graph.select(this.jobName);
    this.timeline.select(this.jobName);
    if (this.detail?.name === this.jobName) return;
    this.detail?.log.stop();
    this.detail = null;
    fill(this.side);
    this.el.classList.toggle("with-job", Boolean(this.jobName));
    const job = this.jobs.get(this.jobName);
    if (!this.jobName || !this.run) return;
    if (!job) {
      put(this.side, h("p", { class: "empty" }, `This run has no job ${this.jobName}.`));
      return;
    }
    const fields = {};
    const dl = h("dl", { class: "facts" });
    for (const label of ["Host", "Kind", "PID", "Exit code", "Attempt", "Started", "Ended",
                         "Elapsed", "CPU", "Peak memory", "Read", "Written", "Progress",
                         "Label", "Message"]) {
      fields[label] = h("dd", { class: `fact-${label.toLowerCase().replace(" ", "-")}` });
      put(dl, h("dt", null, label), fields[label]);
    }
    fields.Progress.append(bar());
    const log = new LogTail(this.id, job.name, this.live);
    const heading = h("h2", { tabindex: -1 }, job.name);
    const results = job.outputs.length ? h("div", { class: "results" }) : null;
    this.detail = { name: job.name, fields, log, state: badge(job.state),
                    listResults: coalesced(() => this.listResults(job.name, results)) };
    put(this.side, h("section", { class: "job-detail", "aria-label": `Job ${job.name}` },
      h("div", { class: "job-head" }, heading, this.detail.state,
        h("a", { class: "close", href: this.closeHash(), "aria-label": "Close the job detail",
                 title: "Close" }, "×")),
      dl, results && [h("h3", null, "Results"), results], h("h3", null, "Log"), log.el));
    this.renderDetail();
    this.detail.listResults();
    log.start();
  }

  /** The files the job's `outputs:` name, each a download link (once, and when it ends). */
  async listResults(name, el) {
    if (!el) return;
    let found;
    try {
      found = await get(`${runPath(this.id)}/results?job=${encodeURIComponent(name)}`);
    } catch (error) {
      fill(el, h("p", { class: "hint" }, `The results cannot be listed: ${error.message}`));
      return;
    }
    if (found.length) {
      fill(el, h("ul", { class: "result-list" }, found.map((r) => h("li", null,
        h("a", { href: resultPath(this.id, r.path), download: r.path.split("/").pop() },
          r.path), " ", h("span", { class: "size" }, size(r.size))))));
    } else {
      const job = this.jobs.get(name);
      const globs = h("code", null, job.outputs.join(" "));
      fill(el, h("p", { class: "hint" }, isFinal(job.state) ?
        ["Nothing matches its outputs: ", globs, "."] :
        ["Its outputs (", globs, ") are listed when it ends."]));
    }
  }

  closeHash() {
    return route("runs", this.id) + (this.tab === "table" ? "" : `?tab=${this.tab}`);
  }

  renderDetail() {
    const job = this.jobs.get(this.jobName);
    if (!this.detail || !job) return;
    const f = this.detail.fields;
    updateBadge(this.detail.state, job.state);
    setText(f.Host, job.host);
    setText(f.Kind, job.kind);
    setText(f.PID, job.pid ?? "");
    setText(f["Exit code"], job.exit_code ?? "");
    setText(f.Attempt, job.attempt || "");
    setText(f.Started, fullTime(job.tstart));
    setText(f.Ended, fullTime(job.tend));
    setText(f.Elapsed, elapsed(job.tstart, job.tend));
    const t = job.trace;
    setText(f.CPU, t?.cpu_user == null ? "" : `${cpu(t)} (user ${t.cpu_user.toFixed(2)} s, ` +
                                              `system ${t.cpu_system.toFixed(2)} s)`);
    setText(f["Peak memory"], peakMemory(t));
    setText(f.Read, t?.bytes_read == null ? "" : size(t.bytes_read));
    setText(f.Written, t?.bytes_written == null ? "" : size(t.bytes_written));
    updateBar(f.Progress.firstChild, job.progress, job.state);
    setText(f.Label, job.label ?? "");
    setText(f.Message, job.message);
  }
}

function button(label, title, kind, action) {
  const el = h("button", { type: "button", class: kind, title }, label);
  el.addEventListener("click", async () => {
    el.disabled = true;
    try {
      await action();
    } catch (error) {
      showError(error, `${label} failed`);
      el.disabled = false;
    }
  });
  return el;
}

