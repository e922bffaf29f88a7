"""`ccctl`: the command line of ccd.

`validate`, `run`, `graph` and `example` work without a daemon (the paper's "command line
mode"), and so do `list`, `status`, `logs` and `results`: with no daemon here they read the
state directory (`sources.StateDir`).
Exit codes: 0 every job done, 1 a job failed, 2 invalid input or refused by the daemon,
3 no daemon to talk to (not running, not answering, or a socket we do not trust), 130
cancelled.
Heavy modules are imported inside the commands: start-up time is part of every command.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
import typer.core
from typer.models import CommandFunctionType

from ccd.settings import default_max_jobs

if TYPE_CHECKING:
    from ccctl.client import Client
    from ccctl.sources import Source


class _Command(typer.core.TyperCommand):
    """A command whose usage line names its arguments as `RUN [JOB]`, whatever typer's
    version: typer 0.27 and later write `{RUN} [job]`, braces no shell accepts."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # Any: click's or typer's copy
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.human_readable_name.upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class _Typer(typer.Typer):
    """typer.Typer whose commands are _Command."""

    def command(self, *args: Any, **kwargs: Any
                ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(*args, **{"cls": _Command, **kwargs})


app = _Typer(
    name="ccctl",
    help="Run and watch ccd workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED, EXIT_INVALID, EXIT_UNREACHABLE, EXIT_CANCELLED = 1, 2, 3, 130


def _print_version(asked: bool) -> None:
    if asked:
        from ccd.settings import version

        print(f"ccctl {version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print ccctl's version and exit")] = False,
) -> None:
    pass

StateDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option("--state-dir", help="State directory",
                 show_default="$CCD_STATE_DIR or $XDG_STATE_HOME/ccd"),
]


def _state_dir(given: Path | None) -> Path:
    from ccd.settings import state_dir

    return given.expanduser().absolute() if given else state_dir()


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return typer.Exit(code)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Check a workflow file and report every problem as FILE:LINE:COL."""
    from ccd.errors import SpecError
    from ccd.spec import load_spec

    try:
        spec, warnings = load_spec(file)
    except SpecError as e:
        if json_out:
            _print_json({"valid": False, "errors": [str(p) for p in e.problems]})
            raise typer.Exit(EXIT_INVALID) from None
        raise _fail(str(e), EXIT_INVALID) from None
    if json_out:
        _print_json({"valid": True, "jobs": len(spec.jobs), "dependencies": len(spec.edges),
                     "sweeps": spec.sweeps, "warnings": [str(w) for w in warnings]})
        return
    for w in warnings:
        sys.stderr.write(f"{w}\n")
    sweeps = ""
    if spec.sweeps:  # how many jobs each node with a matrix made
        nodes = len(spec.jobs) - sum(spec.sweeps.values()) + len(spec.sweeps)
        made = "; ".join(f"{node} x {n}" for node, n in spec.sweeps.items())
        sweeps = f" (from {nodes} nodes; {made})"
    print(f"{file}: ok, {len(spec.jobs)} jobs{sweeps}, {len(spec.edges)} dependencies")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the order; run nothing")]
    = False,
    new: Annotated[bool, typer.Option("--new", help="Start afresh: run every job, instead "
                                      "of resuming or carrying on from the last run of this "
                                      "file")] = False,
    max_jobs: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-jobs", min=1, help="Processes at once",
        show_default=f"CPUs x 4, {default_max_jobs()} here")] = None,
    state_dir: StateDir = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Run a workflow here, in the foreground, with a live table (no daemon needed).

    Run again after an interruption to resume: finished jobs are not rerun, running jobs
    are re-attached, never restarted. After the last run of the file ended (failed,
    cancelled, or done before you edited something), the same command carries on from it:
    done jobs that did not change are kept, the rest run, and it prints why. Done and
    nothing changed: it says so and runs nothing.
    """
    from ccd.errors import CcdError, SpecError

    if dry_run:
        _dry_run(file, json_out)
        return
    import asyncio

    from ccctl.live import Display
    from ccd import runs
    from ccd.settings import notifiers

    try:
        notify, warnings = notifiers()
        opened = runs.open_run(file, _state_dir(state_dir), new=new)
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    opened.warnings[:0] = warnings
    display = Display(opened, json_out=json_out)
    if opened.run.state.final:  # it ended as the file is now: nothing to run
        display.ended()
        opened.store.close()
        raise _exit_for(opened.run.state.value)
    try:
        state = asyncio.run(display.drive(max_jobs, notify))
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    except KeyboardInterrupt:
        display.left_running()
        raise typer.Exit(EXIT_CANCELLED) from None
    finally:
        opened.store.close()
    raise typer.Exit({"done": 0, "cancelled": EXIT_CANCELLED}.get(state.value, EXIT_FAILED))


