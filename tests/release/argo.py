"""Argo Rollouts' analysis semantics, small and faithful, for the canary drill.

Read from argoproj/argo-rollouts v1.8.3 (the controller chart 2.40.x ships) and the expr library it
evaluates conditions with (antonmedv/expr v1.15, now expr-lang/expr):

- args: `utils/template` resolves `{{args.NAME}}` in the JSON of each metric (fasttemplate, tag
  trimmed, the value escaped like Go's strconv.Quote); an unresolved tag is an error.
- provider: `metricproviders/prometheus.processResponse` turns a vector (or matrix) into a
  `[]float64` of its sample values and a scalar into a `float64`; an empty vector is `[]`.
- conditions: `utils/evaluate.EvaluateResult`: success true -> Successful; failure true -> Failed;
  neither -> Inconclusive; only a success condition -> not success means Failed; an evaluation
  error (say `result[0]` on `[]`) -> Error.
- limits: `analysis.assessMetricFailureInconclusiveOrError`: Failed when failed > failureLimit,
  Inconclusive when inconclusive > inconclusiveLimit, Error when consecutive errors >
  consecutiveErrorLimit (default 4); a metric without `count` runs until then, and is Successful
  only when the run is terminated (the Rollout reached 100%) while it still runs.
- the run: the worst completed metric phase, in the order Successful < Running < Pending <
  Inconclusive < Error < Failed (`analysisutil.analysisStatusOrder`).

No PyPI package implements expr (the `expr-lang` name on PyPI is an empty placeholder), so
`evaluate_condition` implements the subset a condition here can use: numbers, true/false/nil,
`result`, `len()`, `isNaN()`, `isInf()`, `asInt()`, `asFloat()`, indexing, `! not - && || and or`,
comparisons and arithmetic, with expr's short-circuit and Go's IEEE-754 comparisons (NaN compares
false). Anything else is a compile error, as in expr for an unknown name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR, RUNNING, PENDING = (
    "Successful", "Failed", "Inconclusive", "Error", "Running", "Pending")
STATUS_ORDER = [SUCCESSFUL, RUNNING, PENDING, INCONCLUSIVE, ERROR, FAILED]
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4


class ExprError(Exception):
    """A compile or run-time error of an expression (Argo: the measurement's phase is Error)."""


# ------------------------------------------------------------------------------------------ args

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)


