// How a state looks: badges, progress bars and count bars. The colours live in style.css
// (`.state-<name>`) and are ccd/graph.py's STATE_COLORS, so table and graph agree.

import { h, setText } from "./dom.js";

/** Job states in the order a summary lists them. */
export const STATES = ["running", "failed", "ready", "cancelled", "skipped", "done"];

export const isFinal = (state) => state !== "ready" && state !== "running";

/** A state badge; `update(badge, state)` changes it in place. */
export function badge(state) {
  const el = h("span", { class: "badge" });
  updateBadge(el, state);
  return el;
}

/** The workflow's own state colours (its `colors: {status: ...}`), as the graph uses them;
 *  set by the run view, empty elsewhere. */
let palette = {};

export function setPalette(colors) {
  palette = colors ?? {};
}

function paint(el, state) {
  const colour = palette[state];
  if (colour) el.style.setProperty("--s-fill", colour);
  else el.style.removeProperty("--s-fill");
}

export function updateBadge(el, state) {
  el.className = `badge state-${state}`;
  paint(el, state);
  setText(el, state);
}

/** A progress bar with its percentage; `updateBar` changes it in place. */
export function bar() {
  const fill = h("span", { class: "fill" });
  return h("span", { class: "bar", role: "progressbar", "aria-label": "progress",
                     "aria-valuemin": 0, "aria-valuemax": 100 },
           h("span", { class: "track" }, fill), h("span", { class: "pct" }));
}

export function updateBar(el, progress, state) {
  const value = Math.max(0, Math.min(100, Number(progress) || 0));
  el.className = `bar state-${state}`;
  el.setAttribute("aria-valuenow", value);
  el.querySelector(".fill").style.width = `${value}%`;
  setText(el.querySelector(".pct"), `${value}%`);
}

/** A run's job counts as a stacked bar with a text summary, e.g. "3 done · 1 running". */
export function countsBar(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const order = [...STATES].reverse(); // done first, from the left
  const parts = order.filter((s) => counts[s]).map((s) => {
    const seg = h("span", { class: `seg state-${s}` });
    seg.style.flexGrow = counts[s];
    return seg;
  });
  const text = STATES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · ");
  return h("span", { class: "counts", title: text },
           h("span", { class: "stack", "aria-hidden": "true" }, parts),
           h("span", { class: "summary" }, total ? text : "no jobs"));
}
