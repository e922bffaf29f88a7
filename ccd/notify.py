"""Telling people that a run ended: a command, a desktop notification, a webhook, apprise.

Whom to tell comes from the workflow's `notify:` and from the settings file
(`ccd.settings.notifiers`); each entry names the ends of a run it is for (`on:`, default
every end: done, failed, cancelled). ccd has no state in which a job waits for a person
(no approval or input step), so a run's end is the one thing to tell.

The process that drives runs (the daemon's service, `ccctl run`) owns one `Notifier`, as
it owns its `Hosts`. When a run has ended and its last events are saved, `run_ended` hands
the news to tasks of the notifier's own TaskGroup and returns at once: nothing here runs
on the scheduler's path. At most MAX_AT_ONCE deliveries run at a time, each within its
entry's `timeout` (then a command's whole process group is killed); a notifier that
fails, hangs or cannot be found is logged and counted (`/metrics`), never retried, and
never changes the run. Delivery is at most once: a daemon killed between a run's end and
its notification does not send it after the restart.

- command: its arguments, each with `{run}`, `{state}`, ... (PLACEHOLDERS) filled in after
  the line was split, and run without a shell, so no value is ever read as shell code; the
  same values are in its environment (`CCD_RUN`, `CCD_STATE`, ...: the ones to use inside a
  shell script) and the webhook's JSON on its standard input. It runs in the workflow
  file's directory (a relative `./notify.sh` is beside the file). This is Pueue's callback,
  without its shell.
- desktop: `notify-send` (libnotify), if this machine has it.
- webhook: an HTTP POST of the run as the API shows it (`shapes.Run` without its jobs).
  Written here on asyncio's streams, not with an HTTP library: it only sends one request
  and reads the status line, and a task can be cancelled at any await (a blocking client
  in a thread cannot be stopped at its timeout). No proxy, no redirects.
- apprise: any service apprise knows (e-mail, chat, push). apprise is an optional extra
  (`ccd[notify]`): it brings requests, markdown, oauthlib and 0.4 s of import and plugin
  loading that most users, who need a command or a webhook, would pay on every start. It
  runs in a child process (`python -m ccd.notify`, the URL on its standard input, never in
  its arguments where `ps` shows it): apprise's calls block and cannot be cancelled in a
  thread, but a child can be killed at its timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import os
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import msgspec

from ccd import shapes
from ccd.model import NotifySpec, Run, RunState

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("ccd.notify")
PLACEHOLDERS = ("run", "workflow", "state", "message", "jobs", "done", "failed", "skipped",
                "cancelled", "duration", "run_dir")
MAX_AT_ONCE = 4  # deliveries running at a time
MAX_PENDING = 1000  # deliveries waiting or running; past it, new ones are dropped (logged)
MAX_SAID = 500  # bytes of a failed notifier's stderr kept for the log
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class NotifyFailed(Exception):
    """A notifier ran and said no (an exit code, an HTTP status); carries what it said."""


# -- placeholders (pure) ----------------------------------------------------------------

def placeholders(text: str) -> list[str]:
    """The `{name}` placeholders in a command's argument (`{{` and `}}` are braces)."""
    return [m[1] for m in _FIELD.finditer(text) if m[1] is not None]


