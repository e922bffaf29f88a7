// The workflow pages: the list (with upload and the example), one workflow (its runs and
// YAML), and all runs. Lists are fetched again after the events that change them.

import { get, json, startRun, upload, workflowPath } from "./api.js";
import { fill, h, keepFocus, link, put, route, setText } from "./dom.js";
import { elapsed, fullTime, when } from "./format.js";
import { coalesced } from "./live.js";
import { problemList, showError, showInfo } from "./messages.js";
import { badge, countsBar, namePattern } from "./states.js";

const EXAMPLE = "workflow-example";
const RECENT = 15;
const ALL_RUNS = 1000;
const GAP_MS = 300; // between list refreshes during a burst of events

/** Runs as a table; `workflow` false leaves out the workflow column. */
function runsTable(runs, { workflow = true, empty }) {
  if (!runs.length) return h("p", { class: "empty" }, empty);
  const head = ["Run", workflow && "Workflow", "State", "Jobs", "Started", "Duration"];
  const columns = head.filter(Boolean).map((c) => h("th", { scope: "col" }, c));
  return h("table", { class: "runs" },
    h("thead", null, h("tr", null, columns)),
    h("tbody", null, runs.map((r) => h("tr", { "data-key": `run:${r.run}` },
      h("th", { scope: "row" }, link(route("runs", r.run), r.run)),
      workflow && h("td", null, link(route("workflows", r.workflow), r.workflow)),
      h("td", null, badge(r.state)),
      h("td", null, countsBar(r.counts)),
      h("td", { class: "time", title: fullTime(r.t0 ?? r.created) }, when(r.t0 ?? r.created)),
      h("td", { class: "time duration", "data-t0": r.t0 ?? "", "data-t1": r.t1 ?? "" },
        elapsed(r.t0, r.t1))))));
}

/** Durations of running runs, once a second (no request). */
function tickDurations(root) {
  const now = Date.now() / 1000;
  for (const cell of root.querySelectorAll("td.duration[data-t0]:not([data-t0=''])")) {
    if (!cell.dataset.t1) setText(cell, elapsed(Number(cell.dataset.t0), null, now));
  }
}

function runButton(workflow, label = "Run") {
  const el = h("button", { type: "button", class: "primary", title: `Start a run of ${workflow}` },
               label);
  el.addEventListener("click", async () => {
    el.disabled = true;
    try {
      const run = await startRun(workflow);
      location.hash = route("runs", run.run);
    } catch (error) {
      showError(error, `${workflow} cannot run`);
      el.disabled = false;
    }
  });
  return el;
}

/** A base for views that list runs and refresh them after events. */
class Listing {
  constructor() {
    this.reload = coalesced(() => this.load(), GAP_MS);
  }

  onEvent(event) {
    if (this.wants(event)) this.reload();
  }

  wants() {
    return true;
  }

  tick() {
    tickDurations(this.el);
  }

  async fetch(what, loader) {
    try {
      return await loader();
    } catch (error) {
      showError(error, `${what} cannot be loaded`);
      return null;
    }
  }
}

/** `#/`: workflows, upload, the example, recent runs. */
export class WorkflowsView extends Listing {
  constructor() {
    super();
    this.workflowList = h("div", { class: "workflow-list" },
                          h("p", { class: "loading" }, "Loading…"));
    this.recent = h("div", { class: "recent" });
    this.example = h("section", { class: "card example", "aria-labelledby": "example-title" });
    this.el = h("section", { class: "home" },
      h("div", { class: "home-main" }, h("h1", { tabindex: -1 }, "Workflows"), this.workflowList),
      h("aside", { class: "home-side" }, uploadCard(() => this.reload()), this.example),
      h("div", { class: "home-runs" },
        h("div", { class: "section-head" }, h("h2", null, "Recent runs"),
          link(route("runs"), "All runs")),
        this.recent));
    document.title = "Workflows · ccd";
    this.reload();
  }

