// Times and durations as the page shows them; the same clock format as `ccctl`.

/** Seconds as M:SS or H:MM:SS. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor(s / 60) % 60;
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** How long something ran, or has been running: "" before it started. */
export function elapsed(start, end, now = Date.now() / 1000) {
  return start ? clock((end ?? now) - start) : "";
}

/** A time in the past, relative and short, as `ccctl hosts` says it: 42 s ago, 5 min ago. */
export function ago(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]]) {
    if (s >= size) return `${Math.floor(s / size)} ${unit} ago`;
  }
  return `${s} s ago`;
}

const two = (n) => String(n).padStart(2, "0");

/** An epoch time: the time of day when it is today, else the date and the time. */
export function when(epoch) {
  if (!epoch) return "";
  const d = new Date(epoch * 1000);
  return d.toDateString() === new Date().toDateString() ? timeOfDay(d) : fullTime(epoch);
}

/** An epoch time in full: 2024-05-01 14:03:07 (local time). */
export function fullTime(epoch) {
  if (!epoch) return "";
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${timeOfDay(d)}`;
}

function timeOfDay(d) {
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** A file size: 55 B, 1.2 kB, 3.4 MB. */
export function size(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
}

/** A job's CPU time (user + system) from its trace, as `ccctl status` shows it: 1.02 s. */
export function cpu(trace) {
  if (trace?.cpu_user == null || trace.cpu_system == null) return "";
  const seconds = trace.cpu_user + trace.cpu_system;
  return seconds < 60 ? `${seconds.toFixed(2)} s` : clock(seconds);
}

/** A job's peak resident memory from its trace: 112 MB; ≥112 MB when sampled. */
export function peakMemory(trace) {
  if (trace?.peak_rss == null) return "";
  return (trace.rss_sampled ? "≥" : "") + size(trace.peak_rss);
}
