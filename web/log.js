// A job's log, live: the last part first, then `?follow=1`, a streamed response that the
// server keeps open and writes to as the job appends, until the job ends (push, not polling).

import { jobPath, request } from "./api.js";
import { h, setText } from "./dom.js";

const FIRST_BYTES = 64 * 1024; // a long log opens at its end
const KEEP_CHARS = 512 * 1024; // and the page keeps about this much of it

export class LogTail {
  /** `live` is the page's Live stream, to know when to resume after a drop. */
  constructor(runId, job, live) {
    this.base = `${jobPath(runId, job)}/log`;
    this.live = live;
    this.offset = 0;
    this.chars = 0;
    this.abort = new AbortController();
    this.pre = h("pre", { class: "log", tabindex: 0, "aria-label": `log of ${job}`,
                          "aria-live": "off" });
    this.status = h("p", { class: "log-status", role: "status" }, "Loading the log…");
    this.el = h("div", { class: "log-box" }, this.pre, this.status);
  }

  async start() {
    try {
      const first = await request("GET", `${this.base}?tail=${FIRST_BYTES}`,
                                  { signal: this.abort.signal });
      if (Number(first.headers.get("X-Log-Offset")) > 0) {
        this.pre.append(h("span", { class: "log-cut" }, "… earlier output not shown …\n"));
      }
      this.offset = Number(first.headers.get("X-Log-Next")) || 0;
      this.append(await first.text());
      await this.follow();
    } catch (error) {
      if (error.name === "AbortError") return;
      setText(this.status, `The log cannot be read: ${error.message}`);
    }
  }

  stop() {
    this.abort.abort();
  }

  // The server ends the response when the job is over. A response cut short (the daemon
  // stopped) goes on from the last byte received once the event stream is back.
  async follow() {
    for (;;) {
      setText(this.status, "Following the log as the job writes it…");
      try {
        const response = await request("GET", `${this.base}?follow=1&offset=${this.offset}`,
                                       { signal: this.abort.signal });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          this.offset += value.length;
          this.append(decoder.decode(value, { stream: true }));
        }
        this.append(decoder.decode());
        setText(this.status, this.offset ? "End of the log: the job is over." :
                             "The job is over; it wrote nothing to its log.");
        return;
      } catch (error) {
        if (error.name === "AbortError") return;
        if (error.status >= 400) throw error;
      }
      setText(this.status, "The log stream was interrupted; it resumes when ccd is back…");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await this.live.opened();
      if (this.abort.signal.aborted) return;
    }
  }

  append(text) {
    if (!text) return;
    const atEnd = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 8;
    this.pre.append(text);
    this.chars += text.length;
    while (this.chars > KEEP_CHARS && this.pre.firstChild) {
      this.chars -= this.pre.firstChild.textContent.length;
      this.pre.firstChild.remove();
    }
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