  async load() {
    const [workflows, runs] = await Promise.all([
      this.fetch("The workflows", () => get("/api/v1/workflows")),
      this.fetch("The runs", () => get(`/api/v1/runs?limit=${RECENT}`)),
    ]);
    if (!workflows || !runs) return;
    this.known = new Set(workflows.map((w) => w.name));
    keepFocus(this.el, () => {
      fill(this.workflowList, workflowTable(workflows));
      fill(this.recent, runsTable(runs, {
        empty: "No runs yet: press Run on a workflow." }));
      fillExample(this.example, this.known.has(EXAMPLE));
    });
  }
}

function workflowTable(workflows) {
  if (!workflows.length) {
    return h("p", { class: "empty" }, "No workflows yet. Upload a workflow YAML file, or a ",
      ".tar.gz holding the YAML and its scripts. ", h("code", null, "ccctl example"),
      " lists the examples that come with ccd.");
  }
  return h("table", { class: "workflows" },
    h("thead", null, h("tr", null, ["Workflow", "Jobs", "Uploaded", "Runs", "Last run", ""]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, workflows.map((w) => {
      const last = w.last_run; // the server counts the runs: the list of runs may be long
      return h("tr", { "data-key": `workflow:${w.name}` },
        h("th", { scope: "row" }, link(route("workflows", w.name), w.name)),
        h("td", { class: "num" }, w.jobs),
        h("td", { class: "time", title: fullTime(w.created) }, when(w.created)),
        h("td", { class: "num" }, w.runs),
        h("td", null, last ? h("span", { class: "last-run" }, badge(last.state), " ",
          link(route("runs", last.run), when(last.t0 ?? last.created))) : "never run"),
        h("td", { class: "actions" }, runButton(w.name)));
    })));
}

function fillExample(card, present) {
  fill(card, h("h2", { id: "example-title" }, "Example"),
    h("p", null, "The paper's workflow: ", h("span", { class: "chain" },
      "start → fetch-data → compute → analyze → end"), ", with progress reports."));
  if (present) {
    put(card, h("div", { class: "actions", "data-key": "example" },
                runButton(EXAMPLE, "Run the example"),
                link(route("workflows", EXAMPLE), "Its YAML and runs")));
  } else {
    put(card, h("p", { class: "hint" }, "Not uploaded to this ccd. ",
      h("code", null, "ccctl example workflow-example"), " copies it into ",
      h("code", null, "workflow-example/"), "; ",
      h("code", null, "ccctl submit workflow-example/workflow-example.yaml"),
      " uploads and runs it (", h("code", null, "make run"), " in a checkout uploads it)."));
  }
}

function uploadCard(uploaded) {
  const file = h("input", { type: "file", id: "upload-file", name: "file", required: true,
                            accept: ".yaml,.yml,.tar,.tgz,.tar.gz,.gz" });
  const name = h("input", { type: "text", id: "upload-name", name: "name", autocomplete: "off",
                            spellcheck: "false", placeholder: "from the file name",
                            pattern: namePattern() });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload");
  const result = h("div", { class: "upload-result", "aria-live": "polite" });
  const form = h("form", { class: "card upload", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload a workflow"),
    h("p", { class: "hint" }, "A workflow YAML file, or a .tar/.tar.gz holding the YAML and ",
      "the scripts it names. You can also drop a file here."),
    h("label", { for: "upload-file" }, "File"), file,
    h("label", { for: "upload-name" }, "Name ", h("span", { class: "optional" }, "(optional)")),
    name, h("div", { class: "actions" }, submit), result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    submit.disabled = true;
    fill(result, h("p", { class: "hint" }, `Uploading ${chosen.name}…`));
    try {
      const workflow = await upload(chosen, name.value.trim());
      fill(result, h("div", { class: "ok", role: "status" },
        h("p", null, "Uploaded ", link(route("workflows", workflow.name), workflow.name),
          ` (${workflow.jobs} ${workflow.jobs === 1 ? "job" : "jobs"}).`),
        runButton(workflow.name, `Run ${workflow.name}`)));
      form.reset();
      uploaded();
    } catch (error) {
      fill(result, h("div", { class: "bad", role: "alert" },
        h("p", null, `${chosen.name} was not uploaded: ${error.message}`),
        problemList(error.problems)));
    } finally {
      submit.disabled = false;
    }
  });
  form.addEventListener("dragover", (e) => {
    e.preventDefault();
    form.classList.add("dropping");
  });
  form.addEventListener("dragleave", () => form.classList.remove("dropping"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("dropping");
    if (!e.dataTransfer.files.length) return;
    file.files = e.dataTransfer.files;
    form.requestSubmit();
  });
  return form;
}

/** `#/workflows/NAME`: one workflow, its runs, its YAML. */
export class WorkflowView extends Listing {
  constructor(where) {
    super();
    this.name = where.workflow;
    this.title = h("h1", { tabindex: -1 }, this.name);
    this.meta = h("p", { class: "meta" });
    this.runs = h("div", { class: "runs-of" });
    this.yaml = h("pre", { class: "yaml", tabindex: 0 });
    const remove = h("button", { type: "button", class: "danger quiet",
                                 title: "Delete this workflow (its runs stay)" }, "Delete");
    remove.addEventListener("click", () => this.remove());
    this.el = h("section", { class: "workflow-view" },
      h("div", { class: "section-head" }, this.title,
        h("div", { class: "actions" }, runButton(this.name), remove)),
      this.meta, h("h2", null, "Runs"), this.runs,
      h("details", { class: "yaml-box", open: true }, h("summary", null, "YAML"), this.yaml));
    document.title = `${this.name} · ccd`;
    this.reload();
  }

  wants(event) {
    return event.job === null || this.ownRuns?.has(event.run);
  }

  async load() {
    const q = encodeURIComponent(this.name);
    const [workflow, runs] = await Promise.all([
      this.fetch("The workflow", () => get(workflowPath(this.name)).catch((error) => {
        if (error.status === 404) return { missing: true };
        throw error;
      })),
      this.fetch("Its runs", () => get(`/api/v1/runs?workflow=${q}`)),
    ]);
    if (workflow?.missing) {
      fill(this.el, this.title, h("p", { class: "empty" }, `There is no workflow ${this.name}.`));
      return;
    }
    if (workflow) {
      fill(this.meta, `${workflow.jobs} ${workflow.jobs === 1 ? "job" : "jobs"} · uploaded `,
        h("span", { title: fullTime(workflow.created) }, when(workflow.created)), " · ",
        h("code", null, workflow.path));
      setText(this.yaml, workflow.yaml);
    }
    if (runs) {
      this.ownRuns = new Set(runs.map((r) => r.run));
      keepFocus(this.runs, () => fill(this.runs, runsTable(runs, { workflow: false,
        empty: "No runs yet: press Run to start one." })));
    }
  }

  async remove() {
    if (!window.confirm(`Delete the workflow ${this.name}? Its runs and logs stay.`)) return;
    try {
      await json("DELETE", workflowPath(this.name));
      showInfo(`Deleted ${this.name}.`);
      location.hash = "#/";
    } catch (error) {
      showError(error, `${this.name} was not deleted`);
    }
  }
}

/** `#/runs`: every run, newest first. */
export class RunsView extends Listing {
  constructor() {
    super();
    this.list = h("div", null, h("p", { class: "loading" }, "Loading…"));
    this.el = h("section", { class: "runs-view" }, h("h1", { tabindex: -1 }, "Runs"), this.list);
    document.title = "Runs · ccd";
    this.reload();
  }

  async load() {
    const runs = await this.fetch("The runs", () => get(`/api/v1/runs?limit=${ALL_RUNS}`));
    if (!runs) return;
    keepFocus(this.list, () => fill(this.list, runsTable(runs, { empty: "No runs yet." }),
      runs.length === ALL_RUNS ? h("p", { class: "hint" }, `The newest ${ALL_RUNS} runs; `,
        h("code", null, "ccctl list"), " shows them all.") : null));
  }
}