def resolve_args(metric: dict[str, Any], args: dict[str, str]) -> dict[str, Any]:
    """`{{args.NAME}}` substituted in the metric's JSON, as `templateutil.ResolveQuotedArgs` does."""
    text = json.dumps(metric)
    values = {f"args.{k}": json.dumps(v)[1:-1] for k, v in args.items()}  # strconv.Quote minus the quotes
    unresolved: list[str] = []

    def sub(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        if tag in values:
            return values[tag]
        unresolved.append(match.group(1))
        return ""

    out = _TAG.sub(sub, text)
    if unresolved:
        raise ExprError(f"failed to resolve {{{{{unresolved[-1]}}}}}")
    return json.loads(out)


# ------------------------------------------------------------------------------------------ provider

def prometheus_result(data: dict[str, Any]) -> float | list[float]:
    """The `result` a Prometheus API `data` object gives a condition (processResponse)."""
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return float(result[1])
    if kind == "vector":
        return [float(sample["value"][1]) for sample in result]
    if kind == "matrix":
        return [float(v) for series in result for _, v in series["values"]]
    raise ExprError(f"Prometheus metric type not supported ({kind})")


# ------------------------------------------------------------------------------------------ expr subset

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\],+\-*/%])
)""", re.X)
_KEYWORD_OPS = {"and": "&&", "or": "||", "not": "!"}
_BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
           "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {src[pos:].strip()[:1]!r} at {pos} in {src!r}")
        pos = m.end()
        if m.group("num"):
            out.append(("num", m.group("num")))
        elif m.group("name"):
            name = m.group("name")
            out.append(("op", _KEYWORD_OPS[name]) if name in _KEYWORD_OPS else ("name", name))
        else:
            out.append(("op", m.group("op")))
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_int(v: Any) -> int:
    if _is_number(v):
        return int(v)
    if isinstance(v, str):
        return int(v)
    raise ExprError(f"asInt() not supported on {type(v).__name__} {v!r}")


def _as_float(v: Any) -> float:
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        return float(v)
    raise ExprError(f"asFloat() not supported on {type(v).__name__} {v!r}")


def _len(v: Any) -> int:
    if isinstance(v, (list, str, dict)):
        return len(v)
    raise ExprError(f"invalid argument for len (type {type(v).__name__})")


def _float_arg(fn: str) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, float):  # Go: math.IsNaN(float64); expr converts ints at compile time only
            if _is_number(v):
                v = float(v)
            else:
                raise ExprError(f"cannot use {type(v).__name__} as argument (type float64) to call {fn}")
        return math.isnan(v) if fn == "isNaN" else math.isinf(v)
    return check


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("==", "!="):
        equal = (a == b) if _is_number(a) == _is_number(b) else False
        return equal if op == "==" else not equal
    if not (_is_number(a) and _is_number(b)):
        raise ExprError(f"invalid operation: {type(a).__name__} {op} {type(b).__name__}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # NaN: all false, as in Go


class _Parser:
    """Precedence climbing over the token list into nested tuples; evaluation is separate."""

    def __init__(self, src: str) -> None:
        self.src, self.toks, self.i = src, _tokens(src), 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExprError(f"expected {value or 'a value'} in {self.src!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        node = self.expr(0)
        if self.peek() is not None:
            raise ExprError(f"unexpected token {self.peek()[1]!r} in {self.src!r}")  # type: ignore[index]
        return node

    def expr(self, min_prec: int) -> tuple:
        left = self.unary()
        while (tok := self.peek()) is not None and tok[0] == "op" and _BINARY.get(tok[1], 0) > min_prec:
            self.i += 1
            left = ("bin", tok[1], left, self.expr(_BINARY[tok[1]]))
        return left

    def unary(self) -> tuple:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("!", "-", "+"):
            self.i += 1
            return ("unary", tok[1], self.unary())
        return self.postfix(self.primary())

    def primary(self) -> tuple:
        kind, value = self.take()
        if kind == "num":
            return ("lit", float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "name":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value == "nil":
                return ("lit", None)
            if (nxt := self.peek()) is not None and nxt[1] == "(":
                self.i += 1
                args = []
                if self.peek() is not None and self.peek()[1] != ")":  # type: ignore[index]
                    args.append(self.expr(0))
                    while self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                        self.i += 1
                        args.append(self.expr(0))
                self.take(")")
                return ("call", value, args)
            return ("var", value)
        if value == "(":
            node = self.expr(0)
            self.take(")")
            return node
        raise ExprError(f"unexpected token {value!r} in {self.src!r}")

    def postfix(self, node: tuple) -> tuple:
        while (tok := self.peek()) is not None and tok[1] == "[":
            self.i += 1
            index = self.expr(0)
            self.take("]")
            node = ("index", node, index)
        return node


def _check_names(node: tuple, env: dict[str, Any], funcs: dict[str, Callable[..., Any]]) -> None:
    """expr resolves every name at compile time: an unknown one is a compile error."""
    kind = node[0]
    if kind == "var" and node[1] not in env:
        raise ExprError(f"unknown name {node[1]}")
    if kind == "call":
        if node[1] not in funcs:
            raise ExprError(f"unknown func {node[1]}")
        for arg in node[2]:
            _check_names(arg, env, funcs)
    for child in node[1:]:
        if isinstance(child, tuple):
            _check_names(child, env, funcs)


def _eval(node: tuple, env: dict[str, Any], funcs: dict[str, Callable[..., Any]]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "var":
        return env[node[1]]
    if kind == "call":
        args = [_eval(a, env, funcs) for a in node[2]]
        if len(args) != 1:
            raise ExprError(f"{node[1]}() takes one argument, got {len(args)}")
        return funcs[node[1]](*args)
    if kind == "index":
        target, index = _eval(node[1], env, funcs), _eval(node[2], env, funcs)
        if not isinstance(target, list):
            raise ExprError(f"cannot index {type(target).__name__}")
        if not _is_number(index) or int(index) != index:
            raise ExprError(f"invalid index {index!r}")
        i = int(index) + (len(target) if index < 0 else 0)  # expr allows negative indexes from the end
        if not 0 <= i < len(target):
            raise ExprError(f"index out of range: {int(index)} (array length is {len(target)})")
        return target[i]
    if kind == "unary":
        value = _eval(node[2], env, funcs)
        if node[1] == "!":
            if not isinstance(value, bool):
                raise ExprError(f"invalid operation: ! {type(value).__name__}")
            return not value
        if not _is_number(value):
            raise ExprError(f"invalid operation: {node[1]} {type(value).__name__}")
        return -value if node[1] == "-" else value
    _, op, left_node, right_node = node
    left = _eval(left_node, env, funcs)
    if op in ("&&", "||"):
        if not isinstance(left, bool):
            raise ExprError(f"invalid operation: {type(left).__name__} {op} ...")
        if (op == "&&" and not left) or (op == "||" and left):
            return left  # short-circuit: the right side is never evaluated
        right = _eval(right_node, env, funcs)
        if not isinstance(right, bool):
            raise ExprError(f"invalid operation: ... {op} {type(right).__name__}")
        return right
    right = _eval(right_node, env, funcs)
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return _compare(op, left, right)
    if not (_is_number(left) and _is_number(right)):
        raise ExprError(f"invalid operation: {type(left).__name__} {op} {type(right).__name__}")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "%":
        if not (isinstance(left, int) and isinstance(right, int)):
            raise ExprError("invalid operation: % on floats")
        return math.fmod(left, right)
    if right == 0:
        return math.copysign(math.inf, left) if left else math.nan  # float64 division
    return left / right


def evaluate_condition(condition: str, result: Any) -> bool:
    """`EvalCondition`: the condition with `result` (and Argo's helper functions); must be a bool."""
    env = {"result": result}
    funcs: dict[str, Callable[..., Any]] = {
        "len": _len, "isNaN": _float_arg("isNaN"), "isInf": _float_arg("isInf"),
        "asInt": _as_int, "asFloat": _as_float, "isNil": lambda _: result is None,
    }
    tree = _Parser(condition).parse()
    _check_names(tree, env, funcs)
    value = _eval(tree, env, funcs)
    if not isinstance(value, bool):
        raise ExprError(f"expected bool, but got {type(value).__name__}")
    return value


def evaluate_result(result: Any, success: str, failure: str) -> str:
    """`EvaluateResult`: one measurement's phase."""
    try:
        ok = evaluate_condition(success, result) if success else False
        bad = evaluate_condition(failure, result) if failure else False
    except ExprError:
        return ERROR
    if not success and not failure:
        return SUCCESSFUL
    if success and not failure:
        bad = not ok
    elif failure and not success:
        ok = not bad
    if bad:
        return FAILED
    if not ok:
        return INCONCLUSIVE
    return SUCCESSFUL


# ------------------------------------------------------------------------------------------ the run

@dataclass
class MetricResult:
    """The counters Argo keeps per metric (MetricResult) and the phase they give."""

    metric: dict[str, Any]
    measurements: list[str] = field(default_factory=list)
    failed: int = 0
    inconclusive: int = 0
    consecutive_error: int = 0

    def record(self, phase: str) -> None:
        self.measurements.append(phase)
        if phase == FAILED:
            self.failed += 1
            self.consecutive_error = 0
        elif phase == INCONCLUSIVE:
            self.inconclusive += 1
            self.consecutive_error = 0
        elif phase == ERROR:
            self.consecutive_error += 1
        else:
            self.consecutive_error = 0

    def phase(self, terminating: bool) -> str:
        """assessMetricStatus for a metric without `count` (background analysis runs indefinitely)."""
        if not self.measurements:
            return SUCCESSFUL if terminating else PENDING
        m = self.metric
        verdict = ""
        failure_limit = int(m.get("failureLimit", 0))
        if failure_limit >= 0 and self.failed > failure_limit:
            verdict = FAILED
        if self.inconclusive > int(m.get("inconclusiveLimit", 0)):
            verdict = INCONCLUSIVE
        if self.consecutive_error > int(m.get("consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT)):
            verdict = ERROR
        if verdict:
            return verdict
        return SUCCESSFUL if terminating else RUNNING


def run_phase(results: Sequence[MetricResult], terminated: bool) -> str:
    """assessRunStatus: any completed Failed/Error/Inconclusive metric terminates the run; the run's
    phase is the worst completed metric phase (Running while anything still runs)."""
    terminating = terminated or any(r.phase(False) in (FAILED, ERROR, INCONCLUSIVE) for r in results)
    phases = [r.phase(terminating) for r in results]
    if not terminating and any(p in (RUNNING, PENDING) for p in phases):
        return RUNNING
    return max(phases, key=STATUS_ORDER.index)
