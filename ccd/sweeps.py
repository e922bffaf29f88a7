"""Sweeps: a node expanded over a matrix of parameters into plain jobs, in the spec. Pure.

    train:
      exec: python train.py --gpu {gpu} --run {run}
      matrix: {gpu: [a100, v100], run: [1, 2, 3]}
      exclude: [{gpu: v100, run: 3}]

makes five jobs, `train.gpu-a100.run-1` ... `train.gpu-v100.run-2`, each a plain JobSpec
with the values in place of `{gpu}` and `{run}`: the scheduler, the executors, the store
and the page know nothing of sweeps. `spec` reads the YAML and reports errors at their
place; this module holds what it decides: names, templates, instances, selections, links.

Names. An instance is `<node>.<param>-<value>...`, the parameters in the matrix's order,
not the readable `train[gpu=a100,run=1]`: a job's name is a directory on every host, part
of a batch job's name (`ccd.<run>.<job>`), of the page's URLs, of `<job>@N` for attempts
and of dependency chains (where `,` separates), and `[`, `=` and `,` are not safe in all
of them; widening SAFE_NAME would touch each. So values are what a name may hold (letters,
digits, `. _ - +`, or a number), and the readable form is the instance's label (unless the
node has its own) and what dependencies are written in.

Fields. `{param}` is replaced in every text field but `name` and `kind`: exec, script,
env values, cwd, host, user, venv, shape, style, outputs, batch directives and options;
in a label before its own fields (`{name}`, `{progress}`...) are rendered. `{{` and `}}`
are literal braces, `${VAR}` is the shell's and left alone. Each instance also has
`CCD_PARAM_<PARAM>=<value>` in its environment, unless `env:` sets that name itself.

Dependencies. In a chain, `train` is every instance; `train[gpu=a100]` those with that
value; `train[gpu=*],report[gpu=*]` links each instance to those of the other with the
same gpu: a parameter marked `*` at both ends of a link must match there, and marked at
one end only it selects every value.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

MAX_INSTANCES = 10_000  # of one node, counted before `exclude:`
# Of all sweeps of a workflow: as many jobs as yamltree.MAX_ITEMS allows fully written out
# (nodes written tersely can be more: each instance is a full node, so this bounds memory).
MAX_SWEEP_JOBS = 30_000
MAX_LINKS = 300_000  # dependencies made by links to or from sweeps, in one workflow
PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A parameter, a literal brace, or the shell's own `${VAR}`, which is left alone.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\$\{[^{}]*\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SHOWN = 10  # values listed in a message
_SPLITS = re.compile(r"[\[\],]")


@dataclass(frozen=True, slots=True)
class Matrix:
    """A node's parameters, each one's values as written, and the instances' assignments
    (a value per parameter) that `exclude:` left, in order: the first parameter slowest."""

    params: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    rows: tuple[tuple[str, ...], ...]

    def names(self, node: str) -> tuple[str, ...]:
        """The instances' job names: `train.gpu-a100.run-1`."""
        return tuple(node + "".join(f".{p}-{v}" for p, v in zip(self.params, row, strict=True))
                     for row in self.rows)

    def readable(self, node: str, row: Sequence[str]) -> str:
        """An instance as people write it: `train[gpu=a100,run=1]`."""
        pairs = ",".join(f"{p}={v}" for p, v in zip(self.params, row, strict=True))
        return f"{node}[{pairs}]"


def size(lengths: Sequence[int]) -> int:
    """The number of assignments, or MAX_INSTANCES + 1 if more: never a huge product."""
    total = 1
    for n in lengths:
        total *= n
        if total > MAX_INSTANCES:
            return MAX_INSTANCES + 1
    return total


def assignments(values: Sequence[Sequence[str]], excludes: Sequence[Mapping[int, str]]
                ) -> tuple[tuple[str, ...], ...]:
    """Every combination of values but those an exclude (parameter index -> value) matches."""
    rows = itertools.product(*values)
    if not excludes:
        return tuple(rows)
    drops = [tuple(e.items()) for e in excludes]
    return tuple(row for row in rows
                 if not any(all(row[i] == v for i, v in drop) for drop in drops))


@dataclass(frozen=True, slots=True)
class Template:
    """A text field with parameters in it, split once, filled for each instance."""

    parts: tuple[str | int, ...]  # literal text, or a parameter's index

    def fill(self, row: Sequence[str]) -> str:
        return "".join(p if isinstance(p, str) else row[p] for p in self.parts)


def template(text: str, params: Sequence[str]) -> Template:
    """`text` split into literal parts and parameters; an unknown `{name}` stays as written
    (`unknown` reports it)."""
    if "{" not in text and "}" not in text:
        return Template((text,))
    index = {p: i for i, p in enumerate(params)}
    parts: list[str | int] = []
    last = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[last:m.start()])
        token = m[0]
        if token == "{{" or token == "}}":
            parts.append(token[0])
        elif m[1] is not None and m[1] in index:
            parts.append(index[m[1]])
        else:
            parts.append(token)
        last = m.end()
    parts.append(text[last:])
    merged: list[str | int] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return Template(tuple(merged))


