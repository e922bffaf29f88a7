"""Workflow files -> WorkflowSpec, with every error reported as FILE:LINE:COL at once.

The format is cloudmesh-cc's (the paper, sections 5.1-5.5):

    workflow:
      nodes:
        fetch-data: {name: fetch-data, kind: local, script: fetch.sh, label: '{name}'}
      dependencies:
        - start,fetch-data,end      # a chain; parallel branches are several chains
    colors: {status: {done: '#CCFFCC'}}

plus optional extensions: per node `env`, `cwd`, `timeout`, `retries` and `outputs` (glob
patterns of the files the job makes, relative to the run's working copy); a top-level
`hosts:` inventory (how to reach each host over SSH: hostname, port, user, identity,
known_hosts, workdir, max_sessions, poll; and max_jobs); a top-level `files:` list of paths or
globs beside the workflow file (data, modules) that belong to it and are copied with it.
Fields cloudmesh-cc writes into saved workflows are accepted and ignored; any other unknown
field is a warning, not an error, so files written for cloudmesh-cc load unchanged.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ccd import dag, labels
from ccd.errors import Problem, SpecError
from ccd.model import (
    BATCH_FIELDS,
    BATCH_KINDS,
    KINDS,
    RUNNABLE_KINDS,
    SAFE_NAME,
    HostSpec,
    JobSpec,
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
_NODE_FIELDS = frozenset(("name", "kind", "status", "progress", "env", "timeout", "retries",
                          "outputs", *_STRING_FIELDS, *BATCH_FIELDS, *_BATCH_OPTIONS))
_TOP_LEVEL = ("workflow", "colors", "hosts", "files")
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
        raise SpecError(c.problems)
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
    for key, value in c.unique_pairs(nodes, "node") if nodes else ():
        job = _job(c, key, value, base)
        if job is not None:
            jobs[job.name] = job
    edges = _dependencies(c, wf.get("dependencies"), jobs)
    _cycles(c, jobs, edges)
    return WorkflowSpec(
        name=source.name.split(".")[0] or "workflow",
        source=source,
        jobs=jobs,
        edges=tuple(edges),
        colors=_colors(c, top.get("colors")),
        hosts=hosts,
        files=_relative_paths(c, top.get("files"), "files", "the workflow file's directory"),
    )


def _job(c: _Checker, key: Scalar, node: Node, base: Path) -> JobSpec | None:
    name = key.text
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        c.error(key, f"node name {name!r} is not safe as a file name: use letters, digits "
                     "and . _ - + (at most 128, not starting with . or -)")
    if isinstance(node, Scalar) and node.is_null:
        return JobSpec(name=name)
    body = c.mapping(node, f"node {name!r}")
    if body is None:
        return None
    read = c.bodies.get(id(body))
    if read is None:  # the first node with this body (others share it through an alias)
        read = c.bodies[id(body)] = _fields(c, body, name)
        fields, given = read
        _check_job(c, JobSpec(name=name, **fields), body, base)  # type: ignore[arg-type]
    fields, given = read
    if given is not None and given != name:
        c.error(body.get("name") or body, f"name {given!r} differs from its key {name!r}")
    return JobSpec(name=name, **fields)  # type: ignore[arg-type]


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
        elif field == "progress":
            fields["progress"] = c.number(v, "progress", Scalar.as_int, 0, 100) or 0
        elif field == "timeout":
            fields["timeout"] = c.number(v, "timeout (seconds)", Scalar.as_float, 0.001)
        elif field == "retries":
            fields["retries"] = c.number(v, "retries", Scalar.as_int, 0, 100) or 0
        elif field == "env":
            fields["env"] = _env(c, v)
        elif field == "outputs":
            fields["outputs"] = _relative_paths(c, v, "outputs", "the run's working copy")
        elif field in BATCH_FIELDS:
            value = _directive(c, v, field)
            if value is not None:
                batch.append((field, value))
        elif field in _BATCH_OPTIONS:
            options[field] = (k, _options(c, v, field))
        elif field not in _CLOUDMESH_FIELDS:
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


def _check_job(c: _Checker, job: JobSpec, body: Mapping, base: Path) -> None:
    if (job.batch or job.batch_options) and job.kind not in BATCH_KINDS:
        field = job.batch[0][0] if job.batch else \
            "sbatch" if body.get("sbatch") is not None else "bsub"
        c.warn(body.get(field) or body, f"{field} is for batch jobs (kind: "
               f"{' or '.join(BATCH_KINDS)}); node {job.name!r} is kind {job.kind!r}: ignored")
    if job.script is not None and job.exec is not None:
        c.warn(body.get("exec") or body, f"node {job.name!r} has both script and exec; "
               "exec is ignored (as cloudmesh-cc does)")
    if not c.stored:  # a stored run's scripts are in its own copy
        _check_on_disk(c, job, body, base)
    if job.label is not None:
        label_node = body.get("label") or body
        quote = 1 if isinstance(label_node, Scalar) and label_node.quoted else 0
        for offset, message in labels.check(job.label):
            # The column is exact for one-line labels, the usual case.
            c.error(label_node, f"label: {message}", quote + offset)


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
        previous: str | None = None
        offset = 1 if chain.quoted else 0
        for part in chain.text.split(","):
            name = part.strip()
            at = offset + (len(part) - len(part.lstrip()))
            offset += len(part) + 1
            if not name:
                c.error(chain, f"empty name in dependency chain {chain.text!r}", at)
            elif name not in jobs:
                c.error(chain, f"unknown node {name!r} in dependency"
                               f"{c.did_you_mean(name, jobs)}", at)
            else:
                if previous is not None:
                    edges.setdefault((previous, name), chain)
                previous = name
                continue
            previous = None  # a broken link: do not connect across it
    return list(edges)


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
