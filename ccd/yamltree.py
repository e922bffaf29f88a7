"""Read untrusted YAML into a small tree that remembers where every value was written.

libyaml's event parser (through ruamel.yaml's C extension) does the parsing; we build the
tree ourselves, iteratively, because ruamel's own composer is slow (1 s for a 10,000-node
workflow) and its C composer recurses without bound (a deeply nested file crashes the
interpreter). Scalars keep their source text: the schema decides what type a field needs.
Hostile input is bounded here: file size, nesting depth and the number of YAML items.
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ccd.errors import Problem, SpecError

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
QUOTED = 80  # characters of a value quoted in a message
MAX_ITEMS = 300_000  # ~30,000 fully written nodes; bounds any 8 MiB file to ~1 s

# YAML 1.2's core schema, which says what a plain (unquoted) scalar is; everything else
# plain, and everything quoted, is a string. YAML 1.1's yes/no/on/off and 1_000 are strings.
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLEANS = frozenset(("true", "True", "TRUE", "false", "False", "FALSE"))
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_TYPED_STARTS = frozenset("0123456789+-.tTfF")  # how every boolean and number begins

CoreType = Literal["null", "boolean", "integer", "float", "string"]


@dataclass(slots=True)
class Scalar:
    """A scalar as written: `text` is its value as a string; `quoted` if it was quoted."""

    text: str
    quoted: bool
    line: int  # 1-based
    col: int  # 1-based

    @property
    def is_null(self) -> bool:
        return not self.quoted and self.text in _NULLS

    @property
    def core_type(self) -> CoreType:
        """What YAML 1.2's core schema reads it as: `42` is an integer, `'42'` a string."""
        text = self.text
        if self.quoted:
            return "string"
        if text in _NULLS:
            return "null"
        if text[0] not in _TYPED_STARTS:  # most strings are told by their first character
            return "string"
        if text in _BOOLEANS:
            return "boolean"
        if _INT.fullmatch(text):
            return "integer"
        if _FLOAT.fullmatch(text):
            return "float"
        return "string"

    def as_int(self) -> int | None:
        """The integer it spells (decimal, 0o octal or 0x hexadecimal), or None."""
        if self.core_type != "integer":
            return None
        text = self.text
        try:
            return int(text, 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10)
        except ValueError:  # more digits than Python reads (sys.get_int_max_str_digits)
            return None

    def as_float(self) -> float | None:
        """The finite number it spells, integers included, or None."""
        whole = self.as_int()
        if whole is None and self.core_type != "float":
            return None
        try:
            number = float(self.text if whole is None else whole)
        except (ValueError, OverflowError):  # `.inf`, `.nan`; an integer past any float
            return None
        return number if math.isfinite(number) else None


@dataclass(slots=True)
class Mapping:
    """A mapping with its pairs in file order; duplicate keys are kept for the schema to report."""

    pairs: list[tuple[Node, Node]]
    line: int
    col: int

    def get(self, key: str) -> Node | None:
        """The value of the first pair whose key is the scalar `key`."""
        for k, v in self.pairs:
            if isinstance(k, Scalar) and k.text == key:
                return v
        return None


@dataclass(slots=True)
class Sequence:
    items: list[Node]
    line: int
    col: int


Node = Scalar | Mapping | Sequence


