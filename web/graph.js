// The run's graph: the server's DOT (labels, shapes, styles, state colours) laid out and
// drawn in the browser by the vendored Graphviz (viz.js, WebAssembly). A new DOT replaces
// the drawing inside the same <svg>, keeping the zoom and the scroll position.

import { h, setText } from "./dom.js";

const PX_PER_PT = 96 / 72;
const MIN_ZOOM = 0.1;
const MAX_ZOOM = 4;

let vizLoading = null;

/** The Graphviz instance, loaded (1.2 MB) the first time a graph is shown. */
function viz() {
  vizLoading ??= import("/vendor/viz/viz.js").then((m) => m.instance());
  return vizLoading;
}

export class GraphView {
  /** `onJob(name)` is called when a node is clicked or activated with Enter. */
  constructor(onJob) {
    this.onJob = onJob;
    this.zoom = null; // chosen on the first drawing
    this.width = 0;
    this.height = 0;
    this.svg = null;
    this.selected = null;
    this.zoomLabel = h("button", { type: "button", class: "zoom-label",
                                   title: "Actual size (0)", onclick: () => this.setZoom(1) });
    this.message = h("p", { class: "graph-message", role: "status" }, "Drawing the graph…");
    this.viewport = h("div", { class: "viewport", tabindex: 0, role: "group",
                               "aria-label": "Workflow graph: +/- zoom, 0 actual size, f fit" },
                      this.message);
    const tool = (label, title, fn) =>
      h("button", { type: "button", title, "aria-label": title, onclick: fn }, label);
    this.el = h("div", { class: "graph" },
      h("div", { class: "graph-tools" },
        tool("−", "Zoom out (-)", () => this.zoomBy(1 / 1.25)),
        this.zoomLabel,
        tool("+", "Zoom in (+)", () => this.zoomBy(1.25)),
        tool("Fit", "Fit the graph in view (f)", () => this.fit())),
      this.viewport);
    this.viewport.addEventListener("keydown", (e) => this.key(e));
    this.viewport.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.viewport.addEventListener("click", (e) => {
      const node = e.target.closest?.("g.node");
      if (node && !this.dragged) this.onJob(node.dataset.job);
    });
    this.dragging();
  }

  /** Draw `dot`; `stateOf(job)` names each node's state for screen readers. */
  async show(dot, stateOf) {
    let fresh;
    try {
      fresh = (await viz()).renderSVGElement(dot);
    } catch (error) {
      setText(this.message, `The graph cannot be drawn here: ${error.message}`);
      this.message.hidden = false;
      return;
    }
    this.message.hidden = true;
    const [, , w, hgt] = (fresh.getAttribute("viewBox") || "0 0 0 0").split(/\s+/).map(Number);
    this.width = w * PX_PER_PT;
    this.height = hgt * PX_PER_PT;
    const focused = document.activeElement?.closest?.("g.node")?.dataset.job;
    const { scrollLeft, scrollTop } = this.viewport;
    if (this.svg === null) {
      this.svg = fresh;
      this.viewport.append(fresh);
    } else {
      this.svg.setAttribute("viewBox", fresh.getAttribute("viewBox"));
      this.svg.replaceChildren(...fresh.childNodes);
    }
    for (const node of this.svg.querySelectorAll("g.node")) {
      const job = node.querySelector("title")?.textContent ?? "";
      node.dataset.job = job;
      node.setAttribute("tabindex", "0");
      node.setAttribute("role", "button");
      node.setAttribute("aria-label", `${job}: ${stateOf(job) ?? ""}, show details`);
      node.classList.toggle("selected", job === this.selected);
      if (job === focused) node.focus({ preventScroll: true });
    }
    if (this.zoom === null) this.zoom = this.fitZoom(1.5);
    this.apply();
    this.viewport.scrollLeft = scrollLeft;
    this.viewport.scrollTop = scrollTop;
  }

  /** Mark the node of the job shown in the detail panel. */
  select(job) {
    this.selected = job;
    for (const node of this.svg?.querySelectorAll("g.node") ?? []) {
      node.classList.toggle("selected", node.dataset.job === job);
    }
  }

  fitZoom(most) {
    if (!this.width || !this.height) return 1;
    const w = this.viewport.clientWidth - 16;
    const hgt = this.viewport.clientHeight - 16;
    return clamp(Math.min(most, w / this.width, hgt / this.height));
  }

  fit() {
    this.setZoom(this.fitZoom(MAX_ZOOM));
  }

  zoomBy(factor, at) {
    this.setZoom((this.zoom ?? 1) * factor, at);
  }

  /** Zoom to `zoom`, keeping the point `at` (viewport coordinates; default centre) still. */
  setZoom(zoom, at) {
    const v = this.viewport;
    const x = at?.x ?? v.clientWidth / 2;
    const y = at?.y ?? v.clientHeight / 2;
    const old = this.zoom ?? 1;
    this.zoom = clamp(zoom);
    const gx = (v.scrollLeft + x) / old;
    const gy = (v.scrollTop + y) / old;
    this.apply();
    v.scrollLeft = gx * this.zoom - x;
    v.scrollTop = gy * this.zoom - y;
  }

  apply() {
    setText(this.zoomLabel, `${Math.round((this.zoom ?? 1) * 100)}%`);
    if (!this.svg) return;
    this.svg.setAttribute("width", Math.round(this.width * this.zoom));
    this.svg.setAttribute("height", Math.round(this.height * this.zoom));
  }

  key(e) {
    const node = e.target.closest?.("g.node");
    if (node && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      this.onJob(node.dataset.job);
      return;
    }
    const actions = { "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25),
                      "-": () => this.zoomBy(1 / 1.25), "0": () => this.setZoom(1),
                      f: () => this.fit() };
    if (actions[e.key] && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      actions[e.key]();
    }
  }

  wheel(e) {
    if (!e.ctrlKey && !e.metaKey) return; // plain wheel scrolls
    e.preventDefault();
    const box = this.viewport.getBoundingClientRect();
    this.zoomBy(Math.exp(-e.deltaY / 300), { x: e.clientX - box.left, y: e.clientY - box.top });
  }

  // Drag the background (or a node) to pan; a drag does not count as a click on a node.
  dragging() {
    let start = null;
    this.viewport.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      start = { x: e.clientX, y: e.clientY, left: this.viewport.scrollLeft,
                top: this.viewport.scrollTop };
      this.dragged = false;
    });
    this.viewport.addEventListener("pointermove", (e) => {
      if (!start) return;
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      if (!this.dragged && Math.hypot(dx, dy) < 4) return;
      if (!this.dragged) this.viewport.setPointerCapture(e.pointerId);
      this.dragged = true;
      this.viewport.classList.add("panning");
      this.viewport.scrollLeft = start.left - dx;
      this.viewport.scrollTop = start.top - dy;
    });
    const end = () => {
      start = null;
      this.viewport.classList.remove("panning");
    };
    this.viewport.addEventListener("pointerup", end);
    this.viewport.addEventListener("pointercancel", end);
  }
}

const clamp = (zoom) => Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, zoom));