@app.command()
def prune(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Remove runs that ended longer ago than this: 30d, 12h, 90m")],
    state_dir: StateDir = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Remove finished runs (their records, events and files); never a running one."""
    import time

    from ccd import runs
    from ccd.errors import CcdError
    from ccd.settings import duration
    from ccd.store import Store

    try:
        age = duration(older_than)
    except ValueError as e:
        raise _fail(f"ccctl: --older-than: {e}", EXIT_INVALID) from None
    sd = _state_dir(state_dir)
    if not (sd / "ccd.db").exists():
        removed: list[str] = []
    else:
        try:
            store = Store(sd / "ccd.db")
        except CcdError as e:
            raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
        try:
            removed = runs.prune(store, sd, time.time() - age)
        finally:
            store.close()
    if json_out:
        _print_json({"removed": removed})
        return
    for run_id in removed:
        print(run_id)
    sys.stderr.write(f"removed {len(removed)} run{'s' if len(removed) != 1 else ''} that ended"
                     f" more than {older_than} ago\n")


def _dry_run(file: Path, json_out: bool) -> None:
    from ccd import dag
    from ccd.errors import SpecError
    from ccd.spec import load_spec

    try:
        spec, _ = load_spec(file)
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None
    order = dag.topological_order(list(spec.jobs), spec.edges)
    if json_out:
        _print_json({"order": order})
        return
    for i, name in enumerate(order, 1):
        job = spec.jobs[name]
        what = ("join" if job.is_join else f"script {job.script}" if job.script
                else f"exec {job.exec}")
        print(f"{i:>4}  {name}  ({job.kind} on {job.host}: {what})")


@app.command()
def graph(
    target: Annotated[str, typer.Argument(help="Workflow YAML file, or a run: its id, any "
                                          "unique start of one, or @last")],
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="dot, svg or png (svg and png need Graphviz's dot)")] = "dot",
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Write here instead of stdout")] = None,
    state_dir: StateDir = None,
) -> None:
    """The workflow as a graph: nodes coloured by state, with their labels."""
    from ccd import graph as graphs
    from ccd.errors import CcdError, GraphvizMissing, SpecError

    if fmt not in ("dot", "svg", "png"):
        raise _fail(f"ccctl: unknown format {fmt!r}; use dot, svg or png", EXIT_INVALID)
    try:
        dot = _dot_of(target, state_dir)
        data = dot.encode() if fmt == "dot" else graphs.render(dot, fmt)
    except GraphvizMissing:
        raise _fail(f"ccctl: {GRAPHVIZ_MISSING}", EXIT_INVALID) from None
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    if output is not None:
        from ccd.export import write_atomically

        if fmt == "png":
            output.write_bytes(data)
        else:
            write_atomically(output.absolute(), data.decode())
    elif fmt == "png" and sys.stdout.isatty():
        raise _fail("ccctl: not writing PNG to a terminal; use -o FILE", EXIT_INVALID)
    else:
        sys.stdout.buffer.write(data)


GRAPHVIZ_MISSING = ("-f svg and -f png need Graphviz's `dot` program, which is not on PATH: "
                    "install it (Debian/Ubuntu: sudo apt-get install -y graphviz), or use -f dot, "
                    "or see the graph on the page (ccctl open), which draws it without Graphviz")


def _dot_of(target: str, state_dir: Path | None) -> str:
    """DOT of a workflow file, or of a run (from the daemon, else from the state directory)."""
    import os
    import time

    from ccctl.runref import in_store
    from ccd import graph as graphs
    from ccd import runs
    from ccd.labels import RunTimes
    from ccd.model import JobStatus
    from ccd.settings import variables
    from ccd.spec import load_spec
    from ccd.store import Reader

    if Path(target).is_file():
        spec, _ = load_spec(target)
        statuses = {n: JobStatus(n, host=j.host) for n, j in spec.jobs.items()}
        times = RunTimes()
    elif state_dir is None and (dot := _graph_from_daemon(target)) is not None:
        return dot
    else:
        sd = _state_dir(state_dir)
        if not (sd / "ccd.db").exists():
            raise _fail(f"ccctl: {target!r} is neither a file nor a run in {sd}", EXIT_INVALID)
        store = Reader(sd / "ccd.db")
        try:
            run = runs.load(store, sd, in_store(store, target, f"in {sd}"))
        finally:
            store.close()
        spec, statuses = run.spec, run.jobs
        times = RunTimes(run.created, run.t0, run.t1)
    return graphs.to_dot(spec, statuses, times, time.time(), variables(), os.environ)


def _graph_from_daemon(run_id: str) -> str | None:
    """The run's DOT from the daemon; None when no daemon is running."""
    from ccctl.client import Client
    from ccctl.runref import on_daemon
    from ccd.errors import ClientError

    try:
        with Client() as client:
            return client.request("GET", f"/api/v1/runs/{on_daemon(client, run_id)}/graph").text
    except ClientError as e:
        if e.status is None:
            return None
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None


@app.command()
def example(
    name: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        metavar="NAME", help="An example; without it, the examples are listed")] = None,
    directory: Annotated[Optional[Path], typer.Argument(  # noqa: UP045
        metavar="DIR", help="Copy it into this directory, made if missing; never over files "
        "there", show_default="./NAME")] = None,
) -> None:
    """The example workflows that come with ccd: lists them, or copies one to run or edit."""
    from ccctl import examples as shipped

    try:
        found = shipped.examples()
    except FileNotFoundError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    width = max(map(len, found), default=0)
    listing = "".join(f"{n:<{width}}  {e.description}\n" for n, e in found.items())
    if name is None:
        print(listing, end="")
        sys.stderr.write("copy one: ccctl example NAME [DIR]\n")
        return
    if name not in found:
        raise _fail(f"ccctl: no example {name!r}; these come with ccd:\n{listing}", EXIT_INVALID)
    chosen, target = found[name], directory if directory is not None else Path(name)
    try:
        shipped.copy(chosen, target)
    except FileExistsError as e:
        raise _fail(f"ccctl: {e}; not overwriting it (copy into a new directory)",
                    EXIT_INVALID) from None
    except OSError as e:
        raise _fail(f"ccctl: cannot copy into {target}: {e.strerror}", EXIT_INVALID) from None
    workflow = target / chosen.workflow
    print(f"copied the example {name} to {target}; run it here: ccctl run {workflow}, "
          f"or on the daemon: ccctl submit {workflow}")


