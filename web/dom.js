// Building the page from data. Every string goes in as a text node, never as HTML, so a
// label, a name or a log line holding `<script>` is shown as written.

/** An element with attributes, listeners (`onclick`) and children (nodes or text). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  put(el, children);
  return el;
}

/** Append children (nested arrays, nodes, text; null and false are skipped). */
export function put(el, ...children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return put(el, children);
}

/** Set a text only when it changed (keeps selections and avoids layout work). */
export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** A link to a page of this app. */
export function link(hash, ...children) {
  return h("a", { href: hash }, ...children);
}

/** The hash of a route: `route("runs", id)` is `#/runs/<id>`, each part escaped. */
export function route(...parts) {
  return "#/" + parts.map(encodeURIComponent).join("/");
}

const FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

/**
 * Run `change` (which rebuilds part of `container`) and give the focus back to the same
 * control in the rebuilt row (rows carry `data-key`), so keyboard users keep their place.
 */
export function keepFocus(container, change) {
  const active = document.activeElement;
  const row = container.contains(active) ? active.closest("[data-key]") : null;
  const key = row?.dataset.key;
  const index = row ? [...row.querySelectorAll(FOCUSABLE)].indexOf(active) : -1;
  change();
  if (key === undefined) return;
  const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
  again?.querySelectorAll(FOCUSABLE)[index]?.focus();
}