def template_problems(text: str) -> list[tuple[int, str]]:
    """(offset, message) for each unknown placeholder or lone brace in `text`."""
    out = []
    for m in _FIELD.finditer(text):
        if m[0] in ("{{", "}}"):
            continue
        if m[1] is None:
            out.append((m.start(), f"a lone {m[0]!r}: write {m[0] * 2!r} for the character"))
        elif m[1] not in PLACEHOLDERS:
            out.append((m.start(), f"unknown placeholder {m[0]!r}; the placeholders are "
                                   f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}"))
    return out


def fill(text: str, values: dict[str, str]) -> str:
    """`text` with its placeholders replaced by `values` (checked by the spec already)."""
    def one(m: re.Match[str]) -> str:
        if m[1] is not None:
            return values.get(m[1], m[0])
        return m[0][0] if m[0] in ("{{", "}}") else m[0]

    return _FIELD.sub(one, text)


def webhook_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's, or None."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return "the URL must start with http:// or https:// and name a host"
    try:
        u.port  # noqa: B018 (it raises for a port that is not a number from 0 to 65535)
    except ValueError:
        return "the URL's port is not a number from 1 to 65535"
    return None


def apprise_installed() -> bool:
    """Is apprise importable by the Python that runs ccd (`ccd[notify]`)?"""
    return importlib.util.find_spec("apprise") is not None


def apprise_knows(url: str) -> bool:
    """Does apprise make a notifier of `url`? (Imports apprise and its plugins: 0.4 s.)"""
    import apprise

    quiet = logging.getLogger("apprise")
    level, quiet.level = quiet.level, logging.CRITICAL + 1  # it logs why; we say it
    try:
        return apprise.Apprise.instantiate(url) is not None
    finally:
        quiet.level = level


# -- what is told -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class News:
    """A run's end as every notifier tells it."""

    run_id: str
    state: RunState
    values: dict[str, str]  # by placeholder
    body: bytes  # JSON: the run as the API shows it, without its jobs
    title: str
    text: str
    cwd: Path

    @classmethod
    def of(cls, run: Run) -> News:
        shape = shapes.Run.of(run, jobs=False)
        counts = shape.counts
        took = (run.t1 or 0.0) - (run.t0 or run.t1 or 0.0)
        values = {"run": run.id, "workflow": run.spec.name, "state": run.state.value,
                  "message": run.message, "jobs": str(len(run.jobs)),
                  **{s: str(counts.get(s, 0)) for s in ("done", "failed", "skipped",
                                                        "cancelled")},
                  "duration": f"{took:.0f}", "run_dir": str(run.run_dir)}
        text = (f"run {run.id} {run.state.value} after {_took(took)}: {values['done']} of "
                f"{values['jobs']} jobs done" + (f"; {run.message}" if run.message else ""))
        return cls(run.id, run.state, values,
                   msgspec.json.encode(msgspec.structs.replace(shape, colors=None)),
                   f"ccd: {run.spec.name} {run.state.value}", text,
                   run.spec.base_dir if run.spec.base_dir.is_dir() else run.run_dir)

    def env(self) -> dict[str, str]:
        """The values as environment variables: CCD_RUN, CCD_STATE, ..."""
        return {f"CCD_{k.upper()}": v for k, v in self.values.items()}


def _took(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s" if hours else f"{m}m{s:02d}s" if m else f"{s}s"


# -- delivering -------------------------------------------------------------------------

class Notifier:
    """Delivers the news of ended runs to their notifiers and to `targets` (the settings'),
    off the caller's path. Use as an async context manager; on exit, deliveries still
    under way get `grace` seconds (None: their own timeouts) and are then cancelled."""

    def __init__(self, targets: tuple[NotifySpec, ...] = (), grace: float | None = None
                 ) -> None:
        self.targets = targets
        # (kind, outcome): sent, failed, timeout, dropped (too many pending), cancelled (by a stop)
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._grace = grace
        self._slots = asyncio.Semaphore(MAX_AT_ONCE)
        self._group = asyncio.TaskGroup()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Notifier:
        await self._group.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._tasks and kind is None:
            await asyncio.wait(set(self._tasks), timeout=self._grace)
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(kind, exc, tb)

    def run_ended(self, run: Run) -> None:
        """Tell every notifier of the run, and of the settings, whose `on:` has its state.
        Returns at once."""
        targets = [t for t in (*run.spec.notify, *self.targets) if run.state in t.on]
        if not targets:
            return
        news = News.of(run)
        for target in targets:
            if len(self._tasks) >= MAX_PENDING:
                self.outcomes[target.kind, "dropped"] += 1
                log.warning("run %s: %d notifications are pending; %s dropped", run.id,
                            len(self._tasks), _what(target))
                continue
            task = self._group.create_task(self._deliver(target, news))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, target: NotifySpec, news: News) -> None:
        try:  # its timeout runs from when it has a slot
            async with self._slots, asyncio.timeout(target.timeout):
                await _SEND[target.kind](target, news)
        except asyncio.CancelledError:
            self.outcomes[target.kind, "cancelled"] += 1
            log.warning("run %s: %s was not done when ccd stopped; given up", news.run_id,
                        _what(target))
            raise
        except TimeoutError:
            outcome = "timeout"
            log.warning("run %s: %s did not finish in %g s; given up", news.run_id,
                        _what(target), target.timeout)
        except (NotifyFailed, OSError) as e:
            outcome = "failed"
            log.warning("run %s: %s failed: %s", news.run_id, _what(target), e)
        except Exception:  # a bug here must not end the other deliveries
            outcome = "failed"
            log.exception("run %s: %s failed", news.run_id, _what(target))
        else:
            outcome = "sent"
            log.info("run %s: told %s", news.run_id, _what(target))
        self.outcomes[target.kind, outcome] += 1


def _what(target: NotifySpec) -> str:
    """A notifier in a log line, without its URL's secrets (a password, a token)."""
    if target.kind == "command":
        return f"command {target.target[0]}"
    if target.kind == "desktop":
        return "the desktop notification"
    u = urlsplit(target.target[0])
    where = (u.hostname or "") + (f":{u.port}" if target.kind == "webhook" and u.port else "")
    return f"{target.kind} {u.scheme}://{where}"


async def _command(target: NotifySpec, news: News) -> None:
    argv = [fill(arg, news.values) for arg in target.target]
    await _run(argv, news.body, {**os.environ, **news.env()}, news.cwd)


async def _desktop(target: NotifySpec, news: News) -> None:
    urgency = "normal" if news.state is RunState.DONE else "critical"
    await _run(["notify-send", "--app-name=ccd", f"--urgency={urgency}", news.title,
                news.text], b"", None, news.cwd)


async def _apprise(target: NotifySpec, news: News) -> None:
    kind = {RunState.DONE: "success", RunState.FAILED: "failure"}.get(news.state, "warning")
    order = {"url": target.target[0], "title": news.title, "body": news.text, "type": kind}
    await _run([sys.executable, "-m", "ccd.notify"], json.dumps(order).encode(), None,
               news.cwd)


async def _run(argv: list[str], stdin: bytes, env: dict[str, str] | None, cwd: Path) -> None:
    """Run a notifier's process to its end, its stdin given, its stdout dropped; raise
    NotifyFailed with the end of its stderr unless it exits 0. If this is cancelled (its
    timeout), its whole process group is killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
    except OSError as e:
        raise NotifyFailed(f"cannot run {argv[0]}: {e.strerror}") from None
    assert proc.stdin is not None and proc.stderr is not None
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()
        said = b""
        while chunk := await proc.stderr.read(1 << 16):  # read all; keep the end
            said = (said + chunk)[-MAX_SAID:]
        code = await proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    if code != 0:
        lines = said.decode("utf-8", "replace").strip().splitlines()
        raise NotifyFailed(f"exit {code}" + (f": {lines[-1]}" if lines else ""))


async def _webhook(target: NotifySpec, news: News) -> None:
    """POST the news as JSON; any 2xx answer is success."""
    url = urlsplit(target.target[0])
    https = url.scheme == "https"
    reader, writer = await asyncio.open_connection(
        url.hostname, url.port or (443 if https else 80),
        ssl=_tls() if https else None)
    try:
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        head = [f"POST {path} HTTP/1.1", f"Host: {url.netloc.rpartition('@')[2]}",
                "Content-Type: application/json", f"Content-Length: {len(news.body)}",
                "Connection: close", "User-Agent: ccd"]
        if url.username is not None:
            pair = f"{unquote(url.username)}:{unquote(url.password or '')}"
            head.append(f"Authorization: Basic {base64.b64encode(pair.encode()).decode()}")
        writer.write("\r\n".join([*head, "", ""]).encode() + news.body)
        await writer.drain()
        status = (await reader.readline()).decode("latin-1").split(maxsplit=2)
    except BaseException:
        writer.transport.abort()
        raise
    writer.close()
    if len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
        raise NotifyFailed("the answer is not HTTP")
    if not 200 <= int(status[1]) < 300:
        raise NotifyFailed(f"HTTP {' '.join(status[1:]).strip()}")


_SEND = {"command": _command, "desktop": _desktop, "webhook": _webhook, "apprise": _apprise}


def _apprise_child() -> int:
    """`python -m ccd.notify`: send one apprise notification, given as JSON on stdin
    ({url, title, body, type}); exit 0 if apprise delivered it."""
    order = json.loads(sys.stdin.read())
    try:
        import apprise
    except ImportError:
        sys.stderr.write("apprise is not installed: pip install 'ccd[notify]'\n")
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    sender = apprise.Apprise()
    if not sender.add(order["url"]):
        sys.stderr.write("apprise does not know this URL\n")
        return 2
    ok = sender.notify(body=order["body"], title=order["title"], notify_type=order["type"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_apprise_child())


def _tls() -> ssl.SSLContext:
    import ssl  # not at the top: every ccctl run imports this module, few send over https

    return ssl.create_default_context()