def unknown(text: str, params: Sequence[str]) -> list[tuple[int, str]]:
    """The `{name}`s in `text` that are not parameters, as (offset, name)."""
    if "{" not in text:
        return []
    return [(m.start(), m[1]) for m in _PLACEHOLDER.finditer(text)
            if m[1] is not None and m[1] not in params]


def listed(values: Sequence[str]) -> str:
    """A parameter's values for a message: the first few."""
    more = ", …" if len(values) > _SHOWN else ""
    return ", ".join(values[:_SHOWN]) + more


def env_name(param: str) -> str:
    """The environment variable that carries a parameter to the job."""
    return f"CCD_PARAM_{param.upper()}"


@dataclass(frozen=True, slots=True)
class Selection:
    """What one name of a dependency chain stands for: jobs, each with its assignment
    (empty for a plain node), and the parameters written `*` to be matched."""

    names: tuple[str, ...]
    params: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ((),)
    matched: frozenset[str] = frozenset()


def split_chain(text: str) -> Iterator[tuple[int, str]]:
    """The parts of a chain "a,train[gpu=*,run=1],b" with their offsets: commas inside
    brackets belong to a selector."""
    if "[" not in text:
        offset = 0
        for part in text.split(","):
            yield offset, part
            offset += len(part) + 1
        return
    depth = start = 0
    for m in _SPLITS.finditer(text):  # a chain can be megabytes: jump to what matters
        ch = m[0]
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif depth == 0:
            yield start, text[start:m.start()]
            start = m.end()
    yield start, text[start:]


def select(node: str, matrix: Matrix, names: tuple[str, ...], text: str | None
           ) -> tuple[Selection | None, list[tuple[int, str]]]:
    """The instances `node[text]` selects (all of them without brackets), or the problems
    as (offset in `text`, message)."""
    if text is None:
        return Selection(names, matrix.params, matrix.rows), []
    problems: list[tuple[int, str]] = []
    fixed: dict[int, str] = {}
    matched: set[str] = set()
    offset = 0
    for item in text.split(","):
        at = offset + len(item) - len(item.lstrip())
        offset += len(item) + 1
        param, equals, value = (s.strip() for s in item.partition("="))
        if not equals or not param or not value:
            problems.append((at, f"a selector is written {node}[param=value,...] or "
                                 f"{node}[param=*], not {item.strip()!r}"))
            continue
        if param not in matrix.params:
            problems.append((at, f"node {node!r} has no parameter {param!r}; its parameters "
                                 f"are: {', '.join(matrix.params)}"))
            continue
        i = matrix.params.index(param)
        if i in fixed or param in matched:
            problems.append((at, f"parameter {param!r} is selected twice"))
        elif value == "*":
            matched.add(param)
        elif value not in matrix.values[i]:
            problems.append((at, f"{param}={value} is not in the matrix of node {node!r} "
                                 f"(values of {param}: {listed(matrix.values[i])})"))
        else:
            fixed[i] = value
    if problems:
        return None, problems
    chosen = [(n, row) for n, row in zip(names, matrix.rows, strict=True)
              if all(row[i] == v for i, v in fixed.items())]
    if not chosen:
        return None, [(0, f"{node}[{text}] selects no instance: exclude: removed them all")]
    return Selection(tuple(n for n, _ in chosen), matrix.params, tuple(r for _, r in chosen),
                     frozenset(matched)), []


def _keys(a: Selection, b: Selection) -> tuple[list[int], list[int]]:
    common = sorted(a.matched & b.matched)
    return [a.params.index(p) for p in common], [b.params.index(p) for p in common]


def count(a: Selection, b: Selection) -> int:
    """How many dependencies the link a -> b makes, without making them."""
    ia, ib = _keys(a, b)
    if not ia:
        return len(a.names) * len(b.names)
    right = Counter(tuple(row[i] for i in ib) for row in b.rows)
    return sum(right[tuple(row[i] for i in ia)] for row in a.rows)


def links(a: Selection, b: Selection) -> Iterator[tuple[str, str]]:
    """The dependencies of the link a -> b: every pair, or the pairs whose parameters
    marked `*` at both ends have the same values."""
    ia, ib = _keys(a, b)
    if not ia:
        yield from itertools.product(a.names, b.names)
        return
    right: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name, row in zip(b.names, b.rows, strict=True):
        right[tuple(row[i] for i in ib)].append(name)
    for name, row in zip(a.names, a.rows, strict=True):
        for other in right.get(tuple(row[i] for i in ia), ()):
            yield name, other
