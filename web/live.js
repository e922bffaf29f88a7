// The page's one EventSource on /api/v1/events. It starts after a known journal id, so
// nothing between the page's first GETs and the stream is missed, and after a dropped
// connection it opens again from the last id it saw: the server replays the journal from
// there, and the views are correct again without a reload.

import { request } from "./api.js";

const RETRY_MS = [250, 500, 1000, 2000, 4000, 8000];

export class Live {
  /** `after`: the journal id to resume after (the daemon's last_event_id at page load). */
  constructor(after) {
    this.lastId = after;
    this.state = "connecting";
    this.source = null;
    this.failures = 0;
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.resyncListeners = new Set();
    this.problemListeners = new Set();
    this.hostListeners = new Set();
  }

  /** Call `fn(hosts)` with every `hosts` notice (the whole list); returns the function
   *  that stops it. */
  onHosts(fn) {
    this.hostListeners.add(fn);
    return () => this.hostListeners.delete(fn);
  }

  /** Call `fn(problems)` when the daemon says what keeps runs from going on changed. */
  onProblems(fn) {
    this.problemListeners.add(fn);
  }

  /** Call `fn(event)` for every job and run event. */
  subscribe(fn) {
    this.listeners.add(fn);
  }

  /** Call `fn(state)` now and when the connection changes: connecting, open, reconnecting,
   *  offline; returns the function that stops it. */
  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  /** Call `fn()` when the server says this page fell behind and must reload its state. */
  onResync(fn) {
    this.resyncListeners.add(fn);
  }

  /** Resolves once the stream is open (at once if it is). */
  opened() {
    if (this.state === "open") return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.onState((state) => {
        if (state === "open") {
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
  }

  start() {
    const source = new EventSource(`/api/v1/events?after=${this.lastId}`);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.setState("open");
    };
    source.onerror = () => this.dropped(source);
    source.addEventListener("job", (e) => this.deliver(e));
    source.addEventListener("run", (e) => this.deliver(e));
    // A workflow stored or deleted elsewhere (ccctl, another page): the view reloads.
    source.addEventListener("workflow", () => {
      for (const fn of this.resyncListeners) fn();
    });
    source.addEventListener("problems", (e) => {
      const { problems } = JSON.parse(e.data);
      for (const fn of this.problemListeners) fn(problems);
    });
    source.addEventListener("hosts", (e) => {
      const { hosts } = JSON.parse(e.data);
      for (const fn of this.hostListeners) fn(hosts);
    });
    source.addEventListener("resync", () => {
      this.close();
      for (const fn of this.resyncListeners) fn();
      this.start();
    });
  }

  close() {
    if (this.source) this.source.close();
    this.source = null;
  }

  deliver(message) {
    const event = JSON.parse(message.data);
    if (event.id <= this.lastId) return; // already seen before a reconnect
    this.lastId = event.id;
    for (const fn of this.listeners) fn(event);
  }

  // The browser would retry by itself, but not after a 401 or a 5xx and only every few
  // seconds; reconnecting here keeps the retry short and tells a logout from an outage.
  async dropped(source) {
    if (source !== this.source) return;
    this.close();
    this.setState("reconnecting");
    for (;;) {
      const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      await new Promise((resolve) => setTimeout(resolve, wait));
      try {
        await request("GET", "/api/v1/health");
        break;
      } catch (error) {
        if (error.status === 401) {
          this.setState("offline");
          return;
        }
      }
    }
    this.start();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of this.stateListeners) fn(state);
  }
}

/**
 * `fn` run after a push, at most once at a time: calls while it runs make one more run
 * after it, at least `gapMs` after the previous start, so a burst of events costs a
 * couple of requests and the last one always starts after the last event.
 */
export function coalesced(fn, gapMs = 0) {
  let running = false;
  let again = false;
  return async function trigger() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const started = Date.now();
        await fn();
        const rest = gapMs - (Date.now() - started);
        if (again && rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
      } while (again);
    } finally {
      running = false;
    }
  };
}