# -- the daemon's commands ---------------------------------------------------------------

JsonOut = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
RUN_HELP = "A run id, any unique start of one, or @last (the newest run)"


@contextlib.contextmanager
def _daemon() -> Iterator[Client]:
    """A client of the running daemon; its errors become one line and an exit code."""
    from ccctl.client import Client
    from ccd.errors import ClientError, RunError, SpecError

    try:
        with Client() as client:
            yield client
    except ClientError as e:
        raise _fail(f"ccctl: {e}", EXIT_UNREACHABLE if e.status is None else EXIT_INVALID
                    ) from None
    except RunError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None


ReadStateDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option("--state-dir", help="Read this state directory instead of asking the daemon",
                 show_default="the daemon's; without one $CCD_STATE_DIR or $XDG_STATE_HOME/ccd"),
]


@contextlib.contextmanager
def _runs(state_dir: Path | None, note: bool) -> Iterator[Source]:
    """Where a reading command gets runs: the daemon; else, when none runs here (no socket
    or a dead one, and no CCD_URL), or with --state-dir, the state directory itself, said
    on stderr if `note`. Errors become one line and an exit code."""
    from ccctl.client import Client
    from ccctl.sources import PATIENCE, Daemon, StateDir
    from ccd.errors import CcdError, ClientError, NoDaemon, SpecError

    try:
        source: Source | None = None
        patience = 0.0
        if state_dir is None:
            try:
                client = Client()
                try:
                    client.probe()
                    source = Daemon(client)
                except NoDaemon:  # it died; it may be restarting: a watch waits for it
                    patience = PATIENCE
            except NoDaemon:
                pass
        if source is None:
            source = StateDir(_state_dir(state_dir), patience)
            if note and state_dir is None:
                sys.stderr.write(f"(no daemon: reading {source.path})\n")
        with contextlib.closing(source):
            yield source
    except ClientError as e:
        raise _fail(f"ccctl: {e}", EXIT_UNREACHABLE if e.status is None else EXIT_INVALID
                    ) from None
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None


