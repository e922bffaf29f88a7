"""`ccctl`: the command line of ccd.

`validate`, `run` and `graph` work without a daemon (the paper's "command line mode").
Exit codes: 0 every job done, 1 a job failed, 2 invalid input, 130 cancelled.
Heavy modules are imported inside the commands: start-up time is part of every command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="ccctl",
    help="Run and watch ccd workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 1, 2, 130

StateDir = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option("--state-dir", help="State directory [default: $CCD_STATE_DIR or "
                 "$XDG_STATE_HOME/ccd]", show_default=False),
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
                     "warnings": [str(w) for w in warnings]})
        return
    for w in warnings:
        sys.stderr.write(f"{w}\n")
    print(f"{file}: ok, {len(spec.jobs)} jobs, {len(spec.edges)} dependencies")


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the order; run nothing")]
    = False,
    new: Annotated[bool, typer.Option("--new", help="Start afresh instead of resuming an "
                                      "unfinished run of this file")] = False,
    max_jobs: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-jobs", min=1, help="Processes at once [default: CPUs x 4]",
        show_default=False)] = None,
    state_dir: StateDir = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Run a workflow here, in the foreground, with a live table (no daemon needed).

    Run again after an interruption to resume: finished jobs are not rerun, running jobs
    are re-attached, never restarted.
    """
    from ccd.errors import CcdError, SpecError

    if dry_run:
        _dry_run(file, json_out)
        return
    import asyncio

    from ccctl.live import Display
    from ccd import runs

    try:
        opened = runs.open_run(file, _state_dir(state_dir), new=new)
    except SpecError as e:
        raise _fail(str(e), EXIT_INVALID) from None
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    display = Display(opened, json_out=json_out)
    try:
        state = asyncio.run(display.drive(max_jobs))
    except CcdError as e:
        raise _fail(f"ccctl: {e}", EXIT_INVALID) from None
    except KeyboardInterrupt:
        display.left_running()
        raise typer.Exit(EXIT_CANCELLED) from None
    finally:
        opened.store.close()
    raise typer.Exit({"done": 0, "cancelled": EXIT_CANCELLED}.get(state.value, EXIT_FAILED))


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
    target: Annotated[str, typer.Argument(help="Workflow YAML file, or a run id")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="dot, svg or png")] = "dot",
    output: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--output", "-o", help="Write here instead of stdout")] = None,
    state_dir: StateDir = None,
) -> None:
    """The workflow as a graph: nodes coloured by state, with their labels."""
    import os
    import time

    from ccd import graph as graphs
    from ccd import runs
    from ccd.errors import CcdError, SpecError
    from ccd.labels import RunTimes
    from ccd.model import JobStatus
    from ccd.settings import variables
    from ccd.spec import load_spec
    from ccd.store import Store

    if fmt not in ("dot", "svg", "png"):
        raise _fail(f"ccctl: unknown format {fmt!r}; use dot, svg or png", EXIT_INVALID)
    try:
        if Path(target).is_file():
            spec, _ = load_spec(target)
            statuses = {n: JobStatus(n, host=j.host) for n, j in spec.jobs.items()}
            times = RunTimes()
        else:
            sd = _state_dir(state_dir)
            if not (sd / "ccd.db").exists():
                raise _fail(f"ccctl: {target!r} is neither a file nor a run in {sd}", EXIT_INVALID)
            store = Store(sd / "ccd.db")
            try:
                run = runs.resume(store, sd, target).run
            finally:
                store.close()
            spec, statuses = run.spec, run.jobs
            times = RunTimes(run.created, run.t0, run.t1)
        dot = graphs.to_dot(spec, statuses, times, time.time(), variables(), os.environ)
        data = dot.encode() if fmt == "dot" else graphs.render(dot, fmt)
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


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2))


def main() -> None:
    """Console-script entry point."""
    app()
