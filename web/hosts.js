// `#/hosts`: how ccd reaches the machines its jobs run on (one SSH connection per host,
// shared by every run). Loaded once, then replaced by each `hosts` notice, which carries
// the whole list: when a link connects or is lost, and every 2 s while links exist, so the
// counters stay fresh without polling.

import { get } from "./api.js";
import { fill, h, keepFocus, setText } from "./dom.js";
import { ago, fullTime } from "./format.js";
import { showError } from "./messages.js";

const COLUMNS = ["Host", "Kind", "Address", "State", "Since", "RTT", "Channels", "Jobs",
                 "Connections", "Commands", "RPCs"];
const NUMERIC = new Set(["RTT", "Channels", "Jobs", "Connections", "Commands", "RPCs"]);

/** A host's row, and below it, when it is not connected, a row that says why. */
function hostRows(x, now) {
  const rtt = x.rtt === null ? "" : `${(x.rtt * 1000).toFixed(1)} ms`;
  const key = `host:${x.kind}:${x.host}`;
  const row = h("tr", { class: `host link-${x.state}`, "data-key": key, "data-host": x.host,
                        "data-link": x.state },
    h("th", { scope: "row" }, x.host),
    h("td", { class: "kind" }, x.kind),
    h("td", null, h("code", null, x.address)),
    h("td", null, h("span", { class: "link-state" }, x.state)),
    h("td", { class: "time since", "data-since": x.since, title: fullTime(x.since) },
      ago(now - x.since)),
    h("td", { class: "num rtt", title: "how long a command takes there, smoothed" }, rtt),
    h("td", { class: "num channels", title: "in use / at most on this connection" },
      `${x.channels}/${x.channel_limit}`),
    h("td", { class: "num jobs" }, x.jobs),
    h("td", { class: "num connections" }, x.connections),
    h("td", { class: "num commands" }, x.commands),
    h("td", { class: "num rpcs", title: "calls to a batch system's controller" }, x.rpcs));
  if (!x.error) return [row];
  return [row, h("tr", { class: `link-why link-${x.state}`, "data-key": `${key}:why` },
    h("td", { class: "link-error", colspan: COLUMNS.length }, x.error))];
}

function hostsTable(hosts) {
  if (!hosts.length) {
    return h("p", { class: "empty" }, "No remote hosts in use: every job so far ran on this ",
      "machine. A job with ", h("code", null, "kind: ssh"), " connects to its host when it ",
      "starts, and the host shows here.");
  }
  const now = Date.now() / 1000;
  return h("table", { class: "hosts" },
    h("thead", null, h("tr", null, COLUMNS.map((c) =>
      h("th", { scope: "col", class: NUMERIC.has(c) ? "num" : null }, c)))),
    h("tbody", null, hosts.map((x) => hostRows(x, now))));
}

/** Bring `shown`'s body up to `fresh`'s in place when both have the same rows (by
 *  data-key, in order); false, changing nothing, when they do not. */
function patchRows(shown, fresh) {
  const rows = [...shown.tBodies[0].rows];
  const next = [...fresh.tBodies[0].rows];
  if (rows.length !== next.length ||
      rows.some((row, i) => row.dataset.key !== next[i].dataset.key)) return false;
  rows.forEach((row, i) => {
    for (const { name, value } of next[i].attributes) {
      if (row.getAttribute(name) !== value) row.setAttribute(name, value);
    }
    const cells = [...next[i].cells]; // (a cell moved into the page leaves `next[i]`)
    [...row.cells].forEach((cell, j) => {
      if (cell.outerHTML !== cells[j].outerHTML) cell.replaceWith(cells[j]);
    });
  });
  return true;
}

/** `#/hosts`: every remote host's link. */
export class HostsView {
  constructor(where, live) {
    this.list = h("div", { class: "host-list" }, h("p", { class: "loading" }, "Loading…"));
    this.el = h("section", { class: "hosts-view" }, h("h1", { tabindex: -1 }, "Hosts"),
      h("p", { class: "hint" }, "How ccd reaches the machines its jobs run on: one SSH ",
        "connection per host, shared by every run; an unreachable host is tried again ",
        "with backoff, and its jobs keep running there."),
      this.list);
    this.pushed = false;
    this.off = live.onHosts((hosts) => {
      this.pushed = true;
      this.show(hosts);
    });
    document.title = "Hosts · ccd";
    this.reload();
  }

  unmount() {
    this.off();
  }

  async reload() {
    this.pushed = false;
    let hosts;
    try {
      hosts = await get("/api/v1/hosts");
    } catch (error) {
      showError(error, "The hosts cannot be loaded");
      return;
    }
    if (!this.pushed) this.show(hosts); // else a notice newer than this answer is shown
  }

  /** The whole list, as a notice brings it every 2 s: with the same rows as shown, only
   *  what changed is replaced (a cell, a row's state), so a selection, a hover or a
   *  Playwright handle on the rest outlives the notice; otherwise the table is rebuilt. */
  show(hosts) {
    const fresh = hostsTable(hosts);
    const shown = this.list.querySelector("table.hosts");
    if (shown && fresh.tagName === "TABLE" && patchRows(shown, fresh)) return;
    keepFocus(this.list, () => fill(this.list, fresh));
  }

  tick() {
    const now = Date.now() / 1000;
    for (const cell of this.list.querySelectorAll("td.since")) {
      setText(cell, ago(now - Number(cell.dataset.since)));
    }
  }
}