def kind_of(node: Node) -> str:
    """How a node is named in messages: 'a mapping', 'a list', "'x'"."""
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    if node.is_null:
        return "nothing (null)"
    if len(node.text) > QUOTED:  # a message quotes a value, never a whole file
        return f"{node.text[:QUOTED]!r}… ({len(node.text):,} characters)"
    return f"{node.text!r}"


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a tree is built and read: it only makes objects
    that live until the end, and CPython 3.11's collector rescans the growing tree again
    and again (a 10,000-node file took 0.8 s with it, 0.5 s without). Collection resumes
    after, if it was on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(data: bytes, filename: str) -> Node | None:
    """Parse one YAML document into a tree; None for an empty document.

    Raises SpecError with the position of the first problem.
    """
    if len(data) > MAX_BYTES:
        raise _error(filename, 1, 1, f"file is {len(data):,} bytes; the limit is {MAX_BYTES:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise _error(filename, line, col, "not a UTF-8 text file") from None
    if "\x00" in text:
        at = text.index("\x00")
        line = text.count("\n", 0, at) + 1
        raise _error(filename, line, at - text.rfind("\n", 0, at), "not a text file (NUL byte)")
    return _build(text, filename)


def _build(text: str, filename: str) -> Node | None:
    # libyaml's parser straight (ruamel's YAML().parse wraps it in a generator that asks
    # check_event before every get_event): the loop below is the hot path of validation.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        DocumentStartEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
        StreamEndEvent,
    )
    from ruamel.yaml.reader import ReaderError

    anchors: dict[str, Node] = {}
    stack: list[Mapping | Sequence] = []
    keys: list[Node | None] = []  # per open container: a mapping's key waiting for its value
    root: Node | None = None
    documents = count = 0
    plain = (None, "", "|", ">")
    try:
        from _ruamel_yaml import CParser  # ruamel.yaml.clib, on CPython
    except ImportError:  # pragma: no cover - elsewhere, ruamel's pure-Python parser
        CParser = None
    parser = CParser(text) if CParser is not None else None
    get_event = (parser.get_event if parser is not None
                 else iter(YAML(typ="safe", pure=True).parse(text)).__next__)
    try:
        while True:
            ev = get_event()
            cls = type(ev)
            node: Node
            if cls is ScalarEvent:
                mark = ev.start_mark
                node = Scalar(ev.value, ev.style not in plain, mark.line + 1, mark.column + 1)
                if ev.anchor:
                    anchors[ev.anchor] = node
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                stack.pop()
                keys.pop()
                continue
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                mark = ev.start_mark
                if len(stack) >= MAX_DEPTH:
                    raise _error(filename, mark.line + 1, mark.column + 1,
                                 f"nested more than {MAX_DEPTH} levels deep")
                node = (Mapping([], mark.line + 1, mark.column + 1) if cls is MappingStartEvent
                        else Sequence([], mark.line + 1, mark.column + 1))
                if ev.anchor:
                    anchors[ev.anchor] = node
            elif cls is AliasEvent:
                if ev.anchor not in anchors:
                    mark = ev.start_mark
                    raise _error(filename, mark.line + 1, mark.column + 1,
                                 f"unknown alias *{ev.anchor}")
                node = anchors[ev.anchor]  # shared, never copied: alias bombs stay small
            elif cls is StreamEndEvent:
                break
            elif cls is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    mark = ev.start_mark
                    raise _error(filename, mark.line + 1, mark.column + 1,
                                 "a workflow file holds one YAML document, found a second")
                continue
            else:
                continue
            count += 1
            if count > MAX_ITEMS:
                raise _error(filename, node.line, node.col,
                             f"more than {MAX_ITEMS:,} YAML items (values, keys, lists and "
                             "mappings)")
            if not stack:
                root = node
            else:
                top = stack[-1]
                if type(top) is Sequence:
                    top.items.append(node)
                elif keys[-1] is None:
                    keys[-1] = node
                else:
                    top.pairs.append((keys[-1], node))  # type: ignore[union-attr]
                    keys[-1] = None
            if cls is MappingStartEvent or cls is SequenceStartEvent:
                stack.append(node)  # type: ignore[arg-type]
                keys.append(None)
    except MarkedYAMLError as e:
        raise _yaml_error(filename, text, e) from None
    except ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        col = e.position - text.rfind("\n", 0, e.position)
        raise _error(filename, line, col, f"invalid YAML: {e.reason} ({e.character!r})") from None
    except YAMLError as e:
        raise _error(filename, 1, 1, f"invalid YAML: {e}") from None
    except SpecError:  # refused half-way (too many items, ...): free what was built
        dismantle(root, *stack, *anchors.values(), *(k for k in keys if k is not None))
        stack.clear()
        anchors.clear()
        keys.clear()
        raise
    finally:
        if parser is not None:
            parser.dispose()
    return root


def dismantle(*roots: Node | None) -> None:
    """Free trees a few thousand nodes at a time, letting other threads run in between.

    Dropping the last reference to a tree of 300,000 nodes frees it in one cascade that
    holds the interpreter lock for 25-80 ms; the event loop's thread, serving other
    clients while an upload is validated in a worker, would wait that long."""
    todo: list[Node] = [r for r in roots if r is not None]
    freed = 0
    while todo:
        node = todo.pop()
        if type(node) is Mapping:
            for k, v in node.pairs:
                todo.append(k)
                todo.append(v)
            node.pairs.clear()
        elif type(node) is Sequence:
            todo.extend(node.items)
            node.items.clear()
        freed += 1
        if freed % 20_000 == 0:
            time.sleep(0)  # the lock goes to whoever waits for it


def _yaml_error(filename: str, text: str, e: Any) -> SpecError:
    """libyaml's complaint where a user looks for it: a quote never closed at its opening
    (not at the end of the file), a tab named as a tab."""
    problem, context = str(e.problem or ""), str(e.context or "")
    mark = e.problem_mark or e.context_mark
    if "quoted scalar" in context and "end of stream" in problem and e.context_mark:
        mark = e.context_mark
        what = "a quoted string is never closed: its quote opens here"
    else:
        what = " ".join(p for p in (context, problem) if p)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if "cannot start any token" in problem and mark is not None:
        at = text[mark.index] if 0 <= mark.index < len(text) else ""
        if at == "\t":
            what = "a tab: YAML indents with spaces only"
    return _error(filename, line, col, f"invalid YAML: {what}")


def _error(filename: str, line: int, col: int, message: str) -> SpecError:
    return SpecError([Problem(filename, line, col, message)])
