"""Workflow files -> WorkflowSpec, with every error reported as FILE:LINE:COL at once.

The format is cloudmesh-cc's (the paper, sections 5.1-5.5):

    workflow:
      nodes:
        fetch-data: {name: fetch-data, kind: local, script: fetch.sh, label: '{name}'}
      dependencies:
        - start,fetch-data,end      # a chain; parallel branches are several chains
    colors: {status: {done: '#CCFFCC'}}

plus optional extensions: per node `env`, `cwd`, `timeout`, `retries`, `trigger` (see
`ccd.rules`), `when` (a condition, see `ccd.conditions`), `outputs` (glob patterns of the
files the job makes, relative to the run's working copy) and a notebook's `parameters`
(papermill injects them; a sweep's parameters are added); a top-level
`hosts:` inventory (how to reach each host over SSH: hostname, port, user, identity,
known_hosts, workdir, max_sessions, poll; and max_jobs); a top-level `files:` list of paths or
globs beside the workflow file (data, modules) that belong to it and are copied with it; a
top-level `notify:` list of whom to tell when a run ends (see `ccd.notify`).
Fields cloudmesh-cc writes into saved workflows are accepted and ignored; any other unknown
field is a warning, not an error, so files written for cloudmesh-cc load unchanged.

Sweeps: a node with `matrix: {gpu: [a100, v100], run: [1, 2]}` (and `exclude:`, a list of
partial assignments) becomes one plain job per assignment, `train.gpu-a100.run-1`, with
`{gpu}` replaced in its text fields; a chain names all of a sweep's instances (`train`),
some (`train[gpu=a100]`) or pairs them (`train[gpu=*],report[gpu=*]`). Here the YAML is
read and checked; what the names, templates and links are is decided in `ccd.sweeps`,
whose docstring says why instances are named so. Expansion is bounded (10,000 instances a
node, checked before it is built; 30,000 in all; 300,000 links with sweeps).
`WorkflowSpec.sweeps` counts each node's instances; save_with_state writes the instances
as plain nodes (they each have a state), which load back as the same jobs.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import keyword
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from ccd import conditions, dag, labels, notebooks, notify, sweeps
from ccd.errors import Problem, SpecError
from ccd.model import (
    BATCH_FIELDS,
    BATCH_KINDS,
    KINDS,
    NOTIFIERS,
    RUNNABLE_KINDS,
    SAFE_NAME,
    HostSpec,
    JobSpec,
    NotifySpec,
    Param,
    RunState,
    Trigger,
    WorkflowSpec,
)
from ccd.yamltree import (
    MAX_BYTES,
    QUOTED,
    Mapping,
    Node,
    Scalar,
    Sequence,
    dismantle,
    kind_of,
    load,
    paused_gc,
)

_STRING_FIELDS = ("user", "host", "label", "script", "exec", "venv", "shape", "style", "cwd")
# Written by cloudmesh-cc itself (save/save_with_state); harmless to read back.
_CLOUDMESH_FIELDS = frozenset((
    "format", "label_format", "number", "directory", "filename", "instance", "parent",
    "pid", "created", "modified", "tstart", "tend", "workflow_name", "experiment",
))
_BATCH_OPTIONS = ("sbatch", "bsub")  # extra options, per batch system (BATCH_KINDS)
_NODE_FIELDS = frozenset(("name", "kind", "status", "progress", "fingerprint", "env", "timeout",
                          "retries",
                          "outputs", "parameters", "trigger", "when", "repeat", "matrix",
                          "exclude",
                          *_STRING_FIELDS, *BATCH_FIELDS, *_BATCH_OPTIONS))
# The fields of a sweep's node where `{param}` is replaced (label has its own templates).
_TEMPLATED = frozenset(("env", "outputs", *_STRING_FIELDS, *BATCH_FIELDS, *_BATCH_OPTIONS)
                       ) - {"label"}
_TOP_LEVEL = ("workflow", "colors", "hosts", "files", "notify")
MAX_SUGGESTIONS = 20  # "did you mean" hints per file
MAX_MESSAGE = 500  # characters of one problem's message


class _Checker:
    """Collects problems while walking the tree; one instance per file."""

    def __init__(self, filename: str, stored: bool = False) -> None:
        self.filename = filename
        self.stored = stored  # a run's spec as it was accepted: see load_spec
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.edge_positions: dict[tuple[str, str], Scalar] = {}  # where each edge was written
        # A YAML alias shares its node; what was read from a node once is not read again,
        # so validation stays linear in the file, however often an anchor is used.
        self.bodies: dict[int, tuple[dict[str, object], str | None]] = {}
        self.memo: dict[int, object] = {}  # env and path lists, by node
        self.suggestions = MAX_SUGGESTIONS  # "did you mean" costs a scan: only so many
        self.matrices: dict[int, sweeps.Matrix | None] = {}  # by node body, as `bodies`
        self.sweeps: dict[str, tuple[sweeps.Matrix, tuple[str, ...]]] = {}  # node -> instances
        self.broken: set[str] = set()  # sweeps that could not expand: already reported
        self.links = 0  # dependencies made by links with sweeps, up to sweeps.MAX_LINKS
        self.on_disk: set[tuple[int, str | None, str | None]] = set()  # (body, script, venv)
        self.jobs_read: list[tuple[Scalar, int, str]] = []  # `when:` job names: where, name

    def did_you_mean(self, word: str, choices: Iterable[str]) -> str:
        """' (did you mean 'x'?)' for a close choice, while the budget lasts. Among many
        choices only those of about the same length and first letter are compared."""
        if self.suggestions <= 0:
            return ""
        self.suggestions -= 1
        pool = list(choices)
        if len(pool) > 1000:
            pool = [c for c in pool if c[:1] == word[:1] and abs(len(c) - len(word)) <= 2]
        close = difflib.get_close_matches(word, pool[:1000], n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def error(self, node: Node, message: str, offset: int = 0) -> None:
        self.problems.append(Problem(self.filename, node.line, node.col + offset,
                                     _clipped(message)))

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(Problem(self.filename, node.line, node.col,
                                     f"warning: {_clipped(message)}"))

    def string(self, node: Node, what: str) -> str | None:
        """The text of a string field, None if null. A plain number or boolean is an error,
        not its text: YAML itself, and so every other tool reading the file, sees `exec: 42`
        as the integer 42."""
        if not isinstance(node, Scalar):
            self.error(node, f"{what} must be a string, not {kind_of(node)}")
            return None
        kind = node.core_type
        if kind == "string" or (self.stored and kind != "null"):
            return node.text
        if kind != "null":
            self.error(node, f"{what} must be a string, not {_described(node)} "
                             f"(quote it if you mean the text: '{node.text}')")
        return None

    def mapping(self, node: Node | None, what: str) -> Mapping | None:
        if node is None or (isinstance(node, Scalar) and node.is_null):
            return None
        if isinstance(node, Mapping):
            return node
        self.error(node, f"{what} must be a mapping, not {kind_of(node)}")
        return None

    def unique_pairs(self, mapping: Mapping, what: str) -> list[tuple[Scalar, Node]]:
        """The pairs with scalar keys; duplicates and non-scalar keys are reported."""
        seen: dict[str, Scalar] = {}
        out: list[tuple[Scalar, Node]] = []
        for key, value in mapping.pairs:
            if not isinstance(key, Scalar):
                self.error(key, f"a key in {what} must be a string, not {kind_of(key)}")
                continue
            if key.text in seen:
                first = seen[key.text]
                self.error(key, f"duplicate {what} {key.text!r} (first at line {first.line})")
                continue
            seen[key.text] = key
            out.append((key, value))
        return out

    def number(self, node: Node, what: str, parse: Callable[[Scalar], float | int | None],
               minimum: float, maximum: float | None = None) -> float | int | None:
        value = parse(node) if isinstance(node, Scalar) else None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            kind = "an integer" if parse is Scalar.as_int else "a number"
            bounds = f" from {minimum:g} to {maximum:g}" if maximum is not None else \
                f" >= {minimum:g}"
            self.error(node, f"{what} must be {kind}{bounds}, not {kind_of(node)}")
            return None
        return value


def load_spec(path: str | Path, data: bytes | None = None, display: str | None = None,
              stored: bool = False) -> tuple[WorkflowSpec, list[Problem]]:
    """Read and validate a workflow file; returns the spec and its warnings.

    Raises SpecError listing every problem. `data` overrides the file's content; `display`
    is the file's name in messages (an upload's own name rather than where it was put).
    `stored`: the text of a run as it was accepted when submitted, perhaps by an older ccd;
    read it as then, without the checks that look at the disk (its scripts are in the
    run's copy) or that this version made stricter (typed fields, runnable kinds), so that
    an old run can still be shown and resumed, and fail there if it cannot run.
    """
    source = Path(path).absolute()
    filename = display or str(path)
    if data is None:
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_BYTES:
                    raise SpecError([Problem(filename, 1, 1, f"file is {size:,} bytes; "
                                                             f"the limit is {MAX_BYTES:,}")])
                data = f.read(MAX_BYTES + 1)
        except OSError as e:
            raise SpecError([Problem(filename, 1, 1, f"cannot read: {e.strerror}")]) from None
    with paused_gc():
        root = load(data, filename)
        c = _Checker(filename, stored)
        try:
            spec = _workflow(c, root, source)
        finally:
            c.bodies.clear()
            c.memo.clear()
            dismantle(root)
    if c.problems or spec is None:
        if not c.problems:
            c.problems.append(Problem(filename, 1, 1, "empty file: expected `workflow:`"))
        raise SpecError(c.problems + c.warnings)  # the warnings too: they may say why
    return spec, c.warnings


def _workflow(c: _Checker, root: Node | None, source: Path) -> WorkflowSpec | None:
    top = c.mapping(root, "the file")
    if top is None:
        return None
    for key, _ in c.unique_pairs(top, "top-level key"):
        if key.text not in _TOP_LEVEL:
            c.warn(key, f"unknown top-level key {key.text!r} is ignored"
                   f"{c.did_you_mean(key.text, _TOP_LEVEL)}")
    wf = c.mapping(top.get("workflow"), "workflow")
    if wf is None:
        if top.get("workflow") is None:
            c.error(top, "missing `workflow:` (with `nodes:` and `dependencies:`)")
        return None
    for key, _ in c.unique_pairs(wf, "key of workflow"):
        if key.text not in ("nodes", "dependencies"):
            c.warn(key, f"unknown key {key.text!r} in workflow is ignored"
                   f"{c.did_you_mean(key.text, ('nodes', 'dependencies'))}")
    hosts = _hosts(c, top.get("hosts"))
    jobs: dict[str, JobSpec] = {}
    nodes = c.mapping(wf.get("nodes"), "workflow.nodes")
    if nodes is None and wf.get("nodes") is None:
        c.error(wf, "missing `nodes:` in workflow")
    base = source.parent
    instances = 0
    for key, value in c.unique_pairs(nodes, "node") if nodes else ():
        made = _job(c, key, value, base)
        if key.text in c.sweeps:
            if instances + len(made) > sweeps.MAX_SWEEP_JOBS:
                c.error(key, f"node {key.text!r} brings the instances of sweeps to "
                             f"{instances + len(made):,}; the limit is "
                             f"{sweeps.MAX_SWEEP_JOBS:,}")
                del c.sweeps[key.text]
                c.broken.add(key.text)
                continue
            instances += len(made)
        for job in made:
            if job.name in jobs and key.text in c.sweeps:
                c.error(key, f"instance {job.name!r} of node {key.text!r} has the name of "
                             "another job")
                break
            if job.name in jobs:
                c.error(key, f"node {job.name!r} has the name of an instance of a sweep")
                break
            jobs[job.name] = job
    edges = _dependencies(c, wf.get("dependencies"), jobs)
    for node, at, name in c.jobs_read:
        if name not in jobs:
            c.error(node, f"when: no job {name!r}{c.did_you_mean(name, jobs)}", at)
    _cycles(c, jobs, edges)
    return WorkflowSpec(
        name=source.name.split(".")[0] or "workflow",
        source=source,
        jobs=jobs,
        edges=tuple(edges),
        colors=_colors(c, top.get("colors")),
        hosts=hosts,
        files=_relative_paths(c, top.get("files"), "files", "the workflow file's directory"),
        sweeps={node: len(names) for node, (_, names) in c.sweeps.items()},
        notify=_notify(c, top.get("notify")),
    )


def _job(c: _Checker, key: Scalar, node: Node, base: Path) -> list[JobSpec]:
    """The node's job, or the jobs of its instances if it has a matrix."""
    name = key.text
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        c.error(key, f"node name {name!r} is not safe as a file name: use letters, digits "
                     "and . _ - + (at most 128, not starting with . or -)")
    if isinstance(node, Scalar) and node.is_null:
        return [JobSpec(name=name)]
    body = c.mapping(node, f"node {name!r}")
    if body is None:
        return []
    read = c.bodies.get(id(body))
    if read is None:  # the first node with this body (others share it through an alias)
        read = c.bodies[id(body)] = _fields(c, body, name)
        fields, given = read
        matrix = _matrix(c, body)
        if matrix is not None and not _placeholders(c, body, matrix.params):
            matrix = None
        c.matrices[id(body)] = matrix
        _check_job(c, JobSpec(name=name, **fields), body, base,  # type: ignore[arg-type]
                   matrix.params if matrix else ())
    fields, given = read
    if given is not None and given != name:
        c.error(body.get("name") or body, f"name {given!r} differs from its key {name!r}")
    matrix = c.matrices[id(body)]
    if matrix is None:
        if body.get("matrix") is not None:
            c.broken.add(name)
        return [JobSpec(name=name, **fields)]  # type: ignore[arg-type]
    return _instances(c, key, fields, matrix, body, base)


def _fields(c: _Checker, body: Mapping, name: str) -> tuple[dict[str, object], str | None]:
    """A node's fields but its name, and the `name:` it gives itself (None if none)."""
    fields: dict[str, object] = {}
    batch: list[tuple[str, str]] = []
    options: dict[str, tuple[Node, tuple[str, ...]]] = {}  # sbatch/bsub: (key, options)
    given = None
    for k, v in c.unique_pairs(body, f"field of node {name!r}"):
        field = k.text
        if field == "name":
            given = c.string(v, "name")
        elif field in _STRING_FIELDS:
            fields[field] = c.string(v, field)
        elif field == "kind":
            kind = c.string(v, "kind")
            if kind is not None and kind not in KINDS:
                c.error(v, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            elif kind is not None and kind not in RUNNABLE_KINDS and not c.stored:
                c.error(v, f"kind {kind!r} cannot run in this version of ccd "
                           f"(it runs: {', '.join(RUNNABLE_KINDS)})")
            fields["kind"] = kind or "local"
        elif field == "status":
            fields["status"] = v.text if isinstance(v, Scalar) else c.string(v, "status")
        elif field == "fingerprint":
            fields["fingerprint"] = c.string(v, "fingerprint")
        elif field == "progress":
            fields["progress"] = c.number(v, "progress", Scalar.as_int, 0, 100) or 0
        elif field == "timeout":
            fields["timeout"] = c.number(v, "timeout (seconds)", Scalar.as_float, 0.001)
        elif field == "retries":
            fields["retries"] = c.number(v, "retries", Scalar.as_int, 0, 100) or 0
        elif field == "trigger":
            trigger = c.string(v, "trigger")
            triggers = [t.value for t in Trigger]
            if trigger is not None and trigger not in triggers:
                c.error(v, f"unknown trigger {trigger!r}; expected one of {', '.join(triggers)}"
                           f"{c.did_you_mean(trigger, triggers)}")
            elif trigger is not None:
                fields["trigger"] = Trigger(trigger)
        elif field == "when":
            fields["when"] = c.string(v, "when")
        elif field == "repeat":
            fields.update(_repeat(c, v))
        elif field == "env":
            fields["env"] = _env(c, v)
        elif field == "outputs":
            fields["outputs"] = _relative_paths(c, v, "outputs", "the run's working copy")
        elif field == "parameters":
            fields["parameters"] = _parameters(c, v)
        elif field in BATCH_FIELDS:
            value = _directive(c, v, field)
            if value is not None:
                batch.append((field, value))
        elif field in _BATCH_OPTIONS:
            options[field] = (k, _options(c, v, field))
        elif field not in _CLOUDMESH_FIELDS and field not in ("matrix", "exclude"):
            c.warn(k, f"unknown field {field!r} of node {name!r} is ignored"
                      f"{c.did_you_mean(field, _NODE_FIELDS)}")
    if fields.get("host") is None:
        fields.pop("host", None)
    if batch:
        fields["batch"] = tuple(batch)
    kind = str(fields.get("kind") or "local")
    own = dict(zip(BATCH_KINDS, _BATCH_OPTIONS, strict=True)).get(kind)
    for field, (key, given_options) in options.items():
        if own is None or field == own:  # not a batch job: `_check_job` says so
            fields["batch_options"] = given_options
        else:  # sbatch's options would make bsub refuse the job, and the reverse
            other = dict(zip(_BATCH_OPTIONS, BATCH_KINDS, strict=True))[field]
            c.warn(key, f"{field} is for kind {other}; node {name!r} is kind {kind!r}: "
                        f"ignored (its options are `{own}:`)")
    return fields, given


def _directive(c: _Checker, node: Node, field: str) -> str | None:
    """A batch directive's value: text or a number (`cpus: 8`), one line, not empty."""
    text = node.text if isinstance(node, Scalar) and node.core_type in ("integer", "float") \
        else c.string(node, field)
    if text is not None and (not text.strip() or any(ord(ch) < 32 for ch in text)):
        c.error(node, f"{field} must be one line of text, not empty")
        return None
    return text


def _options(c: _Checker, node: Node, field: str) -> tuple[str, ...]:
    """Extra command-line options for the batch system, one list item per argument."""
    if not isinstance(node, Sequence):
        c.error(node, f"{field} must be a list of options like `- --exclusive`, "
                      f"not {_described(node)}")
        return ()
    out = []
    for item in node.items:
        text = c.string(item, f"{field}: an option")
        if text is not None and any(ord(ch) < 32 for ch in text):
            c.error(item, f"{field}: an option must be one line")
        elif text:
            out.append(text)
    return tuple(out)


def _matrix(c: _Checker, body: Mapping) -> sweeps.Matrix | None:
    """The node's `matrix:` and `exclude:` read and checked; None if it has no matrix."""
    node, exclude = body.get("matrix"), body.get("exclude")
    if node is None:
        if exclude is not None:
            c.error(exclude, "exclude: without a matrix: in the same node")
        return None
    if not isinstance(node, Mapping) or not node.pairs:
        c.error(node, "matrix must be a mapping of parameters to lists of values like "
                      f"`{{gpu: [a100, v100], run: [1, 2]}}`, not {_described(node)}")
        return None
    params: list[str] = []
    values: list[tuple[str, ...]] = []
    upper: dict[str, str] = {}
    ok = True
    for k, v in c.unique_pairs(node, "matrix parameter"):
        param = k.text
        if not sweeps.PARAM.fullmatch(param):
            c.error(k, f"matrix parameter {param!r} must be a name of letters, digits and _, "
                       "not starting with a digit")
            ok = False
        elif param in labels.RESERVED:
            c.error(k, f"matrix parameter {param!r} is a field of labels: name it otherwise")
            ok = False
        elif param.upper() in upper:
            c.error(k, f"matrix parameters {upper[param.upper()]!r} and {param!r} would both "
                       f"be {sweeps.env_name(param)} in the environment")
            ok = False
        upper.setdefault(param.upper(), param)
        read = _values(c, v, param)
        ok = ok and read is not None
        params.append(param)
        values.append(read or ())
    if not ok:
        return None
    total = sweeps.size([len(v) for v in values])
    if total > sweeps.MAX_INSTANCES:
        c.error(node, f"matrix makes more than {sweeps.MAX_INSTANCES:,} instances")
        return None
    drops = _excludes(c, exclude, params, values)
    if drops is None:
        return None
    rows = sweeps.assignments(values, drops)
    if not rows:
        c.error(exclude or node, "exclude: leaves no instance of the matrix")
        return None
    return sweeps.Matrix(tuple(params), tuple(values), rows)


def _values(c: _Checker, node: Node, param: str) -> tuple[str, ...] | None:
    """A parameter's values as written: strings safe in a job name, or numbers."""
    if not isinstance(node, Sequence) or not node.items:
        c.error(node, f"matrix parameter {param!r} needs a list of values like `[a, b]`, "
                      f"not {_described(node)}")
        return None
    out: dict[str, Scalar] = {}
    ok = True
    for item in node.items:
        kind = item.core_type if isinstance(item, Scalar) else None
        if not isinstance(item, Scalar) or kind not in ("string", "integer", "float"):
            c.error(item, f"a value of {param!r} must be a string or a number, "
                          f"not {_described(item)}")
            ok = False
        elif kind == "string" and not SAFE_NAME.fullmatch(item.text):
            c.error(item, f"value {item.text[:QUOTED]!r} of {param!r} is not safe in a job "
                          "name: use letters, digits and . _ - + (at most 128, not starting "
                          "with . or -)")
            ok = False
        elif len(item.text) > 128:
            c.error(item, f"value of {param!r} is longer than 128 characters")
            ok = False
        elif item.text in out:
            c.error(item, f"duplicate value {item.text!r} of {param!r} "
                          f"(first at line {out[item.text].line})")
            ok = False
        else:
            out[item.text] = item
    return tuple(out) if ok else None


def _excludes(c: _Checker, node: Node | None, params: list[str],
              values: list[tuple[str, ...]]) -> list[dict[int, str]] | None:
    """`exclude:`: partial assignments (parameter index -> value), or None if wrong."""
    if node is None or (isinstance(node, Scalar) and node.is_null):
        return []
    if not isinstance(node, Sequence):
        c.error(node, "exclude must be a list of partial assignments like "
                      f"`- {{{params[0]}: {values[0][0]}}}`, not {_described(node)}")
        return None
    out: list[dict[int, str]] = []
    ok = True
    for item in node.items:
        if not isinstance(item, Mapping) or not item.pairs:
            c.error(item, "an entry of exclude must be a mapping of parameters to values, "
                          f"not {_described(item)}")
            ok = False
            continue
        drop: dict[int, str] = {}
        for k, v in c.unique_pairs(item, "parameter of an exclude entry"):
            if k.text not in params:
                c.error(k, f"exclude: unknown parameter {k.text!r}; the matrix has: "
                           f"{', '.join(params)}{c.did_you_mean(k.text, params)}")
                ok = False
                continue
            i = params.index(k.text)
            if not isinstance(v, Scalar) or v.text not in values[i]:
                given = v.text if isinstance(v, Scalar) else kind_of(v)
                c.error(v, f"exclude: {k.text}={given} is not in the matrix "
                           f"(values of {k.text}: {sweeps.listed(values[i])})")
                ok = False
                continue
            drop[i] = v.text
        out.append(drop)
    return out if ok else None


def _placeholders(c: _Checker, body: Mapping, params: tuple[str, ...]) -> bool:
    """Report every `{name}` that is not a parameter in the templated fields; True if none."""
    ok = True
    for k, v in body.pairs:
        field = k.text if isinstance(k, Scalar) else ""
        if field not in _TEMPLATED:
            continue
        items = [v] if isinstance(v, Scalar) else v.items if isinstance(v, Sequence) else \
            [value for _, value in v.pairs]
        for item in items:
            if not isinstance(item, Scalar):
                continue
            quote = 1 if item.quoted else 0
            for offset, name in sweeps.unknown(item.text, params):
                c.error(item, f"{field}: unknown parameter '{{{name}}}'; the parameters are: "
                              f"{', '.join(params)}{c.did_you_mean(name, params)}",
                        quote + offset)
                ok = False
    return ok


def _instances(c: _Checker, key: Scalar, fields: dict[str, object], matrix: sweeps.Matrix,
               body: Mapping, base: Path) -> list[JobSpec]:
    """The jobs of a sweep's node: one per assignment, its values in the fields."""
    node = key.text
    names = matrix.names(node)
    longest = max(names, key=len)
    if len(longest) > 128:
        c.error(key, f"the instances of node {node!r} have names too long to be file names: "
                     f"{longest[:QUOTED]!r}… has {len(longest)} characters, at most 128: "
                     "shorten the node's name, its parameters or their values")
        c.broken.add(node)
        return []
    params = matrix.params

    def split(text: str) -> sweeps.Template:
        return sweeps.template(text, params)

    texts = {f: split(v) for f, v in fields.items() if f in _STRING_FIELDS and f != "label"
             and isinstance(v, str)}
    env = [(k, split(v)) for k, v in fields.get("env", ())]  # type: ignore[attr-defined]
    outputs = [split(v) for v in fields.get("outputs", ())]  # type: ignore[attr-defined]
    batch = [(k, split(v)) for k, v in fields.get("batch", ())]  # type: ignore[attr-defined]
    options = [split(v) for v in fields.get("batch_options", ())]  # type: ignore[attr-defined]
    label = fields.get("label")
    own_env = {k for k, _ in env}
    param_env = [(i, sweeps.env_name(p)) for i, p in enumerate(params)
                 if sweeps.env_name(p) not in own_env]
    jobs = []
    for name, row in zip(names, matrix.rows, strict=True):
        filled = {
            **fields,
            **{f: t.fill(row) for f, t in texts.items()},
            "label": labels.substitute(label, dict(zip(params, row, strict=True)))
            if isinstance(label, str) else matrix.readable(node, row),
            "env": (*((e, row[i]) for i, e in param_env), *((k, t.fill(row)) for k, t in env)),
            "outputs": tuple(t.fill(row) for t in outputs),
            "batch": tuple((k, t.fill(row)) for k, t in batch),
            "batch_options": tuple(t.fill(row) for t in options),
            "params": tuple(zip(params, row, strict=True)),
        }
        job = JobSpec(name=name, **filled)  # type: ignore[arg-type]
        if job.notebook_output is not None:  # a notebook gets the sweep's parameters too
            given = dict(job.parameters)
            job = dataclasses.replace(job, parameters=(
                *((p, _typed(Scalar(v, False, 0, 0))) for p, v in zip(params, row, strict=True)
                  if p not in given), *job.parameters))
        if not c.stored and (id(body), job.script, job.venv) not in c.on_disk:
            c.on_disk.add((id(body), job.script, job.venv))  # once, whatever the aliases
            _check_on_disk(c, job, body, base)
        jobs.append(job)
    c.sweeps[node] = (matrix, names)
    return jobs


def _check_job(c: _Checker, job: JobSpec, body: Mapping, base: Path,
               params: tuple[str, ...] = ()) -> None:
    """Checks of a node as written; `params`: its matrix's, if it has one."""
    if (job.batch or job.batch_options) and job.kind not in BATCH_KINDS:
        field = job.batch[0][0] if job.batch else \
            "sbatch" if body.get("sbatch") is not None else "bsub"
        c.warn(body.get(field) or body, f"{field} is for batch jobs (kind: "
               f"{' or '.join(BATCH_KINDS)}); node {job.name!r} is kind {job.kind!r}: ignored")
    if job.script is not None and job.exec is not None:
        c.warn(body.get("exec") or body, f"node {job.name!r} has both script and exec; "
               "exec is ignored (as cloudmesh-cc does)")
    if job.parameters and job.notebook_output is None:
        c.warn(body.get("parameters") or body, f"parameters are for notebooks (a .ipynb "
               f"script); node {job.name!r} has none: ignored")
    # Only a local job runs here; another host may well have papermill.
    if job.notebook_output is not None and job.kind == "local" and job.venv is None \
            and not c.stored and not notebooks.installed_here() and not shutil.which("papermill"):
        c.warn(body.get("script") or body, f"node {job.name!r} is a notebook, and "
               f"{notebooks.MISSING.removeprefix('ccd: ')}")
    if not c.stored and not params:  # a stored run's scripts are in its own copy
        _check_on_disk(c, job, body, base)
    if job.when is not None:
        _check_when(c, body.get("when") or body, job.when, params)
    repeat = body.get("repeat")
    if job.repeat_until is not None and isinstance(repeat, Mapping):
        _check_when(c, repeat.get("until") or repeat, job.repeat_until, params, "repeat.until")
        if job.retries:
            c.error(body.get("retries") or body, f"node {job.name!r} has both retries and "
                    "repeat: each run of a repeated job is one attempt; give one of them")
    if job.label is not None:
        label_node = body.get("label") or body
        quote = 1 if isinstance(label_node, Scalar) and label_node.quoted else 0
        for offset, message in labels.check(job.label, params):
            # The column is exact for one-line labels, the usual case.
            c.error(label_node, f"label: {message}", quote + offset)


def _check_when(c: _Checker, node: Node, text: str, params: tuple[str, ...],
                field: str = "when") -> None:
    """The condition parses and reads only the node's parameters (`repeat.until` also the
    values the job itself publishes); the jobs it names are checked once every job is
    known."""
    quote = 1 if isinstance(node, Scalar) and node.quoted else 0
    try:
        expr = conditions.parse(text)
    except conditions.ConditionError as e:
        c.error(node, f"{field}: {e.message}", quote + e.offset)
        return
    for ref in conditions.references(expr):
        if isinstance(ref, conditions.JobRef):
            if isinstance(node, Scalar):
                c.jobs_read.append((node, quote + ref.offset, ref.job))
        elif field == "repeat.until":
            continue  # a value the job publishes, known only when it has run
        elif ref.name not in params:
            known = f"the parameters are: {', '.join(params)}" if params else \
                "the node has no matrix"
            c.error(node, f"when: unknown parameter {ref.name!r}; {known}"
                          f"{c.did_you_mean(ref.name, params)}", quote + ref.offset)


def _repeat(c: _Checker, node: Node) -> dict[str, object]:
    """`repeat: {until: CONDITION, max: N}`: both given, N from 2 to 1,000."""
    body = c.mapping(node, "repeat")
    if body is None:
        return {}
    fields: dict[str, object] = {}
    for k, v in c.unique_pairs(body, "field of repeat"):
        if k.text == "until":
            fields["repeat_until"] = c.string(v, "repeat.until")
        elif k.text == "max":
            fields["repeat_max"] = c.number(v, "repeat.max", Scalar.as_int, 2, 1000) or 0
        else:
            c.error(k, f"unknown field {k.text!r} of repeat; it has until: and max:")
    for needed, key in (("repeat_until", "until"), ("repeat_max", "max")):
        if needed not in fields:
            c.error(body, f"repeat needs {key}: (repeat: {{until: CONDITION, max: N}}; "
                          "a job never repeats without a bound)")
    return fields if "repeat_until" in fields and fields.get("repeat_max") else {}


def _check_on_disk(c: _Checker, job: JobSpec, body: Mapping, base: Path) -> None:
    """The job's script is in the workflow's directory (each run gets a copy) and exists;
    its virtualenv exists."""
    if job.script is not None:
        at = body.get("script") or body
        script = base / job.script
        if ".." in Path(job.script).parts and not Path(job.script).is_absolute():
            c.error(at, f"script {job.script!r} leaves the workflow's directory, which ccd "
                        "copies for each run: move it there, or give its absolute path")
        elif Path(job.script).is_absolute() and job.kind != "local":
            c.warn(at, f"script {job.script} is not copied to host {job.host!r}: it runs from "
                       "that path there")
        elif (missing := _not_a_file(script)) is not None:
            c.error(at, f"script {missing}: {script}")
        elif Path(job.script).is_absolute():
            c.warn(at, f"script {job.script} is outside the workflow's directory: it runs "
                       "from there, as it is when the job starts, not from the run's copy")
    if job.venv is not None and job.kind == "local":
        venv = base / Path(job.venv).expanduser()
        if _not_a_file(venv / "bin" / "activate") is not None:
            c.error(body.get("venv") or body, f"venv {venv} has no bin/activate")


def _not_a_file(path: Path) -> str | None:
    """Why `path` is not a file to use (None if it is): a path too long to look up is not
    a crash, it is missing."""
    try:
        return None if path.is_file() else "file not found"
    except (OSError, ValueError) as e:
        return f"path cannot be used ({e.strerror if isinstance(e, OSError) else e})"


def _env(c: _Checker, node: Node) -> tuple[tuple[str, str], ...]:
    if id(node) not in c.memo:
        c.memo[id(node)] = _read_env(c, node)
    return c.memo[id(node)]  # type: ignore[return-value]


def _read_env(c: _Checker, node: Node) -> tuple[tuple[str, str], ...]:
    env = c.mapping(node, "env")
    out: list[tuple[str, str]] = []
    for k, v in c.unique_pairs(env, "env variable") if env else ():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k.text):
            c.error(k, f"env variable name {k.text!r} is not a valid shell name")
        value = c.string(v, f"env.{k.text}")
        out.append((k.text, value or ""))
    return tuple(out)


def _parameters(c: _Checker, node: Node) -> tuple[tuple[str, Param], ...]:
    if id(node) not in c.memo:
        c.memo[id(node)] = _read_parameters(c, node)
    return c.memo[id(node)]  # type: ignore[return-value]


def _read_parameters(c: _Checker, node: Node) -> tuple[tuple[str, Param], ...]:
    """A notebook's parameters: Python names, each a scalar typed as YAML reads it."""
    given = c.mapping(node, "parameters")
    out: list[tuple[str, Param]] = []
    for k, v in c.unique_pairs(given, "parameter") if given else ():
        if not k.text.isidentifier() or keyword.iskeyword(k.text):
            c.error(k, f"parameter name {k.text!r} is not a Python name (papermill assigns "
                       "it in the notebook)")
        if not isinstance(v, Scalar):
            c.error(v, f"parameters.{k.text} must be text, a number, true/false or null, "
                       f"not {kind_of(v)}")
        elif v.core_type in ("integer", "float") and v.as_float() is None:
            c.error(v, f"parameters.{k.text} must be a finite number, not {v.text}")
        else:
            out.append((k.text, _typed(v)))
    return tuple(out)


def _typed(v: Scalar) -> Param:
    """The value of a scalar as YAML's core schema reads it (a number too big: its text)."""
    kind = v.core_type
    if kind == "null":
        return None
    if kind == "boolean":
        return v.text.lower() == "true"
    number = v.as_int() if kind == "integer" else v.as_float() if kind == "float" else None
    if number is not None:
        return number
    return v.text


def _relative_paths(c: _Checker, node: Node | None, field: str, base: str
                    ) -> tuple[str, ...]:
    """A list of paths or glob patterns inside `base`: relative, and never climbing out."""
    if node is None or (isinstance(node, Scalar) and node.is_null):
        return ()
    if id(node) not in c.memo:
        c.memo[id(node)] = _read_paths(c, node, field, base)
    return c.memo[id(node)]  # type: ignore[return-value]


def _read_paths(c: _Checker, node: Node, field: str, base: str) -> tuple[str, ...]:
    if not isinstance(node, Sequence):
        c.error(node, f"{field} must be a list of relative paths or glob patterns like "
                      f"`- results/*.csv`, not {_described(node)}")
        return ()
    out: list[str] = []
    for item in node.items:
        if isinstance(item, Scalar) and (item.is_null or not item.text):
            c.error(item, f"{field}: an entry cannot be empty")
            continue
        path = c.string(item, f"{field}: an entry")
        if path is None:
            continue
        if path.startswith(("/", "~")):
            c.error(item, f"{field}: {path!r} is an absolute path; write it relative to {base}")
        elif ".." in path.split("/"):
            c.error(item, f"{field}: {path!r} leaves {base} ('..' is not allowed)")
        else:
            out.append(path)
    return tuple(out)


def _dependencies(c: _Checker, node: Node | None, jobs: dict[str, JobSpec]
                  ) -> list[tuple[str, str]]:
    """Chains "a,b,c" -> edges a->b, b->c; or cloudmesh-cc's saved {edge: {source, destination}}."""
    edges = c.edge_positions
    if node is None or (isinstance(node, Mapping) and not node.pairs):
        return []
    chains: list[Node] = []
    if isinstance(node, Scalar):
        if not node.is_null and not c.stored:
            c.error(node, f"dependencies must be a list of chains like `- a,b,c`, "
                          f"not {_described(node)}")
        elif not node.is_null:
            chains = [node]  # ccd 0.1 read one string as one chain
    elif isinstance(node, Mapping):
        for _, edge in node.pairs:
            e = c.mapping(edge, "a saved dependency")
            src, dst = (e.get("source"), e.get("destination")) if e else (None, None)
            if isinstance(src, Scalar) and isinstance(dst, Scalar):
                chains.append(Scalar(f"{src.text},{dst.text}", False, src.line, src.col))
            elif e is not None:
                c.error(e, "a saved dependency needs `source:` and `destination:`")
    else:
        chains = node.items
    seen: set[int] = set()
    for chain in chains:
        if id(chain) in seen:
            continue  # an alias of a chain already read adds nothing
        seen.add(id(chain))
        if not isinstance(chain, Scalar) or chain.is_null:
            c.error(chain, f"a dependency must be a chain like \"a,b,c\", not {kind_of(chain)}")
            continue
        previous: str | sweeps.Selection | None = None  # a job's name, or a selection
        quote = 1 if chain.quoted else 0
        for offset, part in sweeps.split_chain(chain.text):
            at = quote + offset + (len(part) - len(part.lstrip()))
            name = part.strip()
            current = name if name in jobs else _selection(c, chain, name, at, jobs)
            if isinstance(current, str) and isinstance(previous, str):
                edges.setdefault((previous, current), chain)
            elif current is not None and previous is not None:
                _link(c, chain, at, _selected(previous), _selected(current))
            previous = current  # None for a broken link: do not connect across it
    return list(edges)


def _selected(selection: str | sweeps.Selection) -> sweeps.Selection:
    return sweeps.Selection((selection,)) if isinstance(selection, str) else selection


def _selection(c: _Checker, chain: Scalar, part: str, at: int, jobs: dict[str, JobSpec]
               ) -> sweeps.Selection | None:
    """The instances of a sweep's node that a part of a chain names (the caller reads the
    names of jobs); None, with the problem reported, if it names none."""
    name, bracket, inside = part.partition("[")
    if not part:
        c.error(chain, f"empty name in dependency chain {chain.text!r}", at)
        return None
    if name in c.broken:
        return None
    sweep = c.sweeps.get(name)
    if sweep is None:
        if name not in jobs:
            c.error(chain, f"unknown node {name!r} in dependency"
                           f"{c.did_you_mean(name, itertools.chain(jobs, c.sweeps))}", at)
        else:
            c.error(chain, f"node {name!r} has no matrix to select instances from", at)
        return None
    if bracket and not inside.endswith("]"):
        c.error(chain, f"'[' is not closed: write {name}[param=value,...]", at + len(name))
        return None
    selection, problems = sweeps.select(name, *sweep, inside[:-1] if bracket else None)
    for offset, message in problems:
        c.error(chain, message, at + len(name) + 1 + offset)
    return selection


def _link(c: _Checker, chain: Scalar, at: int, a: sweeps.Selection, b: sweeps.Selection
          ) -> None:
    """The dependencies from a's jobs to b's, written in `chain`; `at` is b's place there."""
    if len(a.names) > 1 or len(b.names) > 1 or a.params or b.params:
        n = sweeps.count(a, b)
        if n == 0:
            c.error(chain, "no instances at the two ends of this link have the same values "
                           f"of {', '.join(sorted(a.matched & b.matched))}", at)
            return
        if c.links + n > sweeps.MAX_LINKS:
            c.error(chain, f"this link makes {n:,} dependencies, past the limit of "
                           f"{sweeps.MAX_LINKS:,} for links with sweeps; match instances "
                           "with [param=*] at both ends", at)
            return
        c.links += n
    for edge in sweeps.links(a, b):
        c.edge_positions.setdefault(edge, chain)


def _cycles(c: _Checker, jobs: dict[str, JobSpec], edges: list[tuple[str, str]]) -> None:
    """Report every cycle at the chain that closes it: the one that wrote its last edge."""
    cycles = dag.find_cycles(list(jobs), edges)
    written = {edge: i for i, edge in enumerate(edges)} if cycles else {}  # file order
    for cycle in cycles:
        ring = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        order = [written[edge] for edge in ring]
        last = order.index(max(order))
        path = cycle[last + 1:] + cycle[:last + 1]  # so that the closing edge comes last
        c.error(c.edge_positions[ring[last]], "dependency cycle: " + " -> ".join([*path, path[0]]))


_HOST_STRINGS = ("hostname", "user", "identity", "known_hosts", "workdir")
_HOST_FIELDS = ("max_jobs", "port", "max_sessions", "poll", *_HOST_STRINGS)


def _hosts(c: _Checker, node: Node | None) -> dict[str, HostSpec]:
    hosts = c.mapping(node, "hosts")
    out: dict[str, HostSpec] = {}
    for key, value in c.unique_pairs(hosts, "host") if hosts else ():
        body = c.mapping(value, f"host {key.text!r}")
        fields: dict[str, object] = {}
        for k, v in c.unique_pairs(body, f"field of host {key.text!r}") if body else ():
            field = k.text
            if field == "max_jobs":
                fields[field] = c.number(v, "max_jobs", Scalar.as_int, 1)
            elif field == "port":
                fields[field] = c.number(v, "port", Scalar.as_int, 1, 65535)
            elif field == "max_sessions":
                fields[field] = c.number(v, "max_sessions", Scalar.as_int, 2, 10_000)
            elif field == "poll":
                fields[field] = c.number(v, "poll (seconds)", Scalar.as_float, 0.1, 3600)
            elif field in _HOST_STRINGS:
                fields[field] = _host_string(c, v, field)
            else:
                c.warn(k, f"unknown field {field!r} of host {key.text!r} is ignored"
                          f"{c.did_you_mean(field, _HOST_FIELDS)}")
        out[key.text] = HostSpec(key.text, **fields)  # type: ignore[arg-type]
    return out


def _host_string(c: _Checker, node: Node, field: str) -> str | None:
    """A string field of a host: no control characters (they would end a remote command's
    line); the local files (identity, known_hosts) absolute or in the home (`~/`), since a
    relative path would depend on where ccd was started."""
    text = c.string(node, field)
    if text is None:
        return None
    if not text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        c.error(node, f"{field} must be a non-empty string without control characters")
        return None
    if field in ("identity", "known_hosts") and not text.startswith(("/", "~/")):
        c.error(node, f"{field} must be an absolute path or start with ~/, not {text!r}")
        return None
    return text


_NOTIFY_FIELDS = (*NOTIFIERS, "on", "timeout")
_RUN_ENDS = tuple(s.value for s in RunState if s.final)
_SHELLS = ("sh", "bash", "dash", "zsh", "ksh", "fish")


def parse_settings(data: bytes, filename: str
                   ) -> tuple[tuple[NotifySpec, ...], list[Problem]]:
    """The daemon's settings file (`ccd.settings.notifiers`): its `notify:`, read as a
    workflow's, and its warnings. Raises SpecError listing every problem."""
    with paused_gc():
        root = load(data, filename)
        c = _Checker(filename)
        found: tuple[NotifySpec, ...] = ()
        top = c.mapping(root, "the settings file")
        for key, value in c.unique_pairs(top, "setting") if top else ():
            if key.text == "notify":
                found = _notify(c, value)
            else:
                c.warn(key, f"unknown setting {key.text!r} is ignored"
                            f"{c.did_you_mean(key.text, ('notify',))}")
        dismantle(root)
    if c.problems:
        raise SpecError(c.problems + c.warnings)
    return found, c.warnings


def _notify(c: _Checker, node: Node | None) -> tuple[NotifySpec, ...]:
    """`notify:`, a list of entries, each one notifier (`command:`, `desktop:`, `webhook:`
    or `apprise:`) with optional `on:` (which ends of a run) and `timeout:`."""
    if node is None or (isinstance(node, Scalar) and node.is_null):
        return ()
    if not isinstance(node, Sequence):
        c.error(node, "notify must be a list of notifiers like `- webhook: URL` (each one of "
                      f"{', '.join(NOTIFIERS)}), not {_described(node)}")
        return ()
    out = []
    for item in node.items:
        if not isinstance(item, Mapping):
            c.error(item, "an entry of notify must be a mapping like `webhook: URL`, not "
                          f"{_described(item)}")
            continue
        entry = _notifier(c, item)
        if entry is not None:
            out.append(entry)
    return tuple(out)


def _notifier(c: _Checker, entry: Mapping) -> NotifySpec | None:
    kinds: list[tuple[Scalar, Node]] = []
    fields: dict[str, object] = {}
    for k, v in c.unique_pairs(entry, "field of a notify entry"):
        if k.text in NOTIFIERS:
            kinds.append((k, v))
        elif k.text == "on":
            fields["on"] = _run_ends(c, v)
        elif k.text == "timeout":
            fields["timeout"] = c.number(v, "timeout (seconds)", Scalar.as_float, 0.1, 600)
        else:
            c.warn(k, f"unknown field {k.text!r} of a notify entry is ignored"
                      f"{c.did_you_mean(k.text, _NOTIFY_FIELDS)}")
    if len(kinds) != 1:
        which = f"not both {kinds[0][0].text}: and {kinds[1][0].text}:" if kinds else \
            "it has none"
        c.error(kinds[1][0] if kinds else entry, "a notify entry needs one of "
                f"{', '.join(f'{k}:' for k in NOTIFIERS)} ({which})")
        return None
    key, value = kinds[0]
    if key.text == "desktop":
        if not isinstance(value, Scalar) or value.core_type != "boolean":
            c.error(value, f"desktop must be true or false, not {_described(value)}")
            return None
        target: tuple[str, ...] | None = () if value.text.lower() == "true" else None
        if target is not None and not c.stored and shutil.which("notify-send") is None:
            c.warn(value, "notify-send is not installed here (Debian and Ubuntu: "
                          "libnotify-bin): this notifier will fail")
    elif key.text == "command":
        target = _command(c, value)
    else:
        target = _notify_url(c, value, key.text)
    if target is None or None in fields.values():
        return None
    return NotifySpec(key.text, target, **fields)  # type: ignore[arg-type]


def _run_ends(c: _Checker, node: Node) -> tuple[RunState, ...] | None:
    """`on:`: one end of a run or a list of them."""
    items = node.items if isinstance(node, Sequence) else [node]
    out: list[RunState] = []
    for item in items:
        text = c.string(item, "on: an end of a run")
        if text is None:
            if _null(item):  # (anything else is reported already)
                c.error(item, f"on: needs some of {', '.join(_RUN_ENDS)}")
            return None
        if text not in _RUN_ENDS:
            c.error(item, f"on: {text!r} is not an end of a run; the ends are "
                          f"{', '.join(_RUN_ENDS)}{c.did_you_mean(text, _RUN_ENDS)}")
            return None
        out.append(RunState(text))
    if not out:
        c.error(node, f"on: is empty; give some of {', '.join(_RUN_ENDS)}, or drop the entry")
        return None
    return tuple(dict.fromkeys(out))


def _command(c: _Checker, node: Node) -> tuple[str, ...] | None:
    """A command's arguments: a list, or a string split as a shell would (no shell runs
    it); `{name}` placeholders (ccd.notify.PLACEHOLDERS) are filled in each argument."""
    ok = True
    if isinstance(node, Sequence):
        args = []
        for item in node.items:
            text = c.string(item, "command: an argument")
            if text is None:
                if _null(item):  # (anything else is reported already)
                    c.error(item, "command: an argument cannot be null")
                return None
            ok = _placeholders_known(c, item, text) and ok
            args.append(text)
    else:
        text = c.string(node, "command")
        if text is None:
            if _null(node):
                c.error(node, "command needs a command line or a list of its arguments")
            return None
        ok = _placeholders_known(c, node, text)
        try:
            args = shlex.split(text)
        except ValueError as e:
            c.error(node, f"command: {e} (the line is split as a shell would split it, but "
                          "no shell runs it)")
            return None
    if not args:
        c.error(node, "command is empty")
        return None
    if os.path.basename(args[0]) in _SHELLS and any(notify.placeholders(a) for a in args[1:]):
        c.warn(node, f"a placeholder in a script for {args[0]} would be read as shell code: "
                     "read the values from the environment there ($CCD_RUN, $CCD_STATE, ...)")
    return tuple(args) if ok else None


def _placeholders_known(c: _Checker, node: Node, text: str) -> bool:
    quote = 1 if isinstance(node, Scalar) and node.quoted else 0
    problems = notify.template_problems(text)
    for offset, message in problems:
        c.error(node, f"command: {message}", quote + offset)
    return not problems


def _notify_url(c: _Checker, node: Node, kind: str) -> tuple[str, ...] | None:
    """A webhook's http(s) URL, or an apprise URL of a service apprise knows. The URL is
    not quoted in messages: it may hold a password or a token."""
    text = c.string(node, kind)
    if text is None and not _null(node):
        return None  # reported already
    if not text or any(ch.isspace() for ch in text):
        c.error(node, f"{kind} needs a URL, without spaces")
        return None
    if kind == "webhook":
        problem = notify.webhook_problem(text)
        if problem is not None:
            c.error(node, f"webhook: {problem}")
            return None
    elif "://" not in text:
        c.error(node, "apprise needs a service's URL like mailto://user:password@host or "
                      "tgram://token/chat (apprise's documentation lists them)")
        return None
    elif not c.stored and not notify.apprise_installed():
        c.warn(node, "apprise is not installed here (pip install 'ccd[notify]'): this "
                     "notifier will fail")
    elif not c.stored and not notify.apprise_knows(text):
        c.error(node, "apprise does not know this URL: its service is unknown or the URL "
                      "lacks what the service needs (apprise's documentation lists them)")
        return None
    return (text,)


def _null(node: Node) -> bool:
    return isinstance(node, Scalar) and node.is_null


def _colors(c: _Checker, node: Node | None) -> dict[str, str]:
    colors = c.mapping(node, "colors")
    status = c.mapping(colors.get("status"), "colors.status") if colors else None
    out: dict[str, str] = {}
    for k, v in c.unique_pairs(status, "colour") if status else ():
        colour = c.string(v, f"colors.status.{k.text}")
        if colour is not None:
            out[k.text] = colour
    return out


def _described(node: Node) -> str:
    """A value with its YAML type, for messages: 'the integer 42', "the string 'a,b'"."""
    if isinstance(node, Scalar) and not node.is_null:
        kind = node.core_type
        if kind == "string":
            return f"the string {kind_of(node)}"
        return f"the {kind} {node.text[:QUOTED]}{'…' if len(node.text) > QUOTED else ''}"
    return kind_of(node)


def _clipped(message: str) -> str:
    """A message never quotes a file at length (a 5 MiB string, a pasted document)."""
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"
