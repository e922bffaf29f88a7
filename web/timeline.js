// A run's timeline: a row per job, grouped by host, a bar per attempt (a paler one while it
// waits in a batch queue), drawn on a canvas so 500 jobs stay cheap: only the rows in view
// are drawn, and while something runs one requestAnimationFrame redraw a frame moves the
// running bars' right ends. The segments come from GET /api/v1/runs/RUN/timeline once;
// then every event of the run is folded in as ccd/timeline.py folds the journal (the
// browser suite checks that the two agree). Names are drawn with fillText: text, never HTML.

import { h } from "./dom.js";
import { clock, fullTime } from "./format.js";
import { isFinal, lookOf } from "./states.js";

const ROW = 20;
const AXIS = 24;
const LEFT = 210;
const KEEP_DRAW_TIMES = 600;

/** Segments so far and each job's open one; `add(event)` folds the next event of the run. */
export class Fold {
  constructor(segments = []) {
    this.segments = segments.map((s) => ({ ...s }));
    this.open = new Map();
    for (const s of this.segments) if (s.end === null) this.open.set(s.job, s);
  }

  add(e) {
    if (e.job === null) return;
    const current = this.open.get(e.job);
    if (e.state === "queued" || e.state === "running") {
      const phase = e.state;
      if (current && current.attempt === e.attempt && current.phase === phase) return;
      const start = e.tstart ?? e.time;
      if (current) current.end = Math.max(current.start, start);
      const segment = { job: e.job, attempt: e.attempt, phase, start, end: null,
                        state: e.state };
      this.open.set(e.job, segment);
      this.segments.push(segment);
      return;
    }
    const end = e.tend ?? e.time;
    const final = isFinal(e.state);
    if (!current) {
      if (final && e.tstart !== null) {
        this.segments.push({ job: e.job, attempt: e.attempt, phase: "running",
                             start: e.tstart, end: Math.max(e.tstart, end), state: e.state });
      }
      return;
    }
    this.open.delete(e.job);
    if (e.state === "ready" && e.attempt < current.attempt) { // it never began
      this.segments = this.segments.filter((s) => s !== current);
      return;
    }
    const outcome = final ? e.state : e.exit_code === 0 ? "done" : "failed";
    if (current.phase === "queued" && e.tstart !== null && e.tstart > current.start) {
      current.end = e.tstart; // it ran between two looks at the queue
      this.segments.push({ job: e.job, attempt: current.attempt, phase: "running",
                           start: e.tstart, end: Math.max(e.tstart, end), state: outcome });
      return;
    }
    current.end = Math.max(current.start, end);
    if (current.phase === "running") current.state = outcome;
  }
}