def _exit_for(state: str) -> typer.Exit:
    return typer.Exit({"done": 0, "cancelled": EXIT_CANCELLED}.get(state, EXIT_FAILED))


@app.command()
def submit(
    target: Annotated[Path, typer.Argument(help="Workflow YAML, a directory holding one, or a "
                                           ".tar/.tar.gz with the YAML and its scripts")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the run to its end")]
    = False,
    name: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--name", help="Store the workflow under this name")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Carry on from the newest ended run of this workflow: keep its done "
        "jobs that did not change, run the rest")] = False,
    resume_from: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--resume-from", metavar="RUN", help="Carry on from this ended run (as --resume)")]
    = None,
    json_out: JsonOut = False,
) -> None:
    """Upload a workflow to the daemon and start a run; prints the run id.

    With --resume, the run carries on from an earlier one; what it keeps and why the other
    jobs run again is printed on stderr.
    """
    from ccctl.remote import watch as follow
    from ccctl.runref import on_daemon
    from ccd.errors import SpecError, UploadError
    from ccd.uploads import pack

    try:
        data, filename = pack(target)  # before the daemon: a wrong target is said at once
    except UploadError as e:
        raise _fail(f"ccctl: {e}", 2) from None
    except SpecError as e:
        raise _fail(str(e), 2) from None
    except OSError as e:
        raise _fail(f"ccctl: cannot read {target}: {e.strerror}", 2) from None
    with _daemon() as client:
        params = {"filename": filename, **({"name": name} if name else {})}
        start: dict[str, str] = {}
        if resume_from is not None:
            start["resume"] = on_daemon(client, resume_from)
        elif resume:
            start["resume"] = ""
        workflow = client.json("POST", "/api/v1/workflows", content=data, params=params)
        run = client.json("POST", "/api/v1/runs", json={"workflow": workflow["name"], **start})
        if start:
            _print_plan(run)
        if not watch:
            if json_out:
                _print_json(run)
            else:
                print(run["run"])
            return
        sys.stderr.write(f"run {run['run']} ({len(run['jobs'])} jobs)\n")
        state = follow(client, run["run"], json_out)
    raise _exit_for(state.value)


def _print_plan(run: dict[str, Any]) -> None:
    """What a run that carries on from another keeps, and why the rest runs (on stderr)."""
    from ccd.reuse import AGAIN, summary

    why = {j["name"]: "" if j["state"] == "done" else j["message"].removeprefix(AGAIN)
           for j in run["jobs"]}
    for line in summary(why):
        sys.stderr.write(line + "\n")


