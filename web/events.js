// A job or run event is a full snapshot of its new state, so applying one is assignment,
// field by field as ccd/model.py's `apply` does (the browser suite checks they agree).

/**
 * Change `run` (the run's JSON) and `jobs` (its jobs' JSON by name) by one event of the
 * run; an event of a job the page does not know changes nothing.
 */
export function applyEvent(run, jobs, e) {
  if (e.job === null) {
    run.state = e.state;
    run.t0 = e.tstart;
    run.t1 = e.tend;
    run.message = e.message;
    return;
  }
  const job = jobs.get(e.job);
  if (!job) return;
  job.state = e.state;
  job.progress = e.progress;
  job.tstart = e.tstart;
  job.tend = e.tend;
  job.exit_code = e.exit_code;
  job.pid = e.pid;
  job.attempt = e.attempt;
  job.message = e.message;
  job.modified = e.time;
  job.trace = e.trace;
}
