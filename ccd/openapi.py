"""The OpenAPI 3.1 document of the daemon's API, written once here and served at /openapi.json."""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$"}
_STATE = {"type": "string", "enum": ["ready", "running", "done", "failed", "skipped",
                                     "cancelled"]}
_TIME = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_RUN = _param("run", "path", {"type": "string"}, "A run id")
_WORKFLOW = _param("name", "path", {"type": "string"}, "A workflow name")
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
_UPLOAD_RESPONSES = {
    "201": _json(_ref("Workflow"), "Stored"),
    "400": _error("Unreadable upload"), "404": _error("The named archive does not exist"),
    "413": _error("Too large"),
    "422": _json(_ref("InvalidWorkflow"), "The workflow is invalid: every problem with its "
                                          "file:line:col"),
}
_SSE = {"description": "Server-sent events: `job` and `run` events whose `id` is the journal "
                       "id; reconnect with Last-Event-ID to get what was missed. A `resync` "
                       "event asks a client that fell behind to reconnect. The global stream "
                       "also says `workflow` (no id) when a workflow is stored or deleted.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}
_AFTER = _param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                "Resume after this event id")


def document() -> dict[str, Any]:
    """The whole document."""
    run_responses = {"200": _json(_ref("Run"), "The run with every job"),
                     "404": _error("No such run")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ccd", "version": "1",
                 "description": "Workflows of shell, Python and notebook jobs, run by ccd. "
                                "Over TCP send `Authorization: Bearer <token>` (the token is "
                                "in ~/.config/ccd/token); the Unix socket needs none."},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}},
                          "required": ["error"]},
                "InvalidWorkflow": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "problems": {"type": "array", "items": {"type": "string"}}}},
                "Workflow": {"type": "object", "required": ["name", "jobs", "created"],
                             "properties": {"name": _NAME, "jobs": {"type": "integer"},
                                            "created": {"type": "number"},
                                            "path": {"type": "string"},
                                            "yaml": {"type": "string"},
                                            "runs": {"type": "integer"},
                                            "last_run": {"type": ["object", "null"]}}},
                "Job": {"type": "object", "required": ["name", "state", "progress"],
                        "properties": {
                            "name": {"type": "string"}, "state": _STATE,
                            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                            "host": {"type": "string"}, "kind": {"type": "string"},
                            "label": {"type": ["string", "null"]},
                            "pid": {"type": ["integer", "null"]},
                            "exit_code": {"type": ["integer", "null"]},
                            "tstart": _TIME, "tend": _TIME, "modified": _TIME,
                            "message": {"type": "string"}}},
                "Run": {"type": "object", "required": ["run", "workflow", "state"],
                        "properties": {
                            "run": {"type": "string"}, "workflow": {"type": "string"},
                            "state": {"type": "string",
                                      "enum": ["running", "done", "failed", "cancelled"]},
                            "created": {"type": "number"}, "t0": _TIME, "t1": _TIME,
                            "message": {"type": "string"}, "job_root": {"type": "string"},
                            "colors": {"type": "object", "description": "the workflow's own "
                                       "state colours (`colors: {status: ...}`)",
                                       "additionalProperties": {"type": "string"}},
                            "counts": {"type": "object",
                                       "additionalProperties": {"type": "integer"}},
                            "jobs": {"type": "array", "items": _ref("Job")}}},
                "Event": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "run": {"type": "string"},
                    "job": {"type": ["string", "null"]}, "state": {"type": "string"},
                    "progress": {"type": "integer"}, "time": {"type": "number"},
                    "exit_code": {"type": ["integer", "null"]},
                    "message": {"type": "string"}}},
            },
        },
        "security": [{"token": []}],
        "paths": {
            "/api/v1/health": {"get": {
                "summary": "Liveness and the daemon's counters", "operationId": "health",
                "responses": {"200": _json({"type": "object"}, "Counters")}}},
            "/api/v1/workflows": {
                "get": {"summary": "Stored workflows", "operationId": "listWorkflows",
                        "responses": {"200": _json({"type": "array", "items": _ref("Workflow")},
                                                   "Workflows")}},
                "post": {"summary": "Upload a workflow", "operationId": "uploadWorkflow",
                         "parameters": [_param("name", "query", _NAME,
                                               "Store under this name (default: the file's)"),
                                        _param("filename", "query", {"type": "string"},
                                               "The uploaded file's name")],
                         "requestBody": _UPLOAD_BODY, "responses": _UPLOAD_RESPONSES}},
            "/api/v1/workflows/{name}": {
                "get": {"summary": "A workflow with its YAML", "operationId": "getWorkflow",
                        "parameters": [_WORKFLOW],
                        "responses": {"200": _json(_ref("Workflow"), "The workflow"),
                                      "404": _error("No such workflow")}},
                "delete": {"summary": "Delete a workflow", "operationId": "deleteWorkflow",
                           "parameters": [_WORKFLOW],
                           "responses": {"204": {"description": "Deleted"},
                                         "404": _error("No such workflow"),
                                         "409": _error("It has active runs")}}},
            "/api/v1/workflows/{name}/jobs/{job}": {
                "put": {"summary": "Add or replace a job (a new version of the workflow)",
                        "operationId": "putJob",
                        "parameters": [_WORKFLOW, _param("job", "path", _NAME, "A job name")],
                        "requestBody": {"required": True, "content": {"application/json": {
                            "schema": {"type": "object", "description": "Fields as in the "
                                       "YAML: exec, script, kind, host, label, ..."}}}},
                        "responses": {"200": _json(_ref("Workflow"), "The new version"),
                                      "400": _error("Not JSON"),
                                      "404": _error("No such workflow"),
                                      "413": _error("Body too large"),
                                      "422": _json(_ref("InvalidWorkflow"), "Invalid job")}},
                "delete": {"summary": "Remove a job (a new version of the workflow)",
                           "operationId": "deleteJob",
                           "parameters": [_WORKFLOW, _param("job", "path", _NAME, "A job")],
                           "responses": {"200": _json(_ref("Workflow"), "The new version"),
                                         "404": _error("No such workflow or job"),
                                         "422": _json(_ref("InvalidWorkflow"),
                                                      "The workflow would be invalid")}}},
            "/api/v1/runs": {
                "get": {"summary": "Runs, newest first", "operationId": "listRuns",
                        "parameters": [_param("workflow", "query", {"type": "string"},
                                              "Only runs of this workflow"),
                                       _param("limit", "query", {"type": "integer",
                                                                 "minimum": 0},
                                              "At most this many, the newest")],
                        "responses": {"200": _json({"type": "array", "items": _ref("Run")},
                                                   "Runs without their jobs")}},
                "post": {"summary": "Start a run of a stored workflow", "operationId": "startRun",
                         "parameters": [_param("workflow", "query", {"type": "string"},
                                               "The workflow (or give it in the body)")],
                         "requestBody": {"required": False, "content": {"application/json": {
                             "schema": {"type": "object",
                                        "properties": {"workflow": {"type": "string"}}}}}},
                         "responses": {"201": _json(_ref("Run"), "Started"),
                                       "400": _error("Not JSON"),
                                       "404": _error("No such workflow"),
                                       "413": _error("Body too large"),
                                       "422": _error("No workflow named")}}},
            "/api/v1/runs/{run}": {"get": {"summary": "A run with every job's state",
                                           "operationId": "getRun", "parameters": [_RUN],
                                           "responses": run_responses}},
            "/api/v1/runs/{run}/cancel": {"post": {
                "summary": "Cancel a run", "operationId": "cancelRun", "parameters": [_RUN],
                "responses": {"202": _json(_ref("Run"), "Cancelling"),
                              "404": _error("No such run"),
                              "409": _error("Already finished, or driven elsewhere")}}},
            "/api/v1/runs/{run}/rerun": {"post": {
                "summary": "Run failed, skipped and cancelled jobs again, as a new run",
                "operationId": "rerunRun", "parameters": [_RUN],
                "responses": {"201": _json(_ref("Run"), "The new run"),
                              "404": _error("No such run"),
                              "409": _error("Still running")}}},
            "/api/v1/runs/{run}/jobs/{job}/log": {"get": {
                "summary": "A job's log: a byte range, or the tail",
                "operationId": "jobLog",
                "parameters": [_RUN, _param("job", "path", {"type": "string"}, "A job name"),
                               _param("offset", "query", {"type": "integer", "minimum": 0},
                                      "First byte"),
                               _param("limit", "query", {"type": "integer", "minimum": 0},
                                      "At most this many bytes (max 1 MiB)"),
                               _param("tail", "query", {"type": "integer", "minimum": 0},
                                      "Only the last N bytes"),
                               _param("follow", "query", {"type": "string",
                                                          "enum": ["0", "1", "true", "false"]},
                                      "Keep streaming what the job appends until it ends")],
                "responses": {"200": {"description": "Log bytes; X-Log-Next is the offset to "
                                                     "ask for next",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "404": _error("No such run or job"),
                              "422": _error("Bad range")}}},
            "/api/v1/runs/{run}/graph": {"get": {
                "summary": "The run's graph", "operationId": "runGraph",
                "parameters": [_RUN, _param("format", "query",
                                            {"type": "string", "enum": ["dot", "svg"]},
                                            "dot (default) or svg")],
                "responses": {"200": {"description": "The graph", "content": {
                    "text/vnd.graphviz": {"schema": {"type": "string"}},
                    "image/svg+xml": {"schema": {"type": "string"}}}},
                    "400": _error("Graphviz is not installed"),
                    "404": _error("No such run"), "422": _error("Unknown format")}}},
            "/api/v1/runs/{run}/events": {"get": {
                "summary": "A run's events from its start, then live", "operationId": "runEvents",
                "parameters": [_RUN, _AFTER], "responses": {"200": _SSE,
                                                            "404": _error("No such run")}}},
            "/api/v1/events": {"get": {
                "summary": "Every run's events from now (or after Last-Event-ID), live",
                "operationId": "events", "parameters": [_AFTER],
                "responses": {"200": _SSE, "422": _error("Bad Last-Event-ID")}}},
            "/api/v1/login-links": {"post": {
                "summary": "A one-time browser login link", "operationId": "loginLink",
                "responses": {"201": _json({"type": "object",
                                            "properties": {"path": {"type": "string"}}},
                                           "Open http://HOST:PORT + path once")}}},
            "/workflows": {"get": {
                "summary": "The paper's call: list workflows", "operationId": "paperList",
                "responses": {"200": _json({"type": "array", "items": _ref("Workflow")},
                                           "Workflows")}}},
            "/workflow": {"post": {
                "summary": "The paper's upload: a tar in the body, or ?archive=FILE naming a "
                           "file on the daemon's machine", "operationId": "paperUpload",
                "parameters": [_param("archive", "query", {"type": "string"},
                                      "A .tar/.tar.gz/.yaml file on the daemon's machine"),
                               _param("name", "query", _NAME, "Store under this name")],
                "requestBody": {**_UPLOAD_BODY, "required": False},
                "responses": _UPLOAD_RESPONSES}},
            "/workflow/run/{name}": {"get": {
                "summary": "The paper's call: run a stored workflow", "operationId": "paperRun",
                "parameters": [_WORKFLOW],
                "responses": {"201": _json(_ref("Run"), "Started"),
                              "404": _error("No such workflow")}}},
        },
    }
