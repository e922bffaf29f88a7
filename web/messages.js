// Messages to the person at the screen: errors stay until dismissed, news fades.

import { h } from "./dom.js";

const INFO_MS = 6000;

function area() {
  return document.getElementById("messages");
}

/** Show what went wrong: the server's message and, for an invalid workflow, its problems. */
export function showError(error, what) {
  const text = what ? `${what}: ${error.message}` : error.message;
  area().append(message("error", text, problemList(error.problems)));
}

/** Show a short piece of news, optionally with an action (a button or a link). */
export function showInfo(text, action) {
  const el = message("info", text, action);
  area().append(el);
  setTimeout(() => el.remove(), INFO_MS);
}

/** The problems of an invalid workflow, one `file:line:col: message` per line. */
export function problemList(problems) {
  if (!problems?.length) return null;
  return h("ul", { class: "problems" }, problems.map((p) => h("li", null, h("code", null, p))));
}

function message(kind, text, extra) {
  const el = h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("div", { class: "message-body" }, h("p", null, text), extra),
    h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss",
                  onclick: () => el.remove() }, "×"));
  return el;
}

/** What keeps runs from going on now (the daemon's `problems`: a full disk), shown until it
 *  is over; an empty list hides it. */
export function showProblems(problems) {
  const banner = document.getElementById("problems");
  banner.replaceChildren(...(problems ?? []).map((p) => h("p", null, p)));
  banner.hidden = !problems?.length;
}
