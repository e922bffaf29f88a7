// The page: a header with the connection state, and one view chosen by the URL's hash.
//   #/                     workflows, upload, the example, recent runs
//   #/workflows/NAME       one workflow: its runs and YAML
//   #/runs                 every run
//   #/runs/RUN?tab=graph&job=NAME   one run, its table, graph or timeline, one job's detail
//   #/hosts                how ccd reaches its remote hosts

import { get, LOGGED_OUT, request } from "./api.js";
import { fill, h } from "./dom.js";
import { HostsView } from "./hosts.js";
import { Live } from "./live.js";
import { showError, showProblems } from "./messages.js";
import { setPalette, useStates } from "./states.js";
import { RunView, TABS } from "./run.js";
import { RunsView, WorkflowView, WorkflowsView } from "./workflows.js";

const main = document.getElementById("main");
const indicator = document.getElementById("live");
const logout = document.getElementById("logout");
const LIVE_TEXT = { connecting: "connecting…", open: "live", reconnecting: "reconnecting…",
                    offline: "logged out" };
let view = null;
let where = null;
let live = null;

/** The route of a hash: which view, and what it shows. */
function parse(hash) {
  const [path, query] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query ?? "");
  if (parts[0] === "runs" && parts[1]) {
    return { view: "run", key: parts[1], run: parts[1],
             tab: TABS.includes(params.get("tab")) ? params.get("tab") : "table",
             job: params.get("job") };
  }
  if (parts[0] === "runs") return { view: "runs", key: "" };
  if (parts[0] === "hosts") return { view: "hosts", key: "" };
  if (parts[0] === "workflows" && parts[1]) {
    return { view: "workflow", key: parts[1], workflow: parts[1] };
  }
  return { view: "workflows", key: "" };
}

function show() {
  const next = parse(location.hash);
  if (view && where.view === next.view && where.key === next.key) {
    view.update?.(next);
    where = next;
    return;
  }
  view?.unmount?.();
  setPalette({}); // a run view sets its workflow's own colours again
  where = next;
  const views = { hosts: HostsView, run: RunView, runs: RunsView, workflow: WorkflowView,
                  workflows: WorkflowsView };
  view = new views[next.view](next, live);
  fill(main, view.el);
  for (const a of document.querySelectorAll("nav.main a")) {
    const current = a.dataset.view === next.view ||
      (a.dataset.view === "workflows" && next.view === "workflow") ||
      (a.dataset.view === "runs" && next.view === "run");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.querySelector("h1")?.focus({ preventScroll: true });
}

function liveState(state) {
  document.body.dataset.live = state;
  indicator.dataset.state = state;
  indicator.textContent = LIVE_TEXT[state];
  indicator.title = state === "open" ? "Changes arrive as they happen" :
    state === "offline" ? "This browser is not logged in" :
    "The connection to ccd is down; the page catches up when it is back";
}

function loggedOut() {
  logout.hidden = true;
  live?.close();
  view?.unmount?.();
  view = null;
  liveState("offline");
  document.title = "Log in · ccd";
  fill(main, h("section", { class: "login" },
    h("h1", { tabindex: -1 }, "Log in to ccd"),
    h("p", null, "This browser is not logged in. On the machine that runs ccd, run"),
    h("pre", null, "ccctl open"),
    h("p", null, "It opens a one-time login link (", h("code", null, "make run"),
      " prints one too). The link sets a cookie for this browser and is then used up."),
    h("p", { class: "hint" },
      "Links stay valid for ten minutes; a login lasts a week, or until you log out.")));
}

// The server ends the session (its cookie never works again) and clears the cookie.
logout.addEventListener("click", async () => {
  logout.disabled = true;
  try {
    await request("POST", "/logout");
    loggedOut();
  } catch (error) {
    if (error.status !== 401) showError(error, "Not logged out"); // a 401 has logged out
  } finally {
    logout.disabled = false;
  }
});

async function start(attempt = 0) {
  let health, meta;
  try {
    [health, meta] = await Promise.all([get("/api/v1/health"), get("/api/v1/meta")]);
  } catch (error) {
    if (error.status === 401) return; // loggedOut() has said what to do
    liveState("reconnecting");
    fill(main, h("p", { class: "empty" }, `${error.message} Trying again…`));
    setTimeout(() => start(attempt + 1), Math.min(8000, 500 * 2 ** attempt));
    return;
  }
  useStates(meta);
  showProblems(health.problems);
  logout.hidden = false;
  live = new Live(health.last_event_id);
  live.onProblems(showProblems);
  let dropped = false;
  live.onState((state) => {
    liveState(state);
    if (state === "reconnecting") dropped = true;
    if (state === "open" && dropped) { // what the stream cannot replay (new uploads)
      dropped = false;
      view?.reload?.();
    }
  });
  live.subscribe((event) => view?.onEvent?.(event));
  live.onResync(() => view?.reload?.());
  live.start();
  window.addEventListener("hashchange", show);
  setInterval(() => view?.tick?.(), 1000); // running clocks; it sends no request
  show();
}

window.addEventListener(LOGGED_OUT, loggedOut);
start();
