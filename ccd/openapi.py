"""The OpenAPI 3.1 document of the daemon's API, served at /openapi.json.

The schemas are generated from the shapes (`ccd.shapes`) that the handlers encode, so
they cannot drift from what is sent; only the operations (paths, parameters, which status
gives which shape) are written here. tests/test_openapi.py checks that every route of the
app is in this document and every operation here is a route, and schemathesis checks the
answers against it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ccd import shapes
from ccd.model import Event

_REF = "#/components/schemas/{name}"


def _ref(shape: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=shape.__name__)}


def _array(shape: type) -> dict[str, Any]:
    return {"type": "array", "items": _ref(shape)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref(shapes.Error), description)


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": description}


_NAME = msgspec.json.schema(shapes.Name)
_COUNT = {"type": "integer", "minimum": 0, "maximum": shapes.MAX_COUNT}
_RUN = _param("run", "path", {"type": "string"}, "A run id")
_WORKFLOW = _param("name", "path", {"type": "string"}, "A workflow name")
_JOB = _param("job", "path", {"type": "string"}, "A job of the run")
_UPLOAD_BODY = {
    "description": "The workflow: a YAML file, a .tar or .tar.gz holding the YAML and its "
                   "scripts, or a multipart form with a `file` field.",
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"]}},
    },
}
_UPLOAD_RESPONSES: dict[str, Any] = {
    "201": _json(_ref(shapes.Workflow), "Stored"),
    "400": _error("Unreadable upload"),
    "403": _error("The named archive is outside the directories `ccd --archive-dir` allows"),
    "404": _error("The named archive does not exist"),
    "409": _error("The workflow was deleted while this version was stored"),
    "413": _error("Too large"),
    "415": _error("The named archive is neither a tar archive nor a .yaml file"),
    "422": _json({"anyOf": [_ref(shapes.InvalidWorkflow), _ref(shapes.Error)]},
                 "The workflow is invalid: every problem with its file:line:col"),
    "507": _error("The state directory is full; nothing was kept"),
}
_SSE = {
    "description": "Server-sent events: `job` and `run` events, each an Event whose `id` is the "
                   "journal id; reconnect with Last-Event-ID to get what was missed. A `resync` "
                   "event asks a client that fell behind to reconnect. The global stream also "
                   "says `workflow` (no id) when a workflow is stored or deleted, `problems` "
                   "when what keeps runs from going on changes, and `hosts` (no id, data "
                   "`{\"hosts\": [Host, ...]}`) when a remote host's link changes (at most one "
                   "every 0.2 s), and every 2 s while links exist.",
    "content": {"text/event-stream": {"schema": {  # one event (OpenAPI 3.2's itemSchema)
        "type": "object", "required": ["data"],
        "properties": {
            "event": {"type": "string",
                      "enum": ["job", "run", "resync", "workflow", "problems", "hosts"]},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": _ref(Event)}}}}},
}
_AFTER = [
    _param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,18}$"},
           "Resume after this event id"),
    _param("after", "query", {"type": "string", "pattern": "^[0-9]{1,18}$"},
           "The same as Last-Event-ID, for a browser's EventSource, which cannot set it"),
]
_RUN_RESPONSE = _json(_ref(shapes.Run), "The run with every job")
# What a client can do next with what an answer names (and schemathesis's stateful phase
# follows, so it reaches real runs and workflows).
_RUN_LINKS = {op: {"operationId": op, "parameters": {"run": "$response.body#/run"}}
              for op in ("getRun", "cancelRun", "rerunRun", "runEvents", "runGraph",
                         "listResults")}
_WORKFLOW_LINKS = {op: {"operationId": op, "parameters": {"name": "$response.body#/name"}}
                   for op in ("getWorkflow", "deleteWorkflow")}


def _linked(response: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": links}


_UPLOAD_RESPONSES["201"] = _linked(_UPLOAD_RESPONSES["201"], _WORKFLOW_LINKS)


def _op(summary: str, operation: str, responses: dict[str, Any],
        parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        public: bool = False) -> dict[str, Any]:
    responses = dict(responses)
    out: dict[str, Any] = {"summary": summary, "operationId": operation,
                           "responses": responses}
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    if public:
        out["security"] = []
    else:  # the guard (ccd/auth.py) answers before any handler
        responses.setdefault("401", _error("Over TCP without the token or a session"))
    responses.setdefault("403", _error("A foreign Host or Origin; a change by a browser "
                                       "session that is not from ccd's own page"))
    return out


def _body(shape: type, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(shape)}}}


def paths() -> dict[str, dict[str, Any]]:
    """Every operation of the app, by path and method."""
    unknown_run = {"404": _error("No such run")}
    return {
        "/": {"get": _op("The web page", "page", {"200": _text("text/html", "The page")},
                         public=True)},
        "/login": {"get": _op(
            "Redeem a one-time login link: sets the session cookie and goes to the page",
            "login", {"303": {"description": "Logged in: to the page"},
                      "403": _error("The link is used up or expired")},
            [_param("code", "query", {"type": "string"}, "The link's code")], public=True)},
        "/logout": {"post": _op(
            "End this browser's session: its cookie is cleared and never works again",
            "logout", {"204": {"description": "Logged out"}})},
        "/openapi.json": {"get": _op("This document", "openapi",
                                     {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                                     public=True)},
        "/api/v1/health": {"get": _op("Liveness and the daemon's counters", "health",
                                      {"200": _json(_ref(shapes.Health), "Counters")})},
        "/metrics": {"get": _op(
            "The daemon's metrics in Prometheus's text format: runs and jobs by state, runs "
            "driven here, events published, event-stream clients, store commit times, each "
            "remote host's link (up, round trip, commands, batch-system calls), executor "
            "polls, notifications by outcome, the process's CPU and memory. Over TCP a "
            "scraper sends the token (Prometheus: `authorization: {credentials_file: "
            "~/.config/ccd/token}`)", "metrics",
            {"200": _text("text/plain", "Prometheus text format 0.0.4")})},
        "/api/v1/meta": {"get": _op(
            "States, their colours, kinds and the name rule, as the page uses them", "meta",
            {"200": _json(_ref(shapes.Meta), "What never changes while the daemon runs")})},
        "/api/v1/hosts": {"get": _op(
            "How the daemon reaches each remote host its runs use: address, state "
            "(connected, connecting, unreachable), why not, round trip, channels, jobs; "
            "empty when every job runs on this machine", "listHosts",
            {"200": _json(_array(shapes.Host), "Hosts, one per link")})},
        "/api/v1/login-links": {"post": _op(
            "A one-time browser login link", "loginLink",
            {"201": _json(_ref(shapes.LoginLink), "Open http://HOST:PORT + path once")})},
        "/api/v1/token/rotate": {"post": _op(
            "Replace the token (in its file too): clients holding the old one, every browser "
            "session and every unused login link stop working at once", "rotateToken",
            {"204": {"description": "The new token is in ~/.config/ccd/token"}})},
        "/api/v1/workflows": {
            "get": _op("Stored workflows", "listWorkflows",
                       {"200": _json(_array(shapes.Workflow), "Workflows")}),
            "post": _op("Upload a workflow", "uploadWorkflow", _UPLOAD_RESPONSES,
                        [_param("name", "query", _NAME,
                                "Store under this name (default: the file's)"),
                         _param("filename", "query", {"type": "string"},
                                "The uploaded file's name")], _UPLOAD_BODY)},
        "/api/v1/workflows/{name}": {
            "get": _op("A workflow with its YAML", "getWorkflow",
                       {"200": _json(_ref(shapes.Workflow), "The workflow"),
                        "404": _error("No such workflow")}, [_WORKFLOW]),
            "delete": _op("Delete a workflow and its files (its runs stay)", "deleteWorkflow",
                          {"204": {"description": "Deleted"},
                           "404": _error("No such workflow"),
                           "409": _error("It has active runs")}, [_WORKFLOW])},
        "/api/v1/workflows/{name}/jobs/{job}": {
            "put": _op("Add or replace a job (a new version of the workflow)", "putJob",
                       {"200": _json(_ref(shapes.Workflow), "The new version"),
                        "400": _error("Not JSON"), "404": _error("No such workflow"),
                        "409": _error("The workflow was deleted meanwhile"),
                        "413": _error("Body too large"),
                        "422": _json({"anyOf": [_ref(shapes.InvalidWorkflow),
                                                _ref(shapes.Error)]},
                                     "Fields of the wrong type, or an invalid workflow"),
                        "507": _error("The state directory is full")},
                       [_WORKFLOW, _param("job", "path", _NAME, "A job name")],
                       _body(shapes.JobFields)),
            "delete": _op("Remove a job (a new version of the workflow)", "deleteJob",
                          {"200": _json(_ref(shapes.Workflow), "The new version"),
                           "404": _error("No such workflow or job"),
                           "409": _error("The workflow was deleted meanwhile"),
                           "422": _json(_ref(shapes.InvalidWorkflow),
                                        "The workflow would be invalid"),
                           "507": _error("The state directory is full")},
                          [_WORKFLOW, _param("job", "path", {"type": "string"}, "A job")])},
        "/api/v1/runs": {
            "get": _op("Runs, newest first, without their jobs", "listRuns",
                       {"200": _json(_array(shapes.Run), "Runs"),
                        "422": _error("Bad limit")},
                       [_param("workflow", "query", {"type": "string"},
                               "Only runs of this workflow"),
                        _param("limit", "query", _COUNT, "At most this many, the newest"),
                        _param("prefix", "query", {"type": "string"},
                               "Only runs whose id starts with this (how `ccctl` resolves "
                               "a shortened run id)")]),
            "post": _op("Start a run of a stored workflow, in its own copy of the workflow's "
                        "files", "startRun",
                        {"201": _linked(_json(_ref(shapes.Run), "Started"), _RUN_LINKS),
                         "400": _error("Not JSON"),
                         "404": _error("No such workflow, or no such run to resume"),
                         "409": _error("The run to resume has not ended, is of another "
                                       "workflow, or nothing changed since it: no run made"),
                         "413": _error("Body too large"),
                         "422": _json({"anyOf": [_ref(shapes.InvalidWorkflow),
                                                 _ref(shapes.Error)]},
                                      "No workflow named, or it no longer validates"),
                         "507": _error("The state directory is full")},
                        [_param("workflow", "query", {"type": "string"},
                                "The workflow (or give it in the body)")],
                        _body(shapes.StartRun, required=False))},
        "/api/v1/runs/{run}": {"get": _op("A run with every job", "getRun",
                                          {"200": _RUN_RESPONSE, **unknown_run}, [_RUN])},
        "/api/v1/runs/{run}/cancel": {"post": _op(
            "Cancel a run: running jobs get SIGTERM, waiting ones never start. The body "
            "may say who cancels (`{\"by\": \"ccctl (alice@lab1)\"}`), for the run's and "
            "its jobs' messages only: `cancelled by <by>`, else `cancelled through the API`",
            "cancelRun",
            {"202": _json(_ref(shapes.Run), "Cancelling (without its jobs)"), **unknown_run,
             "400": _error("Not JSON"), "413": _error("Body too large"),
             "409": _error("Already ended, or driven by another process"),
             "422": _error("`by` is empty, too long or holds control characters")}, [_RUN],
            _body(shapes.CancelRun, required=False))},
        "/api/v1/runs/{run}/rerun": {"post": _op(
            "A new run that keeps the done jobs (and their files) and runs the others again",
            "rerunRun", {"201": _linked(_json(_ref(shapes.Run), "The new run"), _RUN_LINKS),
                         **unknown_run, "507": _error("The state directory is full"),
                         "409": _error("Still running")}, [_RUN])},
        "/api/v1/runs/{run}/jobs/{job}/log": {"get": _op(
            "A job's log: a byte range, the tail, or followed until the job ends", "jobLog",
            {"200": _text("text/plain", "Log bytes; X-Log-Next is the offset to ask for next"),
             "404": _error("No such run or job"), "422": _error("Bad range")},
            [_RUN, _JOB,
             _param("offset", "query", _COUNT, "First byte"),
             _param("limit", "query", _COUNT, "At most this many bytes (max 1 MiB)"),
             _param("tail", "query", _COUNT, "Only the last N bytes"),
             _param("follow", "query", {"type": "string", "enum": ["0", "1", "true", "false"]},
                    "Keep streaming what the job appends until it ends")])},
        "/api/v1/runs/{run}/graph": {"get": _op(
            "The run's graph, coloured by state", "runGraph",
            {"200": {"description": "The graph", "content": {
                "text/vnd.graphviz": {"schema": {"type": "string"}},
                "image/svg+xml": {"schema": {"type": "string"}}}},
             "400": _error("Graphviz is not installed"), **unknown_run,
             "422": _error("Unknown format")},
            [_RUN, _param("format", "query", {"type": "string", "enum": ["dot", "svg"]},
                          "dot (default) or svg")])},
        "/api/v1/runs/{run}/timeline": {"get": _op(
            "Where the run's time went: each attempt of each job as segments, waiting in a "
            "batch queue or running, from its journal (fold later events onto it as the "
            "page does)", "runTimeline",
            {"200": _json(_ref(shapes.Timeline), "Segments, oldest first"), **unknown_run},
            [_RUN])},
        "/api/v1/runs/{run}/report": {"get": _op(
            "The run's report: one self-contained HTML file (graph, jobs, timeline, "
            "per-host summary, failed jobs' log tails) that opens offline; what `ccctl "
            "report` saves", "runReport",
            {"200": _text("text/html", "The report"), **unknown_run}, [_RUN])},
        "/api/v1/runs/{run}/results": {"get": _op(
            "The run's results: files in its working copy that its jobs declare as outputs, "
            "and executed notebooks",
            "listResults", {"200": _json(_array(shapes.Result), "Results"),
                            "404": _error("No such run or job")},
            [_RUN, _param("job", "query", {"type": "string"}, "Only this job's")])},
        "/api/v1/runs/{run}/results/{path}": {"get": _op(
            "One result file, as a download", "getResult",
            {"200": {"description": "The file", "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
             "404": _error("No such run, or not an existing declared output"),
             "422": _error("A path that would leave the working copy")},
            [_RUN, _param("path", "path", {"type": "string", "pattern": "^[^/]+$"},
                          "Its path in the working copy, as listed, with its slashes "
                          "percent-encoded (written as they are, they work too)")])},
        "/api/v1/runs/{run}/events": {"get": _op(
            "A run's events from its start (or after Last-Event-ID), then live until the "
            "run ends", "runEvents",
            {"200": _SSE, "204": {"description": "The run has ended and every event after "
                                                 "Last-Event-ID was sent: nothing more will "
                                                 "come (a browser stops reconnecting)"},
             **unknown_run, "422": _error("Bad Last-Event-ID")},
            [_RUN, *_AFTER])},
        "/api/v1/events": {"get": _op(
            "Every run's events from now (or after Last-Event-ID), live", "events",
            {"200": _SSE, "422": _error("Bad Last-Event-ID")}, _AFTER)},
        "/workflows": {"get": _op("The paper's call: list workflows", "paperList",
                                  {"200": _json(_array(shapes.Workflow), "Workflows")})},
        "/workflow": {"post": _op(
            "The paper's upload: a tar in the body, or ?archive=FILE naming a file on the "
            "daemon's machine", "paperUpload", _UPLOAD_RESPONSES,
            [_param("archive", "query", {"type": "string"},
                    "A .tar/.tar.gz/.yaml file on the daemon's machine, in a directory "
                    "`ccd --archive-dir` allows (default: the home directory)"),
             _param("name", "query", _NAME, "Store under this name")],
            {**_UPLOAD_BODY, "required": False})},
        "/workflow/run/{name}": {"get": _op(
            "The paper's call: run a stored workflow", "paperRun",
            {"201": _json(_ref(shapes.Run), "Started"), "404": _error("No such workflow"),
             "422": _json(_ref(shapes.InvalidWorkflow), "It no longer validates"),
             "507": _error("The state directory is full")},
            [_WORKFLOW])},
        "/workflow/{name}": {
            "get": _op("The paper's call: a workflow with its YAML", "paperGetWorkflow",
                       {"200": _json(_ref(shapes.Workflow), "The workflow"),
                        "404": _error("No such workflow")}, [_WORKFLOW]),
            "post": _op(
                "The paper's call: add or replace a job (a new version of the workflow); its "
                "fields as query parameters, or as a JSON body", "paperAddJob",
                {"200": _json(_ref(shapes.Workflow), "The new version"),
                 "400": _error("Not JSON"), "404": _error("No such workflow"),
                 "409": _error("The workflow was deleted meanwhile"),
                 "413": _error("Body too large"),
                 "422": _json({"anyOf": [_ref(shapes.InvalidWorkflow), _ref(shapes.Error)]},
                              "No job named, fields of the wrong type, or an invalid workflow"),
                 "507": _error("The state directory is full")},
                [_WORKFLOW, _param("job", "query", _NAME, "The job's name (required)"),
                 *(_param(field, "query", {"type": "string"}, f"The job's {field}")
                   for field in ("script", "exec", "kind", "host", "user", "label", "venv",
                                 "shape", "style", "cwd")),
                 _param("timeout", "query", {"type": "number", "exclusiveMinimum": 0},
                        "Seconds"),
                 _param("retries", "query", {"type": "integer", "minimum": 0, "maximum": 100},
                        "Retries of a failed job")],
                _body(shapes.JobFields, required=False)),
            "delete": _op(
                "The paper's call: delete a workflow and its files, or with ?job= one job",
                "paperDelete",
                {"200": _json(_ref(shapes.Workflow), "The new version, without the job"),
                 "204": {"description": "The workflow is deleted"},
                 "404": _error("No such workflow or job"),
                 "409": _error("It has active runs, or was deleted meanwhile"),
                 "422": _json(_ref(shapes.InvalidWorkflow), "The workflow would be invalid"),
                 "507": _error("The state directory is full")},
                [_WORKFLOW, _param("job", "query", {"type": "string"},
                                   "Delete only this job")])},
    }


def document() -> dict[str, Any]:
    """The whole document."""
    _, schemas = msgspec.json.schema_components(shapes.SCHEMAS, ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ccd", "version": "1",
                 "description": "Workflows of shell, Python and notebook jobs, run by ccd. "
                                "Over TCP send `Authorization: Bearer <token>` (the token is "
                                "in ~/.config/ccd/token); the Unix socket needs none."},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
                       "schemas": schemas},
        "security": [{"token": []}],
        "paths": paths(),
    }