@app.command("list")
def list_runs(json_out: JsonOut = False, state_dir: ReadStateDir = None) -> None:
    """Runs, newest first (run, workflow, state, jobs, started): the daemon's, or without
    one those of the state directory."""
    with _runs(state_dir, note=not json_out) as source:
        runs = source.runs()
    if json_out:
        _print_json(runs)
        return
    from rich.table import Table
    from rich.text import Text

    from ccctl.console import console
    from ccctl.live import STYLES

    table = Table(box=None, header_style="bold", pad_edge=False)
    # The id is what people copy: it never wraps or shrinks, the other columns do.
    table.add_column("run", no_wrap=True, min_width=max((len(r["run"]) for r in runs), default=3))
    for column in ("workflow", "state", "jobs", "started"):
        table.add_column(column, overflow="fold")
    for r in runs:
        counts = "  ".join(f"{n} {s}" for s, n in r["counts"].items())
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["t0"])) if r["t0"] else ""
        table.add_row(r["run"], r["workflow"], Text(r["state"], style=STYLES[r["state"]]),
                      counts, started)
    console().print(table if runs else "no runs yet: `ccctl submit FILE` (or `ccctl run FILE`)"
                    " starts one")


@app.command()
def hosts(json_out: JsonOut = False) -> None:
    """How the daemon reaches the remote hosts its runs use: state, why not, round trip."""
    with _daemon() as client:
        found = client.json("GET", "/api/v1/hosts")
    if json_out:
        _print_json(found)
        return
    from rich.table import Table
    from rich.text import Text

    from ccctl.console import console

    if not found:
        console().print("no remote hosts in use: every job so far ran on this machine")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("host", "kind", "address", "state", "since", "rtt ms", "channels", "jobs",
                   "connections", "commands", "rpcs", "error"):
        table.add_column(column, justify="right" if column in _NUMBERS else "left")
    now = time.time()
    for h in found:
        rtt = f"{h['rtt'] * 1000:.1f}" if h["rtt"] is not None else ""
        # Text(...) throughout: a host name or an error is shown as written, never as markup.
        table.add_row(Text(h["host"]), Text(h["kind"]), Text(h["address"]),
                      Text(h["state"], style=_HOST_STYLES.get(h["state"], "")),
                      _ago(now - h["since"]), rtt, f"{h['channels']}/{h['channel_limit']}",
                      str(h["jobs"]), str(h["connections"]), str(h["commands"]),
                      str(h["rpcs"]), Text(h["error"], style="red"))
    console().print(table)


_NUMBERS = ("rtt ms", "channels", "jobs", "connections", "commands", "rpcs")
_HOST_STYLES = {"connected": "green", "connecting": "yellow", "unreachable": "bold red"}


def _ago(seconds: float) -> str:
    """A time in the past, relative and short: 42 s ago, 5 min ago, 3 h ago, 2 d ago."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the run to its end")]
    = False,
    json_out: JsonOut = False,
    state_dir: ReadStateDir = None,
) -> None:
    """A run's jobs (job, state, progress, elapsed, cpu, memory, exit, message; past 40 jobs,
    those not done), then the run's state and why it ended so; --watch follows it to its end
    instead."""
    with _runs(state_dir, note=not json_out) as source:
        run_id = source.resolve(run_id)
        if watch:
            state = source.watch(run_id, json_out).value
        else:
            data = source.run(run_id)
            state = data["state"]
            if json_out:  # the API's own JSON: no need to load the table machinery
                _print_json(data)
            else:
                from ccctl.live import Board
                from ccctl.remote import run_from_json

                board = Board(run_from_json(data))
                board.live = True  # always the table, never lines
                board.summary()
    if watch or state != "running":
        raise _exit_for(state)


@app.command()
def trace(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)],
    form: Annotated[str, typer.Option(
        "--format", help="csv (a header, then one line per job) or json (an array)")]
    = "csv",
    state_dir: ReadStateDir = None,
) -> None:
    """What each job of a run used, one row per job, after Nextflow's trace file: task_id,
    name, status, exit, attempt, host, kind, start, complete (ISO 8601, UTC), realtime_s,
    cpu_user_s, cpu_system_s, cpu_percent, peak_rss_bytes, peak_rss_sampled, bytes_read,
    bytes_written. Empty (null) where the job's host does not offer a figure."""
    from ccctl import trace as tracefile

    if form not in tracefile.FORMATS:
        raise _fail(f"ccctl trace: --format must be csv or json, not {form!r}", EXIT_INVALID)
    with _runs(state_dir, note=False) as source:
        data = source.run(source.resolve(run_id))
    sys.stdout.write(tracefile.render(data["jobs"], form))


