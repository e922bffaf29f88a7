"""`when:` conditions: a small expression language, parsed by hand, never `eval`ed.

Grammar (keywords are lower case; strings are '...' or "..." without escapes):

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := STRING | NUMBER | "true" | "false" | NAME | job | "(" condition ")"
    job        := "job" "(" STRING ")" "." ("state" | "exit_code" | "values" "." NAME)

A NAME is one of the node's sweep parameters (`gpu`); `job("train").state` is a job's
state (`"done"`, `"failed"`...), `.exit_code` its exit code (null if it never ended with
one), `.values.loss` what it published with a `# ccd loss=0.31` log line (the last one
wins). Parameters and published values are text; compared with a number, text is read as
a number. `and`, `or` and `not` take booleans; the condition must be one.

Parse errors carry the offset in the text (`ConditionError`), so the spec reports them at
FILE:LINE:COL; evaluation errors (`EvaluationError`: a value never published, a type
mismatch) say what and are the job's failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_TOKEN = re.compile(r"""\s*(?:(?P<number>-?\d+(?:\.\d+)?)|(?P<string>"[^"]*"|'[^']*')"""
                    r"""|(?P<op>==|!=|<=|>=|<|>|[().])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))""")
_KEYWORDS = ("and", "or", "not", "true", "false", "job")
_ATTRIBUTES = ("state", "exit_code", "values")

Value = str | float | bool | None


class ConditionError(Exception):
    """A condition that does not parse; `offset` is where in its text."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


class EvaluationError(Exception):
    """A condition that parses but cannot be evaluated against a run's state."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class JobRef:
    job: str
    attribute: str  # state, exit_code or values
    key: str | None  # of values
    offset: int  # of the job's name


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # and, or, or one of OPERATORS
    left: Expr
    right: Expr


Expr = Literal | Param | JobRef | Not | Binary


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition may read: the job's parameters and its upstream jobs' ends."""

    params: Mapping[str, str]
    states: Mapping[str, str]
    exit_codes: Mapping[str, int | None]
    values: Mapping[str, Mapping[str, str]]


def parse(text: str) -> Expr:
    """The condition's tree; ConditionError at the first problem."""
    return _Parser(text).condition()


def references(expr: Expr) -> list[Param | JobRef]:
    """The parameters and jobs a condition reads, in order."""
    if isinstance(expr, Param | JobRef):
        return [expr]
    if isinstance(expr, Not):
        return references(expr.operand)
    if isinstance(expr, Binary):
        return references(expr.left) + references(expr.right)
    return []


def evaluate(expr: Expr, facts: Facts) -> bool:
    """True or False; EvaluationError if the condition is not a boolean or cannot be read."""
    value = _value(expr, facts)
    if not isinstance(value, bool):
        raise EvaluationError(f"is {_shown(value)}, not true or false")
    return value


def _value(expr: Expr, facts: Facts) -> Value:
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Param):
        if expr.name not in facts.params:
            raise EvaluationError(f"no parameter {expr.name!r}")
        return facts.params[expr.name]
    if isinstance(expr, JobRef):
        if expr.attribute == "state":
            return facts.states[expr.job]
        if expr.attribute == "exit_code":
            code = facts.exit_codes.get(expr.job)
            return None if code is None else float(code)
        published, key = facts.values.get(expr.job, {}), expr.key or ""
        if key not in published:
            raise EvaluationError(f"{expr.job} published no value {key!r} "
                                  f"(a log line `# ccd {key}=...`)")
        return published[key]
    if isinstance(expr, Not):
        return not _boolean(_value(expr.operand, facts), "not")
    left = _value(expr.left, facts)
    if expr.op == "and":
        return _boolean(left, "and") and _boolean(_value(expr.right, facts), "and")
    if expr.op == "or":
        return _boolean(left, "or") or _boolean(_value(expr.right, facts), "or")
    return _compare(expr.op, left, _value(expr.right, facts))


def _boolean(value: Value, op: str) -> bool:
    if not isinstance(value, bool):
        raise EvaluationError(f"`{op}` needs true or false, not {_shown(value)}")
    return value


