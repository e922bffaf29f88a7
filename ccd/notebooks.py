"""Notebook jobs: a `.ipynb` script runs through papermill, its `parameters:` injected.

papermill is an optional extra (`pip install 'ccd[notebooks]'`): the job's command first
checks that it is there and otherwise fails with that advice in the job's log (exit 127),
instead of the shell's bare "command not found". Locally without a venv, papermill runs
with the Python that runs ccd when it is installed there, as a `.py` script does.

Parameters go in as one JSON document (`-y`: JSON is YAML), so a value keeps the type the
workflow file gave it (`'1'` stays text, `1` an integer) and needs no quoting but the
shell's. `--log-output` makes papermill write each cell's output to stderr as it arrives,
at the start of a line, so `print("# progress=40")` in a cell reaches the job's log and
its progress while the notebook runs (measured: within milliseconds of the print).
The executed notebook is written into the run's working copy as `<job>-output.ipynb`
(`JobSpec.notebook_output`): named after the job, not the notebook, so a sweep's
instances of one notebook each keep their own; it is one of the job's results.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys

from ccd.model import JobSpec

MISSING = "ccd: papermill is not installed: pip install 'ccd[notebooks]'"


def installed_here() -> bool:
    """Is papermill importable by the Python that runs ccd?"""
    return importlib.util.find_spec("papermill") is not None


def command(job: JobSpec, notebook: str, output: str, here: bool) -> str:
    """The shell command that runs `notebook` into `output` (paths as the job sees them);
    `here`: with the Python that runs ccd, which has papermill."""
    args = ["--log-output", "--no-progress-bar", shlex.quote(notebook), shlex.quote(output)]
    if job.parameters:
        args += ["-y", shlex.quote(json.dumps(dict(job.parameters)))]
    if here:
        return " ".join([shlex.quote(sys.executable), "-m", "papermill", *args])
    check = (f"command -v papermill >/dev/null 2>&1 || "
             f"{{ printf '%s\\n' {shlex.quote(MISSING)} >&2; exit 127; }}")
    return f"{check}; papermill {' '.join(args)}"