export class TimelineView {
  /** `onJob(name, keyboard)` is called when a job's row or bar is clicked, or an arrow key
   *  moves to it (`keyboard`: the focus stays on the timeline). */
  constructor(onJob) {
    this.onJob = onJob;
    this.fold = null;
    this.lastEvent = 0;
    this.rows = [];
    this.byJob = new Map();
    this.selected = null;
    this.t1 = null; // the right end of the axis while the run runs (moved on when reached)
    this.frame = 0;
    this.drawTimes = [];
    this.canvas = h("canvas", { tabindex: 0, role: "img", "aria-label": "Timeline: a bar " +
                                "per attempt of each job, grouped by host; up and down arrows " +
                                "open the previous or next job; the table has the same times" });
    this.spacer = h("div", { class: "timeline-spacer" });
    this.scroller = h("div", { class: "timeline-scroll" }, this.canvas, this.spacer);
    this.message = h("p", { class: "graph-message", role: "status" }, "Loading the timeline…");
    this.el = h("div", { class: "timeline" }, this.message, this.scroller);
    this.el.view = this; // for the browser suite and the console
    this.scroller.addEventListener("scroll", () => this.draw());
    this.canvas.addEventListener("click", (e) => {
      const job = this.jobAt(e);
      if (job) this.onJob(job);
    });
    this.canvas.addEventListener("mousemove", (e) => {
      const job = this.jobAt(e);
      this.canvas.style.cursor = job ? "pointer" : "";
      this.canvas.title = job ? this.describe(job, this.timeAt(e)) : "";
    });
    this.canvas.addEventListener("keydown", (e) => this.key(e));
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.scroller);
  }

  /** Start from the server's timeline; `jobs` is the run's jobs by name. */
  show(timeline, jobs) {
    this.fold = new Fold(timeline.segments);
    this.lastEvent = timeline.last_event;
    this.message.hidden = true;
    this.setJobs(jobs);
  }

  /** An event of the run (one already in the server's timeline is skipped). */
  onEvent(event, jobs) {
    if (!this.fold || event.id <= this.lastEvent) return;
    this.lastEvent = event.id;
    this.fold.add(event);
    this.setJobs(jobs);
  }

  /** The run's jobs by name changed (or the segments did): rebuild at the next frame. */
  setJobs(jobs) {
    this.jobs = jobs;
    this.dirty = true;
    this.draw();
  }

  /** The rows (each host, then its jobs, in the run's order) and each job's segments. */
  rebuild() {
    this.dirty = false;
    const hosts = new Map();
    for (const job of this.jobs.values()) {
      if (!hosts.has(job.host)) hosts.set(job.host, []);
      hosts.get(job.host).push(job.name);
    }
    this.rows = [];
    for (const [host, names] of hosts) {
      this.rows.push({ host, count: names.length });
      for (const name of names) this.rows.push({ job: name });
    }
    this.byJob = new Map();
    for (const s of this.fold.segments) {
      if (!this.byJob.has(s.job)) this.byJob.set(s.job, []);
      this.byJob.get(s.job).push(s);
    }
    const total = this.rows.length * ROW + AXIS;
    this.scroller.style.height = `min(70vh, ${total}px)`;
  }

  select(job) {
    this.selected = job;
    this.draw();
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.resize.disconnect();
  }

  /** Draw now, and again next frame while a bar is open. */
  draw() {
    if (this.frame) return; // a frame is coming
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (!this.el.isConnected || this.el.closest("[hidden]") || !this.fold) return;
      const started = performance.now();
      if (this.dirty) this.rebuild();
      const running = this.paint();
      this.drawTimes.push(performance.now() - started);
      if (this.drawTimes.length > KEEP_DRAW_TIMES) this.drawTimes.shift();
      if (running) this.draw();
    });
  }

  /** The axis: from the first start to the last end, or while something runs, to a time
   *  ahead of now that moves on when reached, so running bars grow to the right. */
  axis(now) {
    const segments = this.fold.segments;
    if (!segments.length) return null;
    let t0 = Infinity;
    let last = -Infinity;
    let open = false;
    for (const s of segments) {
      t0 = Math.min(t0, s.start);
      last = Math.max(last, s.end ?? now);
      open ||= s.end === null;
    }
    if (!open) {
      this.t1 = null;
      return { t0, t1: Math.max(last, t0 + 0.01), open };
    }
    if (this.t1 === null || this.t1 < last || this.t1 <= t0) {
      this.t1 = t0 + Math.max(5, (last - t0) * 1.5);
    }
    return { t0, t1: this.t1, open };
  }

  paint() {
    const canvas = this.canvas;
    const width = this.scroller.clientWidth;
    const height = this.scroller.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) ||
        canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      this.spacer.style.height = `${Math.max(0, this.rows.length * ROW + AXIS - height)}px`;
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    g.font = "12px system-ui, sans-serif";
    g.textBaseline = "middle";
    const now = Date.now() / 1000;
    const axis = this.axis(now);
    this.scale = axis ? (width - LEFT - 12) / (axis.t1 - axis.t0) : 0;
    this.t0 = axis?.t0 ?? now;
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW));
    const last = Math.min(this.rows.length, Math.ceil((top + height - AXIS) / ROW) + 1);
    for (let i = first; i < last; i++) {
      const y = AXIS + i * ROW - top;
      const row = this.rows[i];
      if (row.host !== undefined) {
        g.fillStyle = "#eef1f5";
        g.fillRect(0, y, width, ROW);
        g.fillStyle = "#1d2430";
        g.font = "600 12px system-ui, sans-serif";
        g.fillText(clip(g, `${row.host} (${row.count})`, width - 8), 6, y + ROW / 2);
        g.font = "12px system-ui, sans-serif";
        continue;
      }
      if (row.job === this.selected) {
        g.fillStyle = "#eaf2ff";
        g.fillRect(0, y, width, ROW);
      }
      g.fillStyle = "#1d2430";
      g.fillText(clip(g, row.job, LEFT - 20), 14, y + ROW / 2);
      for (const s of this.byJob.get(row.job) ?? []) this.bar(g, s, y, now);
    }
    this.paintAxis(g, axis, width);
    return axis?.open ?? false;
  }

  bar(g, s, y, now) {
    const look = lookOf(s.phase === "queued" ? "queued" : s.state);
    const x = LEFT + (s.start - this.t0) * this.scale;
    const w = Math.max(2, ((s.end ?? now) - s.start) * this.scale);
    g.fillStyle = s.phase === "queued" ? look?.fill ?? "#eee" : look?.bar ?? "#888";
    g.fillRect(x, y + 4, w, ROW - 8);
    g.strokeStyle = look?.line ?? "#888";
    g.strokeRect(x + 0.5, y + 4.5, w - 1, ROW - 9);
  }

  paintAxis(g, axis, width) {
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, width, AXIS);
    g.strokeStyle = "#dde2e8";
    g.beginPath();
    g.moveTo(0, AXIS - 0.5);
    g.lineTo(width, AXIS - 0.5);
    g.stroke();
    if (!axis) return;
    g.fillStyle = "#5d6877";
    const span = axis.t1 - axis.t0;
    const step = niceStep(span / Math.max(1, (width - LEFT) / 90));
    for (let i = 0; i * step <= span; i++) {
      const x = LEFT + i * step * this.scale;
      const label = step < 1 ? `+${(i * step).toFixed(step < 0.1 ? 2 : 1)} s` :
        `+${clock(i * step)}`;
      g.fillRect(x, AXIS - 6, 1, 6);
      if (x + 3 + g.measureText(label).width < width) g.fillText(label, x + 3, AXIS / 2);
    }
  }

  /** Up and down: the previous or next job (its log opens), scrolled into view. */
  key(e) {
    const step = { ArrowDown: 1, ArrowUp: -1 }[e.key];
    if (!step) return;
    e.preventDefault();
    const jobs = this.rows.flatMap((r, i) => (r.job === undefined ? [] : [i]));
    if (!jobs.length) return;
    const at = jobs.findIndex((i) => this.rows[i].job === this.selected);
    const next = jobs[at < 0 ? 0 : Math.max(0, Math.min(jobs.length - 1, at + step))];
    const y = next * ROW;
    const view = this.scroller.clientHeight - AXIS;
    if (y < this.scroller.scrollTop) this.scroller.scrollTop = y;
    else if (y + ROW > this.scroller.scrollTop + view) this.scroller.scrollTop = y + ROW - view;
    const job = this.rows[next].job;
    if (job === this.selected) return;
    this.select(job); // now: the page's own selection follows when the URL has changed
    this.onJob(job, true);
  }

  /** The job of the row under a mouse event, if any. */
  jobAt(e) {
    const rect = this.canvas.getBoundingClientRect();
    const y = e.clientY - rect.top - AXIS + this.scroller.scrollTop;
    if (e.clientY - rect.top < AXIS || y < 0) return null;
    return this.rows[Math.floor(y / ROW)]?.job ?? null;
  }

  timeAt(e) {
    const x = e.clientX - this.canvas.getBoundingClientRect().left;
    return this.t0 + (x - LEFT) / (this.scale || 1);
  }

  /** The job's segment at time `t` (or the job), in words, for the tooltip. */
  describe(job, t) {
    const segments = this.byJob.get(job) ?? [];
    const s = segments.find((x) => x.start <= t && t <= (x.end ?? Date.now() / 1000));
    if (!s) return job;
    const length = clock((s.end ?? Date.now() / 1000) - s.start);
    return `${job} · attempt ${s.attempt} · ${s.phase === "queued" ? "queued" : s.state} · ` +
      `${fullTime(s.start)} · ${length}`;
  }

  /** Where a job's bars are now, in page pixels (for the browser suite). */
  boxes(job) {
    const rect = this.canvas.getBoundingClientRect();
    const i = this.rows.findIndex((r) => r.job === job);
    const now = Date.now() / 1000;
    return (this.byJob.get(job) ?? []).map((s) => ({
      x: rect.left + LEFT + (s.start - this.t0) * this.scale,
      y: rect.top + AXIS + i * ROW - this.scroller.scrollTop + ROW / 2,
      width: Math.max(2, ((s.end ?? now) - s.start) * this.scale),
      attempt: s.attempt, phase: s.phase, state: s.state, open: s.end === null,
    }));
  }
}

function clip(g, text, width) {
  if (g.measureText(text).width <= width) return text;
  let n = text.length;
  while (n > 1 && g.measureText(`${text.slice(0, n)}…`).width > width) n -= 1;
  return `${text.slice(0, n)}…`;
}

/** A round step of the axis, in seconds, at least `rough`. */
function niceStep(rough) {
  const units = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  return units.find((u) => u >= rough) ?? Math.ceil(rough / 86400) * 86400;
}