def _compare(op: str, left: Value, right: Value) -> bool:
    if isinstance(left, float) and isinstance(right, str):
        right = _number(right)
    elif isinstance(left, str) and isinstance(right, float):
        left = _number(left)
    if op in ("==", "!="):
        if type(left) is not type(right) and left is not None and right is not None:
            raise EvaluationError(f"cannot compare {_shown(left)} {op} {_shown(right)}")
        return (left == right) is (op == "==")
    if not ((isinstance(left, float) and isinstance(right, float))
            or (isinstance(left, str) and isinstance(right, str))):
        raise EvaluationError(f"cannot order {_shown(left)} {op} {_shown(right)}")
    a, b = left, right
    return bool(a < b if op == "<" else a <= b if op == "<=" else  # type: ignore[operator]
                a > b if op == ">" else a >= b)  # type: ignore[operator]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EvaluationError(f"{text!r} is not a number") from None


def _shown(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


class _Parser:
    """Recursive descent over the tokens, one method per rule of the grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, offset)
        at = 0
        while at < len(text):
            m = _TOKEN.match(text, at)
            if m is None or m.lastgroup is None:
                if text[at:].strip() == "":
                    break
                start = at + len(text[at:]) - len(text[at:].lstrip())
                what = "an unclosed string" if text[start] in "'\"" else \
                    f"unexpected {text[start]!r}"
                raise ConditionError(start, what)
            self.tokens.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
            at = m.end()
        self.tokens.append(("end", "", len(text)))
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str, what: str) -> int:
        kind, got, at = self.take()
        if got != text or kind not in ("op", "name"):
            raise ConditionError(at, f"expected {what}, found {_found(kind, got)}")
        return at

    def condition(self) -> Expr:
        expr = self.disjunction()
        kind, got, at = self.peek()
        if kind != "end":
            raise ConditionError(at, f"expected `and`, `or` or the end, found {_found(kind, got)}")
        return expr

    def disjunction(self) -> Expr:
        expr = self.conjunction()
        while self.peek()[:2] == ("name", "or"):
            self.take()
            expr = Binary("or", expr, self.conjunction())
        return expr

    def conjunction(self) -> Expr:
        expr = self.negation()
        while self.peek()[:2] == ("name", "and"):
            self.take()
            expr = Binary("and", expr, self.negation())
        return expr

    def negation(self) -> Expr:
        if self.peek()[:2] == ("name", "not"):
            self.take()
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.operand()
        kind, op, _ = self.peek()
        if kind == "op" and op in OPERATORS:
            self.take()
            return Binary(op, left, self.operand())
        return left

    def operand(self) -> Expr:
        kind, text, at = self.take()
        if kind == "number":
            return Literal(float(text))
        if kind == "string":
            return Literal(text[1:-1])
        if kind == "op" and text == "(":
            expr = self.disjunction()
            self.expect(")", "`)`")
            return expr
        if kind == "name" and text in ("true", "false"):
            return Literal(text == "true")
        if kind == "name" and text == "job":
            return self.job()
        if kind == "name" and text not in _KEYWORDS:
            return Param(text, at)
        raise ConditionError(at, f"expected a value, a parameter or job(\"NAME\"), "
                                 f"found {_found(kind, text)}")

    def job(self) -> JobRef:
        self.expect("(", "`(` after job")
        kind, name, at = self.take()
        if kind != "string":
            raise ConditionError(at, f"expected a job's name in quotes, found {_found(kind, name)}")
        self.expect(")", "`)`")
        self.expect(".", "`.state`, `.exit_code` or `.values.NAME` after job(...)")
        kind, attribute, attribute_at = self.take()
        if kind != "name" or attribute not in _ATTRIBUTES:
            raise ConditionError(attribute_at, "expected state, exit_code or values, found "
                                               f"{_found(kind, attribute)}")
        key = None
        if attribute == "values":
            self.expect(".", "`.NAME` after values")
            kind, key, key_at = self.take()
            if kind != "name":
                raise ConditionError(key_at, f"expected a value's name, found {_found(kind, key)}")
        return JobRef(name[1:-1], attribute, key, at + 1)


def _found(kind: str, text: str) -> str:
    return "the end" if kind == "end" else f"{text!r}"
