// How a state looks: badges, progress bars and count bars. The states, which of them are
// final, and their colours come from the daemon (GET /api/v1/meta, ccd/palette.py), so the
// table and the graph agree and no copy of them lives here or in style.css.

import { h, setText } from "./dom.js";

/** Job states in the server's order; set once by `useStates`. */
let states = [];
let finals = new Set();
let names = "";
let looks = new Map();

/**
 * Take what GET /api/v1/meta says once: the name rule, and the states: their names,
 * which are final, and their colours as the custom properties the stylesheet uses
 * (`--s-fill`, `--s-line`, `--s-ink`, `--s-bar`) on `.state-NAME` and
 * `[data-state="NAME"]`. The rules go into a constructed stylesheet through the CSSOM,
 * values set one by one, so a colour can never become a new rule.
 */
export function useStates(meta) {
  names = meta.name_pattern;
  states = meta.states.map((s) => s.name);
  finals = new Set(meta.states.filter((s) => s.final).map((s) => s.name));
  looks = new Map(meta.states.map((s) => [s.name, s]));
  const sheet = new CSSStyleSheet();
  for (const s of meta.states) {
    const name = CSS.escape(s.name);
    const rule = sheet.cssRules[sheet.insertRule(
      `.state-${name}, [data-state="${name}"] {}`, sheet.cssRules.length)];
    for (const part of ["fill", "line", "ink", "bar"]) {
      rule.style.setProperty(`--s-${part}`, s[part]);
    }
  }
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
}

/** The rule for workflow and job names (an input's `pattern`), as the server checks it. */
export const namePattern = () => names;

/** How a state looks (its fill, line, ink and bar colours), as the canvas needs it. */
export const lookOf = (state) => looks.get(state);

/** Is a job's or run's state one it never leaves (done, failed, …)? */
export const isFinal = (state) => finals.has(state);

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

/** A run's job counts as a stacked bar with a text summary, e.g. "1 running · 3 done". */
export function countsBar(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const present = states.filter((s) => counts[s]);
  // what has ended grows from the left, what is still to come stays on the right
  const order = [...present.filter(isFinal), ...present.filter((s) => !isFinal(s))];
  const parts = order.map((s) => {
    const seg = h("span", { class: `seg state-${s}` });
    seg.style.flexGrow = counts[s];
    return seg;
  });
  const text = present.map((s) => `${counts[s]} ${s}`).join(" · ");
  return h("span", { class: "counts", title: text },
           h("span", { class: "stack", "aria-hidden": "true" }, parts),
           h("span", { class: "summary" }, total ? text : "no jobs"));
}
