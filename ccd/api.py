"""The HTTP face of the daemon: REST under /api/v1, server-sent events, OpenAPI, the paper's
aliases, login, and the static web page. Every body in and out is a shape of
`ccd.shapes`, encoded and decoded by msgspec; every handler turns a ccd error into a 4xx;
no client input may produce a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ccd import graph, report, shapes, timeline
from ccd.assets import asset_dir
from ccd.auth import SESSION_TTL, Guard, Sessions
from ccd.bus import Subscription, event_frame
from ccd.errors import CcdError, Problem, RequestError, SpecError, UploadError
from ccd.labels import RunTimes
from ccd.metrics import CONTENT_TYPE, Metrics
from ccd.model import Event, JobState
from ccd.openapi import document
from ccd.service import Service
from ccd.settings import variables
from ccd.uploads import MAX_BODY, form_file, server_file

log = logging.getLogger("ccd.api")
WEB = asset_dir("web")
LOG_LIMIT = 1 << 20
REPORT_TAIL = 16_384  # bytes of each failed job's log in a run's report
REPLAY_LIMIT = 100_000  # events sent at once to a reconnecting client; it resyncs for more
_NOT_QUOTED = ("invalid here (a file named by archive= is not quoted; check it with "
               "`ccctl validate FILE` on the daemon's machine)")
Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


def reply(value: object, status: int = 200) -> Response:
    """A shape (or a list of shapes) as a JSON response."""
    return Response(msgspec.json.encode(value), status, media_type="application/json")


def _errors(handler: Handler) -> Handler:
    """Map ccd's errors to HTTP statuses with a JSON body that says what and where."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except SpecError as e:
            return reply(shapes.InvalidWorkflow("invalid workflow",
                                                [str(p) for p in e.problems]), 422)
        except RequestError as e:
            return reply(shapes.Error(str(e)), e.status)
        except CcdError as e:
            return reply(shapes.Error(str(e)), 400)
        except Exception as e:  # a bug: one JSON log line with the traceback, one 500
            log.exception("%s %s failed", request.method, request.url.path)
            return reply(shapes.Error(f"internal error ({type(e).__name__}); the daemon's log "
                                      "has the details"), 500)

    return wrapped