@app.command()
def logs(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)],
    job: Annotated[Optional[str], typer.Argument(  # noqa: UP045
        help="A job of the run; without it, the jobs are listed")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing as it grows")]
    = False,
    state_dir: ReadStateDir = None,
) -> None:
    """A job's log (stdout and stderr); without a job, the run's jobs and their states.
    Without the daemon, --follow reads the log file as it grows until the job ends."""
    out = sys.stdout.buffer
    with _runs(state_dir, note=False) as source:
        run_id = source.resolve(run_id)
        if job is None or not follow:
            jobs = {j["name"]: j for j in source.run(run_id)["jobs"]}
            if job is None:  # which logs there are
                for j in jobs.values():
                    print(f"{j['name']}  {j['state']}" + (f"  {j['message']}" if j["message"]
                                                           else ""))
                print(f"a job's log: ccctl logs {run_id} JOB", file=sys.stderr)
                return
            if job in jobs and jobs[job]["state"] == "skipped":  # it never ran: say why
                print(f"{job} did not run: {jobs[job]['message']}", file=sys.stderr)
                return
        try:
            for chunk in source.follow_log(run_id, job) if follow else source.log(run_id, job):
                out.write(chunk)
                if follow:
                    out.flush()
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_CANCELLED) from None


@app.command()
def results(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)],
    job: Annotated[Optional[str], typer.Argument(help="Only this job's")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Download them into this directory")] = None,
    json_out: JsonOut = False,
    state_dir: ReadStateDir = None,
) -> None:
    """The files a run's jobs declare as `outputs:` and executed notebooks, in its working
    copy; -o downloads them."""
    with _runs(state_dir, note=False) as source:
        run_id = source.resolve(run_id)
        found = source.results(run_id, job)
        for r in found if output is not None else ():
            target = output / r["path"]
            if Path(r["path"]).is_absolute() or ".." in Path(r["path"]).parts:
                raise _fail(f"ccctl: refusing the result path {r['path']!r}", EXIT_INVALID)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.fetch_result(run_id, r["path"], target)
    if json_out:
        _print_json(found)
        return
    if not found:
        sys.stderr.write("no results: no job of the run declares `outputs:` that exist\n")
    for r in found:
        print(f"{r['job']}\t{r['size']:>10}  {output / r['path'] if output else r['path']}")


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The HTML file to write")] = Path("report.html"),
) -> None:
    """Save a run's report: one HTML file that opens offline (graph, jobs, timeline, hosts,
    failed jobs' logs), to mail or attach to a paper."""
    from ccctl.runref import on_daemon

    with _daemon() as client:
        run_id = on_daemon(client, run_id)
        html = client.request("GET", f"/api/v1/runs/{run_id}/report").content
    target = output.expanduser().absolute()
    try:
        target.write_bytes(html)
    except OSError as e:
        raise _fail(f"ccctl: cannot write {output}: {e.strerror or e}", EXIT_INVALID) from None
    print(target)


@app.command()
def cancel(run_id: Annotated[str, typer.Argument(metavar="RUN", help=RUN_HELP)]) -> None:
    """Cancel a run: running jobs get SIGTERM, waiting ones never start. The run and its
    jobs then say `cancelled by ccctl (user@host)`."""
    from ccctl.runref import on_daemon

    with _daemon() as client:
        run_id = on_daemon(client, run_id)
        client.json("POST", f"/api/v1/runs/{run_id}/cancel", json={"by": _who()})
    print(f"cancelling {run_id}")


def _who() -> str:
    """This ccctl, its user and machine, as a cancel names who asked."""
    import getpass
    import os
    import socket

    from ccd.shapes import MAX_BY

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = str(os.getuid())
    return f"ccctl ({f'{user}@{socket.gethostname()}'[:MAX_BY - len('ccctl ()')]})"


