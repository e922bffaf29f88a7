"""A run's working copy and its results.

Every run executes in its own copy of the workflow's files, `runs/<id>/work/`, so two runs
never see each other's files, the stored workflow stays as it was uploaded, and what a job
writes stays with its run. The workflow's files are: for an upload, everything uploaded;
for a workflow file on disk, the file itself, the scripts it names and what its top-level
`files:` lists (the same set `ccctl submit` uploads); for a rerun, the earlier run's working
copy, so the jobs it keeps have their outputs where they left them.

A job's results are the files in the working copy that match its `outputs:` globs, and a
notebook job's executed notebook (`<job>-output.ipynb`, see `JobSpec.results`), found
when asked (a later job that deletes them deletes them). Serving one is path-safe: the
path must be relative, stay inside the copy once symlinks are resolved, and be a declared
output.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ccd.errors import NotFound, RunError, UploadError
from ccd.model import WorkflowSpec

MAX_RESULTS = 10_000  # files listed per run


def files_of(spec: WorkflowSpec) -> dict[str, Path]:
    """The workflow's files by their path relative to its directory: the YAML, its scripts
    (an absolute script path is used where it is, not copied) and its `files:` (globs; a
    directory means everything below it). Raises RunError for a script outside it."""
    base = spec.base_dir
    out = {spec.source.name: spec.source} if spec.source.is_file() else {}
    for job in spec.jobs.values():
        if job.script is None or PurePosixPath(job.script).is_absolute():
            continue
        if not _relative(job.script):
            raise RunError(f"{spec.source}: script {job.script!r} of job {job.name!r} is "
                           "outside the workflow's directory, which ccd copies for each run; "
                           "move it there or give its absolute path")
        out[PurePosixPath(job.script).as_posix()] = base / job.script
    for pattern in spec.files:
        for path in sorted(base.glob(pattern)):
            out.update(files_at(path, base))
    return out


def files_at(path: Path, root: Path) -> dict[str, Path]:
    """A file, or every file below a directory, by its path relative to `root`."""
    found = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {p.relative_to(root).as_posix(): p for p in found
            if p.is_file() and inside(p, root)}


def tree(root: Path) -> dict[str, Path]:
    """Every file below `root` (an upload's directory, an earlier working copy)."""
    return files_at(root, root)


def make(work: Path, files: dict[str, Path]) -> None:
    """Create the working copy `work` holding `files` (raises OSError; the caller removes
    a half-made copy)."""
    work.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=True)


@dataclass(frozen=True, slots=True)
class Result:
    """One output file of a job: its path in the working copy and its size."""

    job: str
    path: str
    size: int


def results(spec: WorkflowSpec, work: Path, job: str | None = None) -> list[Result]:
    """The files of the working copy that the jobs (or one job) declare as outputs."""
    out: list[Result] = []
    for name, spec_job in spec.jobs.items():
        if job is not None and name != job:
            continue
        found: dict[str, Path] = {}
        for pattern in spec_job.results:
            for path in sorted(work.glob(pattern)):
                found.update(files_at(path, work))
        for rel, path in found.items():
            out.append(Result(name, rel, path.stat().st_size))
            if len(out) >= MAX_RESULTS:
                return out
    return out


def result_file(spec: WorkflowSpec, work: Path, rel: str) -> Path:
    """The file `rel` of the working copy if a job declares it as an output. Raises
    UploadError for a path that could leave the copy, NotFound for anything else."""
    if not _relative(rel) or "\x00" in rel:
        raise UploadError(f"result path {rel!r} must be relative, without `..`", 422)
    path = work / rel
    declared = any(fnmatch.fnmatchcase(rel, pattern) or _under(rel, pattern)
                   for job in spec.jobs.values() for pattern in job.results)
    if not declared or not inside(path, work) or not path.is_file():
        raise NotFound(f"no result {rel!r}: not an existing output of this run's jobs")
    return path


def _relative(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts


def _under(rel: str, pattern: str) -> bool:
    """`pattern` names a directory that `rel` is in (outputs: [results/])."""
    return any(fnmatch.fnmatchcase(parent.as_posix(), pattern.rstrip("/"))
               for parent in PurePosixPath(rel).parents if parent.as_posix() != ".")


def inside(path: Path, root: Path) -> bool:
    """Does `path`, symlinks resolved, stay below `root`?"""
    try:
        return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
    except OSError:
        return False