class Api:
    """Handlers bound to one Service."""

    def __init__(self, service: Service, sessions: Sessions, url: str | None,
                 archive_dirs: Sequence[Path]) -> None:
        self.service = service
        self.sessions = sessions
        self.url = url
        self.archive_dirs = archive_dirs
        self._meta = msgspec.json.encode(shapes.meta())  # neither changes while we run
        self._document = msgspec.json.encode(document())
        self._metrics = Metrics(service)

    # -- health ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        s = self.service
        return reply(shapes.Health(
            "ok", os.getpid(), self.url, round(time.time() - s.started, 3), str(s.state_dir),
            s.active, s.bus.subscribers, s.bus.published, s.bus.last_id, s.hosts.counters(),
            s.problems()))

    async def metrics(self, request: Request) -> Response:
        return Response(await self._metrics.scrape(), media_type=CONTENT_TYPE)

    async def meta(self, request: Request) -> Response:
        return Response(self._meta, media_type="application/json")

    async def hosts(self, request: Request) -> Response:
        return reply(self.service.remote_hosts())

    # -- workflows ------------------------------------------------------------------------

    async def list_workflows(self, request: Request) -> Response:
        return reply(self.service.workflows())

    async def upload_workflow(self, request: Request) -> Response:
        name = request.query_params.get("name") or None
        archive = request.query_params.get("archive") or None
        data, filename = await _upload_body(request)
        named = None if data else archive  # the paper's upload of a file on this machine
        if named is not None:
            data, filename = await asyncio.to_thread(server_file, named, self.archive_dirs)
        if not data:
            raise UploadError("empty upload: send a YAML file, a .tar/.tar.gz, or a multipart "
                              "form with a `file` field")
        try:
            row = await self.service.add_workflow(data, filename or "workflow.yaml", name)
        except SpecError as e:
            if named is None:
                raise
            # The problems quote the file; one named by archive= need not be the client's.
            raise SpecError([Problem(p.file, p.line, p.col, _NOT_QUOTED)
                             for p in e.problems]) from None
        return reply(row, 201)

    async def get_workflow(self, request: Request) -> Response:
        row, text = self.service.workflow(request.path_params["name"])
        return reply(msgspec.structs.replace(row, yaml=text.decode("utf-8", "replace")))

    async def put_job(self, request: Request) -> Response:
        fields = await _decode(request, shapes.JobFields)
        p = request.path_params
        return reply(await self.service.edit_workflow(p["name"], p["job"], fields))

    async def delete_job(self, request: Request) -> Response:
        p = request.path_params
        return reply(await self.service.edit_workflow(p["name"], p["job"], None))

    async def delete_workflow(self, request: Request) -> Response:
        self.service.delete_workflow(request.path_params["name"])
        return Response(status_code=204)

    # -- runs -----------------------------------------------------------------------------

    async def list_runs(self, request: Request) -> Response:
        q = request.query_params
        limit = _int(q.get("limit"), "limit", -1) if "limit" in q else -1
        return reply(self.service.list_runs(q.get("workflow"), limit, q.get("prefix")))

    async def start_run(self, request: Request) -> Response:
        workflow, resume = request.query_params.get("workflow"), None
        if workflow is None:
            body = await _decode(request, shapes.StartRun, empty="{}")
            workflow, resume = body.workflow, body.resume
        run = await self.service.start_run(workflow, resume)
        return reply(shapes.Run.of(run), 201)

    async def get_run(self, request: Request) -> Response:
        return reply(shapes.Run.of(await self.service.run(request.path_params["run"])))

    async def cancel_run(self, request: Request) -> Response:
        asked = await _decode(request, shapes.CancelRun, empty="{}")
        run = await self.service.cancel(request.path_params["run"], asked.by)
        return reply(shapes.Run.of(run, jobs=False), 202)

    async def rerun(self, request: Request) -> Response:
        run = await self.service.rerun(request.path_params["run"])
        return reply(shapes.Run.of(run), 201)

    async def job_log(self, request: Request) -> Response:
        run_id, job = request.path_params["run"], request.path_params["job"]
        q = request.query_params
        offset = _int(q.get("offset"), "offset", 0)
        limit = min(_int(q.get("limit"), "limit", LOG_LIMIT), LOG_LIMIT)
        tail = _int(q.get("tail"), "tail", -1) if "tail" in q else None
        _, size, _ = await self.service.read_log(run_id, job, 0, 0)  # 404 before streaming
        if q.get("follow") in ("1", "true"):
            return StreamingResponse(self._follow(run_id, job, offset),
                                     media_type="text/plain; charset=utf-8",
                                     headers={"X-Log-Offset": str(offset)})
        if tail is not None:
            offset, limit = max(0, size - min(tail, LOG_LIMIT)), LOG_LIMIT
        data, size, _ = await self.service.read_log(run_id, job, offset, limit)
        return Response(data, media_type="text/plain; charset=utf-8", headers={
            "X-Log-Offset": str(offset), "X-Log-Next": str(offset + len(data)),
            "X-Log-Size": str(size)})

    async def _follow(self, run_id: str, job: str, offset: int) -> AsyncIterator[bytes]:
        """The log from `offset`, then what the job appends, until the job is over."""
        while True:
            data, _, ended = await self.service.read_log(run_id, job, offset, LOG_LIMIT)
            if data:
                offset += len(data)
                yield data
            elif ended:
                return
            else:
                await asyncio.sleep(0.1)

    async def results(self, request: Request) -> Response:
        job = request.query_params.get("job")
        found = await self.service.results(request.path_params["run"], job)
        return reply([shapes.Result(r.job, r.path, r.size) for r in found])

    async def result_file(self, request: Request) -> Response:
        p = request.path_params
        path = await self.service.result_file(p["run"], p["path"])
        # Never rendered by the browser (the guard adds nosniff): a job's output must not run
        # scripts on this origin.
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    async def run_graph(self, request: Request) -> Response:
        run = await self.service.run(request.path_params["run"])
        fmt = request.query_params.get("format", "dot")
        if fmt not in ("dot", "svg"):
            raise UploadError("format must be dot or svg", 422)
        dot = graph.to_dot(run.spec, run.jobs, RunTimes(run.created, run.t0, run.t1),
                           time.time(), variables(), os.environ)
        if fmt == "dot":
            return Response(dot, media_type="text/vnd.graphviz")
        svg = await asyncio.to_thread(graph.render, dot, "svg")
        return Response(svg, media_type="image/svg+xml")

    async def run_timeline(self, request: Request) -> Response:
        run = await self.service.run(request.path_params["run"])
        events = await self._events(run.id)
        return reply(shapes.Timeline(events[-1].id if events else 0,
                                     timeline.segments(events, run.jobs, run.created)))

    async def run_report(self, request: Request) -> Response:
        run = await self.service.run(request.path_params["run"])
        html = await report.build(run, await self._events(run.id),
                                  lambda job: self._tail(run.id, job))
        return Response(html, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": report.CSP,
            "Content-Disposition": f'inline; filename="report-{run.id}.html"'})

    async def _events(self, run_id: str) -> list[Event]:
        """A run's journal, oldest first, read in a worker thread."""
        store = self.service.store
        return await asyncio.to_thread(
            lambda: [e for _, e in store.events(run_id, own_connection=True)])

    async def _tail(self, run_id: str, job: str) -> str:
        """The end of a job's log, or why it cannot be read (its host is down)."""
        try:
            _, size, _ = await self.service.read_log(run_id, job, 0, 0)
            start = max(0, size - REPORT_TAIL)
            data, _, _ = await self.service.read_log(run_id, job, start, REPORT_TAIL)
        except CcdError as e:
            return f"(the log cannot be read: {e})"
        return data.decode("utf-8", "replace")

    # -- events ---------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        run_id = request.path_params.get("run")
        if run_id is not None:
            await self.service.run(run_id)  # 404 for an unknown run
        header = request.headers.get("last-event-id") or request.query_params.get("after")
        if header is not None:
            after = _int(header, "Last-Event-ID", 0)
        else:  # a run's stream starts at its beginning; the global one at now
            after = 0 if run_id is not None else self.service.bus.last_id
        store = self.service.store
        sub = self.service.bus.subscribe(run_id)  # before the replay: nothing falls between
        try:
            replay, last = await asyncio.to_thread(lambda: (
                list(store.events(run_id, after=after, limit=REPLAY_LIMIT + 1,
                                  own_connection=True)),
                store.last_event(run_id, own_connection=True) if run_id else None))
        except BaseException:
            self.service.bus.unsubscribe(sub)
            raise
        # A run's stream ends with the run's last event, once that is in the journal (the
        # run may have ended in memory before its last events are saved).
        ended = last is not None and _is_last_word(last)
        if ended and not replay:  # all told: 204 also stops a browser's EventSource retrying
            self.service.bus.unsubscribe(sub)
            return Response(status_code=204)
        return EventSourceResponse(self._stream(sub, replay, after, ended), ping=15,
                                   send_timeout=30)

    async def _stream(self, sub: Subscription, replay: list[tuple[int, Event]], after: int,
                      ended: bool) -> AsyncIterator[dict[str, Any] | bytes]:
        """The replay, then what the bus brings; a run's stream ends with the run."""
        try:
            for event_id, e in replay[:REPLAY_LIMIT]:
                after = event_id
                yield event_frame(e)
            if ended and len(replay) <= REPLAY_LIMIT:
                return
            while True:
                if sub.overflowed or len(replay) > REPLAY_LIMIT:
                    yield {"event": "resync", "data": json.dumps(
                        {"after": after, "reason": "this client fell behind; reconnect with "
                                                   "Last-Event-ID to catch up"})}
                    return
                event_id, live, frame = await sub.queue.get()
                if event_id == 0:  # a notice: no journal id
                    yield frame
                elif event_id > after:
                    after = event_id
                    yield frame
                    if sub.run_id is not None and live is not None and _is_last_word(live):
                        return
        finally:
            self.service.bus.unsubscribe(sub)

    # -- the paper's calls ----------------------------------------------------------------

    async def paper_run(self, request: Request) -> Response:
        run = await self.service.start_run(request.path_params["name"])
        return reply(shapes.Run.of(run), 201)

    async def paper_delete(self, request: Request) -> Response:
        """cloudmesh-cc's DELETE /workflow/{name}: the workflow, or with ?job= one job."""
        job = request.query_params.get("job")
        if job is None:
            return await self.delete_workflow(request)
        return reply(await self.service.edit_workflow(request.path_params["name"], job, None))

    async def paper_add_job(self, request: Request) -> Response:
        """cloudmesh-cc's POST /workflow/{name}?job=NAME&script=...: add or replace a job,
        its fields as query parameters (as its curl examples send them) or a JSON body."""
        query = dict(request.query_params)
        job = query.pop("job", "")
        if not job:
            raise UploadError("name the job: POST /workflow/{name}?job=NAME&script=...", 422)
        body = await _limited_body(request)
        try:
            if body.strip():
                fields = msgspec.json.decode(body, type=shapes.JobFields)
            else:
                fields = msgspec.convert(query, shapes.JobFields, strict=False)
        except msgspec.ValidationError as e:
            raise UploadError(f"the job's fields do not fit: {e}", 422) from None
        except msgspec.DecodeError:
            raise UploadError("the body is not JSON") from None
        return reply(await self.service.edit_workflow(request.path_params["name"], job, fields))

    # -- browser --------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        code = request.query_params.get("code", "")
        if not self.sessions.redeem(code):
            return reply(shapes.Error("this login link is used up or expired; get a new one "
                                      "with `ccctl open`"), 403)
        response = RedirectResponse("/", 303)
        response.set_cookie(self.sessions.cookie, self.sessions.open(), max_age=int(SESSION_TTL),
                            httponly=True, samesite="strict", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        value = request.cookies.get(self.sessions.cookie)
        if value:
            await asyncio.to_thread(self.sessions.close, value)
        response = Response(status_code=204)
        response.delete_cookie(self.sessions.cookie, httponly=True, samesite="strict", path="/")
        return response

    async def login_link(self, request: Request) -> Response:
        return reply(shapes.LoginLink(f"/login?code={self.sessions.new_code()}"), 201)

    async def rotate_token(self, request: Request) -> Response:
        await asyncio.to_thread(self.sessions.rotate)
        return Response(status_code=204)

    async def openapi(self, request: Request) -> Response:
        return Response(self._document, media_type="application/json")

    async def index(self, request: Request) -> Response:
        page = WEB / "index.html"
        if page.is_file():
            return Response(page.read_bytes(), media_type="text/html; charset=utf-8")
        return JSONResponse({"service": "ccd", "api": "/api/v1", "docs": "/docs"})


def _is_last_word(e: Event) -> bool:
    """Is this the event that ends a run?"""
    return e.job is None and e.state is not JobState.RUNNING


def _int(value: str | None, what: str, default: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise UploadError(f"{what} must be a whole number, not {value[:40]!r}", 422) from None
    if not 0 <= n <= shapes.MAX_COUNT:
        raise UploadError(f"{what} must be from 0 to {shapes.MAX_COUNT}", 422)
    return n


async def _decode(request: Request, shape: type[T], empty: str | None = None) -> T:
    """The request's JSON body as `shape`; an empty body reads as `empty` if given."""
    body = await _limited_body(request)
    if not body.strip() and empty is not None:
        body = empty.encode()
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as e:
        raise UploadError(f"the body does not fit: {e}", 422) from None
    except msgspec.DecodeError:
        raise UploadError("the body is not JSON") from None


async def _limited_body(request: Request) -> bytes:
    """The request's body, refused (413) as soon as it is over MAX_BODY, whether it says its
    length, is chunked or is a multipart form: nothing over the limit is kept."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise UploadError(f"request body over {MAX_BODY:,} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise UploadError(f"request body over {MAX_BODY:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload_body(request: Request) -> tuple[bytes, str]:
    """The uploaded bytes and their file name, from a raw body or a multipart form (parsed
    from the body read within the limit: starlette's own form parser would spool a file
    field of any size to disk before any limit applied)."""
    body = await _limited_body(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await asyncio.to_thread(form_file, body, content_type)
    return body, request.query_params.get("filename", "")


def build(service: Service, token: str, url: str | None = None,
          archive_dirs: Sequence[Path] = ()) -> tuple[Guard, Sessions]:
    """The ASGI app (guarded) and its sessions; `url` is where TCP clients reach it,
    `archive_dirs` the directories whose files `?archive=FILE` may name."""
    port = urlsplit(url).port if url else None
    sessions = Sessions(token, port or 0)
    api = Api(service, sessions, url, archive_dirs)

    def r(path: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, _errors(handler), methods=methods)

    routes: list[BaseRoute] = [
        r("/", api.index, ["GET"]),
        r("/login", api.login, ["GET"]),
        r("/logout", api.logout, ["POST"]),
        r("/openapi.json", api.openapi, ["GET"]),
        r("/api/v1/health", api.health, ["GET"]),
        r("/metrics", api.metrics, ["GET"]),
        r("/api/v1/meta", api.meta, ["GET"]),
        r("/api/v1/hosts", api.hosts, ["GET"]),
        r("/api/v1/login-links", api.login_link, ["POST"]),
        r("/api/v1/token/rotate", api.rotate_token, ["POST"]),
        r("/api/v1/workflows", api.list_workflows, ["GET"]),
        r("/api/v1/workflows", api.upload_workflow, ["POST"]),
        r("/api/v1/workflows/{name}", api.get_workflow, ["GET"]),
        r("/api/v1/workflows/{name}", api.delete_workflow, ["DELETE"]),
        r("/api/v1/workflows/{name}/jobs/{job}", api.put_job, ["PUT"]),
        r("/api/v1/workflows/{name}/jobs/{job}", api.delete_job, ["DELETE"]),
        r("/api/v1/runs", api.list_runs, ["GET"]),
        r("/api/v1/runs", api.start_run, ["POST"]),
        r("/api/v1/runs/{run}", api.get_run, ["GET"]),
        r("/api/v1/runs/{run}/cancel", api.cancel_run, ["POST"]),
        r("/api/v1/runs/{run}/rerun", api.rerun, ["POST"]),
        r("/api/v1/runs/{run}/jobs/{job}/log", api.job_log, ["GET"]),
        r("/api/v1/runs/{run}/graph", api.run_graph, ["GET"]),
        r("/api/v1/runs/{run}/timeline", api.run_timeline, ["GET"]),
        r("/api/v1/runs/{run}/report", api.run_report, ["GET"]),
        r("/api/v1/runs/{run}/results", api.results, ["GET"]),
        r("/api/v1/runs/{run}/results/{path:path}", api.result_file, ["GET"]),
        r("/api/v1/runs/{run}/events", api.events, ["GET"]),
        r("/api/v1/events", api.events, ["GET"]),
        # The paper's calls (section 6.3, Figures 15, 16, 19).
        r("/workflows", api.list_workflows, ["GET"]),
        r("/workflow", api.upload_workflow, ["POST"]),
        r("/workflow/run/{name}", api.paper_run, ["GET"]),
        r("/workflow/{name}", api.get_workflow, ["GET"]),
        r("/workflow/{name}", api.paper_add_job, ["POST"]),
        r("/workflow/{name}", api.paper_delete, ["DELETE"]),
    ]
    docs = WEB / "docs"
    if docs.is_dir():
        routes.append(Mount("/docs", StaticFiles(directory=docs, html=True)))
    vendor = WEB / "vendor"
    if vendor.is_dir():
        routes.append(Mount("/vendor", StaticFiles(directory=vendor)))
    routes.append(Mount("/static", StaticFiles(directory=WEB)))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return Guard(app, sessions, changing_gets=("/workflow/run/",)), sessions


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as JSON, like ours."""
    assert isinstance(exc, HTTPException)
    return Response(msgspec.json.encode(shapes.Error(f"{exc.detail}: {request.url.path}")),
                    exc.status_code, headers=exc.headers, media_type="application/json")