@app.command()
def rerun(
    run_id: Annotated[str, typer.Argument(
        metavar="RUN", help="A finished run: its id, any unique start of one, or @last")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the new run")] = False,
) -> None:
    """Run a finished run's failed, skipped and cancelled jobs again: a new run, whose id
    it prints."""
    from ccctl.remote import watch as follow
    from ccctl.runref import on_daemon

    with _daemon() as client:
        run = client.json("POST", f"/api/v1/runs/{on_daemon(client, run_id)}/rerun")
        _print_plan(run)
        print(run["run"])
        if watch:
            raise _exit_for(follow(client, run["run"]).value)


@app.command("open")
def open_browser(
    show: Annotated[bool, typer.Option("--print", help="Only print the link")] = False,
) -> None:
    """Print (and open) a one-time login link for the web page."""
    with _daemon() as client:
        health = client.json("GET", "/api/v1/health")
        link = client.json("POST", "/api/v1/login-links")["path"]
    url = health.get("url")
    if not url:
        raise _fail("ccctl: the daemon serves no TCP port (started with --no-tcp)", EXIT_INVALID)
    print(f"{url}{link}")
    if not show:
        import webbrowser

        webbrowser.open(f"{url}{link}")


tokens = _Typer(help="The daemon's token, which TCP clients and browser sessions need.",
                no_args_is_help=True)
app.add_typer(tokens, name="token")


@tokens.command("rotate")
def token_rotate() -> None:
    """A new token: clients holding the old one, every browser session and every unused login
    link stop working. Through the daemon if it runs (at once), else in the token's file."""
    from ccctl.client import Client
    from ccd.errors import ClientError

    try:
        with Client() as client:
            client.request("POST", "/api/v1/token/rotate")
    except ClientError as e:
        if e.status is not None:
            raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
        from ccd.auth import replace_token
        from ccd.settings import token_path

        replace_token()
        print(f"rotated the token in {token_path()}; no ccd answered, so it takes effect when "
              "ccd (re)starts")
        return
    print(f"rotated the token through ccd at {client.where}: clients with the old token and "
          "every browser session are logged out")


@app.command()
def ping() -> None:
    """Is the daemon running? Prints its address and counters."""
    with _daemon() as client:
        h = client.json("GET", "/api/v1/health")
        where = client.where
    print(f"ccd is running at {where} (pid {h['pid']}, up {h['uptime']:.0f} s, "
          f"{h['active_runs']} active runs, {h['event_subscribers']} event subscribers)")
    for problem in h.get("problems", []):
        print(f"problem: {problem}")


service = _Typer(help="Run ccd as a systemd user service.", no_args_is_help=True)
app.add_typer(service, name="service")


def unit_text() -> str:
    """systemd/ccd.service with ExecStart pointing at this installation's `ccd`."""
    from ccd.assets import asset_dir

    ccd = Path(sys.executable).parent / "ccd"
    template = (asset_dir("systemd") / "ccd.service").read_text()
    return template.replace("@CCD@", str(ccd))


@service.command("install")
def service_install(
    show: Annotated[bool, typer.Option("--print", help="Print the unit instead")] = False,
) -> None:
    """Write ~/.config/systemd/user/ccd.service for this installation."""
    from ccd.export import write_atomically
    from ccd.settings import config_dir

    text = unit_text()
    if show:
        print(text, end="")
        return
    path = config_dir().parent / "systemd" / "user" / "ccd.service"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)
    path.chmod(0o644)
    print(f"wrote {path}\nnow run:  systemctl --user daemon-reload && "
          "systemctl --user enable --now ccd")


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2))


def main() -> None:
    """Console-script entry point."""
    import gc

    try:
        app()
    finally:
        # What is alive now lives until the exit: the collector need not look at it again.
        # Python's last collection at exit otherwise walks every object of every module
        # imported (~25 ms of each `ccctl run` here); their memory goes with the process.
        gc.freeze()
