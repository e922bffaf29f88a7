// The daemon's REST API, as the page uses it. The login cookie goes with every request.

/** A refused request: the server's own message, and for a 422 the file:line:col problems. */
export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

/** Fired on `window` when the daemon says this browser is not logged in. */
export const LOGGED_OUT = "ccd:logged-out";

/** A request; resolves to the Response when it is 2xx, else throws ApiError. */
export async function request(method, path, { json, body, signal } = {}) {
  const init = { method, signal, headers: {}, credentials: "same-origin" };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "cannot reach ccd: is the daemon running?");
  }
  if (response.ok) return response;
  if (response.status === 401) window.dispatchEvent(new Event(LOGGED_OUT));
  throw await refusal(response);
}

async function refusal(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return new ApiError(response.status, body.error ?? response.statusText,
                        Array.isArray(body.problems) ? body.problems : []);
  } catch {
    return new ApiError(response.status, `${response.status} ${response.statusText}`);
  }
}

/** GET (or another method) and parse the JSON answer; 204 gives null. */
export async function json(method, path, body) {
  const response = await request(method, path, body === undefined ? {} : { json: body });
  return response.status === 204 ? null : response.json();
}

export const get = (path) => json("GET", path);

/** GET a text resource (the run's DOT). */
export async function text(path) {
  return (await request("GET", path)).text();
}

export const runPath = (id) => `/api/v1/runs/${encodeURIComponent(id)}`;
export const workflowPath = (name) => `/api/v1/workflows/${encodeURIComponent(name)}`;
export const jobPath = (id, job) => `${runPath(id)}/jobs/${encodeURIComponent(job)}`;
/** A result file of a run: its path in the working copy, each part escaped. */
export const resultPath = (id, path) =>
  `${runPath(id)}/results/${path.split("/").map(encodeURIComponent).join("/")}`;

/** Start a run of a stored workflow; resolves to the new run. */
/** A new run of a stored workflow; with `resume` (an ended run of it), carrying on from it:
 * its done jobs that did not change are kept. */
export const startRun = (workflow, resume) =>
  json("POST", "/api/v1/runs", resume === undefined ? { workflow } : { workflow, resume });

/** Upload a workflow file (YAML, .tar or .tar.gz) as a multipart form. */
export async function upload(file, name) {
  const form = new FormData();
  form.append("file", file, file.name);
  const query = name ? `?name=${encodeURIComponent(name)}` : "";
  return (await request("POST", `/api/v1/workflows${query}`, { body: form })).json();
}
